"""Aggregate report windows: every report equals a plain GROUP BY done here; closing
honours the grace (the clock is moved by hand); two stores fed the same batches in a
different order give identical reports and checksums."""

from __future__ import annotations

import random

import duckdb
import pyarrow as pa
import pytest

from netdistill.manager.windows import WindowJob, WindowsConfig
from netdistill.records.schema import conform
from netdistill.store.duckdb import DuckDBStore

T0 = 1_700_000_100  # a multiple of 60 and of 300 + 100: windows of 60 s start at T0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_records(n: int, seed: int, span_s: int) -> pa.Table:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        end_us = (T0 + rng.randrange(span_s)) * 1_000_000 + rng.randrange(1_000_000)
        kind = rng.randrange(4)
        rows.append(
            {
                "end_time": end_us,
                "start_time": end_us - rng.randrange(10_000_000),
                "account_id": rng.choice(["acme", "globex"]) if kind == 0 else None,
                "user_name": rng.choice(["alice", "bob"]) if kind == 1 else ("" if kind else None),
                "src_ip": f"10.0.0.{rng.randrange(1, 4)}",
                "service": rng.choice(["http", "dns", None]),
                "bytes": rng.randrange(1, 10**9),
                "packets": rng.randrange(1, 10**4),
                "duration_s": rng.randrange(0, 10**7) / 1e6,
            }
        )
    table = pa.Table.from_pylist(rows)
    ts = pa.timestamp("us", tz="UTC")
    table = table.set_column(0, "end_time", table.column("end_time").cast(ts))
    table = table.set_column(1, "start_time", table.column("start_time").cast(ts))
    return conform(table)


