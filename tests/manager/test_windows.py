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
    issued = job.run_once()  # counted, and the window re-issued with the late record
    assert [(r["start"], r["version"], r["late_records"], r["records"]) for r in issued] == [
        (T0, 2, 1, 4)
    ]
    assert issued[0]["supersedes"] == reports[0]["checksum"]
    assert issued[0]["revision"] > max(r["revision"] for r in reports)
    assert job.late_records() == 1 and job.status()["late_records"] == 1
    assert job.report(T0) == issued[0]
    assert job.revisions(after=reports[-1]["revision"]) == issued
    assert job.run_once() == []  # nothing new
    store.close()
    # a restart neither recounts nor misses: the last record id seen is kept
    store = DuckDBStore(tmp_path / "records.duckdb", clock=clock)
    job = WindowJob(store, WindowsConfig(length_s=60, grace_s=0), clock=clock)
    assert job.run_once() == [] and job.late_records() == 1
    store.commit(make_records(2, seed=9, span_s=1), origin="g/a", sequence=3)
    (again,) = job.run_once()
    assert (again["start"], again["version"], again["late_records"]) == (T0, 3, 3)
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


def _batch_at(seconds: list[float], bytes_: int = 100) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "end_time": pa.array([int(s * 1e6) for s in seconds]).cast(ts),
            "account_id": ["acme"] * len(seconds),
            "bytes": pa.array([bytes_] * len(seconds), pa.uint64()),
        }
    )
    return conform(table)


def test_a_window_waits_for_every_gatherer_then_closes_incomplete_and_is_corrected(tmp_path):
    """Finding 1 of issue 13: windows closed on the manager's clock while a gatherer's
    records were still on their way, and looked complete. Now: g1 delivered past the
    window, g2 did not — the window waits; g2 falls silent — the window closes
    incomplete naming g2, with an alert; g2's records arrive — counted late, and the
    window is re-issued complete with all of them."""
    from netdistill.manager.monitor import Monitor, MonitorConfig

    clock = Clock(T0 + 100)
    store = DuckDBStore(tmp_path / "records.duckdb", clock=clock)
    monitor = Monitor(store, MonitorConfig(silence_intervals=3), clock=clock)
    job = WindowJob(store, WindowsConfig(length_s=60, grace_s=5, max_wait_s=1000), clock=clock)
    job.watermarks._clock = clock
    job.watermarks.started_at = clock.now
    job.feeders = lambda: {"g1", "g2"}
    job.silent = monitor.is_silent
    job.alert = monitor.alert
    for name in ("g1", "g2"):
        monitor.receive({"gatherer": name, "interval_s": 1.0})
    store.commit(_batch_at([T0 + 10, T0 + 20]), origin="g1/nf", sequence=1)
    store.commit(_batch_at([T0 + 30]), origin="g2/nf", sequence=1)
    job.watermarks.mark("g1", {"seq": 1, "watermark": T0 + 99})
    job.watermarks.mark("g2", {"seq": 1, "watermark": T0 + 31})
    assert job.run_once() == []  # the clock is past T0+65, but g2 is not
    clock.now += 2
    monitor.receive({"gatherer": "g1", "interval_s": 1.0})
    assert job.run_once() == []  # g2 is 2 s quiet, not yet silent (3 intervals)
    clock.now += 2
    (first,) = job.run_once()  # g2 silent: closes incomplete, naming it
    assert first["start"] == T0 and not first["complete"] and first["records"] == 3
    assert [(m["gatherer"], m["reason"]) for m in first["incomplete"]] == [("g2", "silent")]
    (alert,) = monitor.alerts(open_only=True)
    assert alert["kind"] == "window_incomplete" and "g2 (silent)" in alert["detail"]
    # g2 comes back with what it spooled: late, and the window is re-issued complete
    monitor.receive({"gatherer": "g2", "interval_s": 1.0})
    store.commit(_batch_at([T0 + 40, T0 + 50]), origin="g2/nf", sequence=2)
    job.watermarks.mark("g2", {"seq": 2, "watermark": T0 + 103})
    reissued = [r for r in job.run_once() if r["start"] == T0]
    assert [(r["version"], r["complete"], r["records"], r["late_records"]) for r in reissued] == [
        (2, True, 5, 2)
    ]
    assert reissued[0]["supersedes"] == first["checksum"]
    assert monitor.alerts(open_only=True) == []  # cleared by a complete window
    status = job.status()
    assert status["late_records"] == 2 and status["corrected_windows"] == 1
    assert status["watermarks"]["g2"]["watermark"] == T0 + 103
    # the audit report shows it
    from netdistill.reports import find_report, run_report

    result = run_report(
        store,
        find_report(store, "audit_windows"),
        {"from": "2023-11-14T00:00:00Z", "to": "2023-11-15T00:00:00Z"},
    )
    (row,) = result.table.to_pylist()
    assert (row["version"], row["complete"], row["late_records"], row["records"]) == (2, True, 2, 5)
    store.close()
