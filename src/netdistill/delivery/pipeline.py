"""The producing side of delivery: poll every source, stamp the gatherer, hand batches
to the sink — a remote gatherer's spool (``gatherer/main.py``), or the store itself for
the sources a manager runs (``manager/serve.py``, ``manager/local.py``, the importer).

One thread runs the loop, so sources and the sink are never called concurrently. A
batch is handed to the sink with a per-origin sequence number (origin =
``gatherer/source``); the sink's commit is idempotent on it. The loop wakes every
``interval_s`` or as soon as a source has ``max_datagrams`` waiting, so at high rates
batches are large (cheap per record) and at low rates latency stays under the interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pyarrow as pa

from netdistill.records.batch import DecodeResult, Quarantined
from netdistill.records.schema import with_constant
from netdistill.sources.base import PolledSource

log = logging.getLogger(__name__)


class RecordProcess(Protocol):
    """What the flow plan does to a source's records before they are committed (its
    filters and procedures: ``enhance.plan.Enhancer``). Every method is part of the
    contract, none is probed: a process with nothing to count returns empty lists.

    ``__call__`` must be pure, because a batch whose commit failed is processed again on
    retry; ``committed`` is called once per batch, after its commit (filters count the
    drops of committed batches only); ``close`` once, when no batch uses it any more."""

    def __call__(self, source_name: str, records: pa.Table) -> pa.Table: ...
    def committed(self, source_name: str) -> None: ...

    def status(self) -> list[dict[str, Any]]:
        """Its lookups' counters (for the status and heartbeats)."""

    def filter_status(self) -> list[dict[str, Any]]:
        """Records its filters dropped, per filter."""

    def close(self) -> None: ...


class Sink(Protocol):
    def commit(self, batch: pa.Table, *, origin: str, sequence: int) -> int: ...
    def commit_quarantine(self, items: Sequence[Quarantined]) -> int: ...
    def last_sequence(self, origin: str) -> int: ...


class Pipeline:
    """Drives sources and commits their batches to a sink."""

    def __init__(
        self,
        sources: Sequence[PolledSource],
        sink: Sink,
        *,
        gatherer: str = "local",
        interval_s: float = 0.5,
        max_datagrams: int = 20_000,
        process: RecordProcess | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = list(sources)
        #: what the flow plan does to a source's records before they are committed
        self.process = process
        self.sink = sink
        self.gatherer = gatherer
        self.interval_s = interval_s
        self.max_datagrams = max_datagrams
        self._clock = clock
        self._sequences = {s.name: sink.last_sequence(self._origin(s)) for s in self.sources}
        self._failed: dict[str, DecodeResult] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: held by each step and by ``change_sources``: a live scheme change happens
        #: between two steps, never in the middle of a batch
        self._step_lock = threading.RLock()
        self.committed_records = 0
        self.committed_batches = 0
        self.errors = 0
        self.last_error = ""

    def _origin(self, source: PolledSource) -> str:
        return f"{self.gatherer}/{source.name}"

    def handle(self, source: PolledSource, result: DecodeResult) -> int:
        """Commit one decode result of ``source``; returns the records committed.

        Records first, then the quarantine, then the result's ``after_commit`` callbacks
        (answers to devices, file offsets); each part is cleared from ``result`` once it
        is done, so a ``result`` whose commit raised can be handed in again and nothing
        is committed or answered twice."""
        n = 0
        if result.records.num_rows:
            records = with_constant(result.records, "gatherer", self.gatherer)
            if self.process is not None:
                records = self.process(source.name, records)
            sequence = self._sequences[source.name] + 1
            n = self.sink.commit(records, origin=self._origin(source), sequence=sequence)
            self._sequences[source.name] = sequence
            if self.process is not None:  # filters count drops of committed batches only
                self.process.committed(source.name)
            result.records = result.records.slice(0, 0)
            self.committed_records += n
            self.committed_batches += 1
        if result.quarantined:
            self.sink.commit_quarantine(result.quarantined)
            result.quarantined = []
        while result.after_commit:
            result.after_commit.pop(0)()
        return n

    def step(self) -> int:
        """Poll every source once and commit what came; returns records committed.

        A batch whose commit failed (store full, manager away) is kept and tried again
        at the next step before anything new is polled from that source: meanwhile its
        datagrams wait in the receive queue, whose bound is counted, never silent."""
        with self._step_lock:
            return self._step()

    def _step(self) -> int:
        total = 0
        for source in self.sources:
            result = self._failed.pop(source.name, None)
            try:
                if result is None:
                    result = source.poll(self.max_datagrams)
                total += self.handle(source, result)
            except Exception as exc:  # keep collecting; the status shows the error
                if result is not None:
                    self._failed[source.name] = result
                self.errors += 1
                self.last_error = f"{source.name}: {exc}"
                log.exception("committing a batch of %s failed; will retry", source.name)
        return total

    def start(self) -> None:
        for source in self.sources:
            source.start()
        self._thread = threading.Thread(target=self._loop, name="pipeline", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            self.step()
            # Sleep until the interval is over, waking early when a source is full.
            while not self._stop.is_set():
                left = self.interval_s - (self._clock() - started)
                if left <= 0 or any(s.pending() >= self.max_datagrams for s in self.sources):
                    break
                self._stop.wait(min(left, 0.02))

    def stop(self) -> None:
        """Stop receiving, then commit everything that was received: nothing is lost."""
        for source in self.sources:
            source.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for source in self.sources:
            self._drain(source)

    def change_sources(
        self,
        remove: Sequence[str],
        add: Sequence[PolledSource],
        process: RecordProcess | None,
    ) -> None:
        """Between two steps: stop the sources named in ``remove`` after committing all
        they received (with the old ``process``), then take ``process`` and start ``add``;
        the other sources keep running."""
        with self._step_lock:
            for source in [s for s in self.sources if s.name in set(remove)]:
                source.stop()
                self._drain(source)
                self.sources = [s for s in self.sources if s is not source]
                self._sequences.pop(source.name, None)
            self.process = process
            for source in add:
                self._sequences[source.name] = self.sink.last_sequence(self._origin(source))
                source.start()
                self.sources = [*self.sources, source]

    def _drain(self, source: PolledSource) -> None:
        failed = self._failed.pop(source.name, None)
        if failed is not None:
            self.handle(source, failed)
        while source.pending():
            self.handle(source, source.poll(self.max_datagrams))
        self.handle(source, source.flush())

    def status(self) -> dict[str, object]:
        return {
            "gatherer": self.gatherer,
            "committed_records": self.committed_records,
            "committed_batches": self.committed_batches,
            "errors": self.errors,
            "last_error": self.last_error,
            "sources": [s.status() for s in self.sources],
            "lookups": self.process.status() if self.process is not None else [],
            "filters": self.process.filter_status() if self.process is not None else [],
        }