def ground_truth(records: pa.Table, length: int) -> dict[int, list[dict[str, object]]]:
    """The same figures with a GROUP BY written independently of the module."""
    con = duckdb.connect()
    con.register("r", records)
    rows = con.execute(
        f"""
        SELECT CAST(floor(epoch(end_time)) AS BIGINT) // {length} * {length} AS w,
               CASE WHEN account_id IS NOT NULL AND account_id <> '' THEN account_id
                    WHEN user_name IS NOT NULL AND user_name <> '' THEN user_name
                    ELSE src_ip END AS account,
               CASE WHEN service IS NULL THEN '' ELSE service END AS service,
               sum(bytes)::BIGINT, sum(packets)::BIGINT, count(*),
               sum(round(duration_s * 1000000))::BIGINT
        FROM r GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
    ).fetchall()
    out: dict[int, list[dict[str, object]]] = {}
    for w, account, service, b, p, n, d in rows:
        out.setdefault(w, []).append(
            {
                "account": account,
                "service": service,
                "bytes": b,
                "packets": p,
                "sessions": n,
                "duration_s": d / 1e6,
            }
        )
    return out


@pytest.fixture
def store(tmp_path):
    s = DuckDBStore(tmp_path / "records.duckdb")
    yield s
    s.close()


def test_reports_equal_group_by_and_grace_is_honoured(store):
    records = make_records(3000, seed=1, span_s=300)  # 5 windows of 60 s
    for i, part in enumerate(records.to_batches(max_chunksize=500)):
        store.commit(pa.Table.from_batches([part]), origin="g/a", sequence=i + 1)
    clock = Clock(T0)
    job = WindowJob(store, WindowsConfig(length_s=60, grace_s=30), clock=clock)
    assert job.run_once() == []  # the first window ends at T0 + 60
    clock.now = T0 + 60 + 29.9
    assert job.run_once() == []  # still within the grace
    clock.now = T0 + 60 + 30
    assert [r["start"] for r in job.run_once()] == [T0]
    clock.now = T0 + 400  # catches up: windows ending at +120 … +360 are due
    assert [r["start"] for r in job.run_once()] == [T0 + 60 * k for k in range(1, 6)]
    truth = ground_truth(records, 60)
    assert sorted(truth) == [T0 + 60 * k for k in range(5)]
    reports = job.reports()
    assert [r["start"] for r in reports] == [*sorted(truth), T0 + 300]
    assert reports[-1]["rows"] == []  # after the last record: an empty report
    for report in reports[:-1]:
        assert report["rows"] == truth[report["start"]]
        assert report["records"] == sum(r["sessions"] for r in truth[report["start"]])
        assert report["end"] == report["start"] + 60
    assert sum(r["records"] for r in reports) == 3000
    assert job.reports(after=T0 + 120)[0]["start"] == T0 + 180
    assert job.report(T0 + 60) == reports[1]
    assert job.report(T0 + 360) is None


def test_empty_windows_are_reported_and_nothing_before_the_first_record(tmp_path):
    clock = Clock(T0 + 1000)
    store = DuckDBStore(tmp_path / "records.duckdb", clock=clock)  # stamps ingested_at
    job = WindowJob(store, WindowsConfig(length_s=60, grace_s=0), clock=clock)
    assert job.run_once() == []  # no records: no series yet
    table = make_records(3, seed=2, span_s=60)
    store.commit(table, origin="g/a", sequence=1)
    late = make_records(1, seed=3, span_s=1)
    reports = job.run_once()
    # T0 … T0+900 are due (end + 0 <= T0+1000): 16 windows, only the first has records
    assert [r["start"] for r in reports] == [T0 + 60 * k for k in range(16)]
    assert [r["records"] for r in reports] == [3] + [0] * 15
    assert reports[5]["rows"] == []
    clock.now += 1
    store.commit(late, origin="g/a", sequence=2)  # after its window closed
    assert job.late_records() == 1
    assert job.report(T0)["records"] == 3  # a closed report never changes
    store.close()


def test_a_restart_waits_the_grace_and_continues_the_series(tmp_path):
    store = DuckDBStore(tmp_path / "records.duckdb")
    store.commit(make_records(100, seed=4, span_s=120), origin="g/a", sequence=1)
    clock = Clock(T0 + 60)
    first = WindowJob(store, WindowsConfig(length_s=60, grace_s=10), clock=clock)
    clock.now += 10
    assert [r["start"] for r in first.run_once()] == [T0]
    store.close()
    store = DuckDBStore(tmp_path / "records.duckdb")
    clock.now = T0 + 500
    job = WindowJob(store, WindowsConfig(length_s=60, grace_s=10), clock=clock)
    assert job.run_once() == []  # started now: gatherers get the grace to resend
    clock.now += 10
    assert [r["start"] for r in job.run_once()] == [T0 + 60 * k for k in range(1, 8)]
    assert [r["start"] for r in job.reports()] == [T0 + 60 * k for k in range(8)]
    store.close()


def test_two_stores_fed_in_different_orders_agree(tmp_path):
    records = make_records(2000, seed=5, span_s=180)
    batches = [pa.Table.from_batches([b]) for b in records.to_batches(max_chunksize=100)]
    checksums = []
    for name, order in (("a", batches), ("b", list(reversed(batches)))):
        store = DuckDBStore(tmp_path / f"{name}.duckdb")
        for i, part in enumerate(order):
            store.commit(part, origin=f"g/{i}", sequence=1)
        job = WindowJob(store, WindowsConfig(length_s=60, grace_s=0), clock=Clock(T0 + 180))
        checksums.append([(r["start"], r["checksum"], r["rows"]) for r in job.run_once()])
        store.close()
    assert len(checksums[0]) == 3
    assert checksums[0] == checksums[1]


def test_start_time_mode_and_defaults_validate():
    assert WindowsConfig().length_s == 300
    assert WindowsConfig().grace_s == 60
    with pytest.raises(ValueError):
        WindowsConfig(length_s=0)
    with pytest.raises(ValueError):
        WindowsConfig(lenght_s=60)  # type: ignore[call-arg]
