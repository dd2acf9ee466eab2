"""The gatherer loop: a failed commit is retried, and nothing is committed twice."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from netdistill.delivery.pipeline import Pipeline
from netdistill.records.batch import DecodeResult, Quarantined, SourceCounters
from netdistill.records.schema import conform
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
        return {}


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
