"""The merge as a pure columnar operator (no I/O): ``Merger`` pairs records of one
session seen by several procedures and builds the merged record (seed 001 §E,
SYSTEM.md §5). ``stages/merge.py`` wraps it with the store; the benchmark drives it
directly.

Life of a record: ``process(batch)`` takes newly committed records of the merge's
procedures; each is matched against the other new ones and against the *pending* set
(records seen before that have no partner yet). Matched records leave the pending set
and their record_ids are returned for deletion; the merged record is returned for
insertion. Unmatched records join the pending set, which ``expire(now)`` bounds by age
(``horizon_s``, on ``ingested_at``) and size (``max_pending``, oldest out first).

Matching (one pass, repeated while it finds pairs and some record lost its partner):
the records that have every ``match`` field (a null never matches) are sorted by
(match key, time in the reference clock) with one numpy sort — the key is a dense code
from Arrow's dictionary encoding, so strings are hashed once, not joined; key, time and
row number are packed into one int64 and sorted as values where they fit (a stable
argsort otherwise), so records with equal key and time stay in row order. Neighbours in
that order pair when their keys are equal, they include no procedure in common and,
with a tolerance, their times are within ``seconds``. Where two candidate pairs share a
record, the closer pair wins (the earlier on a tie); the loser tries again next pass.
Without a tolerance, neighbours in arrival order pair. With three or more procedures a
merged record that lacks some procedure goes back into the pool and can merge again.

Adaptive tolerance: before matching, each procedure after the first looks for its
records' nearest other-side record of the same key within ``search_s``
(``polars.join_asof``), takes the median time difference and moves its offset towards
it (weighted by how many pairs each estimate rests on, at most ``_OFFSET_MEMORY`` for
the past), so a clock that is 30 s off is learnt from the traffic itself. The first
procedure's clock is the reference (offset 0).

Combining a pair, field by field: a field with a winner takes the winning procedure's
value when that procedure is part of the pair (even a null); otherwise, and for every
other field, the first non-null value in arrival order (lowest record_id first) — the
seed's two defaults in one rule: a lone non-null value wins, and among non-null values
the record received first wins. With ``prefer`` (procedures in order), the preferred
record's non-null value comes first and arrival order decides only ties, so the merged
record does not depend on which partner arrived first. ``start_time``, ``end_time`` and
the tolerance field taken from a single procedure's record are shifted by that
procedure's learnt offset into the reference clock (a merged part's times already are).
``procedure`` becomes the merge's name. Numpy picks the row each field's value comes
from; each column is then gathered with a single ``take``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: how many past pairs an offset estimate weighs at most against a new round's pairs
_OFFSET_MEMORY = 1000
#: matching passes per batch: a record that lost its partner to a closer record tries
#: again against its new neighbours in the next pass
_MAX_PASSES = 4
#: "no value" in the int64 time arrays
_NONE = np.iinfo(np.int64).min
#: fields the merge sets itself
_OWN = ("record_id", "ingested_at", "procedure")
#: time fields read from the devices' clocks: corrected by the learnt offset of the
#: procedure their value comes from (with the tolerance's own field)
_CLOCK_FIELDS = ("start_time", "end_time")


@dataclass(frozen=True)
class MergeRules:
    """What the operator needs from the merge's configuration."""

    name: str
    procedures: Sequence[str]
    match: Sequence[str]
    time_field: str | None = None  # None: no tolerance, the match fields alone decide
    tolerance_s: float = 2.0
    adaptive: bool = False
    search_s: float = 300.0
    winners: Mapping[str, str] = field(default_factory=dict)
    prefer: Sequence[str] = ()
    horizon_s: float = 60.0
    max_pending: int = 1_000_000


@dataclass
class MergeResult:
    """One batch's outcome: the merged records to insert (record columns), per merged
    record the procedures it includes (bit i = procedures[i]), its first record_id and
    its time in the reference clock; and the record_ids of the stored records replaced.
    Merged records that do not include every procedure yet come first."""

    merged: pa.Table
    parts: np.ndarray
    first_ids: np.ndarray
    t_ref_us: np.ndarray
    deleted: pa.Array


@dataclass
class MergeCounters:
    merged: int = 0  # merged records produced
    replaced: int = 0  # stored records consumed by a merge
    expired: int = 0  # left the pending set unmatched, by age
    evicted: int = 0  # left the pending set unmatched, by max_pending


