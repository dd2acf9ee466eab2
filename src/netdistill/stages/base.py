"""What every stage shares: its config base, the manager-side contract, and reading the
records committed since a stage's watermark.

Manager stages (``ManagerStage``) are built as ``Class(config, context)`` and driven by
``StageRunner`` (``runner.py``) from one thread, in scheme order: ``ensure_tables`` once,
then ``run_once(now)`` every ``manager.stages_interval_s``. ``run_once`` must be
all-or-nothing: it reads with ``read_new`` and writes everything it produces — output
rows, its own state, the new watermark (``save_watermark``) — inside one
``store.transaction()``. A round that raises changes nothing and is tried again.

Which records a stage reads (``input``): the name of a source (records whose ``source``
is it), of a procedure, merge or stage with ``output: records`` (records whose
``procedure`` is it). A merge's input also takes the records of its procedures that it
has not merged (yet): the stage then waits ``horizon_s`` before reading a record, so
that a record is read once it is final (merged or not), never before and after.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from netdistill.store.duckdb import DuckDBStore, StoreWriter


class StageConfigBase(BaseModel):
    """Fields every stage has; each type adds its own (and a ``type`` literal)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
    type: str
    description: str = ""
    enabled: bool = True

    def references(self) -> list[str]:
        """Names of sources, procedures, merges or stages this stage reads."""
        return []


class ManagerStage(Protocol):
    name: str

    def ensure_tables(self) -> None: ...
    def run_once(self, now: float) -> dict[str, int]: ...
    def status(self) -> dict[str, Any]: ...


@dataclass
class StageContext:
    """What manager stages receive (dependencies passed in, STYLE habit 3)."""

    store: DuckDBStore
    scheme: Any  # netdistill.scheme.models.Scheme (not imported: it imports us)
    data_dir: Path
    #: ``process(name, records)``: enriches a stage's output with the procedures whose
    #: trigger is the stage, as the pipeline does for a source; identity when none
    enhance: Callable[[str, pa.Table], pa.Table] = field(default=lambda _name, table: table)
    clock: Callable[[], float] = time.time
    #: ``outbox(tx, stage, rows, meta)``: called inside the transaction that commits a
    #: stage's output, so that a POP forwards exactly that output to its parent
    #: (``hierarchy/outbox.py``); None when the manager has no ``upstream:``
    outbox: Callable[[StoreWriter, str, pa.Table, dict[str, Any]], None] | None = None


_STATE_DDL = """
CREATE TABLE IF NOT EXISTS _stage_state (
    stage VARCHAR PRIMARY KEY, watermark BIGINT NOT NULL, state VARCHAR,
    updated_at TIMESTAMPTZ NOT NULL)
"""


def ensure_state_table(store: DuckDBStore) -> None:
    with store.transaction() as tx:
        tx.execute(_STATE_DDL)


def load_watermark(store: DuckDBStore, stage: str) -> tuple[int, dict[str, Any]]:
    """(last record_id the stage has read, its saved JSON state); (0, {}) at first."""
    table = store.query(
        "SELECT watermark, state FROM _stage_state WHERE stage = $s", {"s": stage}
    ).to_pylist()
    if not table:
        return 0, {}
    return int(table[0]["watermark"]), json.loads(table[0]["state"] or "{}")


def save_watermark(
    tx: StoreWriter, stage: str, watermark: int, state: Mapping[str, Any] | None = None
) -> None:
    tx.execute(
        "INSERT OR REPLACE INTO _stage_state VALUES (?, ?, ?, to_timestamp(?))",
        (stage, watermark, json.dumps(dict(state or {}), sort_keys=True), tx.now),
    )


@dataclass(frozen=True)
class InputSpec:
    """A stage input resolved against the scheme: the SQL condition and the wait."""

    where: str
    params: dict[str, object]
    delay_s: float = 0.0


def resolve_input(name: str, scheme: Any) -> InputSpec:
    """The records of ``name`` (a source, procedure, merge or stage), see the module doc."""
    if any(s.name == name for s in scheme.sources):
        return InputSpec("source = $input", {"input": name})
    for stage in getattr(scheme, "stages", ()):
        if stage.name == name and stage.type == "merge":
            names = [name, *stage.procedures]
            marks = ", ".join(f"$input{i}" for i in range(len(names)))
            return InputSpec(
                f"procedure IN ({marks})",
                {f"input{i}": n for i, n in enumerate(names)},
                delay_s=float(stage.horizon_s),
            )
    return InputSpec("procedure = $input", {"input": name})


def read_new(
    store: DuckDBStore,
    spec: InputSpec,
    watermark: int,
    now: float,
    *,
    columns: str = "*",
    extra_where: str = "",
    limit: int = 2_000_000,
) -> tuple[pa.Table, int]:
    """Records of ``spec`` committed after ``watermark`` (and at least ``spec.delay_s``
    ago), in record_id order, at most ``limit``; with the new watermark.

    The new watermark is the highest record_id *looked at*, matching or not, so the next
    round starts after it. Commits are serialized and atomic, so once a record_id is
    visible every lower one is too: nothing committed later can fall below it."""
    high = (
        store.query(
            "SELECT max(record_id) AS m FROM records WHERE record_id > $w"
            " AND ingested_at <= to_timestamp($t)",
            {"w": watermark, "t": now - spec.delay_s},
        )
        .column("m")[0]
        .as_py()
    )
    if high is None:
        return pa.table({}), watermark
    high = min(int(high), watermark + limit)
    where = f"record_id > $w AND record_id <= $h AND ({spec.where})"
    if extra_where:
        where += f" AND ({extra_where})"
    table = store.query(
        f"SELECT {columns} FROM records WHERE {where} ORDER BY record_id",
        {**spec.params, "w": watermark, "h": high},
    )
    return table, high
