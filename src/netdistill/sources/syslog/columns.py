"""Column helpers the firewall line formats share (netfilter, ASA, CEF).

Each format works on a Polars frame of the line table (``sources/lines.py``) and uses
these for what every format needs the same way: the event time of a line, IANA protocol
numbers from names, canonical IP text, and the shared extra fields, so that the same
thing has the same field name whichever device reported it.
"""

from __future__ import annotations

import ipaddress

import polars as pl
import pyarrow as pa

from netdistill.records.batch import FieldSpec

#: extra fields shared by several formats (one name for one thing)
IN_INTERFACE = FieldSpec("in_interface", "string", "name of the interface the packet came in on")
OUT_INTERFACE = FieldSpec("out_interface", "string", "name of the interface it went out on")
ICMP_TYPE = FieldSpec("icmp_type", "uint8", "ICMP type (RFC 792 / RFC 4443)")
ICMP_CODE = FieldSpec("icmp_code", "uint8", "ICMP code")

#: protocol names as firewalls write them → IANA protocol numbers
PROTOCOL_NUMBERS: dict[str, int] = {
    "ICMP": 1,
    "IGMP": 2,
    "TCP": 6,
    "UDP": 17,
    "GRE": 47,
    "ESP": 50,
    "AH": 51,
    "ICMPV6": 58,
    "IPV6-ICMP": 58,
    "SCTP": 132,
    "UDPLITE": 136,
}


def lines_frame(lines: pa.Table) -> pl.DataFrame:
    """The line table as a Polars frame with a row index ``_row``: only the columns the
    formats read, so a transport's other columns never clash with a format's own."""
    keep = [c for c in ("line", "exporter", "time", "received_at") if c in lines.column_names]
    frame = pl.from_arrow(lines.select(keep))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_row_index("_row")


def event_time(frame: pl.DataFrame) -> pl.Expr:
    """When the event happened: the syslog header's time, else the receive time, else
    null (a file line without either)."""
    candidates = [pl.col(c) for c in ("time", "received_at") if c in frame.columns]
    if not candidates:
        return pl.lit(None, dtype=pl.Datetime("us", "UTC"))
    return pl.coalesce([c.cast(pl.Datetime("us", "UTC")) for c in candidates])


def protocol_number(name: pl.Expr) -> pl.Expr:
    """``TCP``/``udp``/``6`` → 6 as uint8; anything else null."""
    upper = name.str.to_uppercase()
    return pl.coalesce(
        upper.replace_strict(PROTOCOL_NUMBERS, default=None, return_dtype=pl.UInt8),
        upper.cast(pl.UInt8, strict=False),
    )


def canonical_ip(column: pl.Expr) -> pl.Expr:
    """Addresses as canonical text (``2001:DB8:0::1`` → ``2001:db8::1``); not an address
    → null. IPv4 text is canonical already when it is a dotted quad of 0–255; IPv6 is
    rewritten per distinct value (few distinct addresses per batch)."""
    return column.map_batches(_canonical_ips, return_dtype=pl.String)


def _canonical_ips(series: pl.Series) -> pl.Series:
    v4 = series.str.contains(
        r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
        r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$"
    )
    other = series.filter(~v4.fill_null(True) & series.is_not_null()).unique()
    mapping: dict[str, str | None] = {}
    for text in other.to_list():  # distinct non-IPv4 values only, not one per line
        try:
            mapping[text] = str(ipaddress.ip_address(text))
        except ValueError:
            mapping[text] = None
    if not mapping:
        return pl.select(pl.when(v4).then(series)).to_series()
    rewritten = series.replace_strict(mapping, default=None, return_dtype=pl.String)
    return pl.select(pl.when(v4).then(series).otherwise(rewritten)).to_series()


def uint(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Decimal text → unsigned integer; out of range or not a number → null."""
    return column.cast(dtype, strict=False)


def passthrough(frame: pl.DataFrame) -> list[pl.Expr]:
    """The transport columns a record keeps: who sent the line."""
    return [pl.col("exporter")] if "exporter" in frame.columns else []


def bad_rows(bad: pl.DataFrame) -> list[tuple[int, str]]:
    """(row, reason) pairs of a frame of ``_row`` and ``_bad`` (only bad lines: few)."""
    return list(zip(bad["_row"].to_list(), bad["_bad"].to_list(), strict=True))
