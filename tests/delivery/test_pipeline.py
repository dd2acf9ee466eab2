"""The gatherer loop: a failed commit is retried, and nothing is committed twice; a busy
source never delays another source's answers; answers go out before the quarantine."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from netdistill.delivery.pipeline import Pipeline
from netdistill.records.batch import DecodeResult, Quarantined, SourceCounters
from netdistill.records.schema import conform
from netdistill.sources.quarantine import QuarantineLimits
from netdistill.store.duckdb import DuckDBStore


class ListSource:
    """Hands out prepared decode results, one per poll."""

    name = "list"

    def __init__(self, results: list[DecodeResult]) -> None:
        self.results = results
        self.counters = SourceCounters()

    def start(self) -> None: ...
    def stop(self) -> None: ...

    def poll(self, max_datagrams: int) -> DecodeResult:
        if self.results:
            return self.results.pop(0)
        return DecodeResult(conform(pa.table({"bytes": pa.array([], pa.uint64())})))

    def pending(self) -> int:
        return len(self.results)

    def flush(self) -> DecodeResult:
        return self.poll(0)

    def status(self) -> dict[str, object]:
        return {"name": self.name}


class FlakySink:
    """The real store, refusing the first ``commits`` record commits and the first
    ``quarantines`` quarantine commits."""

    def __init__(self, store: DuckDBStore, *, commits: int, quarantines: int) -> None:
        self.store = store
        self.commit_failures = commits
        self.quarantine_failures = quarantines

    def commit(self, batch: pa.Table, *, origin: str, sequence: int) -> int:
        if self.commit_failures:
            self.commit_failures -= 1
            raise OSError("disk full")
        return self.store.commit(batch, origin=origin, sequence=sequence)

    def commit_quarantine(self, items: list[Quarantined]) -> int:
        if self.quarantine_failures:
            self.quarantine_failures -= 1
            raise OSError("disk full")
        return self.store.commit_quarantine(items)

    def last_sequence(self, origin: str) -> int:
        return self.store.last_sequence(origin)


def result(first_byte_count: int, n: int, bad: int) -> DecodeResult:
    records = conform(
        pa.table(
            {"bytes": pa.array(np.arange(first_byte_count, first_byte_count + n, dtype=np.uint64))}
        )
    )
    quarantined = [Quarantined("list", "192.0.2.1", 0.0, "malformed", "x", b"\x00")] * bad
    return DecodeResult(records, quarantined)


def test_failed_commits_are_retried_and_nothing_is_doubled(tmp_path):
    store = DuckDBStore(tmp_path / "r.duckdb")
    sink = FlakySink(store, commits=1, quarantines=1)
    source = ListSource([result(1, 10, 1), result(100, 5, 2)])
    pipeline = Pipeline([source], sink)
    committed = []
    for _ in range(4):
        pipeline.step()
        committed.append(
            (
                pipeline.committed_records,
                store.query("select count(*) n from quarantine").column(0)[0].as_py(),
            )
        )
    # records refused; records in but quarantine refused; the first batch's quarantine
    # in (nothing new polled meanwhile); the second batch whole
    assert committed == [(0, 0), (10, 0), (10, 1), (15, 3)]
    pipeline.stop()
    assert pipeline.errors == 2
    assert store.query("select count(*) n, sum(bytes) b from records").to_pylist() == [
        {"n": 15, "b": 55 + 510}
    ]
    assert store.query("select count(*) n from quarantine").to_pylist() == [{"n": 3}]
    assert store.last_sequence("local/list") == 2
    store.close()


class SlowSource(ListSource):
    """A source busy for ``busy_s`` per poll (a flood being decoded), with junk to
    quarantine each time."""

    name = "flooded"

    def __init__(self, busy_s: float) -> None:
        super().__init__([])
        self.busy_s = busy_s
        self.polls = 0
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def poll(self, max_datagrams: int) -> DecodeResult:
        self.polls += 1
        time.sleep(self.busy_s)
        junk = [Quarantined("flooded", "192.0.2.1", 0.0, "malformed", "x", b"\x01" * 5000)] * 50
        return DecodeResult(conform(pa.table({"bytes": pa.array([], pa.uint64())})), junk)

    def pending(self) -> int:
        return 0 if self.stopped else 1


class AnsweringSource(ListSource):
    """Hands out one record per poll when asked, and notes when its answer went out."""

    name = "answering"

    def __init__(self) -> None:
        super().__init__([])
        self.asked: list[float] = []
        self.answered: list[float] = []

    def ask(self) -> None:
        self.asked.append(time.monotonic())
        self.results.append(self._result())

    def _result(self) -> DecodeResult:
        r = result(len(self.asked), 1, 0)
        r.after_commit.append(lambda: self.answered.append(time.monotonic()))
        return r


def test_a_busy_source_does_not_delay_another_sources_answers(tmp_path):
    store = DuckDBStore(tmp_path / "r.duckdb")
    slow, answering = SlowSource(busy_s=1.5), AnsweringSource()
    limits = QuarantineLimits(rows_per_s=10, burst_rows=60, payload_bytes=100)
    pipeline = Pipeline([slow, answering], store, interval_s=0.02, quarantine=limits)
    pipeline.start()
    try:
        for _ in range(10):
            answering.ask()
            time.sleep(0.2)
        deadline = time.monotonic() + 5
        while len(answering.answered) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        pipeline.stop()
    waits = [a - q for q, a in zip(answering.asked, answering.answered, strict=True)]
    assert max(waits) < 0.5, waits  # one poll of the busy source takes 1.5 s
    assert store.query("select count(*) n from records").to_pylist() == [{"n": 10}]
    status = {s["name"]: s for s in pipeline.status()["sources"]}  # type: ignore[union-attr]
    quarantine = status["flooded"]["quarantine"]
    stored = store.query(
        "select count(*) n, max(octet_length(payload)) m, min(payload_length) l from quarantine"
    ).to_pylist()[0]
    assert stored == {"n": quarantine["stored"]["malformed"], "m": 100, "l": 5000}
    assert quarantine["stored"]["malformed"] + quarantine["counted_only"]["malformed"] == (
        50 * slow.polls
    )
    assert 60 <= stored["n"] <= 60 + 10 * 1.5 * slow.polls
    store.close()


def test_answers_go_out_before_the_quarantine_is_written(tmp_path):
    store = DuckDBStore(tmp_path / "r.duckdb")
    calls: list[str] = []

    class Recording(FlakySink):
        def commit(self, batch, *, origin, sequence):  # type: ignore[no-untyped-def]
            calls.append("records")
            return super().commit(batch, origin=origin, sequence=sequence)

        def commit_quarantine(self, items):  # type: ignore[no-untyped-def]
            calls.append("quarantine")
            return super().commit_quarantine(items)

    r = result(1, 3, 2)
    r.after_commit.append(lambda: calls.append("answer"))
    Pipeline([ListSource([r])], Recording(store, commits=0, quarantines=0)).step()
    assert calls == ["records", "answer", "quarantine"]
    store.close()
