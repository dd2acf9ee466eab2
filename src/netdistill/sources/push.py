"""The bounded buffer that lets the pipeline poll a push source like any other.

A push source (``sources/base.py`` ``PushSource``) calls ``emit(result)`` from its own
thread; ``PushBuffer`` keeps the results until the pipeline's next ``poll``, which takes
them all as one ``DecodeResult``. Guarantees: results are handed over in the order
emitted, none is dropped; ``emit`` blocks while ``limit`` records or more are buffered
(backpressure, the pipeline keeps polling meanwhile), except once ``stop`` has begun,
when it accepts at once so that a source stopping never waits on a pipeline that is
draining it. ``after_commit`` callbacks of a result run after the merged batch is
committed, in the order emitted.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, ClassVar

import pyarrow as pa

from netdistill.records.batch import DecodeResult, FieldSpec, SourceCounters
from netdistill.records.schema import SOURCE_SCHEMA, empty_batch
from netdistill.sources.base import PushSource, SourceKind


class PushBuffer:
    """A ``PolledSource`` in front of a ``PushSource``."""

    kind: ClassVar[SourceKind] = "polled"

    def __init__(self, source: PushSource, *, limit: int = 500_000) -> None:
        self.source = source
        self.name = source.name
        self.config: Any = source.config
        self.fields: tuple[FieldSpec, ...] = tuple(source.fields)
        self.limit = limit
        self._results: deque[DecodeResult] = deque()
        self._rows = 0
        self._stopping = False
        self._changed = threading.Condition()

    @property
    def counters(self) -> SourceCounters:
        return self.source.counters

    def _emit(self, result: DecodeResult) -> None:
        with self._changed:
            while self._rows >= self.limit and not self._stopping:
                self._changed.wait(0.1)
            self._results.append(result)
            self._rows += result.records.num_rows

    def start(self) -> None:
        self.source.start(self._emit)

    def poll(self, max_datagrams: int) -> DecodeResult:
        with self._changed:
            taken = list(self._results)
            self._results.clear()
            self._rows = 0
            self._changed.notify_all()
        return _merge(taken)

    def pending(self) -> int:
        return self._rows

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self.source.stop()

    def flush(self) -> DecodeResult:
        rest = self.poll(0)
        last = self.source.flush()
        return _merge([rest, last])

    def status(self) -> dict[str, object]:
        return {**self.source.status(), "buffered_records": self._rows}


def _merge(results: list[DecodeResult]) -> DecodeResult:
    tables = [r.records for r in results if r.records.num_rows]
    if not tables:
        records = pa.Table.from_batches([empty_batch(SOURCE_SCHEMA)])
    elif len(tables) == 1:
        records = tables[0]
    else:
        records = pa.concat_tables(tables, promote_options="default")
    return DecodeResult(
        records,
        [q for r in results for q in r.quarantined],
        [f for r in results for f in r.after_commit],
    )
