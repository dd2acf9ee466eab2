"""PushBuffer: a push source's results reach the pipeline in order, none dropped, with
``emit`` blocking at the bound (backpressure) and never once stopping has begun."""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import pyarrow as pa

from netdistill.records.batch import DecodeResult, SourceCounters
from netdistill.sources.push import PushBuffer


class Pusher:
    """A push source whose test drives ``emit`` by hand."""

    kind: ClassVar[str] = "push"
    fields = ()

    def __init__(self) -> None:
        self.name = "p"
        self.config: Any = None
        self.counters = SourceCounters()
        self.emit: Any = None
        self.stopped = False

    def start(self, emit: Any) -> None:
        self.emit = emit

    def stop(self) -> None:
        self.stopped = True

    def flush(self) -> DecodeResult:
        return DecodeResult(pa.table({"bytes": pa.array([99], pa.uint64())}))

    def status(self) -> dict[str, object]:
        return {"name": self.name}


def result(*values: int) -> DecodeResult:
    return DecodeResult(pa.table({"bytes": pa.array(values, pa.uint64())}))


def test_results_arrive_in_order_and_emit_blocks_at_the_bound() -> None:
    source = Pusher()
    buffer = PushBuffer(source, limit=3)  # type: ignore[arg-type]
    buffer.start()
    done: list[str] = []
    source.emit(result(1, 2))
    source.emit(result(3))  # 3 rows buffered: the bound
    assert buffer.pending() == 3
    blocked = threading.Thread(target=lambda: (source.emit(result(4)), done.append("4")))
    blocked.start()
    time.sleep(0.3)
    assert done == []  # still waiting for room
    polled = buffer.poll(100)
    assert polled.records.column("bytes").to_pylist() == [1, 2, 3]
    blocked.join(timeout=5)
    assert done == ["4"]
    assert buffer.poll(100).records.column("bytes").to_pylist() == [4]
    assert buffer.poll(100).records.num_rows == 0


def test_stopping_unblocks_emit_and_flush_keeps_everything() -> None:
    source = Pusher()
    buffer = PushBuffer(source, limit=1)  # type: ignore[arg-type]
    buffer.start()
    source.emit(result(1))
    late = threading.Thread(target=lambda: source.emit(result(2)))
    late.start()
    time.sleep(0.2)
    buffer.stop()
    late.join(timeout=5)
    assert not late.is_alive() and source.stopped
    assert buffer.flush().records.column("bytes").to_pylist() == [1, 2, 99]
