"""ArcSight Common Event Format lines (format ``cef``): one record per event.

Format (Micro Focus "Implementing ArcSight CEF", rev. 25)::

    CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension

The header may follow anything (a syslog header, a file's time stamp). In header fields
``\\|`` and ``\\\\`` are escapes; the Extension is ``key=value`` pairs separated by
spaces, where a value runs to the next `` key=`` and escapes ``\\=``, ``\\\\``, ``\\n``
and ``\\r``.

Mapped keys: ``src``/``dst`` → ``src_ip``/``dst_ip``, ``spt``/``dpt`` → ports, ``proto``
(name or number) → ``protocol``, ``in``/``out`` → ``bytes_in``/``bytes_out`` and ``bytes``
= their sum (either alone when only one is given), ``suser`` → ``user_name``, ``duser`` →
``dst_user``, ``request`` → ``url``, ``act`` → ``action``, ``start``/``end`` →
``start_time``/``end_time`` (falling back to ``rt``, then the line's time). Times are
milliseconds since the epoch or ``MMM dd yyyy HH:mm:ss[.SSS]``, taken as UTC (a zone
name after the time is ignored). Header fields go to ``cef_vendor``, ``cef_product``,
``cef_signature``, ``cef_name`` and ``cef_severity`` (text: CEF allows 0–10 or words).
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from netdistill.records.batch import FieldSpec
from netdistill.sources.lines import Parsed
from netdistill.sources.syslog.columns import (
    bad_rows,
    canonical_ip,
    event_time,
    lines_frame,
    passthrough,
    protocol_number,
    uint,
)

_HEADER_FIELD = r"((?:[^|\\]|\\.)*)"
_HEADER = r"CEF:\s?(\d+)\|" + r"\|".join([_HEADER_FIELD] * 6) + r"\|(.*)$"
_HEADER_NAMES = ("version", "vendor", "product", "device_version", "signature", "name",
                 "severity", "ext")  # fmt: skip
#: extension keys read, and the column each goes to before conversion
_KEYS = ("src", "dst", "spt", "dpt", "proto", "in", "out", "suser", "duser", "request",
         "act", "start", "end", "rt")  # fmt: skip
_HEADER_FIELDS = ("vendor", "product", "signature", "name", "severity")
_PLACEHOLDER = "\ue000"  # a private-use character stands for "\\" while unescaping

FIELDS = (
    FieldSpec("cef_vendor", "string", "CEF Device Vendor"),
    FieldSpec("cef_product", "string", "CEF Device Product"),
    FieldSpec("cef_signature", "string", "CEF Signature ID (event class)"),
    FieldSpec("cef_name", "string", "CEF Name"),
    FieldSpec("cef_severity", "string", "CEF Severity (0-10 or Low/Medium/High/Very-High)"),
    FieldSpec("action", "string", "what the device did (CEF act)"),
    FieldSpec("dst_user", "string", "destination user name (CEF duser)"),
    FieldSpec("bytes_in", "uint64", "bytes received by the source side (CEF in)"),
    FieldSpec("bytes_out", "uint64", "bytes sent by the source side (CEF out)"),
)


def _unescape(column: pl.Expr, escapes: dict[str, str]) -> pl.Expr:
    column = column.str.replace_all("\\\\", _PLACEHOLDER, literal=True)
    for escaped, plain in escapes.items():
        column = column.str.replace_all(escaped, plain, literal=True)
    return column.str.replace_all(_PLACEHOLDER, "\\", literal=True)


_HEADER_ESCAPES = {"\\|": "|"}
_VALUE_ESCAPES = {"\\=": "=", "\\n": "\n", "\\r": "\r"}


def _value(key: str) -> pl.Expr:
    """The raw text of extension ``key`` (up to the next unescaped ``=``, minus the next
    key's name)."""
    return (
        pl.col("_ext")
        .str.extract(rf" {key}=((?:[^=\\]|\\.)*=?)", 1)
        .str.replace(r"\s+[A-Za-z0-9_.\[\]-]+=$", "")
        .str.strip_chars_end()
    )


def _time(column: pl.Expr) -> pl.Expr:
    millis = column.cast(pl.Int64, strict=False)
    text = column.str.replace(r"^(\w{3} +\d{1,2} \d{4} \d\d:\d\d:\d\d(?:\.\d+)?).*$", "$1")
    return pl.coalesce(
        pl.from_epoch(millis, time_unit="ms").dt.replace_time_zone("UTC"),
        text.str.strptime(
            pl.Datetime("us"), "%b %d %Y %H:%M:%S%.f", strict=False
        ).dt.replace_time_zone("UTC"),
    ).cast(pl.Datetime("us", "UTC"))


_HEADER_START = r"CEF:\s?\d+\|"
_STRIP_NEXT_KEY = r"\s+[A-Za-z0-9_.\[\]-]+=$"


def _regex_fields(frame: pl.DataFrame) -> pl.DataFrame:
    """Header fields and extension values (``k_<key>``) by regular expressions, escapes
    undone: for lines with backslashes or newlines."""
    header = pl.col("_text").str.extract_groups(_HEADER)
    frame = frame.with_columns(header.alias("_h")).unnest("_h")
    frame = frame.rename(dict(zip([str(i) for i in range(1, 9)], _HEADER_NAMES, strict=True)))
    frame = frame.with_columns((pl.lit(" ") + pl.col("ext")).alias("_ext"))
    return frame.select(
        "_row",
        *[c for c in ("exporter", "time", "received_at") if c in frame.columns],
        "version",
        *[_unescape(pl.col(name), _HEADER_ESCAPES).alias(name) for name in _HEADER_FIELDS],
        *[_unescape(_value(key), _VALUE_ESCAPES).alias(f"k_{key}") for key in _KEYS],
    )


def _split_fields(frame: pl.DataFrame) -> pl.DataFrame:
    """The same columns as ``_regex_fields`` for lines with no backslash and no newline,
    with the header split at ``|`` instead of one regular expression per field, and no
    unescaping (same result: with no escapes a header field is the text between two
    ``|``, and unescaping changes nothing)."""
    start = pl.col("_text").str.find(_HEADER_START)
    parts = pl.col("_text").str.slice(start).str.splitn("|", 8).alias("_h")
    frame = frame.with_columns(parts).unnest("_h")
    found = pl.col("field_7").is_not_null()
    names = _HEADER_NAMES
    frame = frame.with_columns(
        pl.when(found).then(pl.col(f"field_{i}")).alias(name) for i, name in enumerate(names)
    )
    frame = frame.with_columns((pl.lit(" ") + pl.col("ext")).alias("_ext"))
    return frame.select(
        "_row",
        *[c for c in ("exporter", "time", "received_at") if c in frame.columns],
        "version",
        *_HEADER_FIELDS,
        *[_value(key).alias(f"k_{key}") for key in _KEYS],
    )


class CefFormat:
    """Stateless: each CEF line is one event."""

    fields: tuple[FieldSpec, ...] = FIELDS

    def parse(self, lines: pa.Table) -> Parsed:
        frame = lines_frame(lines)
        frame = frame.with_columns(pl.col("line").str.strip_chars_end("\r\n").alias("_text"))
        # lines without a backslash (no escapes) or a newline take the split path; the
        # rest (rare) the regular expressions, which handle escapes
        plain = ~pl.col("_text").str.contains(r"[\\\n]").fill_null(True)
        frame = pl.concat(
            [_split_fields(frame.filter(plain)), _regex_fields(frame.filter(~plain))],
            how="vertical",
        ).sort("_row")
        frame = frame.with_columns(
            canonical_ip(pl.col("k_src")).alias("src_ip"),
            canonical_ip(pl.col("k_dst")).alias("dst_ip"),
            uint(pl.col("k_in"), pl.UInt64()).alias("bytes_in"),
            uint(pl.col("k_out"), pl.UInt64()).alias("bytes_out"),
        )
        reason = (
            pl.when(pl.col("version").is_null())
            .then(pl.lit("cef: no CEF:Version|Vendor|Product|Version|ID|Name|Severity| header"))
            .when(pl.col("k_src").is_not_null() & pl.col("src_ip").is_null())
            .then(pl.lit("cef: src is not an IP address"))
            .when(pl.col("k_dst").is_not_null() & pl.col("dst_ip").is_null())
            .then(pl.lit("cef: dst is not an IP address"))
        )
        frame = frame.with_columns(reason.alias("_bad"))
        bad = frame.filter(pl.col("_bad").is_not_null()).select("_row", "_bad")
        good = frame.filter(pl.col("_bad").is_null())
        fallback = event_time(good)
        receipt = pl.coalesce(_time(pl.col("k_rt")), fallback)
        both = pl.col("bytes_in").is_not_null() & pl.col("bytes_out").is_not_null()
        records = good.select(
            pl.coalesce(_time(pl.col("k_start")), receipt).alias("start_time"),
            pl.coalesce(_time(pl.col("k_end")), receipt).alias("end_time"),
            "src_ip",
            "dst_ip",
            uint(pl.col("k_spt"), pl.UInt16()).alias("src_port"),
            uint(pl.col("k_dpt"), pl.UInt16()).alias("dst_port"),
            protocol_number(pl.col("k_proto")).alias("protocol"),
            pl.when(both)
            .then(pl.col("bytes_in") + pl.col("bytes_out"))
            .otherwise(pl.coalesce("bytes_in", "bytes_out"))
            .alias("bytes"),
            "bytes_in",
            "bytes_out",
            pl.col("k_suser").alias("user_name"),
            pl.col("k_duser").alias("dst_user"),
            pl.col("k_request").alias("url"),
            pl.col("k_act").alias("action"),
            *[pl.col(name).alias(f"cef_{name}") for name in _HEADER_FIELDS],
            *passthrough(good),
        )
        return Parsed(records.to_arrow(), bad_rows(bad))

    def flush(self) -> Parsed:
        return Parsed(pa.table({}))
