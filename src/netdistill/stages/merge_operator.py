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

Matching, per pass over a procedure ``j`` (procedures after the first, then the first):
the single records of ``j`` are matched with the records that do not include ``j`` yet
(single records of other procedures, or records already merged from them), on equal
``match`` fields (a null never matches). With a tolerance, a pair's times must be within
``seconds`` once the offset of ``j``'s clock is taken off (``polars.join_asof``,
nearest); each record pairs with at most one other — when two want the same partner,
the closer one wins and the other tries again in the next pass. Without a tolerance the
k-th record of a key from one side pairs with the k-th of the other, in arrival order.

Adaptive tolerance: before matching, each pass looks for candidate pairs within
``search_s`` of the current offset, takes the median of their time differences and
moves the procedure's offset towards it (weighted by how many pairs each estimate
rests on, at most ``_OFFSET_MEMORY`` for the past), so a clock that is 30 s off is
learnt from the traffic itself. The first procedure's clock is the reference (offset 0).

Combining a pair, field by field: a field with a winner takes the winning procedure's
value when that procedure is part of the pair (even a null); otherwise, and for every
other field, the first non-null value in arrival order (lowest record_id first) — the
seed's two defaults in one rule: a lone non-null value wins, and among non-null values
the record received first wins. ``procedure`` becomes the merge's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

#: how many past pairs an offset estimate weighs at most against a new round's pairs
_OFFSET_MEMORY = 1000
#: passes over the procedures per batch (a record that lost its partner to a closer
#: record tries again in the next one)
_MAX_ROUNDS = 4

_INTERNAL = ("_seq", "_mask", "_first", "_tref", "_at")


@dataclass(frozen=True)
class MergeRules:
    """What the operator needs from the merge's configuration."""

    name: str
    procedures: Sequence[str]
    match: Sequence[str]
    time_field: str | None = None  # None: no tolerance, match fields only
    tolerance_s: float = 2.0
    adaptive: bool = False
    search_s: float = 300.0
    winners: Mapping[str, str] = field(default_factory=dict)
    horizon_s: float = 60.0
    max_pending: int = 1_000_000


@dataclass
class MergeResult:
    """One batch's outcome: the merged records to insert (record columns only, in the
    order of ``parts``), the procedures each includes (bit i = procedures[i]), and the
    record_ids of the stored records they replace."""

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


