"""The columnar aggregation operator behind the ``aggregate`` stage: pure, no I/O.

``Aggregator.process(batch, now)`` folds a batch of records into partial state;
``flush(now)`` returns the groups that are due and forgets them. Everything is a
``group_by`` over whole batches: a batch is reduced to one partial row per group, and
partials are combined with a second ``group_by`` (``aggregate_accumulators.py``: sum of
sums, min of mins, first of firsts in arrival order …). Both run on an exact fast path
when the types allow (``_fast_partial``, ``_fast_combined``: keys dictionary-encoded to
one dense group number, accumulators with numpy) and as polars queries otherwise.
Without thresholds and ``max_age_s``, partials of successive batches are only appended;
``flush`` combines those of the bins that close, and all of them are combined once they
outgrow the combined state four times. A batch costs one ``group_by`` over itself, whatever the
number of open groups.

State columns (``state()``, restored with ``load_state``; a group may have several rows
until they are combined): the group keys, ``_bin`` (time bin number: ``time_field`` //
``bin_s``), ``_rows`` (records in the partial), ``_opened`` (stage clock when the partial
opened), ``_pr``/``_pb`` (piece numbers, see thresholds), ``_part`` (the batch it came
from: arrival order, for ``first`` and ``last``) and one or two columns per accumulator.
``changes()`` tells what to append to and delete from a saved copy since the last call.
``runs()`` holds, per group and bin, the records and bytes counted so far (``_run_n``,
``_run_b``), used only with thresholds.

When a group is due:

* its bin has closed: ``(bin + 1) * bin_s + grace_s <= now`` (a group of records
  without a time has no bin that could close: it is due at once);
* it has been open ``max_age_s`` (stage clock): emitted and restarted;
* thresholds, exact and order-preserving: with ``max_records: N`` record *k* (0-based,
  counting every record of the group and bin in arrival order) belongs to piece
  ``k // N``; with ``max_bytes: B`` to piece ``bytes_before_it // B``, where
  ``bytes_before_it`` is the group's running byte total before that record — a piece ends
  with the record that takes the running total past a multiple of B. A piece is emitted
  as soon as a later piece has begun or its count is complete, so a group of 250 records
  with ``max_records: 100`` gives pieces of 100, 100 and (at bin close) 50.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from netdistill.stages.aggregate_accumulators import (
    DEFAULT_ACCUMULATE,
    Accumulator,
    accumulator_columns,
    accumulator_text,
    column_codes,
    fast_accumulator,
    first_rows,
    frame_of,
    group_numbers,
    key_type,
    last_rows,
    to_arrow,
)

__all__ = ["DEFAULT_ACCUMULATE", "Accumulator", "Aggregator", "StateChanges", "to_arrow"]


@dataclass(frozen=True)
class StateChanges:
    """What ``Aggregator.changes`` reports for persisting the state incrementally."""

    rewrite: bool
    gone_bins: list[int | None]
    new_rows: pa.Table


class Aggregator:
    """Group-by-and-accumulate over record batches. Not thread-safe: one caller."""

    def __init__(
        self,
        by: Sequence[str],
        accumulate: Mapping[str, str] | None = None,
        *,
        time_field: str = "start_time",
        bin_s: float = 300.0,
        grace_s: float = 0.0,
        max_records: int | None = None,
        max_bytes: int | None = None,
        max_age_s: float | None = None,
        bytes_field: str = "bytes",
        where: pl.Expr | None = None,
    ) -> None:
        self.by = list(by)
        #: a boolean polars expression (``expr.compile_predicate``): the records folded
        self.where = where
        self.accumulators = [
            Accumulator.parse(o, t) for o, t in (accumulate or DEFAULT_ACCUMULATE).items()
        ]
        self.time_field = time_field
        self.bin_us = round(bin_s * 1e6)
        self.bin_s = bin_s
        self.grace_s = grace_s
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.bytes_field = bytes_field
        self._group = [*self.by, "_bin"]
        self._piece = [*self._group, "_pr", "_pb"]
        self._plans: dict[tuple[pa.Schema, tuple[str, ...]], pl.Schema | None] = {}
        self._partials: list[pl.DataFrame] = []  # not yet combined, arrival order
        self._state: pl.DataFrame | None = None  # combined
        self._runs: pl.DataFrame | None = None  # thresholds: counts per group so far
        self._due: list[pl.DataFrame] = []  # pieces closed by a threshold
        # persistence (``changes``): parts added, bins emitted since the last call, or
        # everything to be written again after a combine
        self._next_part = 1
        self._new: list[pl.DataFrame] = []
        self._gone_bins: set[int | None] = set()
        self._rewrite = False
        self._partial_exprs = [e for a in self.accumulators for e in a.partial()]
        self._combine_exprs = [e for a in self.accumulators for e in a.combine()]
        self._combine_exprs += [
            pl.col("_rows").sum(),
            pl.col("_opened").min(),
            pl.col("_part").max(),
        ]

    @property
    def thresholds(self) -> bool:
        return self.max_records is not None or self.max_bytes is not None

    # --- folding ---------------------------------------------------------------------------

    def _binned(self, batch: pa.Table | pl.DataFrame) -> pl.LazyFrame:
        frame = batch if isinstance(batch, pl.DataFrame) else pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        lazy = frame.lazy()
        if self.where is not None:
            lazy = lazy.filter(self.where)
        epoch = pl.col(self.time_field).dt.epoch("us")
        return lazy.with_columns((epoch // self.bin_us).alias("_bin"))

    def process(self, batch: pa.Table | pl.DataFrame, now: float) -> int:
        """Fold ``batch`` (records in arrival order) into the state; returns the records
        folded (those ``where`` accepts)."""
        if not batch.num_rows if isinstance(batch, pa.Table) else not batch.height:
            return 0
        if self.thresholds:
            frame = self._binned(batch).collect()
            if frame.height:
                self._process_pieces(frame, now)
                self._rewrite = True  # pieces move between state and output: write anew
            return frame.height
        # one query: filter, bin, group; the partial waits to be combined (see module doc)
        only_bin = self._only_bin(batch)
        # one bin (the usual round): one key column less to hash
        keys = self._group if only_bin is None else self.by
        fast = self._fast_partial(batch, keys) if isinstance(batch, pa.Table) else None
        if fast is None:  # the whole batch into polars (the fast path converts none of it)
            fast = (
                self._binned(batch)
                .group_by(keys)
                .agg(*self._partial_exprs, pl.len().cast(pl.Int64).alias("_rows"))
                .collect()
            )
        partial = fast.with_columns(
            *([] if only_bin is None else [pl.lit(only_bin, pl.Int64).alias("_bin")]),
            pl.lit(now, pl.Float64).alias("_opened"),
            pl.lit(0, pl.Int64).alias("_pr"),
            pl.lit(0, pl.Int64).alias("_pb"),
            pl.lit(self._next_part, pl.Int64).alias("_part"),
        )
        if not partial.height:
            return 0
        self._next_part += 1
        self._partials.append(partial)
        self._new.append(partial)
        if sum(p.height for p in self._partials) > 4 * max(self._state_height(), 1 << 16):
            self._combine()
        return int(partial["_rows"].sum())

    def _fast_plan(self, schema: pa.Schema, keys: Sequence[str]) -> pl.Schema | None:
        """The polars schema of a partial of records of ``schema`` grouped by ``keys`` when
        ``_fast_partial`` can compute it, else None (cached per schema and keys)."""
        cache_key = (schema, tuple(keys))
        if cache_key in self._plans:
            return self._plans[cache_key]
        plan: pl.Schema | None = None
        where = self.where.meta.root_names() if self.where is not None else []
        time_type = schema.field(self.time_field).type if self.time_field in schema.names else None
        if (
            isinstance(time_type, pa.TimestampType)
            and time_type.unit == "us"  # the bin is the value // bin_us, as polars' epoch
            and all(
                k == "_bin" or (k in schema.names and key_type(schema.field(k).type)) for k in keys
            )
            and all(name in schema.names for name in where)
            and all(fast_accumulator(a, schema) for a in self.accumulators)
        ):
            empty = pa.table([pa.array([], f.type) for f in schema], schema=schema)
            plan = (
                self._binned(empty)
                .group_by(keys)
                .agg(*self._partial_exprs, pl.len().cast(pl.Int64).alias("_rows"))
                .collect_schema()
            )
        self._plans[cache_key] = plan
        return plan

    def _fast_partial(self, batch: pa.Table, keys: Sequence[str]) -> pl.DataFrame | None:
        """What the polars ``group_by`` of ``process`` gives, computed faster and exactly:
        each key column encoded to dense integer codes (pyarrow's ``dictionary_encode``
        for strings, the value itself for integers of a narrow range), the codes combined
        into one dense group number per record (``group_numbers``: exact, no hashing of
        the combined key), then every accumulator with numpy over the group numbers, and
        the key values taken from each group's first record. None when a type or function
        is not handled here (the polars path runs)."""
        plan = self._fast_plan(batch.schema, keys)
        if plan is None:
            return None
        times = batch.column(self.time_field)
        if times.null_count:
            return None
        columns: dict[str, pa.ChunkedArray | pa.Array] = {}
        if "_bin" in keys:
            epoch = times.cast(pa.int64()).to_numpy()
            columns["_bin"] = pa.array(epoch // self.bin_us)
        kept: np.ndarray | None = None
        if self.where is not None:
            names = list(dict.fromkeys(self.where.meta.root_names()))
            mask = pl.from_arrow(batch.select(names)).select(self.where.fill_null(False))  # type: ignore[union-attr]
            keep = mask.to_series().to_numpy()
            if not keep.all():
                kept = np.flatnonzero(keep)
        if kept is not None and not len(kept):
            return pl.DataFrame(schema=plan)
        codes = []
        for k in keys:
            column = columns[k] if k == "_bin" else batch.column(k)
            code = column_codes(
                column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
            )
            if code is None:
                return None
            codes.append(code if kept is None else (code[0][kept], code[1]))
        groups, count = group_numbers(codes)
        first = first_rows(groups)
        last = (
            last_rows(groups, count)
            if any(a.function == "last" for a in self.accumulators)
            else first
        )
        rows = {
            "first": first if kept is None else kept[first],
            "last": last if kept is None else kept[last],
        }
        take = pa.array(rows["first"])
        out: dict[str, pa.Array | pa.ChunkedArray] = {
            k: (columns[k] if k == "_bin" else batch.column(k)).take(take) for k in keys
        }
        for a in self.accumulators:
            column = batch.column(a.field) if a.field else None
            out.update(accumulator_columns(a, column, kept, groups, count, rows, plan))
        out["_rows"] = pa.array(np.bincount(groups, minlength=count).astype(np.int64))
        frame = frame_of(pa.table(out))
        return frame.select(plan.names()).cast(dict(plan))  # type: ignore[arg-type]

    def _only_bin(self, batch: pa.Table | pl.DataFrame) -> int | None:
        """The bin of every record of ``batch`` when there is one (and a ``by``)."""
        if not self.by:
            return None
        if isinstance(batch, pa.Table):
            column = batch.column(self.time_field)
            if column.null_count:
                return None
            bounds = pc.min_max(column.cast(pa.int64())).as_py()
            low, high = bounds["min"], bounds["max"]
        else:
            times = batch.get_column(self.time_field)
            if times.null_count():
                return None
            low, high = times.dt.epoch("us").min(), times.dt.epoch("us").max()
        if not isinstance(low, int) or not isinstance(high, int):
            return None
        if low // self.bin_us != high // self.bin_us:
            return None
        return low // self.bin_us

    def _process_pieces(self, frame: pl.DataFrame, now: float) -> None:
        """Threshold path: number every record's piece, then combine at once."""
        runs = self._runs if self._runs is not None else self._empty_runs(frame)
        frame = frame.join(runs, on=self._group, how="left", nulls_equal=True).with_columns(
            pl.col("_run_n").fill_null(0), pl.col("_run_b").fill_null(0)
        )
        bytes_col = pl.col(self.bytes_field).cast(pl.Int64).fill_null(0)
        before_n = pl.col("_run_n") + pl.int_range(pl.len()).over(self._group)
        before_b = pl.col("_run_b") + (bytes_col.cum_sum() - bytes_col).over(self._group)
        frame = frame.with_columns(
            (before_n // self.max_records if self.max_records else pl.lit(0, pl.Int64))
            .cast(pl.Int64)
            .alias("_pr"),
            (before_b // self.max_bytes if self.max_bytes else pl.lit(0, pl.Int64))
            .cast(pl.Int64)
            .alias("_pb"),
        )
        totals = frame.group_by(self._group).agg(
            (pl.col("_run_n").first() + pl.len()).cast(pl.Int64).alias("_run_n"),
            (pl.col("_run_b").first() + bytes_col.sum()).cast(pl.Int64).alias("_run_b"),
        )
        partial = frame.group_by(self._piece).agg(
            *self._partial_exprs, pl.len().cast(pl.Int64).alias("_rows")
        )
        self._partials.append(
            partial.with_columns(
                pl.lit(now, pl.Float64).alias("_opened"),
                pl.lit(self._next_part, pl.Int64).alias("_part"),
            )
        )
        self._next_part += 1
        self._combine()
        self._runs = pl.concat(
            [runs.join(totals, on=self._group, how="anti", nulls_equal=True), totals],
            how="vertical_relaxed",
        )
        assert self._state is not None
        state = self._state.join(self._runs, on=self._group, how="left", nulls_equal=True)
        closed = pl.lit(False)
        if self.max_records:
            closed = closed | (pl.col("_pr") < pl.col("_run_n") // self.max_records)
        if self.max_bytes:
            closed = closed | (pl.col("_pb") < pl.col("_run_b") // self.max_bytes)
        state = state.with_columns(closed.alias("_closed")).drop("_run_n", "_run_b")
        done = state.filter(pl.col("_closed")).drop("_closed")
        if done.height:
            self._due.append(done)
        self._state = state.filter(~pl.col("_closed")).drop("_closed")

    def _empty_runs(self, frame: pl.DataFrame) -> pl.DataFrame:
        return (
            frame.select(self._group)
            .clear()
            .with_columns(pl.lit(0, pl.Int64).alias("_run_n"), pl.lit(0, pl.Int64).alias("_run_b"))
        )

    def _state_height(self) -> int:
        return self._state.height if self._state is not None else 0

    def _combine(self) -> None:
        """Combine the state and every partial into one row per group (and piece)."""
        parts = ([self._state] if self._state is not None else []) + self._partials
        self._partials = []
        if len(parts) > 1:
            self._state = self._combined(parts)
            self._rewrite = True
            self._new = []
        elif parts:
            self._state = parts[0]

    def _combined(self, parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
        stacked = pl.concat(parts, how="diagonal_relaxed")
        # hash as few key columns as give the same groups: pieces exist only with
        # thresholds, and a state of one bin needs no bin column in the key
        keys = self._piece if self.thresholds else self._group
        constant: list[pl.Expr] = []
        if not self.thresholds and self.by:
            bins = stacked.get_column("_bin")
            if not bins.null_count() and bins.min() == bins.max():
                keys = self.by
                constant = [pl.lit(bins[0], pl.Int64).alias("_bin")]
        fast = self._fast_combined(stacked, keys)
        combined = (
            fast.lazy()
            if fast is not None
            else stacked.lazy().group_by(keys).agg(*self._combine_exprs)
        )
        if keys is not self._piece:
            combined = combined.with_columns(
                *constant, pl.lit(0, pl.Int64).alias("_pr"), pl.lit(0, pl.Int64).alias("_pb")
            )
        return combined.collect()

    def _fast_combined(self, stacked: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame | None:
        """``stacked.group_by(keys).agg(combine expressions)`` the way ``_fast_partial``
        does it (rows in arrival order: first of firsts, sum of sums …); None for what is
        not handled here (averages, distinct counts, other types: the polars path)."""
        if not keys or not stacked.height:
            return None
        table = stacked.to_arrow()
        schema = table.schema
        combine = [
            Accumulator(a.out, "sum" if a.function == "count" else a.function, a.out)
            for a in self.accumulators
        ]
        combine += [Accumulator("_rows", "sum", "_rows"), Accumulator("_part", "max", "_part")]
        if (
            not all(key_type(schema.field(k).type) for k in keys)
            or not all(fast_accumulator(a, schema) for a in combine)
            or schema.field("_opened").type != pa.float64()
            or table.column("_opened").null_count
        ):
            return None
        plan = stacked.clear().lazy().group_by(keys).agg(*self._combine_exprs).collect_schema()
        codes = []
        for k in keys:
            code = column_codes(table.column(k))
            if code is None:
                return None
            codes.append(code)
        groups, count = group_numbers(codes)
        first = first_rows(groups)
        need_last = any(a.function == "last" for a in combine)
        rows = {"first": first, "last": last_rows(groups, count) if need_last else first}
        take = pa.array(first)
        out: dict[str, pa.Array | pa.ChunkedArray] = {k: table.column(k).take(take) for k in keys}
        for a in combine:
            out.update(accumulator_columns(a, table.column(a.out), None, groups, count, rows, plan))
        opened = np.full(count, np.inf)
        np.minimum.at(opened, groups, table.column("_opened").to_numpy())
        out["_opened"] = pa.array(opened)
        frame = frame_of(pa.table(out))
        return frame.select(plan.names()).cast(dict(plan))  # type: ignore[arg-type]

    # --- emitting --------------------------------------------------------------------------

    def flush(self, now: float) -> pa.Table:
        """The groups due at ``now`` (see the module doc), as an Arrow table: the group
        keys, ``bin_start``, ``bin_end`` and one column per accumulator.

        Only the partials of closed bins are combined; the others wait (without
        thresholds and ``max_age_s``, which need every group's totals)."""
        if self.thresholds or self.max_age_s is not None:
            self._combine()
        due = list(self._due)
        self._due = []
        parts = ([self._state] if self._state is not None else []) + self._partials
        # a record without a time has no bin that could close: out at once
        closed = ((pl.col("_bin") + 1) * self.bin_s + self.grace_s <= now).fill_null(True)
        bins = pl.concat([p.select("_bin").unique() for p in parts]) if parts else None
        closed_bins = bins.filter(closed).get_column("_bin").unique() if bins is not None else None
        if closed_bins is not None and closed_bins.len():
            emitted = [p.filter(closed) for p in parts]
            kept = [p.filter(~closed) for p in parts]
            if self._state is not None:
                self._state, self._partials = kept[0], kept[1:]
            else:
                self._partials = kept
            self._new = [p.filter(~closed) for p in self._new]
            self._gone_bins.update(closed_bins.to_list())
            emitted = [p for p in emitted if p.height]
            due.append(emitted[0] if len(emitted) == 1 else self._combined(emitted))
            if self._runs is not None:  # a closed bin restarts its counts
                self._runs = self._runs.filter(~closed)
        if self.max_age_s is not None and self._state is not None and self._state.height:
            aged = pl.col("_opened") + self.max_age_s <= now
            emitted_by_age = self._state.filter(aged)
            if emitted_by_age.height:
                due.append(emitted_by_age)
                self._state = self._state.filter(~aged)
                self._rewrite = True
                if self._runs is not None:  # an aged group restarts its counts
                    gone = emitted_by_age.select(self._group).unique()
                    self._runs = self._runs.join(gone, on=self._group, how="anti", nulls_equal=True)
        if not due:
            if self._state is None and not self._partials:
                return pa.table({})
            base = self._state if self._state is not None else self._partials[0]
            return to_arrow(self._finish(base.clear()))
        return to_arrow(self._finish(pl.concat(due, how="diagonal_relaxed")))

    def _finish(self, state: pl.DataFrame) -> pl.DataFrame:
        bin_start = (
            (pl.col("_bin") * self.bin_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        )
        bin_end = ((pl.col("_bin") + 1) * self.bin_us).cast(pl.Datetime("us"))
        return state.select(
            *self.by,
            bin_start.alias("bin_start"),
            bin_end.dt.replace_time_zone("UTC").alias("bin_end"),
            *[a.final() for a in self.accumulators],
        )

    # --- persistence -----------------------------------------------------------------------

    def state(self) -> pa.Table:
        """Every partial row held (uncombined partials included, in arrival order; a
        ``_part`` column keeps that order), to be persisted and given to ``load_state``."""
        parts = ([self._state] if self._state is not None else []) + self._partials
        if not parts:
            return pa.table({})
        return to_arrow(pl.concat(parts, how="diagonal_relaxed"))

    def changes(self) -> StateChanges:
        """What changed in ``state()`` since the last call: rows to delete by bin and rows
        to append, or ``rewrite`` (write ``state()`` again, e.g. after a combine)."""
        new = pl.concat(self._new, how="diagonal_relaxed") if self._new else None
        changes = StateChanges(
            self._rewrite,
            sorted(self._gone_bins, key=lambda b: (b is None, b or 0)),
            to_arrow(new) if new is not None and new.height else pa.table({}),
        )
        self._new, self._gone_bins, self._rewrite = [], set(), False
        return changes

    def runs(self) -> pa.Table:
        if self._runs is None:
            return pa.table({})
        return to_arrow(self._runs)

    def load_state(self, state: pa.Table, runs: pa.Table | None = None) -> None:
        """Restore what ``state()`` and ``runs()`` returned (e.g. after a restart)."""
        self._partials, self._due = [], []
        self._new, self._gone_bins, self._rewrite = [], set(), False
        self._state = frame_of(state).sort("_part", maintain_order=True) if state.num_rows else None
        if self._state is not None:
            self._next_part = int(self._state.get_column("_part").max()) + 1  # type: ignore[arg-type]
        self._runs = frame_of(runs) if runs is not None and runs.num_columns else None

    def open_groups(self) -> int:
        """Groups open now (read only: safe to call while no round runs)."""
        parts = ([self._state] if self._state is not None else []) + list(self._partials)
        if not parts:
            return 0
        keys = self._piece if self.thresholds else self._group
        return pl.concat([p.select(keys) for p in parts]).unique().height

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        """The schema ``flush`` returns for records of ``input_schema``."""
        empty = pa.table({f.name: pa.array([], f.type) for f in input_schema}, schema=input_schema)
        probe = Aggregator(
            self.by,
            {a.out: accumulator_text(a) for a in self.accumulators},
            time_field=self.time_field,
            bin_s=self.bin_s,
        )
        frame = probe._binned(empty).collect()
        partial = frame.group_by(probe._group).agg(
            *probe._partial_exprs, pl.len().cast(pl.Int64).alias("_rows")
        )
        partial = partial.with_columns(
            pl.lit(0.0).alias("_opened"),
            pl.lit(0).alias("_pr"),
            pl.lit(0).alias("_pb"),
            pl.lit(0).alias("_part"),
        )
        return to_arrow(probe._finish(partial)).schema
