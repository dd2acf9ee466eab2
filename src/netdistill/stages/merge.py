"""The ``merge`` stage: one record per session when several procedures saw it (seed 001
§E "Record Merges", SYSTEM.md §5).

The seed's example: a proxy logs each web session with the workstation as source and
the firewall as destination; the firewall logs the same session with the proxy as
source and the web site as destination. Both know the URL. A merge of the two
procedures on ``url`` keeps one record with the source from the proxy and the
destination from the firewall::

    stages:
      - name: web-sessions
        type: merge
        procedures: [flow-one, flow-two]      # flow-one: the proxy, flow-two: the firewall
        match: [url]
        tolerance: {field: start_time, seconds: 2, adaptive: false}
        winners: {src_ip: flow-one, dst_ip: flow-two}
        horizon_s: 60
        max_pending: 1000000

Write-through: records are committed by the normal path before the merge sees them, so
nothing waits in memory only. Each round (``run_once``) reads the procedures' records
committed since the watermark, matches them (``merge_operator.Merger``, columnar) with
each other and with the pending records (stored, not matched yet, in memory, bounded
by ``horizon_s`` on ``ingested_at`` and by ``max_pending``), and in one store
transaction deletes the matched originals, inserts the merged records (``procedure`` =
the merge's name) and saves the watermark and the learnt clock offsets. A record that
finds no partner within the horizon stays stored as it came. On start, and after a
failed round, the pending set is rebuilt from the store: the procedures' records read
before the watermark and ingested within the horizon (the merged ones are gone), and
merged records that do not include every procedure yet (``_merge_parts``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from netdistill.stages.base import (
    InputSpec,
    StageConfigBase,
    StageContext,
    load_watermark,
    read_new,
    save_watermark,
)
from netdistill.stages.merge_operator import Merger, MergeRules

#: fields a merge sets itself
_OWN_FIELDS = ("record_id", "ingested_at", "procedure")

_PARTS_DDL = """
CREATE TABLE IF NOT EXISTS _merge_parts (
    stage VARCHAR NOT NULL, record_id BIGINT NOT NULL, parts BIGINT NOT NULL,
    first_id BIGINT NOT NULL, t_ref BIGINT)
"""


class ToleranceConfig(BaseModel):
    """How close in time two records of one session must be."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field("start_time", description="the time field compared")
    seconds: float = Field(2.0, ge=0, description="largest difference, around the offset")
    adaptive: bool = Field(
        False, description="learn each procedure's usual clock offset from matched pairs"
    )
    search_s: PositiveFloat = Field(
        300.0, description="adaptive: how far apart candidate pairs may be while learning"
    )


class MergeConfig(StageConfigBase):
    """A merge of two or more procedures' records of the same sessions."""

    type: Literal["merge"] = "merge"
    placement: ClassVar[str] = "manager"

    procedures: list[str] = Field(min_length=2, description="procedures whose records merge")
    match: list[str] = Field(min_length=1, description="fields equal in records of a session")
    tolerance: ToleranceConfig | None = Field(
        None, description="time window; none: the match fields alone decide"
    )
    winners: dict[str, str] = Field(
        default_factory=dict,
        description="field → procedure whose value is kept; other fields: the first "
        "non-null value in arrival order (the seed's defaults)",
    )
    prefer: list[str] = Field(
        default_factory=list,
        description="for fields without a winner: procedures whose non-null value is kept "
        "first, in this order; the rest (and ties) by arrival order. Names every "
        "procedure: the merged record does not depend on arrival order",
    )
    horizon_s: PositiveFloat = Field(
        60.0, description="how long a record waits (in memory) for its partner"
    )
    max_pending: PositiveInt = Field(1_000_000, description="at most this many waiting records")
    batch_records: PositiveInt = Field(2_000_000, description="at most this many per round")

    @model_validator(mode="after")
    def _check(self) -> MergeConfig:
        if len(set(self.procedures)) != len(self.procedures):
            raise ValueError(f"merge {self.name!r}: a procedure is named twice")
        if len(self.procedures) > 62:
            raise ValueError(f"merge {self.name!r}: at most 62 procedures")
        for field_name, procedure in self.winners.items():
            if procedure not in self.procedures:
                raise ValueError(
                    f"merge {self.name!r}: winner of {field_name!r} is {procedure!r}, which is "
                    f"not one of its procedures ({', '.join(self.procedures)})"
                )
            if field_name in _OWN_FIELDS:
                raise ValueError(f"merge {self.name!r}: {field_name!r} is set by the merge")
        for procedure in self.prefer:
            if procedure not in self.procedures:
                raise ValueError(
                    f"merge {self.name!r}: prefer names {procedure!r}, which is not one of "
                    f"its procedures ({', '.join(self.procedures)})"
                )
        if len(set(self.prefer)) != len(self.prefer):
            raise ValueError(f"merge {self.name!r}: prefer names a procedure twice")
        return self

    def references(self) -> list[str]:
        return list(self.procedures)

    def rules(self) -> MergeRules:
        return MergeRules(
            name=self.name,
            procedures=tuple(self.procedures),
            match=tuple(self.match),
            time_field=self.tolerance.field if self.tolerance else None,
            tolerance_s=self.tolerance.seconds if self.tolerance else 0.0,
            adaptive=bool(self.tolerance and self.tolerance.adaptive),
            search_s=self.tolerance.search_s if self.tolerance else 0.0,
            winners=dict(self.winners),
            prefer=tuple(self.prefer),
            horizon_s=self.horizon_s,
            max_pending=self.max_pending,
        )