class Merger:
    """Pure operator; not thread-safe (one stage round at a time)."""

    def __init__(
        self,
        rules: MergeRules,
        offsets_us: Mapping[str, float] | None = None,
        pairs_seen: Mapping[str, int] | None = None,
    ) -> None:
        self.rules = rules
        self.bits = {p: 1 << i for i, p in enumerate(rules.procedures)}
        self.full_mask = (1 << len(rules.procedures)) - 1
        self.offsets_us = {p: float((offsets_us or {}).get(p, 0.0)) for p in rules.procedures}
        self.pairs_seen = {p: int((pairs_seen or {}).get(p, 0)) for p in rules.procedures}
        self.counters = MergeCounters()
        self.pending: pl.DataFrame | None = None
        self._seq = 0
        self._unstored = 0  # merged rows in pending waiting for their record_id

    # --- input -----------------------------------------------------------------------------

    def _frame(
        self,
        batch: pa.Table,
        parts: Sequence[int] | None = None,
        first_ids: Sequence[int] | None = None,
    ) -> pl.DataFrame:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        n = frame.height
        seq = pl.Series("_seq", np.arange(self._seq, self._seq + n, dtype=np.int64))
        self._seq += n
        mask: pl.Expr | pl.Series
        if parts is None:
            mask = pl.col("procedure").replace_strict(self.bits, default=0, return_dtype=pl.Int64)
        else:
            mask = pl.Series(np.asarray(parts, dtype=np.int64))
        first: pl.Expr | pl.Series = (
            pl.col("record_id").cast(pl.Int64)
            if first_ids is None
            else pl.Series(np.asarray(first_ids, dtype=np.int64))
        )
        return frame.with_columns(
            seq,
            mask.alias("_mask"),
            first.alias("_first"),
            pl.lit(None, pl.Int64).alias("_tref"),
            pl.col("ingested_at").dt.epoch("us").alias("_at"),
        )

    def load_pending(
        self,
        batch: pa.Table,
        parts: Sequence[int] | None = None,
        first_ids: Sequence[int] | None = None,
        t_ref_us: Sequence[int | None] | None = None,
    ) -> None:
        """Add stored, unmatched records to the pending set (a restart rebuilding it)."""
        if not batch.num_rows:
            return
        frame = self._frame(batch, parts, first_ids)
        if t_ref_us is not None:
            frame = frame.with_columns(pl.Series("_tref", list(t_ref_us), pl.Int64))
        self.pending = _concat([self.pending, frame])

    # --- matching --------------------------------------------------------------------------

    def _time_ref(self, frame: pl.DataFrame) -> pl.Expr:
        """Each row's time in the first procedure's clock (µs): merged rows keep theirs."""
        assert self.rules.time_field is not None
        raw = pl.col(self.rules.time_field).dt.epoch("us")
        offsets = {self.bits[p]: round(o) for p, o in self.offsets_us.items()}
        shift = pl.col("_mask").replace_strict(offsets, default=0, return_dtype=pl.Int64)
        return pl.coalesce(pl.col("_tref"), raw - shift)

    def _pairs(self, left: pl.DataFrame, right: pl.DataFrame, tolerance_us: int) -> pl.DataFrame:
        """1:1 pairs (``_l``, ``_r`` = their ``_seq``) of ``left`` rows with the nearest
        ``right`` row of the same key within ``tolerance_us`` on ``_t``; ``_d`` the
        difference right − left."""
        keys = list(self.rules.match)
        if self.rules.time_field is None:
            ranked = [
                f.select([*keys, pl.col("_seq")])
                .sort("_seq")
                .with_columns(pl.int_range(pl.len()).over(keys).alias("_rank"))
                for f in (left, right)
            ]
            return (
                ranked[0]
                .join(ranked[1], on=[*keys, "_rank"], suffix="_r")
                .select(
                    pl.col("_seq").alias("_l"),
                    pl.col("_seq_r").alias("_r"),
                    pl.lit(0, pl.Int64).alias("_d"),
                )
            )
        l_frame = left.select([*keys, pl.col("_seq").alias("_l"), pl.col("_t")]).sort("_t")
        r_frame = right.select(
            [*keys, pl.col("_seq").alias("_r"), pl.col("_t"), pl.col("_t").alias("_tr")]
        ).sort("_t")
        joined = l_frame.join_asof(
            r_frame,
            on="_t",
            by=keys,
            strategy="nearest",
            tolerance=tolerance_us,
            check_sortedness=False,
        ).filter(pl.col("_r").is_not_null())
        joined = joined.with_columns((pl.col("_tr") - pl.col("_t")).alias("_d"))
        # one left per right: the closest wins, then the earliest
        return (
            joined.sort([pl.col("_d").abs(), pl.col("_l")])
            .unique(subset=["_r"], keep="first", maintain_order=True)
            .select("_l", "_r", "_d")
        )

    def _learn(self, procedure: str, left: pl.DataFrame, right: pl.DataFrame) -> None:
        """Move ``procedure``'s offset towards the median difference of candidate pairs."""
        candidates = self._pairs(left, right, int(self.rules.search_s * 1e6))
        if not candidates.height:
            return
        # left = single records of ``procedure`` in the reference clock: _d = t_ref − t_left
        median = -float(candidates.get_column("_d").median())  # type: ignore[arg-type]
        n = candidates.height
        seen = min(self.pairs_seen[procedure], _OFFSET_MEMORY)
        current = self.offsets_us[procedure]
        self.offsets_us[procedure] = (current * seen + (current + median) * n) / (seen + n)
        self.pairs_seen[procedure] += n

    def _combine(self, pool: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
        """The merged rows of ``pairs`` (``_l`` a single record of one procedure, ``_r``
        a record not including it)."""
        a = pairs.select(pl.col("_l").alias("_seq")).join(
            pool, on="_seq", how="left", maintain_order="left"
        )
        b = pairs.select(pl.col("_r").alias("_seq")).join(
            pool, on="_seq", how="left", maintain_order="left"
        )
        a_first = a.get_column("_first") <= b.get_column("_first")
        a_mask = a.get_column("_mask")
        b_mask = b.get_column("_mask")
        columns: list[pl.Series] = []
        for name in pool.columns:
            if name in _INTERNAL or name in ("record_id", "ingested_at", "procedure", "_t"):
                continue
            av, bv = a.get_column(name), b.get_column(name)
            first = pl.select(pl.when(a_first).then(av).otherwise(bv)).to_series()
            second = pl.select(pl.when(a_first).then(bv).otherwise(av)).to_series()
            value = pl.select(pl.coalesce(first, second)).to_series()
            winner = self.rules.winners.get(name)
            if winner is not None:
                bit = self.bits[winner]
                value = pl.select(
                    pl.when((a_mask & bit) != 0)
                    .then(av)
                    .when((b_mask & bit) != 0)
                    .then(bv)
                    .otherwise(value)
                ).to_series()
            columns.append(value.alias(name))
        n = pairs.height
        seq = np.arange(self._seq, self._seq + n, dtype=np.int64)
        self._seq += n
        t_ref = (
            pl.select(
                pl.when(a_first).then(a.get_column("_t")).otherwise(b.get_column("_t"))
            ).to_series()
            if "_t" in pool.columns
            else pl.Series([None] * n, dtype=pl.Int64)
        )
        out = pl.DataFrame(columns).with_columns(
            pl.lit(None, pool.schema["record_id"]).alias("record_id"),
            pl.lit(None, pool.schema["ingested_at"]).alias("ingested_at"),
            pl.lit(self.rules.name, pl.String).alias("procedure"),
            pl.Series("_seq", seq),
            (a_mask | b_mask).alias("_mask"),
            pl.min_horizontal(a.get_column("_first"), b.get_column("_first")).alias("_first"),
            t_ref.alias("_tref"),
            pl.lit(None, pl.Int64).alias("_at"),
        )
        return out.select([c for c in pool.columns if c != "_t"])

    def process(self, batch: pa.Table) -> MergeResult:
        """Match ``batch`` (new records of the procedures, record_id order) with each
        other and with the pending set; see the module docstring."""
        new = self._frame(batch)
        rules = self.rules
        keys = list(rules.match)
        pending = self.pending
        # only pending records sharing a key with a new one can match this round
        if pending is not None and pending.height:
            usable = new.select(keys).drop_nulls().unique()
            candidates = pending.join(usable, on=keys, how="semi", nulls_equal=False)
            rest = pending.join(usable, on=keys, how="anti", nulls_equal=False)
        else:
            candidates, rest = None, None
        pool = _concat([candidates, new])
        assert pool is not None
        consumed: list[pl.Series] = []
        made: list[pl.DataFrame] = []
        order = [*rules.procedures[1:], rules.procedures[0]]
        for _ in range(_MAX_ROUNDS):
            found = 0
            for procedure in order:
                bit = self.bits[procedure]
                live = pool.drop_nulls(keys)
                if rules.time_field is not None:
                    live = live.with_columns(self._time_ref(live).alias("_t")).drop_nulls("_t")
                singles = live.filter(pl.col("_mask") == bit)
                others = live.filter((pl.col("_mask") & bit) == 0)
                if not singles.height or not others.height:
                    continue
                if rules.time_field is not None:
                    if rules.adaptive and procedure != rules.procedures[0]:
                        self._learn(procedure, singles, others)
                        live = live.with_columns(self._time_ref(live).alias("_t"))
                        singles = live.filter(pl.col("_mask") == bit)
                        others = live.filter((pl.col("_mask") & bit) == 0)
                    pairs = self._pairs(singles, others, int(rules.tolerance_s * 1e6))
                else:
                    pairs = self._pairs(singles, others, 0)
                if not pairs.height:
                    continue
                if "_t" in live.columns:
                    pool = pool.join(
                        live.select("_seq", "_t"), on="_seq", how="left", maintain_order="left"
                    )
                merged = self._combine(pool, pairs)
                used = pl.concat([pairs.get_column("_l"), pairs.get_column("_r")])
                consumed.append(
                    pool.filter(pl.col("_seq").is_in(used.implode())).get_column("record_id")
                )
                pool = pl.concat(
                    [
                        pool.filter(~pl.col("_seq").is_in(used.implode())).drop("_t", strict=False),
                        merged.drop("_t", strict=False),
                    ],
                    how="diagonal_relaxed",
                )
                made.append(merged.select(pl.col("_seq")))
                found += pairs.height
            if not found:
                break
        pool = pool.drop("_t", strict=False)
        made_seq = pl.concat([m.get_column("_seq") for m in made]) if made else None
        if made_seq is not None:
            is_made = pl.col("_seq").is_in(made_seq.implode())
            merged_rows = pool.filter(is_made)
            leftover = pool.filter(~is_made)
        else:
            merged_rows, leftover = pool.clear(), pool
        partial = merged_rows.filter(pl.col("_mask") != self.full_mask)
        self._unstored = partial.height
        self.pending = _concat([rest, leftover, partial])
        deleted = (
            pl.concat(consumed).drop_nulls().cast(pl.Int64)
            if consumed
            else pl.Series("record_id", [], pl.Int64)
        )
        self.counters.merged += merged_rows.height
        self.counters.replaced += len(deleted)
        # partial (not yet complete) merged rows come first: commit_ids numbers them
        merged_rows = pl.concat([partial, merged_rows.filter(pl.col("_mask") == self.full_mask)])
        record_columns = [c for c in merged_rows.columns if c not in _INTERNAL]
        return MergeResult(
            merged=merged_rows.select(record_columns).to_arrow(),
            parts=merged_rows.get_column("_mask").to_numpy(),
            first_ids=merged_rows.get_column("_first").to_numpy(),
            t_ref_us=merged_rows.get_column("_tref").to_numpy(),
            deleted=deleted.to_arrow(),
        )

    def commit_ids(self, first_record_id: int, now: float) -> None:
        """The merged records of the last ``process`` were stored from ``first_record_id``
        on: the partial ones (still pending) take their record_id and ingested_at."""
        if not self._unstored or self.pending is None:
            return
        unstored = self.pending.get_column("record_id").is_null()
        ids = np.arange(first_record_id, first_record_id + self._unstored, dtype=np.int64)
        at = pl.Series(np.full(self._unstored, int(now * 1e6), dtype=np.int64))
        stored = self.pending.filter(unstored).with_columns(
            pl.Series("record_id", ids).cast(self.pending.schema["record_id"]),
            pl.lit(None, self.pending.schema["ingested_at"]).alias("ingested_at"),
            at.alias("_at"),
        )
        self.pending = _concat([self.pending.filter(~unstored), stored])
        self._unstored = 0

    # --- bounds ----------------------------------------------------------------------------

    def expire(self, now: float) -> int:
        """Drop pending records ingested more than ``horizon_s`` before ``now``, then the
        oldest beyond ``max_pending``; returns how many left (they stay stored, unmerged)."""
        if self.pending is None or not self.pending.height:
            return 0
        before = self.pending.height
        cutoff = int((now - self.rules.horizon_s) * 1e6)
        self.pending = self.pending.filter(pl.col("_at").is_null() | (pl.col("_at") >= cutoff))
        expired = before - self.pending.height
        evicted = max(0, self.pending.height - self.rules.max_pending)
        if evicted:
            self.pending = self.pending.sort("_seq").tail(self.rules.max_pending)
        self.counters.expired += expired
        self.counters.evicted += evicted
        return expired + evicted

    @property
    def pending_count(self) -> int:
        return 0 if self.pending is None else self.pending.height

    def pending_parts(self) -> pl.DataFrame:
        """record_id, parts, first record_id and reference time of the pending merged
        records (kept by the stage so a restart can rebuild them)."""
        if self.pending is None:
            return pl.DataFrame(
                schema={
                    "record_id": pl.Int64,
                    "_mask": pl.Int64,
                    "_first": pl.Int64,
                    "_tref": pl.Int64,
                }
            )
        return self.pending.filter(pl.col("procedure") == self.rules.name).select(
            pl.col("record_id").cast(pl.Int64), "_mask", "_first", "_tref"
        )


def _concat(frames: Sequence[pl.DataFrame | None]) -> pl.DataFrame | None:
    present = [f for f in frames if f is not None and f.height]
    if not present:
        real = [f for f in frames if f is not None]
        return real[0] if real else None
    if len(present) == 1:
        return present[0]
    return pl.concat(present, how="diagonal_relaxed")
