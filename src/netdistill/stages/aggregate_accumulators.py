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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

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


# --- the exact fast path of ``process`` (see ``Aggregator._fast_partial``) ---------------

_KEY_CODE_MAX = 1 << 62  # combined group numbers stay below this (int64, no overflow)


def column_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, int] | None:
    """One code per row (int64 in ``0 .. card-1``, nulls a code of their own) and
    ``card``: equal values, equal codes — exact. None for a type not handled here."""
    type_ = column.type
    if pa.types.is_timestamp(type_) or pa.types.is_date(type_) or pa.types.is_duration(type_):
        column = column.cast(pa.int64())
        type_ = column.type
    if pa.types.is_integer(type_):
        bounds = pc.min_max(column).as_py()
        low, high = bounds["min"], bounds["max"]
        if low is None:  # every value null
            return np.zeros(len(column), np.int64), 1
        if high - low < max(4 * len(column), 1 << 16):  # dense enough: the value is the code
            values = pc.fill_null(column, high).to_numpy() if column.null_count else None
            values = column.to_numpy() if values is None else values
            if values.dtype.kind == "u":
                codes = (values - values.dtype.type(low)).astype(np.int64)
            else:
                codes = values.astype(np.int64) - low
            if column.null_count:
                codes[column.is_null().to_numpy(zero_copy_only=False)] = high - low + 1
            return codes, high - low + 2
    elif not (pa.types.is_string(type_) or pa.types.is_large_string(type_)):
        return None
    encoded = pc.dictionary_encode(column.combine_chunks(), null_encoding="encode")
    return encoded.indices.to_numpy().astype(np.int64), max(len(encoded.dictionary), 1)


def _dense(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """``codes`` renumbered 0, 1, … in order of first appearance; and how many."""
    encoded = pc.dictionary_encode(pa.array(codes))
    return encoded.indices.to_numpy().astype(np.int64), len(encoded.dictionary)


def group_numbers(codes: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, int]:
    """Combine per-column codes into one dense group number per row (first appearance
    order): ``a * card_b + b`` column by column, renumbered densely whenever the product
    of the cardinalities would pass 2**62 — distinct keys never share a number."""
    number, card = codes[0]
    for code, c in codes[1:]:
        if card * c >= _KEY_CODE_MAX:
            number, card = _dense(number)
        number, card = number * c + code, card * c
    return _dense(number)


def first_rows(groups: np.ndarray) -> np.ndarray:
    """The first row of each group, for dense numbers in first-appearance order: the rows
    whose number passes every number before it."""
    if not len(groups):
        return np.zeros(0, np.int64)
    seen = np.maximum.accumulate(groups)
    first = np.empty(len(groups), bool)
    first[0] = True
    np.greater(groups[1:], seen[:-1], out=first[1:])
    return np.flatnonzero(first)


def last_rows(groups: np.ndarray, count: int) -> np.ndarray:
    last = np.zeros(count, np.int64)
    np.maximum.at(last, groups, np.arange(len(groups), dtype=np.int64))
    return last


def _integral(type_: pa.DataType) -> bool:
    return pa.types.is_integer(type_)


def _orderable(type_: pa.DataType) -> bool:
    return (
        pa.types.is_integer(type_)
        or pa.types.is_timestamp(type_)
        or pa.types.is_date(type_)
        or pa.types.is_duration(type_)
    )


def key_type(type_: pa.DataType) -> bool:
    return _orderable(type_) or pa.types.is_string(type_) or pa.types.is_large_string(type_)


def fast_accumulator(accumulator: Accumulator, schema: pa.Schema) -> bool:
    """Whether ``accumulator_columns`` computes ``accumulator`` over records of ``schema``
    exactly as its polars expressions do."""
    if accumulator.function == "count" and not accumulator.field:
        return True
    if accumulator.field not in schema.names:
        return False
    type_ = schema.field(accumulator.field).type
    if accumulator.function in ("sum", "avg"):
        return _integral(type_)
    if accumulator.function in ("min", "max"):
        return _orderable(type_)
    return accumulator.function in ("count", "first", "last")


def _numpy_type(dtype: pl.DataType) -> np.dtype:
    return pl.Series([], dtype=dtype).to_numpy().dtype


def accumulator_columns(
    accumulator: Accumulator,
    column: pa.ChunkedArray | None,
    kept: np.ndarray | None,
    groups: np.ndarray,
    count: int,
    rows: dict[str, np.ndarray],
    dtypes: Mapping[str, pl.DataType],
) -> dict[str, pa.Array | pa.ChunkedArray]:
    """The partial state of ``accumulator`` per group with numpy: ``groups`` is the dense
    group number of each kept row (``kept``: their indices in ``column``, None for all),
    ``rows`` the ``first`` and ``last`` row (indices in ``column``) of each group,
    ``dtypes`` the polars types of the partial columns (what the polars path gives)."""
    o, function = accumulator.out, accumulator.function
    if column is None:  # count()
        return {o: pa.array(np.bincount(groups, minlength=count).astype(np.int64))}
    if function in ("first", "last"):
        return {o: column.take(pa.array(rows[function]))}

    def values(dtype: np.dtype | None = None) -> np.ndarray:
        data = column if pa.types.is_integer(column.type) else column.cast(pa.int64())
        array = (pc.fill_null(data, 0) if data.null_count else data).to_numpy()
        array = array if kept is None else array[kept]
        return array if dtype is None else array.astype(dtype, copy=False)

    def valid() -> np.ndarray:
        data = column.is_valid().to_numpy(zero_copy_only=False)
        return np.bincount(groups[data if kept is None else data[kept]], minlength=count)

    if function == "count":
        counts = valid() if column.null_count else np.bincount(groups, minlength=count)
        return {o: pa.array(counts.astype(_numpy_type(dtypes[o])))}
    if function in ("sum", "avg"):
        name = o if function == "sum" else f"{o}__sum"
        dtype = _numpy_type(dtypes[o]) if function == "sum" else np.dtype(np.int64)
        if function == "avg":  # the sum in polars' sum type (small ints as Int64), a float
            dtype = column.type.to_pandas_dtype()
            dtype = np.dtype(np.int64) if np.dtype(dtype).itemsize < 4 else np.dtype(dtype)
        sums = np.zeros(count, dtype)
        np.add.at(sums, groups, values(dtype))
        if function == "sum":
            return {o: pa.array(sums)}
        counts = valid() if column.null_count else np.bincount(groups, minlength=count)
        return {
            name: pa.array(sums.astype(np.float64)),
            f"{o}__n": pa.array(counts.astype(_numpy_type(dtypes[f"{o}__n"]))),
        }
    # min, max over integers and times (compared as their int64 value)
    data = values()
    info = np.iinfo(data.dtype)
    identity = info.max if function == "min" else info.min
    if column.null_count:
        data = data.copy()
        invalid = column.is_null().to_numpy(zero_copy_only=False)
        data[invalid if kept is None else invalid[kept]] = identity
    out = np.full(count, identity, data.dtype)
    (np.minimum if function == "min" else np.maximum).at(out, groups, data)
    mask = (valid() == 0) if column.null_count else None
    return {o: pa.array(out, mask=mask).cast(column.type)}
