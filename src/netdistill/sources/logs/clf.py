"""Common and Combined Log Format (``format: clf``, ``format: combined``): Apache, nginx.

Common (httpd.apache.org/docs/current/logs.html, ``LogFormat "%h %l %u %t \\"%r\\" %>s %b"``)::

    192.0.2.7 - alice [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326

Combined adds ``"%{Referer}i" "%{User-agent}i"``; nginx's default ``combined`` is the
same with ``$remote_addr - $remote_user [$time_local] "$request" $status
$body_bytes_sent "$http_referer" "$http_user_agent"``. ``clf`` reads Common lines and
also Combined ones (filling referer and user agent); ``combined`` requires them.

Records: ``src_ip`` the client (a host name, with ``HostnameLookups On``, goes to
``src_host``), ``user_name`` the authenticated user (``-`` → null), ``start_time`` from
the bracketed date with its zone, ``url`` the request target, ``bytes`` (``-`` → 0),
``service`` ``http``; extra fields ``http_method``, ``http_status``, ``http_referer``,
``http_user_agent``. A request line that is not ``METHOD TARGET [PROTOCOL]`` (a TLS probe
on a plain port, ``-``) still makes a record, with no method and no URL.

Elapsed time: with ``format_options: {elapsed: microseconds}`` a last field holds the
time taken (Apache ``%D``; ``milliseconds`` for ``%{ms}T``, ``seconds`` for Apache
``%T`` or nginx ``$request_time``), which fills ``duration_s`` and ``end_time``. Apache's
``%t`` is when the request arrived; nginx's ``$time_local`` is when it was logged, so for
nginx set ``time_marks: end`` and the start is the time minus the elapsed time.

The batch is parsed with Polars string kernels, no per-line Python: escaped quotes
(``\\"``) are set aside, the line is split on ``"`` into head, request, status part and
(Combined) referer and user agent, and each part is split on spaces.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from netdistill.records.batch import FieldSpec
from netdistill.sources.lines import Parsed
from netdistill.sources.logs.columns import (
    UTC_US,
    dash_null,
    divided,
    exporter_column,
    first_reason,
    host_or_null,
    ip_or_null,
    lines_frame,
    split_good_bad,
)
from netdistill.sources.logs.squid import HTTP_FIELDS

# Stand-ins for escaped backslashes and quotes while splitting on quotes: control
# characters that Apache and nginx always escape, so never appear raw in a line.
_BACKSLASH, _QUOTE = "\x01", "\x02"

_ELAPSED_US = {"microseconds": 1, "milliseconds": 1_000, "seconds": 1_000_000}


class ClfOptions(BaseModel):
    """``format_options`` of ``clf`` and ``combined``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    elapsed: Literal["none", "microseconds", "milliseconds", "seconds"] = Field(
        "none", description="unit of a last field holding the time taken (%D, $request_time)"
    )
    time_marks: Literal["start", "end"] = Field(
        "start",
        description="whether the logged time is the request's start (Apache %t) "
        "or end (nginx $time_local)",
    )


