"""The producing side of delivery: poll every source, stamp the gatherer, hand batches
to the sink — a remote gatherer's spool (``gatherer/main.py``), or the store itself for
the sources a manager runs (``manager/serve.py``, ``manager/local.py``, the importer).

Each source has its own loop thread (``start``), so one source's work — decoding a
flood of junk, storing its quarantine — never delays another's answers: a RADIUS
request is answered after its own batch's commit, not after a NetFlow source's. A
source is polled by one thread at a time (its loop, or ``step``/``change_sources``
under its lock); the sink is called from several threads and must be thread-safe (the
DuckDB store and the spool hold a lock per write; the write lock is held for one
batch's commit only). ``process`` (the enhancer) is called under one lock.

A batch is handed to the sink with a per-origin sequence number (origin =
``gatherer/source``); the sink's commit is idempotent on it. Each loop wakes every
``interval_s`` or as soon as its source has ``max_datagrams`` waiting, so at high rates
batches are large (cheap per record) and at low rates latency stays under the interval.

Per batch, in order: the records are committed; the result's ``after_commit`` steps run
(answers to devices, file offsets); then the quarantine — the items the source's
``QuarantineGate`` admits (payloads cut, rows within the source's rate), in one
columnar write. So bad input never delays good input's answer, and a flood costs the
store at most the cap (``sources/quarantine.py``).

Watermarks: after a step in which a source's batch was committed (or it had nothing)
and its queue was left empty, ``on_watermark(source_name, t)`` is called with ``t`` the
wall-clock time the step began: everything that source received before ``t`` has been
handed to the sink (``gatherer/watermark.py`` says what the gatherer does with it).
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
from netdistill.sources.quarantine import QuarantineGate, QuarantineLimits

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
        quarantine: QuarantineLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_watermark: Callable[[str, float], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.sources = list(sources)
        #: what the flow plan does to a source's records before they are committed
        self.process = process
        self.sink = sink
        self.gatherer = gatherer
        self.interval_s = interval_s
        self.max_datagrams = max_datagrams
        #: the manager-wide quarantine limits; a source's ``quarantine`` block overrides
        self.quarantine = quarantine or QuarantineLimits()
        self._clock = clock
        self.on_watermark = on_watermark
        self._wall_clock = wall_clock
        self._sequences = {s.name: sink.last_sequence(self._origin(s)) for s in self.sources}
        self._failed: dict[str, DecodeResult] = {}
        self._gates = {s.name: self._gate(s) for s in self.sources}
        #: admitted quarantine items not yet written (a failed write is retried)
        self._quarantine_due: dict[str, list[Quarantined]] = {}
        self._threads: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._started = False
        #: per source: held by each of its steps, so a live scheme change stops a source
        #: between two of its batches, never in the middle of one
        self._source_locks: dict[str, threading.RLock] = {
            s.name: threading.RLock() for s in self.sources
        }
        #: held while the source list changes
        self._step_lock = threading.RLock()
        self._process_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self.committed_records = 0
        self.committed_batches = 0
        self.errors = 0
        self.last_error = ""

    def _origin(self, source: PolledSource) -> str:
        return f"{self.gatherer}/{source.name}"

    def _gate(self, source: PolledSource) -> QuarantineGate:
        own = getattr(getattr(source, "config", None), "quarantine", None)
        limits = self.quarantine.merged(own if isinstance(own, QuarantineLimits) else None)
        return QuarantineGate(limits, clock=self._clock)

    def _lock_of(self, source: PolledSource) -> threading.RLock:
        return self._source_locks.setdefault(source.name, threading.RLock())

    def handle(self, source: PolledSource, result: DecodeResult) -> int:
        """Commit one decode result of ``source``; returns the records committed.

        Records first, then the result's ``after_commit`` callbacks (answers to devices,
        file offsets), then the quarantine through the source's gate; each part is
        cleared from ``result`` once it is done, so a ``result`` whose commit raised can
        be handed in again and nothing is committed, answered or counted twice."""
        n = 0
        if result.records.num_rows:
            records = with_constant(result.records, "gatherer", self.gatherer)
            process = self.process
            if process is not None:
                with self._process_lock:
                    records = process(source.name, records)
            sequence = self._sequences[source.name] + 1
            n = self.sink.commit(records, origin=self._origin(source), sequence=sequence)
            self._sequences[source.name] = sequence
            if process is not None:  # filters count drops of committed batches only
                with self._process_lock:
                    process.committed(source.name)
            result.records = result.records.slice(0, 0)
            with self._counts_lock:
                self.committed_records += n
                self.committed_batches += 1
        while result.after_commit:
            result.after_commit.pop(0)()
        if result.quarantined:
            gate = self._gates.get(source.name)
            if gate is None:
                gate = self._gates[source.name] = self._gate(source)
            admitted = gate.admit(result.quarantined)
            result.quarantined = []
            if admitted:
                self._quarantine_due.setdefault(source.name, []).extend(admitted)
        due = self._quarantine_due.get(source.name)
        if due:
            self.sink.commit_quarantine(due)
            del self._quarantine_due[source.name]
        return n

    def step(self) -> int:
        """Poll every source once and commit what came; returns records committed.

        A batch whose commit failed (store full, manager away) is kept and tried again
        at the next step before anything new is polled from that source: meanwhile its
        datagrams wait in the receive queue, whose bound is counted, never silent."""
        with self._step_lock:
            sources = list(self.sources)
        return sum(self._step_source(source) for source in sources)

    def _step_source(self, source: PolledSource) -> int:
        with self._lock_of(source):
            result = self._failed.pop(source.name, None)
            began = self._wall_clock()
            try:
                if result is None:
                    result = source.poll(self.max_datagrams)
                n = self.handle(source, result)
                if self.on_watermark is not None and source.pending() == 0:
                    self.on_watermark(source.name, began)
                return n
            except Exception as exc:  # keep collecting; the status shows the error
                if result is not None:
                    self._failed[source.name] = result
                with self._counts_lock:
                    self.errors += 1
                    self.last_error = f"{source.name}: {exc}"
                log.exception("committing a batch of %s failed; will retry", source.name)
                return 0

    def start(self) -> None:
        for source in self.sources:
            source.start()
        self._started = True
        for source in self.sources:
            self._start_loop(source)

    def _start_loop(self, source: PolledSource) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._loop, args=(source, stop), name=f"pipeline-{source.name}", daemon=True
        )
        self._threads[source.name] = (thread, stop)
        thread.start()

    def _loop(self, source: PolledSource, stop: threading.Event) -> None:
        while not stop.is_set():
            started = self._clock()
            self._step_source(source)
            # Sleep until the interval is over, waking early when the source is full.
            while not stop.is_set():
                left = self.interval_s - (self._clock() - started)
                if left <= 0 or source.pending() >= self.max_datagrams:
                    break
                stop.wait(min(left, 0.02))

    def _stop_loop(self, name: str) -> None:
        entry = self._threads.pop(name, None)
        if entry is not None:
            thread, stop = entry
            stop.set()
            thread.join()

    def stop(self) -> None:
        """Stop receiving, then commit everything that was received: nothing is lost."""
        for source in self.sources:
            source.stop()
        for name in list(self._threads):
            self._stop_loop(name)
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
                self._stop_loop(source.name)
                with self._lock_of(source):
                    source.stop()
                    self._drain(source)
                self.sources = [s for s in self.sources if s is not source]
                self._sequences.pop(source.name, None)
                self._gates.pop(source.name, None)
                self._source_locks.pop(source.name, None)
            with self._process_lock:
                self.process = process
            for source in add:
                self._sequences[source.name] = self.sink.last_sequence(self._origin(source))
                self._gates[source.name] = self._gate(source)
                source.start()
                self.sources = [*self.sources, source]
                if self._started:
                    self._start_loop(source)

    def configure_quarantine(self, limits: QuarantineLimits) -> None:
        """New manager-wide quarantine limits (a live scheme change); counts are kept."""
        self.quarantine = limits
        for source in list(self.sources):
            gate = self._gates.get(source.name)
            if gate is not None:
                own = getattr(getattr(source, "config", None), "quarantine", None)
                gate.configure(limits.merged(own if isinstance(own, QuarantineLimits) else None))

    def _drain(self, source: PolledSource) -> None:
        failed = self._failed.pop(source.name, None)
        if failed is not None:
            self.handle(source, failed)
        while source.pending():
            self.handle(source, source.poll(self.max_datagrams))
        self.handle(source, source.flush())

    def status(self) -> dict[str, object]:
        sources = []
        for source in list(self.sources):
            item = dict(source.status())
            gate = self._gates.get(source.name)
            if gate is not None:
                item["quarantine"] = gate.status()
            sources.append(item)
        return {
            "gatherer": self.gatherer,
            "committed_records": self.committed_records,
            "committed_batches": self.committed_batches,
            "errors": self.errors,
            "last_error": self.last_error,
            "sources": sources,
            "lookups": self.process.status() if self.process is not None else [],
            "filters": self.process.filter_status() if self.process is not None else [],
        }