class MergeStage:
    """Manager stage; ``run_once`` is one transaction (``stages/base.py``)."""

    def __init__(self, config: MergeConfig, context: StageContext) -> None:
        self.config = config
        self.name = config.name
        self.context = context
        self.store = context.store
        marks = ", ".join(f"$p{i}" for i in range(len(config.procedures)))
        self.input = InputSpec(
            f"procedure IN ({marks})", {f"p{i}": p for i, p in enumerate(config.procedures)}
        )
        self.merger: Merger | None = None
        self.watermark = 0
        self.totals = {"read": 0, "merged": 0, "replaced": 0, "expired": 0, "rounds": 0}

    def ensure_tables(self) -> None:
        fields = {f.name for f in self.store.fields}
        wanted = [*self.config.match, *self.config.winners]
        if self.config.tolerance:
            wanted.append(self.config.tolerance.field)
        missing = [f for f in wanted if f not in fields]
        if missing:
            raise ValueError(
                f"merge {self.name!r}: records have no field {', '.join(map(repr, missing))}"
            )
        with self.store.transaction() as tx:
            tx.execute(_PARTS_DDL)

    # --- state -----------------------------------------------------------------------------

    def _rebuild(self, now: float) -> Merger:
        """The operator with its offsets and pending set as the store has them."""
        self.watermark, state = load_watermark(self.store, self.name)
        merger = Merger(self.config.rules(), state.get("offsets_us"), state.get("pairs_seen"))
        since = now - self.config.horizon_s
        singles = self.store.query(
            f"SELECT * FROM records WHERE ({self.input.where}) AND record_id <= $w"
            " AND ingested_at >= to_timestamp($t) ORDER BY record_id",
            {**self.input.params, "w": self.watermark, "t": since},
        )
        merger.load_pending(singles)
        merged = self.store.query(
            "SELECT r.*, m.parts AS _parts, m.first_id AS _first_id, m.t_ref AS _t_ref"
            " FROM records r JOIN _merge_parts m USING (record_id)"
            " WHERE m.stage = $s AND r.procedure = $s AND r.ingested_at >= to_timestamp($t)"
            " ORDER BY record_id",
            {"s": self.name, "t": since},
        )
        if merged.num_rows:
            merger.load_pending(
                merged.drop_columns(["_parts", "_first_id", "_t_ref"]),
                merged.column("_parts").to_pylist(),
                merged.column("_first_id").to_pylist(),
                merged.column("_t_ref").to_pylist(),
            )
        return merger

    def _state(self, merger: Merger) -> dict[str, Any]:
        return {"offsets_us": merger.offsets_us, "pairs_seen": merger.pairs_seen}

    # --- the round -------------------------------------------------------------------------

    def run_once(self, now: float) -> dict[str, int]:
        if self.merger is None:
            self.merger = self._rebuild(now)
        merger = self.merger
        try:
            batch, high = read_new(
                self.store, self.input, self.watermark, now, limit=self.config.batch_records
            )
            counts = {"read": batch.num_rows, "merged": 0, "replaced": 0, "expired": 0}
            if batch.num_rows:
                result = merger.process(batch)
                partial = int((result.parts != merger.full_mask).sum())
                with self.store.transaction() as tx:
                    counts["replaced"] = tx.delete_records(result.deleted)
                    first_id = tx.next_record_id
                    counts["merged"] = tx.insert_records(result.merged)
                    if len(self.config.procedures) > 2:
                        tx.execute(
                            "DELETE FROM _merge_parts WHERE stage = ? AND record_id IN"
                            " (SELECT unnest(?::BIGINT[]))",
                            (self.name, result.deleted.to_pylist()),
                        )
                        tx.insert_arrow(
                            "_merge_parts",
                            pa.table(
                                {
                                    "stage": pa.array([self.name] * partial, pa.string()),
                                    "record_id": pa.array(
                                        range(first_id, first_id + partial), pa.int64()
                                    ),
                                    "parts": pa.array(result.parts[:partial], pa.int64()),
                                    "first_id": pa.array(result.first_ids[:partial], pa.int64()),
                                    "t_ref": pa.array(result.t_ref_us[:partial], pa.int64()),
                                }
                            ),
                        )
                    save_watermark(tx, self.name, high, self._state(merger))
                merger.commit_ids(first_id, tx.now)
            elif high != self.watermark:
                with self.store.transaction() as tx:
                    save_watermark(tx, self.name, high, self._state(merger))
            self.watermark = high
            counts["expired"] = merger.expire(now)
        except BaseException:
            self.merger = None  # memory may be ahead of the store: rebuild next round
            raise
        self.totals["rounds"] += 1
        for key in ("read", "merged", "replaced", "expired"):
            self.totals[key] += counts[key]
        return counts

    def status(self) -> dict[str, Any]:
        merger = self.merger
        return {
            "type": "merge",
            "watermark": self.watermark,
            "pending": merger.pending_count if merger else 0,
            "offsets_s": {p: o / 1e6 for p, o in merger.offsets_us.items()} if merger else {},
            **self.totals,
        }