class ClfFormat:
    """Common Log Format lines, with Combined's referer and user agent when present."""

    fields: tuple[FieldSpec, ...] = (
        *HTTP_FIELDS,
        FieldSpec("http_referer", "string", "HTTP Referer of the request"),
        FieldSpec("http_user_agent", "string", "HTTP User-Agent of the request"),
    )
    combined_required = False

    def __init__(self, options: ClfOptions | None = None) -> None:
        self.options = options or ClfOptions()

    def parse(self, lines: pa.Table) -> Parsed:
        frame = lines_frame(lines)
        has_elapsed = self.options.elapsed != "none"
        # escapes are rare: the stand-in dance runs only on batches that have some
        escaped = bool(frame["line"].str.contains("\\", literal=True).any())
        text = pl.col("line")
        if escaped:
            text = text.str.replace_all("\\\\", _BACKSLASH, literal=True).str.replace_all(
                '\\"', _QUOTE, literal=True
            )
        unescape = _unescape if escaped else _same
        frame = frame.with_columns(_parts=text.str.split('"'))
        parts = pl.col("_parts")

        def part(i: int) -> pl.Expr:
            return parts.list.get(i, null_on_oob=True)

        combined = parts.list.len() == 7
        frame = frame.with_columns(
            _nparts=parts.list.len(),
            _head=part(0).str.split(" "),
            _request=unescape(part(1)).str.split(" "),
            _tail=part(2).str.strip_chars(" ").str.split(" "),
            _between=pl.when(combined).then(part(4)).otherwise(pl.lit(" ")),
            _last=pl.when(combined).then(part(6).str.strip_chars(" ")).otherwise(None),
            http_referer=pl.when(combined).then(dash_null(unescape(part(3)))),
            http_user_agent=pl.when(combined).then(dash_null(unescape(part(5)))),
        ).drop("_parts")
        head, request, tail = pl.col("_head"), pl.col("_request"), pl.col("_tail")
        combined = pl.col("_nparts") == 7
        # the elapsed time ends the tail (Common) or follows the user agent (Combined)
        elapsed_text = (
            pl.when(combined).then(pl.col("_last")).otherwise(tail.list.get(2, null_on_oob=True))
        )
        tail_fields = tail.list.len() - pl.when(combined).then(0).otherwise(int(has_elapsed))
        request_ok = request.list.len().is_between(2, 3) & (
            request.list.get(0, null_on_oob=True) != ""
        )
        frame = frame.with_columns(
            _time=pl.concat_str(
                head.list.get(3, null_on_oob=True), pl.lit(" "), head.list.get(4, null_on_oob=True)
            ).str.strptime(UTC_US, "[%d/%b/%Y:%H:%M:%S %z]", strict=False),
            http_status=tail.list.get(0, null_on_oob=True).cast(pl.UInt16, strict=False),
            _bytes_text=tail.list.get(1, null_on_oob=True),
            _elapsed_text=elapsed_text if has_elapsed else pl.lit(None, dtype=pl.String),
            http_method=pl.when(request_ok).then(request.list.get(0, null_on_oob=True)),
            url=pl.when(request_ok).then(request.list.get(1, null_on_oob=True)),
        ).with_columns(
            bytes=pl.when(pl.col("_bytes_text") == "-")
            .then(pl.lit(0, dtype=pl.UInt64))
            .otherwise(pl.col("_bytes_text").cast(pl.UInt64, strict=False)),
            _elapsed_us=(
                pl.col("_elapsed_text").cast(pl.Float64, strict=False)
                * _ELAPSED_US.get(self.options.elapsed, 0)
            )
            .round()
            .cast(pl.Int64, strict=False),
        )
        frame = frame.with_columns(_reason=first_reason(self._checks(has_elapsed, tail_fields)))
        if has_elapsed:
            elapsed = pl.duration(microseconds=pl.col("_elapsed_us"))
            if self.options.time_marks == "start":
                start, end = pl.col("_time"), pl.col("_time") + elapsed
            else:
                start, end = pl.col("_time") - elapsed, pl.col("_time")
            duration = divided(pl.col("_elapsed_us"), 1e6)
        else:
            start = end = pl.col("_time")
            duration = pl.lit(None, dtype=pl.Float64)
        columns = [
            start.alias("start_time"),
            end.alias("end_time"),
            duration.alias("duration_s"),
            ip_or_null(head.list.get(0, null_on_oob=True)).alias("src_ip"),
            host_or_null(head.list.get(0, null_on_oob=True)).alias("src_host"),
            dash_null(head.list.get(2, null_on_oob=True)).alias("user_name"),
            pl.col("url"),
            pl.col("bytes"),
            pl.lit("http").alias("service"),
            pl.col("http_method"),
            pl.col("http_status"),
            pl.col("http_referer"),
            pl.col("http_user_agent"),
            *exporter_column(frame),
        ]
        return split_good_bad(frame, columns)

    def _checks(self, has_elapsed: bool, tail_fields: pl.Expr) -> list[tuple[pl.Expr, str]]:
        nparts = pl.col("_nparts")
        quotes = (
            (nparts != 7, 'expected 6 quotes (Combined: "request" "referer" "user-agent")')
            if self.combined_required
            else (~nparts.is_in([3, 7]), 'expected "request" (and "referer" "user-agent")')
        )
        checks = [
            quotes,
            (pl.col("_between") != " ", "expected one space between referer and user agent"),
            (
                (pl.col("_head").list.len() != 6)
                | (pl.col("_head").list.get(5, null_on_oob=True) != ""),
                "expected host ident user [date] before the request",
            ),
            (pl.col("_time").is_null(), "date is not [dd/Mon/yyyy:hh:mm:ss +zzzz]"),
            (tail_fields != 2, "expected status and bytes after the request"),
            (pl.col("http_status").is_null(), "status is not a number"),
            (pl.col("bytes").is_null(), "bytes is not a number or -"),
        ]
        if has_elapsed:
            checks.append(
                (
                    ~(pl.col("_elapsed_us") >= 0),
                    f"last field is not an elapsed time in {self.options.elapsed}",
                )
            )
        else:
            checks.append((pl.col("_last").fill_null("") != "", "unexpected fields at the end"))
        return checks

    def flush(self) -> Parsed:
        return Parsed(pa.table({}))


class CombinedFormat(ClfFormat):
    """Combined Log Format: Common plus ``"referer" "user-agent"``, both required."""

    combined_required = True


def _unescape(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(_QUOTE, '"', literal=True).str.replace_all(
        _BACKSLASH, "\\", literal=True
    )


def _same(expr: pl.Expr) -> pl.Expr:
    return expr
