"""Column expressions the log formats share: splitting IPs from host names, ``-`` as null.

All are Polars expressions, evaluated over a whole batch of lines at once.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from netdistill.sources.lines import Parsed

#: dotted quad, or something made of hex digits, colons and dots with at least one colon
#: (IPv6, IPv4-mapped); anything else in an address position is a host name
_IPV4 = r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$"
_IPV6 = r"^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$"


def is_ip(expr: pl.Expr) -> pl.Expr:
    return expr.str.contains(_IPV4) | expr.str.contains(_IPV6)


def ip_or_null(expr: pl.Expr) -> pl.Expr:
    """The address in canonical text (IPv6 lower-cased), or null when it is not one."""
    return pl.when(is_ip(expr)).then(expr.str.to_lowercase()).otherwise(None)


def host_or_null(expr: pl.Expr) -> pl.Expr:
    """The value when it is a host name (not an address, not ``-``), else null."""
    return pl.when(is_ip(expr) | (expr == "-") | (expr == "")).then(None).otherwise(expr)


def dash_null(expr: pl.Expr) -> pl.Expr:
    """``-`` (the logs' "no value") as null."""
    return pl.when(expr == "-").then(None).otherwise(expr)


def first_reason(checks: list[tuple[pl.Expr, str]]) -> pl.Expr:
    """A column holding, per row, the reason of the first failed check (null if none)."""
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    for failed, text in reversed(checks):
        reason = pl.when(failed.fill_null(True)).then(pl.lit(text)).otherwise(reason)
    return reason


def split_good_bad(frame: pl.DataFrame, record_columns: list[pl.Expr]) -> Parsed:
    """``frame`` has ``_row`` (index in the batch) and ``_reason``; returns the records of
    the rows without a reason and the (index, reason) pairs of the others."""
    bad_rows = frame.filter(pl.col("_reason").is_not_null()).select("_row", "_reason")
    good = frame.filter(pl.col("_reason").is_null()).select(record_columns)
    bad = list(zip(bad_rows["_row"].to_list(), bad_rows["_reason"].to_list(), strict=True))
    return Parsed(good.to_arrow(), bad)


def lines_frame(lines: pa.Table) -> pl.DataFrame:
    """The batch as a Polars frame with its row index, keeping ``exporter`` when present."""
    frame = pl.from_arrow(lines.select(["line"]))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_row_index("_row")
    if "exporter" in lines.column_names:
        frame = frame.with_columns(exporter=pl.Series("exporter", lines.column("exporter")))
    return frame


def exporter_column(frame: pl.DataFrame) -> list[pl.Expr]:
    return [pl.col("exporter")] if "exporter" in frame.columns else []


UTC_US = pl.Datetime("us", "UTC")


def divided(expr: pl.Expr, divisor: float) -> pl.Expr:
    """``expr / divisor`` correctly rounded: Polars multiplies by the reciprocal, which
    makes 20 µs 1.9999999999999998e-05 s; numpy divides."""

    def divide(series: pl.Series) -> pl.Series:
        values = series.cast(pl.Float64).to_numpy() / divisor
        return pl.Series(series.name, values, nan_to_null=True)

    return expr.map_batches(divide, return_dtype=pl.Float64)