@dataclass
class _Rows:
    """A table of records and, aligned with its rows, what matching needs."""

    table: pa.Table
    mask: np.ndarray  # procedures included (bits)
    first: np.ndarray  # lowest record_id included: arrival order
    tref: np.ndarray  # merged rows: time in the reference clock; _NONE for single ones
    at: np.ndarray  # ingested_at, µs; _NONE while a merged row is not stored yet

    def take(self, index: np.ndarray) -> _Rows:
        return _Rows(
            self.table.take(pa.array(index, pa.int64())) if len(index) else self.table.slice(0, 0),
            self.mask[index],
            self.first[index],
            self.tref[index],
            self.at[index],
        )

    def select(self, keep: np.ndarray) -> _Rows:
        """The rows where ``keep`` (a boolean mask) is true, in order."""
        return _Rows(
            self.table.filter(pa.array(keep)),
            self.mask[keep],
            self.first[keep],
            self.tref[keep],
            self.at[keep],
        )

    @staticmethod
    def concat(parts: Sequence[_Rows]) -> _Rows:
        parts = [p for p in parts if p.table.num_rows] or list(parts[:1])
        if len(parts) == 1:
            return parts[0]
        return _Rows(
            pa.concat_tables([p.table for p in parts], promote_options="permissive"),
            *(
                np.concatenate([getattr(p, a) for p in parts])
                for a in ("mask", "first", "tref", "at")
            ),
        )


