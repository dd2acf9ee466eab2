"""The POP side of forwarding stage output: an outbox in the store, relayed to the spool.

Why an outbox (and not writing the spool from the stage, or deriving entries later):
a stage round is one store transaction (``stages/base.py``); a spool append is a file
write that cannot join it. Appending inside the round would leave an entry for output
that a failed commit rolled back (sent twice once the round is retried), appending
after it would lose the output of a manager killed in between. So the stage writes
its forwarded output **into the outbox table in the same transaction** that commits
it (``write``): the outbox row exists if and only if the output does. Deriving entries
from the stage's tables later would need a stable order of every stage's output, which
``agg_<name>`` tables (appended rows, no key) do not have.

The relay (``relay``) then moves outbox rows to the spool, oldest first, each as one
entry of kind ``STAGE_OUTPUT`` with origin ``<pop>/stages`` and ``origin_seq`` = the
outbox row's ``seq``. That move is idempotent: the spool ignores an append whose
``origin_seq`` it has (``gatherer/spool.py``: it keeps the last one of an origin in its
newest segment, which is never deleted), and the relay's own cursor (``relayed``) is
saved in the store after the append; rows up to it are deleted. A crash between the
append and the cursor save makes the next relay append the same ``origin_seq`` again,
which the spool ignores. From the spool on, delivery is the gatherers' own (the
forwarder, the parent's ``(origin, seq)``-idempotent commit): exactly once end to end.

Sequence numbers are never reused: the last one allocated is kept in ``_stage_state``
(stage ``_upstream``, ``watermark`` = last seq, ``state.relayed`` = the relay cursor).

The outbox table (its DDL is here and nowhere else)::

    _upstream_outbox(seq BIGINT PRIMARY KEY, stage VARCHAR, kind VARCHAR, rows BIGINT,
                     payload BLOB, written_at TIMESTAMPTZ)

While the spool is full (policy ``block``) the relay stops and rows wait in the outbox:
the stages keep running and nothing is lost; ``drop_oldest`` evicts spooled entries,
counted, as for a gatherer.

Payload: an Arrow IPC stream (``delivery/wire.py``; record columns carry their registry
types) whose schema metadata ``netdistill_stage`` is a JSON object describing the
output (``meta``): ``{"stage", "type": "rollup"|"aggregate", "output": …}`` and, for a
roll-up period, ``period``, ``unit``, ``period_start``/``period_end`` (epoch s),
``records``, ``bytes``, ``accounts``, ``columns``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from netdistill.delivery.entry import STAGE_OUTPUT
from netdistill.delivery.wire import encode_table, with_types
from netdistill.errors import SpoolFull
from netdistill.gatherer.spool import Spool
from netdistill.stages.base import load_watermark, save_watermark
from netdistill.store.duckdb import DuckDBStore, StoreWriter

log = logging.getLogger(__name__)

TABLE = "_upstream_outbox"
STATE = "_upstream"
META_KEY = b"netdistill_stage"
_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq BIGINT PRIMARY KEY, stage VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    rows BIGINT NOT NULL, payload BLOB NOT NULL, written_at TIMESTAMPTZ NOT NULL)
"""


def encode_output(table: pa.Table, meta: Mapping[str, Any], types: Mapping[str, str]) -> bytes:
    """``table`` as a payload: columns typed (``types``: registry types by name), the
    schema metadata carrying ``meta``."""
    typed = with_types(table, types)
    metadata = {**(typed.schema.metadata or {}), META_KEY: json.dumps(dict(meta)).encode()}
    return encode_table(typed.replace_schema_metadata(metadata))


def decode_meta(table: pa.Table) -> dict[str, Any]:
    """The ``meta`` of a decoded payload ({} when it has none)."""
    raw = (table.schema.metadata or {}).get(META_KEY)
    value = json.loads(raw) if raw else {}
    return value if isinstance(value, dict) else {}


class Outbox:
    """Stage output waiting to be spooled; ``write`` runs inside a stage's transaction."""

    def __init__(self, store: DuckDBStore, stages: Iterable[str], *, origin: str) -> None:
        self.store = store
        self.stages = frozenset(stages)
        self.origin = origin
        self.written = 0
        self.relayed_entries = 0

    def ensure_table(self) -> None:
        with self.store.transaction() as tx:
            tx.execute(_DDL)

    def __call__(
        self, tx: StoreWriter, stage: str, table: pa.Table, meta: Mapping[str, Any]
    ) -> None:
        """The stage hook (``StageContext.outbox``): ``table`` of ``stage`` joins the
        outbox in ``tx`` when ``stage`` is forwarded; nothing otherwise."""
        if stage in self.stages:
            self.write(tx, stage, table, meta)

    def write(self, tx: StoreWriter, stage: str, table: pa.Table, meta: Mapping[str, Any]) -> int:
        fields = self.store.fields
        types = {f.name: f.type for f in fields if f.name in table.schema.names}
        payload = encode_output(table, {"stage": stage, **meta}, types)
        found = tx.query(
            "SELECT watermark, state FROM _stage_state WHERE stage = ?", (STATE,)
        ).to_pylist()
        last = int(found[0]["watermark"]) if found else 0
        state = json.loads(found[0]["state"] or "{}") if found else {}
        seq = last + 1
        tx.execute(
            f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, to_timestamp(?))",
            (seq, stage, str(meta.get("type", "")), table.num_rows, payload, tx.now),
        )
        save_watermark(tx, STATE, seq, state)
        self.written += 1
        return seq

    def relayed(self) -> int:
        return int(load_watermark(self.store, STATE)[1].get("relayed", 0))

    def pending(self) -> int:
        row = self.store.query(f"SELECT count(*) AS n FROM {TABLE}").column("n")[0]
        return int(row.as_py() or 0)

    def relay(self, spool: Spool, *, max_entries: int = 64) -> int:
        """Move the oldest outbox rows to ``spool``; returns how many were appended.
        Stops at a full spool (``SpoolFull``): the rest waits here."""
        cursor = max(self.relayed(), spool.last_origin_seq(self.origin))
        rows = self.store.query(
            f"SELECT seq, rows, payload FROM {TABLE} WHERE seq > $c ORDER BY seq LIMIT $n",
            {"c": cursor, "n": max_entries},
        ).to_pylist()
        done = cursor
        moved = 0
        for row in rows:
            try:
                spool.append(STAGE_OUTPUT, self.origin, int(row["seq"]), int(row["rows"]),
                             bytes(row["payload"]))  # fmt: skip
            except SpoolFull:
                break
            done = int(row["seq"])
            moved += 1
        if done > self.relayed():
            with self.store.transaction() as tx:
                tx.execute(f"DELETE FROM {TABLE} WHERE seq <= ?", (done,))
                found = tx.query(
                    "SELECT watermark, state FROM _stage_state WHERE stage = ?", (STATE,)
                ).to_pylist()
                last = int(found[0]["watermark"]) if found else done
                state = json.loads(found[0]["state"] or "{}") if found else {}
                save_watermark(tx, STATE, max(last, done), {**state, "relayed": done})
        self.relayed_entries += moved
        return moved
