"""Field mappings of the generic line formats, and text → typed column conversion.

A mapping names a target field (standard or new), its type (``records/fields.py``
FIELD_TYPES) and where its value comes from: a column (``from``: CSV column name or
index, JSON key or dotted path) or a constant (``value``). ``convert`` turns a column of
text into the field's Arrow type for a whole batch at once and says which rows did not
convert, so a format can quarantine those lines with the field and the value in the
reason and keep the rest. The Asterisk CDR format uses the same conversions.

Timestamps: ``format`` is a ``strptime`` pattern (``%Y-%m-%d %H:%M:%S``; with ``%z`` the
offset in the text wins), ``epoch_s``/``epoch_ms`` (numbers, fractions allowed) or
``iso8601`` (the default: ``2024-11-23T10:00:01Z``, ``…+01:00``, ``2024-11-23 10:00:01``,
``2024-11-23``). Texts without an offset are local time of ``timezone``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from netdistill.errors import FieldError
from netdistill.records.batch import FieldSpec
from netdistill.records.fields import FIELD_TYPES, STANDARD_FIELDS, check_field_name

_STANDARD_TYPES = {f.name: f.type for f in STANDARD_FIELDS}
_INTEGER_TYPES = {
    "int64": (pl.Int64, -(2**63), 2**63 - 1),
    "uint8": (pl.UInt8, 0, 2**8 - 1),
    "uint16": (pl.UInt16, 0, 2**16 - 1),
    "uint32": (pl.UInt32, 0, 2**32 - 1),
    "uint64": (pl.UInt64, 0, 2**64 - 1),
}
_TRUE = ["true", "t", "yes", "y", "1", "on"]
_FALSE = ["false", "f", "no", "n", "0", "off"]
_TIME_FORMATS = ("epoch_s", "epoch_ms", "iso8601")


class FieldMapping(BaseModel):
    """One target field of a generic format."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str
    type: str = "string"
    #: CSV column name or 0-based index; JSON key or dotted path (``a.b.c``)
    source: str | int | None = Field(default=None, alias="from")
    #: timestamps only: strptime pattern, ``epoch_s``, ``epoch_ms`` or ``iso8601``
    format: str | None = None
    #: a constant instead of ``from``
    value: str | int | float | bool | None = None

    @model_validator(mode="after")
    def _check(self) -> FieldMapping:
        try:
            check_field_name(self.name)
        except FieldError as e:
            raise ValueError(str(e)) from None
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name!r}: unknown type {self.type!r}")
        standard = _STANDARD_TYPES.get(self.name)
        if standard is not None and standard != self.type:
            raise ValueError(
                f"field {self.name!r} is a standard field of type {standard}, not {self.type}"
            )
        if (self.source is None) == (self.value is None):
            raise ValueError(f"field {self.name!r}: give exactly one of 'from' and 'value'")
        if self.format is not None and self.type != "timestamp":
            raise ValueError(f"field {self.name!r}: 'format' applies to timestamps only")
        if self.format and "%" not in self.format and self.format not in _TIME_FORMATS:
            raise ValueError(
                f"field {self.name!r}: format {self.format!r} is neither a strptime pattern "
                f"nor one of {', '.join(_TIME_FORMATS)}"
            )
        return self


def check_mappings(fields: Sequence[FieldMapping]) -> None:
    """Raise ``ValueError`` when two mappings fill the same field."""
    seen: set[str] = set()
    for f in fields:
        if f.name in seen:
            raise ValueError(f"field {f.name!r} is mapped twice")
        seen.add(f.name)


def field_specs(fields: Sequence[FieldMapping]) -> tuple[FieldSpec, ...]:
    """The non-standard target fields, which the manager adds to ``records``."""
    return tuple(
        FieldSpec(f.name, f.type, "from a generic line format")
        for f in fields
        if f.name not in _STANDARD_TYPES
    )


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = rf"^{_OCTET}(?:\.{_OCTET}){{3}}$"


def _canonical_ips(text: pl.Series) -> pl.Series:
    # Canonical dotted quads (most addresses) are checked by one regular expression over
    # the column; the rest take one Python call per *distinct* value, since RFC 5952
    # canonical IPv6 text has no vectorized form.
    canonical_v4 = text.str.contains(_CANONICAL_IPV4).fill_null(False)
    if bool(canonical_v4.all()):
        return text
    distinct = text.filter(~canonical_v4).drop_nulls().unique()
    canonical: list[str | None] = []
    for value in distinct.to_list():
        try:
            canonical.append(str(ipaddress.ip_address(value.strip())))
        except ValueError:
            canonical.append(None)
    table = pl.DataFrame({"k": distinct, "v": pl.Series(canonical, dtype=pl.String)})
    others = text.replace_strict(table["k"], table["v"], default=None, return_dtype=pl.String)
    return pl.select(pl.when(canonical_v4).then(text).otherwise(others)).to_series()


def _local_to_utc(naive: pl.Series, timezone: str) -> pl.Series:
    return naive.dt.replace_time_zone(
        timezone, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")


def parse_times(text: pl.Series, fmt: str | None, timezone: str) -> pl.Series:
    """Text → ``Datetime(us, UTC)``; null where it does not parse."""
    if fmt in ("epoch_s", "epoch_ms"):
        scale = 1_000_000 if fmt == "epoch_s" else 1_000
        micros = (text.str.strip_chars().cast(pl.Float64, strict=False) * scale).round(0)
        in_range = micros.abs() < 2**62
        micros = pl.select(pl.when(in_range).then(micros)).to_series().cast(pl.Int64)
        return micros.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if fmt is None or fmt == "iso8601":
        iso = text.str.strip_chars().str.replace(" ", "T", literal=True)
        aware = iso.str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="us", time_zone="UTC", strict=False
        )
        naive = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
        day = iso.str.to_datetime("%Y-%m-%d", time_unit="us", strict=False)
        local = _local_to_utc(naive.fill_null(day), timezone)
        return aware.fill_null(local)
    if "%z" in fmt or "%#z" in fmt:
        return text.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)
    return _local_to_utc(text.str.to_datetime(fmt, time_unit="us", strict=False), timezone)