def _int64(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A time or integer column as int64 values and a validity mask."""
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("us", column.type.tz))
    values = pc.cast(column, pa.int64())
    if not values.null_count:
        array = values.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        return array, np.ones(len(array), bool)
    valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
    return values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64), valid


def _key_codes(table: pa.Table, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense integer codes of the match fields (equal values, equal code), which rows
    have every match field, and how many codes there are."""
    codes = np.zeros(table.num_rows, np.int64)
    valid = np.ones(table.num_rows, bool)
    size = 1
    for key in keys:
        encoded = pc.dictionary_encode(table.column(key))
        if isinstance(encoded, pa.ChunkedArray):
            n = len(encoded.chunks[0].dictionary) if encoded.num_chunks else 0
            indices = (
                pa.chunked_array([c.indices for c in encoded.chunks], pa.int32())
                if encoded.num_chunks
                else pa.array([], pa.int32())
            )
        else:
            n = len(encoded.dictionary)
            indices = encoded.indices
        valid &= pc.is_valid(indices).to_numpy(zero_copy_only=False)
        part = indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        codes = codes * max(n, 1) + part
        size *= max(n, 1)
        if size > 2**40:  # re-densify before the product could overflow
            _, codes = np.unique(codes, return_inverse=True)
            size = int(codes.max()) + 1 if len(codes) else 1
    return codes, valid, size


class Merger:
    """Pure operator; not thread-safe (one stage round at a time)."""

    def __init__(
        self,
        rules: MergeRules,
        offsets_us: Mapping[str, float] | None = None,
        pairs_seen: Mapping[str, int] | None = None,
    ) -> None:
        self.rules = rules
        self.procedures = list(rules.procedures)
        self.full_mask = (1 << len(self.procedures)) - 1
        self.offsets_us = {p: float((offsets_us or {}).get(p, 0.0)) for p in self.procedures}
        self.pairs_seen = {p: int((pairs_seen or {}).get(p, 0)) for p in self.procedures}
        self.counters = MergeCounters()
        self._pending: _Rows | None = None
        self._unstored = 0
        self._conflicts = 0

    # --- input -----------------------------------------------------------------------------

    def _rows(
        self,
        batch: pa.Table,
        parts: Sequence[int] | None = None,
        first_ids: Sequence[int] | None = None,
        t_ref_us: Sequence[int | None] | None = None,
    ) -> _Rows:
        n = batch.num_rows
        if parts is None:
            index = pc.index_in(batch.column("procedure"), value_set=pa.array(self.procedures))
            idx = index.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
            mask = np.where(idx >= 0, np.left_shift(1, np.maximum(idx, 0)), 0).astype(np.int64)
        else:
            mask = np.asarray(parts, np.int64)
        first = (
            _int64(batch.column("record_id"))[0]
            if first_ids is None
            else np.asarray(first_ids, np.int64)
        )
        tref = np.full(n, _NONE, np.int64)
        if t_ref_us is not None:
            tref = np.array([_NONE if t is None else t for t in t_ref_us], np.int64)
        at, at_valid = _int64(batch.column("ingested_at"))
        return _Rows(batch, mask, first, tref, np.where(at_valid, at, _NONE))

    def load_pending(
        self,
        batch: pa.Table,
        parts: Sequence[int] | None = None,
        first_ids: Sequence[int] | None = None,
        t_ref_us: Sequence[int | None] | None = None,
    ) -> None:
        """Add stored, unmatched records to the pending set (a restart rebuilding it)."""
        if batch.num_rows:
            rows = self._rows(batch, parts, first_ids, t_ref_us)
            self._pending = rows if self._pending is None else _Rows.concat([self._pending, rows])

    # --- matching --------------------------------------------------------------------------

    def _times(self, rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
        """Each row's time in the first procedure's clock (µs) and whether it has one."""
        assert self.rules.time_field is not None
        raw, valid = _int64(rows.table.column(self.rules.time_field))
        shift = np.zeros(len(raw), np.int64)
        for i, procedure in enumerate(self.procedures):
            offset = round(self.offsets_us[procedure])
            if offset:
                shift[rows.mask == (1 << i)] = offset
        merged = rows.tref != _NONE
        return np.where(merged, rows.tref, raw - shift), valid | merged

    def _learn(
        self, codes: np.ndarray, t: np.ndarray, usable: np.ndarray, mask: np.ndarray
    ) -> bool:
        """Move each procedure's offset towards the median time difference between its
        records and their nearest other-side record of the same key within
        ``search_s``; True when an offset moved."""
        import polars as pl

        moved = False
        search = int(self.rules.search_s * 1e6)
        for i, procedure in enumerate(self.procedures[1:], start=1):
            bit = 1 << i
            mine = usable & (mask == bit)
            others = usable & ((mask & bit) == 0)
            if not mine.any() or not others.any():
                continue
            left = pl.DataFrame({"k": codes[mine], "t": t[mine]}).sort("t")
            right = pl.DataFrame({"k": codes[others], "t": t[others], "u": t[others]}).sort("t")
            near = left.join_asof(
                right,
                on="t",
                by="k",
                strategy="nearest",
                tolerance=search,
                check_sortedness=False,
            ).drop_nulls("u")
            if not near.height:
                continue
            # t of mine is in the reference clock with the current offset: the rest of
            # the difference is what the offset lacks
            lacking = float((near.get_column("t") - near.get_column("u")).median())  # type: ignore[arg-type]
            n = near.height
            seen = min(self.pairs_seen[procedure], _OFFSET_MEMORY)
            current = self.offsets_us[procedure]
            self.offsets_us[procedure] = current + lacking * n / (seen + n)
            self.pairs_seen[procedure] += n
            moved = True
        return moved

    def _pairs(
        self, codes: np.ndarray, t: np.ndarray, usable: np.ndarray, mask: np.ndarray, size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Disjoint pairs (row indexes) of neighbours in (key, time) order: same key, no
        procedure in common, within the tolerance; where two candidate pairs share a
        record, the closer pair wins (the earlier on a tie)."""
        rows = np.flatnonzero(usable)
        if len(rows) < 2:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        whole = len(rows) == len(usable)
        k, tt = (codes, t) if whole else (codes[rows], t[rows])
        tol = int(self.rules.tolerance_s * 1e6) if self.rules.time_field is not None else None
        low = int(tt.min())
        # 2**t_bits > span + tolerance: in (key << t_bits | time) a change of key is a step
        # larger than the tolerance
        t_bits = (int(tt.max()) - low + max(tol or 0, 0) + 1).bit_length()
        k_bits = max(size - 1, 1).bit_length()
        i_bits = max(len(rows) - 1, 1).bit_length()
        if k_bits + t_bits + i_bits <= 63:
            # key, time and position in one int64: a plain value sort (much faster than
            # an argsort) gives the order, ties in row order
            packed = (k << (t_bits + i_bits)) | ((tt - low) << i_bits) | np.arange(len(rows))
            packed.sort()
            order = packed & ((1 << i_bits) - 1)
            kt = packed >> i_bits
            step = kt[1:] - kt[:-1]  # same key: the time gap
            same_key = (kt[1:] >> t_bits) == (kt[:-1] >> t_bits)
            candidate = same_key if tol is None else step <= tol
        else:
            if k_bits + t_bits <= 63:
                order = np.argsort((k << t_bits) | (tt - low), kind="stable")
            else:
                order = np.lexsort((tt, k))
            k, tt = k[order], tt[order]
            step = tt[1:] - tt[:-1]
            candidate = k[1:] == k[:-1]
            if tol is not None:
                candidate &= step <= tol
        j = np.flatnonzero(candidate)
        left, right = order[j], order[j + 1]
        if not whole:
            left, right = rows[left], rows[right]
        disjoint = (mask[left] & mask[right]) == 0  # no procedure in common
        j, left, right = j[disjoint], left[disjoint], right[disjoint]
        # a candidate pair is taken when it is closer than both neighbouring candidates
        cost = np.full(len(step) + 2, np.iinfo(np.int64).max)
        gap = step[j]
        cost[j + 1] = gap
        take = (gap < cost[j]) & (gap <= cost[j + 2])
        self._conflicts = len(j) - int(take.sum())
        return left[take], right[take]

    def _rank(self, mask: np.ndarray) -> np.ndarray:
        """Each row's place in ``prefer`` (its best procedure's); unlisted: after all."""
        rank = np.full(len(mask), len(self.rules.prefer), np.int64)
        for place, procedure in reversed(list(enumerate(self.rules.prefer))):
            bit = 1 << self.procedures.index(procedure)
            rank[(mask & bit) != 0] = place
        return rank

    def _combine(self, pool: _Rows, a: np.ndarray, b: np.ndarray, t: np.ndarray) -> _Rows:
        """The merged rows of pairs (a[i], b[i]), field by field (module docstring): per
        field the row whose value is kept is chosen in numpy, then one ``take``."""
        ma, mb = pool.mask[a], pool.mask[b]
        first_a = pool.first[a] <= pool.first[b]
        early, late = np.where(first_a, a, b), np.where(first_a, b, a)
        if self.rules.prefer:  # the preferred procedure's value first, then arrival order
            rank_a, rank_b = self._rank(ma), self._rank(mb)
            a_first = (rank_a < rank_b) | ((rank_a == rank_b) & first_a)
            early, late = np.where(a_first, a, b), np.where(a_first, b, a)
        n = len(a)
        table = pool.table
        sources: dict[str, np.ndarray] = {}
        columns: dict[str, pa.Array | pa.ChunkedArray] = {}
        for name in table.column_names:
            if name in _OWN:
                continue
            column = table.column(name)
            if column.null_count == len(column):
                columns[name] = pa.nulls(n, column.type)
                continue
            if name in self.rules.match:  # equal in both
                sources[name] = a
                continue
            source = early
            if column.null_count:  # first non-null in arrival order
                valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
                source = np.where(valid[early], early, late)
            winner = self.rules.winners.get(name)
            if winner is not None:
                bit = 1 << self.procedures.index(winner)
                source = np.where((ma & bit) != 0, a, np.where((mb & bit) != 0, b, source))
            sources[name] = source
        for name, source in sources.items():
            columns[name] = table.column(name).take(pa.array(source, pa.int64()))
            if name in self._clock_fields and pa.types.is_timestamp(table.schema.field(name).type):
                columns[name] = self._in_reference_clock(columns[name], pool.mask[source])
        schema = table.schema
        columns["record_id"] = pa.nulls(n, schema.field("record_id").type)
        columns["ingested_at"] = pa.nulls(n, schema.field("ingested_at").type)
        columns["procedure"] = pa.repeat(
            pa.scalar(self.rules.name, schema.field("procedure").type), n
        )
        return _Rows(
            pa.table({c: columns[c] for c in table.column_names}),
            ma | mb,
            np.minimum(pool.first[a], pool.first[b]),
            np.where(first_a, t[a], t[b]) if self.rules.time_field else np.full(n, _NONE),
            np.full(n, _NONE, np.int64),
        )

    @property
    def _clock_fields(self) -> tuple[str, ...]:
        time_field = self.rules.time_field
        return (*_CLOCK_FIELDS, time_field) if time_field else _CLOCK_FIELDS

    def _in_reference_clock(
        self, column: pa.Array | pa.ChunkedArray, mask: np.ndarray
    ) -> pa.Array | pa.ChunkedArray:
        """Times taken from a single procedure's record, less that procedure's learnt
        offset (merged rows' times are in the reference clock already)."""
        shift = np.zeros(len(mask), np.int64)
        for i, procedure in enumerate(self.procedures):
            offset = round(self.offsets_us[procedure])
            if offset:
                shift[mask == (1 << i)] = offset
        if not shift.any():
            return column
        unit = column.type.unit
        per_us = {"s": 1e-6, "ms": 1e-3, "us": 1, "ns": 1000}[unit]
        values = pc.cast(column, pa.int64())
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        delta = pa.array(np.round(shift * per_us).astype(np.int64))
        return pc.subtract(values, delta).cast(column.type)

    def process(self, batch: pa.Table) -> MergeResult:
        """Match ``batch`` (new records of the procedures, record_id order) with each
        other and with the pending set; see the module docstring."""
        rules = self.rules
        new = self._rows(batch)
        pending = self._pending
        rest: _Rows | None = None
        pool = new if pending is None else _Rows.concat([pending, new])
        codes, usable, size = _key_codes(pool.table, rules.match)
        if pending is not None and pending.table.num_rows:
            # only pending records sharing a key with a new one can match this round
            old = pending.table.num_rows
            fresh = np.zeros(size, bool)
            fresh[codes[old:][usable[old:]]] = True
            near = fresh[codes[:old]] & usable[:old]
            rest = pending.select(~near)
            keep = np.concatenate([near, np.ones(pool.table.num_rows - old, bool)])
            pool, codes, usable = pool.select(keep), codes[keep], usable[keep]
        if rules.time_field is not None:
            t, has_time = self._times(pool)
            usable &= has_time
            if rules.adaptive and self._learn(codes, t, usable, pool.mask):
                t, _ = self._times(pool)
        else:
            t = pool.first.copy()
        alive = np.ones(pool.table.num_rows, bool)
        made: list[_Rows] = []
        for _pass in range(_MAX_PASSES):
            a, b = self._pairs(codes, t, usable & alive, pool.mask, size)
            if not len(a):
                break
            conflicts = self._conflicts
            merged = self._combine(pool, a, b, t)
            alive[a] = False
            alive[b] = False
            made.append(merged)
            partial = merged.mask != self.full_mask
            if partial.any():  # may merge again with a record of a procedure it lacks
                again = merged.take(np.flatnonzero(partial))
                n_again = again.table.num_rows
                pool = _Rows.concat([pool, again])
                codes = np.concatenate([codes, codes[a[partial]]])
                usable = np.concatenate([usable, np.ones(n_again, bool)])
                t = np.concatenate([t, again.tref if rules.time_field else again.first])
                alive = np.concatenate([alive, np.ones(n_again, bool)])
                made[-1] = merged.take(np.flatnonzero(~partial))
            elif not conflicts:
                break  # every candidate pair was taken: another pass finds nothing
        record_ids, has_id = _int64(pool.table.column("record_id"))
        consumed = ~alive
        deleted = record_ids[consumed & has_id]
        unmerged_partial = alive & ~has_id  # made this batch, waiting for a third
        leftover = pool.select(alive & has_id)
        partial_rows = pool.select(unmerged_partial)
        complete = _Rows.concat(made) if made else None
        out_parts = [partial_rows] + ([complete] if complete is not None else [])
        out = _Rows.concat(out_parts)
        self._unstored = partial_rows.table.num_rows
        self._pending = _Rows.concat([r for r in (rest, leftover, partial_rows) if r is not None])
        self.counters.merged += out.table.num_rows
        self.counters.replaced += len(deleted)
        return MergeResult(
            merged=out.table,
            parts=out.mask,
            first_ids=out.first,
            t_ref_us=out.tref,
            deleted=pa.array(deleted, pa.int64()),
        )

    def commit_ids(self, first_record_id: int, now: float) -> None:
        """The merged records of the last ``process`` were stored from ``first_record_id``
        on, partial ones first: those (still pending) take their record_id and
        ingested_at."""
        pending = self._pending
        if not self._unstored or pending is None:
            return
        n = pending.table.num_rows
        start = n - self._unstored  # partial rows are the pending set's last rows
        ids = pa.array(np.arange(first_record_id, first_record_id + self._unstored))
        column = pending.table.column("record_id")
        fixed = pa.chunked_array(
            [
                column.slice(0, start).combine_chunks().cast(pa.int64())
                if start
                else pa.array([], pa.int64()),
                ids,
            ]
        ).cast(column.type)
        table = pending.table.set_column(
            pending.table.schema.get_field_index("record_id"), "record_id", fixed
        )
        pending.at[start:] = int(now * 1e6)
        self._pending = _Rows(table, pending.mask, pending.first, pending.tref, pending.at)
        self._unstored = 0

    # --- bounds ----------------------------------------------------------------------------

    def expire(self, now: float) -> int:
        """Drop pending records ingested more than ``horizon_s`` before ``now``, then the
        oldest beyond ``max_pending``; returns how many left (they stay stored, unmerged)."""
        pending = self._pending
        if pending is None or not pending.table.num_rows:
            return 0
        cutoff = int((now - self.rules.horizon_s) * 1e6)
        keep = (pending.at == _NONE) | (pending.at >= cutoff)
        expired = int((~keep).sum())
        index = np.flatnonzero(keep)
        evicted = max(0, len(index) - self.rules.max_pending)
        if evicted:
            index = index[np.argsort(pending.first[index], kind="stable")][evicted:]
            index.sort()
        if expired or evicted:
            self._pending = pending.take(index)
        self.counters.expired += expired
        self.counters.evicted += evicted
        return expired + evicted

    @property
    def pending_count(self) -> int:
        return 0 if self._pending is None else self._pending.table.num_rows
