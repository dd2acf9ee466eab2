"""Accumulators of the ``aggregate`` stage: ``out: "function(field)"`` parsed, and for
each function the polars expressions that reduce records to a partial state, combine
partial states (rows in arrival order) and give the emitted value. Also the Arrow
conversion the aggregate code shares (plain, not large, strings and lists).

==============  ===================  =====================  ====================
function        partial state        combined by            emitted
==============  ===================  =====================  ====================
sum, count      running value        sum                    the value
min, max        running value        min, max               the value
first, last     value                first, last            the value
avg             ``__sum``, ``__n``   sum, sum               sum / n
count_distinct  ``__set`` (list)     union (explode+unique) list length
==============  ===================  =====================  ====================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

FUNCTIONS = ("sum", "count", "min", "max", "avg", "count_distinct", "first", "last")
_CALL = re.compile(r"^\s*([a-z_]+)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)?\s*\)\s*$")


@dataclass(frozen=True, slots=True)
class Accumulator:
    """``out = function(field)``; ``field`` is empty for ``count()`` (every record)."""

    out: str
    function: str
    field: str

    @classmethod
    def parse(cls, out: str, text: str) -> Accumulator:
        match = _CALL.match(text)
        if match is None:
            raise ValueError(f"{out}: {text!r} is not 'function(field)'")
        function, field = match.group(1), match.group(2) or ""
        if function not in FUNCTIONS:
            raise ValueError(f"{out}: unknown function {function!r} ({', '.join(FUNCTIONS)})")
        if not field and function != "count":
            raise ValueError(f"{out}: {function}() needs a field")
        return cls(out, function, field)

    def partial(self) -> list[pl.Expr]:
        """Reduce records to this accumulator's partial state (one group)."""
        col = pl.col(self.field) if self.field else None
        o = self.out
        if self.function == "count":
            return [(pl.len() if col is None else col.count()).cast(pl.Int64).alias(o)]
        assert col is not None
        if self.function == "avg":
            return [col.sum().cast(pl.Float64).alias(f"{o}__sum"), col.count().alias(f"{o}__n")]
        if self.function == "count_distinct":
            return [col.drop_nulls().unique().alias(f"{o}__set")]
        return [getattr(col, self.function)().alias(o)]

    def combine(self) -> list[pl.Expr]:
        """Combine partial states (rows in arrival order) into one."""
        o = self.out
        if self.function in ("sum", "count"):
            return [pl.col(o).sum()]
        if self.function == "avg":
            return [pl.col(f"{o}__sum").sum(), pl.col(f"{o}__n").sum()]
        if self.function == "count_distinct":
            return [pl.col(f"{o}__set").explode().drop_nulls().unique()]
        return [getattr(pl.col(o), self.function)()]

    def final(self) -> pl.Expr:
        """The emitted value from the partial state."""
        o = self.out
        if self.function == "avg":
            return (pl.col(f"{o}__sum") / pl.col(f"{o}__n")).alias(o)
        if self.function == "count_distinct":
            return pl.col(f"{o}__set").list.len().cast(pl.Int64).alias(o)
        return pl.col(o)

    def state_columns(self) -> list[str]:
        if self.function == "avg":
            return [f"{self.out}__sum", f"{self.out}__n"]
        if self.function == "count_distinct":
            return [f"{self.out}__set"]
        return [self.out]


DEFAULT_ACCUMULATE: dict[str, str] = {
    "bytes": "sum(bytes)",
    "packets": "sum(packets)",
    "records": "count()",
    "start_time": "min(start_time)",
    "end_time": "max(end_time)",
}


def _plain(type_: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(type_) or pa.types.is_string_view(type_):
        return pa.string()
    if pa.types.is_large_list(type_) or pa.types.is_list(type_):
        return pa.list_(_plain(type_.value_type))
    return type_


def to_arrow(frame: pl.DataFrame) -> pa.Table:
    """``frame`` as Arrow with plain strings and lists (polars makes large ones), the
    types the rest of the code and ``records/schema.py`` build."""
    table = frame.to_arrow()
    schema = pa.schema([f.with_type(_plain(f.type)) for f in table.schema])
    return table if schema == table.schema else table.cast(schema)


def accumulator_text(accumulator: Accumulator) -> str:
    return f"{accumulator.function}({accumulator.field})"


def frame_of(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame
