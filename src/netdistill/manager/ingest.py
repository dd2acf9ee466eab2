"""The manager's receiving end of delivery: commit spooled batches, then acknowledge.

``POST /api/ingest?gatherer=G`` carries one or more spool entries (``delivery/wire.py``
gives the format, ``delivery/ack.py`` the answers). Each records batch is read by field
name and registry type against this manager's registry (``wire.decode_records``): a
column it does not know, or knows with another type, refuses the entry for good (422,
``retriable: false``, naming the field and both types) — never a column dropped or a
value in another column. Entries are committed in order with (origin=G/source,
sequence=spool seq), which is idempotent: a batch resent after a lost answer inserts
nothing. When the store has
``commit_many`` (DuckDB), consecutive record entries of one request are committed in
one transaction (one idempotency query, one insert, one WAL flush): when a gatherer
catches up that costs about a third less CPU per record than one ``commit`` per batch.
The answer ``{"acked": seq}`` is sent only after the store's commit returned, i.e. after
the batches are durable; if an entry fails, the answer (503, or 422 for a refusal)
still acknowledges the entries committed before it (with ``commit_many``: before its
group; a refused entry is found while its group is built, so the group before it is
committed first).

Stage-output entries (kind ``STAGE_OUTPUT``: a point-of-presence manager forwarding
roll-up periods and aggregate rows, docs/hierarchy.md) go to ``stage_output``
(``hierarchy/receive.py``), idempotent on (origin, seq) the same way; a manager without
one refuses them for good.

A watermark mark (kind 4, ``entry.MARK``, ``delivery/wire.py``) commits nothing: once
the entries before it are committed, it is handed to ``on_mark(gatherer, header)`` (the
manager's ``Watermarks``, which the report windows close on) and acknowledged like them.

Quarantine entries are made idempotent with a marker commit on the origin
``G/source#quarantine``: the items are inserted only when that (origin, seq) was not
committed before, in the same transaction as the marker, with one columnar insert. The
gatherer's quarantine gate has capped them already (``sources/quarantine.py``); here
payloads are cut again to ``quarantine_payload_bytes``, for gatherers that predate it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pyarrow as pa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from netdistill.delivery.ack import refusal_answer
from netdistill.delivery.entry import MARK, QUARANTINE, RECORDS, STAGE_OUTPUT
from netdistill.delivery.wire import decode_records, decode_table, unpack_entries
from netdistill.errors import BatchRefused
from netdistill.manager.auth import GathererAuth
from netdistill.records.quarantine import conform_quarantine
from netdistill.store import Store

log = logging.getLogger(__name__)


class Ingest:
    """Commits gatherer batches to the store; counts what it did per gatherer.

    ``process(source_name, records)`` is the enhancement the flow plan leaves to the
    manager (procedures whose trigger is a gatherer's source), applied before the
    commit; it is pure, so a resent batch is enhanced the same way (lookup answers
    aside) and still committed once."""

    def __init__(
        self,
        store: Store,
        process: Callable[[str, pa.Table], pa.Table] | None = None,
        *,
        on_mark: Callable[[str, dict[str, Any]], None] | None = None,
        quarantine_payload_bytes: int = 2048,
        stage_output: Callable[[str, str, int, bytes], int] | None = None,
    ) -> None:
        self.store = store
        self.process = process
        #: ``(gatherer, origin, seq, payload) → rows`` for ``STAGE_OUTPUT`` entries
        self.stage_output = stage_output
        self.on_mark = on_mark
        self.quarantine_payload_bytes = quarantine_payload_bytes
        #: (source name, records) → the records of exporters the licence admits
        #: (``licence/admit.py``), applied before ``process``
        self.admit: Callable[[str, pa.Table], pa.Table] | None = None
        self._lock = threading.Lock()  # one gatherer request commits at a time, in order
        self.batches: dict[str, int] = {}
        self.records: dict[str, int] = {}
        self.duplicates: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.last_refusal: dict[str, str] = {}

    def commit_body(self, gatherer: str, body: bytes) -> tuple[int, int, str | BatchRefused]:
        """Commit every entry of ``body``; returns (last seq committed, rows, error):
        the error is "" (none), a ``BatchRefused`` (not to be retried) or a message."""
        acked = rows = 0
        group: list[tuple[pa.Table, str, int]] = []  # record entries not yet committed
        many = getattr(self.store, "commit_many", None)

        def flush() -> None:
            nonlocal acked, rows
            if group:
                counts = many(group) if many is not None else []
                for (table, _, seq), n in zip(group, counts, strict=True):
                    rows += self._count(gatherer, table, n)
                    acked = seq
                group.clear()

        with self._lock:
            try:
                for header, payload in unpack_entries(body):
                    try:
                        origin = str(header["origin"])
                        seq = int(header["seq"])  # type: ignore[call-overload]
                        kind = int(header["kind"])  # type: ignore[call-overload]
                    except (KeyError, TypeError, ValueError) as exc:
                        raise BatchRefused(f"malformed entry header {header!r}: {exc}") from None
                    if not origin.startswith(f"{gatherer}/"):
                        raise BatchRefused(
                            f"entry {seq}: origin {origin!r} is not gatherer {gatherer!r}'s",
                            seq=seq,
                        )
                    if kind == RECORDS and many is not None:
                        table = self._records(origin, payload, seq)
                        group.append((table, origin, seq))
                        continue
                    flush()
                    if kind == MARK:
                        if self.on_mark is not None:
                            self.on_mark(gatherer, header)
                        acked = max(acked, seq)
                        continue
                    rows += self._commit(gatherer, kind, origin, seq, payload)
                    acked = seq
                flush()
            except BatchRefused as refusal:
                try:
                    flush()  # the entries before the refused one are good
                except Exception as exc:
                    log.exception("ingest from %s failed after seq %d", gatherer, acked)
                    return acked, rows, f"{type(exc).__name__}: {exc}"
                self.refused[gatherer] = self.refused.get(gatherer, 0) + 1
                self.last_refusal[gatherer] = str(refusal)
                log.error("refused a batch of gatherer %s: %s", gatherer, refusal)
                return acked, rows, refusal
            except Exception as exc:
                log.exception("ingest from %s failed after seq %d", gatherer, acked)
                return acked, rows, f"{type(exc).__name__}: {exc}"
        return acked, rows, ""

    def _records(self, origin: str, payload: Any, seq: int) -> pa.Table:
        table = decode_records(bytes(payload), self.store.fields, seq=seq)
        if self.admit is not None and table.num_rows:
            table = self.admit(origin.partition("/")[2], table)
        if self.process is not None and table.num_rows:
            table = self.process(origin.partition("/")[2], table)
        return table

    def _count(self, gatherer: str, table: pa.Table, n: int) -> int:
        self.batches[gatherer] = self.batches.get(gatherer, 0) + 1
        self.records[gatherer] = self.records.get(gatherer, 0) + n
        if n == 0 and table.num_rows:
            self.duplicates[gatherer] = self.duplicates.get(gatherer, 0) + 1
        return n

    def _commit(self, gatherer: str, kind: int, origin: str, seq: int, payload: Any) -> int:
        if kind == RECORDS:
            table = self._records(origin, payload, seq)
            n = self.store.commit(table, origin=origin, sequence=seq)
            return self._count(gatherer, table, n)
        if kind == QUARANTINE:
            try:
                table = decode_table(bytes(payload))
            except pa.ArrowInvalid as exc:
                raise BatchRefused(f"entry {seq}: the payload is not an Arrow IPC stream: {exc}",
                              seq=seq) from None  # fmt: skip
            self.store.commit_quarantine(
                conform_quarantine(table, self.quarantine_payload_bytes),
                origin=f"{origin}#quarantine",
                sequence=seq,
            )
            return 0
        if kind == STAGE_OUTPUT and self.stage_output is not None:
            n = self.stage_output(gatherer, origin, seq, bytes(payload))
            self.batches[gatherer] = self.batches.get(gatherer, 0) + 1
            return n
        raise BatchRefused(f"entry {seq}: unknown entry kind {kind}", seq=seq)

    def status(self) -> dict[str, Any]:
        return {
            "batches": dict(self.batches),
            "records": dict(self.records),
            "duplicates_ignored": dict(self.duplicates),
            "refused": dict(self.refused),
            "last_refusal": dict(self.last_refusal),
        }


def ingest_router(ingest: Ingest, auth: GathererAuth) -> APIRouter:
    router = APIRouter()

    @router.post("/api/ingest")
    async def post_ingest(request: Request, gatherer: str) -> JSONResponse:
        auth.check(request, gatherer)
        body = await request.body()
        acked, rows, error = await anyio.to_thread.run_sync(ingest.commit_body, gatherer, body)
        if isinstance(error, BatchRefused):
            return JSONResponse(status_code=422, content=refusal_answer(error, acked))
        if error:
            content = {"acked": acked, "error": error, "retriable": True}
            return JSONResponse(status_code=503, content=content)
        return JSONResponse(content={"acked": acked, "rows": rows})

    return router