def convert(text: pl.Series, type_: str, fmt: str | None, timezone: str) -> pl.Series:
    """A text column → ``type_``; a row is null where the text is null, empty or does not
    convert (``failed`` tells the last two apart)."""
    text = text.cast(pl.String)
    if type_ == "string":
        return text
    if type_ == "ip":
        return _canonical_ips(text)
    if type_ in _INTEGER_TYPES:
        dtype, low, high = _INTEGER_TYPES[type_]
        stripped = text.str.strip_chars()
        wide = stripped.cast(pl.Int128, strict=False)
        ok = (wide >= low) & (wide <= high)
        return pl.select(pl.when(ok).then(wide)).to_series().cast(dtype)
    if type_ == "float64":
        return text.str.strip_chars().cast(pl.Float64, strict=False)
    if type_ == "bool":
        lower = text.str.strip_chars().str.to_lowercase()
        return (
            pl.select(
                pl.when(lower.is_in(_TRUE))
                .then(True)
                .when(lower.is_in(_FALSE))
                .then(False)
                .otherwise(None)
            )
            .to_series()
            .cast(pl.Boolean)
        )
    if type_ == "timestamp":
        return parse_times(text, fmt, timezone)
    raise ValueError(f"unknown field type {type_!r}")


def failed(text: pl.Series, converted: pl.Series) -> pl.Series:
    """Rows that held a value that did not convert (empty text counts as no value)."""
    # most rows converted, so only the few null results are looked at closely
    maybe = (converted.is_null() & text.is_not_null()).fill_null(False)
    if not maybe.any():
        return maybe
    at = maybe.arg_true()
    has_value = text.gather(at).str.strip_chars().str.len_bytes() > 0
    return maybe.scatter(at, has_value)


def constant(value: Any, type_: str, n: int, timezone: str) -> pl.Series:
    """A mapping's constant ``value`` on ``n`` rows, converted like a column would be."""
    single = convert(
        pl.Series([str(value).lower() if type_ == "bool" else str(value)]), type_, None, timezone
    )
    if single.is_null().all():
        raise ValueError(f"constant {value!r} is not a valid {type_}")
    return single.extend_constant(single[0], n - 1) if n else single.clear()


def arrow_type(type_: str) -> pa.DataType:
    return FIELD_TYPES[type_][0]


def build_records(
    texts: pl.DataFrame, mappings: Sequence[FieldMapping], timezone: str
) -> tuple[pa.Table, pl.Series, pl.Series]:
    """Typed record columns from text columns named after the mappings' fields.

    Returns the records of every row, which rows are bad, and for bad rows the reason
    naming the first field that did not convert and its text (column expressions over
    the bad rows only, not a loop over rows)."""
    n = texts.height
    typed: dict[str, pl.Series] = {}
    checked: list[tuple[FieldMapping, pl.Series, pl.Series]] = []
    for m in mappings:
        if m.source is None:
            typed[m.name] = constant(m.value, m.type, n, timezone)
            continue
        text = texts[m.name]
        value = convert(text, m.type, m.format, timezone)
        typed[m.name] = value
        if m.type != "string":  # text stays text: nothing can fail
            checked.append((m, text, failed(text, value)))
    out = pl.Series("reason", [None] * n, dtype=pl.String)
    any_bad = pl.Series([False] * n, dtype=pl.Boolean)
    for _, _, bad in checked:
        any_bad = any_bad | bad
    if checked and any_bad.any():
        at = any_bad.arg_true()
        work: dict[str, pl.Series] = {}
        reason = pl.lit(None, dtype=pl.String)
        for i, (m, text, bad) in reversed(list(enumerate(checked))):
            work[f"t{i}"] = text.gather(at).str.slice(0, 80)
            work[f"f{i}"] = bad.gather(at)
            what = m.type + (f" ({m.format})" if m.format else "")
            reason = (
                pl.when(pl.col(f"f{i}"))
                .then(pl.format(f"field {m.name!r}: '{{}}' is not a valid {what}", pl.col(f"t{i}")))
                .otherwise(reason)
            )
        out = out.scatter(at, pl.DataFrame(work).select(reason=reason)["reason"])
    arrays = {m.name: typed[m.name].to_arrow().cast(arrow_type(m.type)) for m in mappings}
    table = pa.table(arrays) if mappings else pa.table({})
    return table, out.is_not_null(), out


def assemble(
    table: pa.Table,
    line_index: pl.Series,
    row_bad: pl.Series,
    row_reason: pl.Series,
    structural: list[tuple[int, str]],
) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Keep the good rows; the bad ones become (line index, reason), merged with the
    lines already found bad by their structure, in line order."""
    bad_rows = pl.DataFrame({"i": line_index, "r": row_reason}).filter(row_bad)
    bad = structural + list(zip(bad_rows["i"].to_list(), bad_rows["r"].to_list(), strict=True))
    bad.sort(key=lambda item: item[0])
    keep = (~row_bad).to_arrow()
    return table.filter(keep) if table.num_columns else table, bad


def empty_records(mappings: Sequence[FieldMapping]) -> pa.Table:
    return pa.table({m.name: pa.array([], arrow_type(m.type)) for m in mappings})
