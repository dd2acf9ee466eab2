"""The consumer's decision and its durable cursor, against real manager APIs in-process.

Two in-process managers (real FastAPI apps on loopback, real DuckDB stores) with the
same records; the consumer's ``step`` is driven by hand, and the primary is stopped and
started to show each rule of ``decide``."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from netdistill.accounting.config import AccountingConfig
from netdistill.accounting.consumer import Consumer
from netdistill.manager.main import Manager
from netdistill.manager.windows import WindowsConfig
from netdistill.records.schema import conform
from netdistill.scheme.models import ManagerConfig
from netdistill.store.duckdb import DuckDBStore

T0 = 1_700_000_100  # a multiple of 60


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def records(n: int) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    return conform(
        pa.table(
            {
                "end_time": pa.array([(T0 + 10 * i) * 1_000_000 for i in range(n)]).cast(ts),
                "account_id": pa.array([f"a{i % 3}" for i in range(n)]),
                "bytes": pa.array([100 * (i + 1) for i in range(n)], pa.uint64()),
            }
        )
    )


class Aggregator:
    """A manager with a hand-moved window clock."""

    def __init__(self, path, clock: Clock) -> None:
        self.store = DuckDBStore(path / "records.duckdb")
        self.store.commit(records(12), origin="g/nf", sequence=1)  # 120 s of records
        self.manager = Manager(self.store, ManagerConfig(api_port=0), data_dir=path)
        self.manager.windows.stop()
        # the test closes windows by hand (run_once); the job's own thread must never
        # run in between, or a busy machine would close a window the test holds back
        self.manager.windows = type(self.manager.windows)(
            self.store, WindowsConfig(length_s=60, grace_s=0, interval_s=3600), clock=clock
        )
        self.manager.start()

    def close(self) -> None:
        self.manager.stop()
        self.store.close()


@pytest.fixture
def pair(tmp_path):
    clock = Clock(T0)
    a = Aggregator(tmp_path / "a", clock)
    b = Aggregator(tmp_path / "b", clock)
    yield a, b, clock
    a.close()
    b.close()


def consumer(a, b, out, clock, **kw) -> Consumer:
    config = AccountingConfig(
        primary={"url": a.manager.api_url, "token": a.manager.token},
        secondary={"url": b.manager.api_url, "token": b.manager.token},
        out_dir=out,
        failures=2,
        stall_s=5,
        **kw,
    )
    return Consumer(config, clock=clock)


def delivered(out) -> list[tuple[int, str]]:
    files = sorted(out.glob("window-*.json"))
    return [
        (json.loads(p.read_text())["start"], json.loads(p.read_text())["delivered_from"])
        for p in files
    ]


def test_failover_rules_and_cursor(pair, tmp_path):
    a, b, clock = pair
    out = tmp_path / "out"
    clock.now = T0 + 60
    a.manager.windows.run_once()
    b.manager.windows.run_once()
    c = consumer(a, b, out, clock)
    assert c.step() == 1
    assert delivered(out) == [(T0, "primary")]

    # the primary answers but stalls: the secondary has T0+60, the primary does not
    clock.now = T0 + 120
    b.manager.windows.run_once()
    assert c.step() == 0  # within end + grace + stall_s
    clock.now = T0 + 125.1
    assert c.step() == 1
    assert delivered(out)[-1] == (T0 + 60, "secondary")
    switch = json.loads((out / "switches.log").read_text().splitlines()[0])
    assert switch["to"] == "secondary" and "missing on the primary" in switch["reason"]

    # the primary catches up: it has the next window and agrees on the last delivered
    # one (same checksum as the secondary's), so the consumer goes back
    clock.now = T0 + 180
    a.manager.windows.run_once()
    b.manager.windows.run_once()
    assert c.step() == 1
    assert delivered(out)[-1] == (T0 + 120, "primary")
    status = json.loads((out / "status.json").read_text())
    assert status["source"] == "primary" and status["switches"] == 2

    # a restart neither skips nor repeats; a cursor left behind by a crash is repaired
    c.close()
    cursor = json.loads((out / "cursor.json").read_text())
    assert cursor["last_start"] == T0 + 120 and cursor["delivered"] == 3
    cursor.update(last_start=T0 + 60, delivered=2)  # as if killed before advancing it
    (out / "cursor.json").write_text(json.dumps(cursor))
    c = consumer(a, b, out, clock)
    assert c.cursor.last_start == T0 + 120
    assert c.step() == 0
    clock.now = T0 + 240
    a.manager.windows.run_once()
    assert c.step() == 1
    assert [s for s, _ in delivered(out)] == [T0, T0 + 60, T0 + 120, T0 + 180]
    c.close()


def test_primary_down_counts_failures_before_switching(pair, tmp_path):
    a, b, clock = pair
    out = tmp_path / "out"
    clock.now = T0 + 120
    b.manager.windows.run_once()
    c = consumer(a, b, out, clock)
    a.manager.stop()  # the primary's API is gone
    assert c.step() == 0  # one failure: still the primary's turn
    assert c.step() == 2  # the second failure: the secondary delivers T0 and T0+60
    assert delivered(out) == [(T0, "secondary"), (T0 + 60, "secondary")]
    status = json.loads((out / "status.json").read_text())
    assert status["primary"]["failures"] == 2 and status["primary"]["last_error"]
    c.close()


def test_incomplete_windows_mismatches_and_corrections(pair, tmp_path):
    """Finding 1 of issue 13, the consumer's part: it delivered whatever the healthy
    primary had, never comparing. Now: the primary's window is incomplete (a gatherer
    silent) while the secondary has it complete — the secondary's is delivered, with
    the reason; the primary re-issues it complete with the same rows — nothing more is
    delivered; late records reach both managers — exactly one correction is delivered,
    superseding the first file, and a restart does not deliver it again."""
    a, b, clock = pair
    out = tmp_path / "out"
    late = records(1)  # at T0, in the first window
    a.manager.windows.feeders = lambda: {"g"}  # the primary waits for gatherer g …
    a.manager.windows.silent = lambda name, since: True  # … which is silent
    clock.now = T0 + 60
    (first_a,) = a.manager.windows.run_once()
    assert not first_a["complete"] and first_a["incomplete"][0]["gatherer"] == "g"
    b.manager.windows.run_once()
    c = consumer(a, b, out, clock)
    assert c.step() == 1
    (delivered_file,) = out.glob("window-*.json")
    body = json.loads(delivered_file.read_text())
    assert body["delivered_from"] == "secondary" and body["complete"]
    assert "primary marks it incomplete (g silent)" in body["choice"]
    assert json.loads((out / "status.json").read_text())["source"] == "primary"

    # g is back and past the window: the primary re-issues it complete, same rows
    a.manager.windows.silent = lambda name, since: False
    a.manager.windows.watermarks.mark("g", {"seq": 1, "watermark": T0 + 61})
    clock.now += 1
    (again,) = a.manager.windows.run_once()
    assert again["version"] == 2 and again["complete"]
    assert again["checksum"] == body["checksum"]
    assert c.step() == 0
    assert sorted(p.name for p in out.glob("window-*.json")) == [f"window-{T0}.json"]

    # a late record reaches both: each re-issues; one correction is delivered
    a.store.commit(late, origin="g/nf", sequence=2)
    b.store.commit(late, origin="g/nf", sequence=2)
    clock.now += 1
    assert [r["version"] for r in a.manager.windows.run_once()] == [3]
    assert [r["version"] for r in b.manager.windows.run_once()] == [2]
    assert c.step() == 0  # corrections are not new windows
    correction = json.loads((out / f"window-{T0}-correction-1.json").read_text())
    assert correction["records"] == body["records"] + 1 and correction["late_records"] == 1
    assert correction["supersedes"] == {"file": f"window-{T0}.json", "checksum": body["checksum"]}
    assert len(list(out.glob("window-*-correction-*.json"))) == 1
    c.close()
    c = consumer(a, b, out, clock)
    c.cursor.revisions = {}  # even asked for every revision again: nothing is repeated
    c.step()
    assert len(list(out.glob("window-*-correction-*.json"))) == 1
    assert c.delivered[T0]["file"] == f"window-{T0}-correction-1.json"
    c.close()


def test_on_a_checksum_mismatch_the_report_with_more_records_is_taken(pair, tmp_path):
    a, b, clock = pair
    out = tmp_path / "out"
    b.store.commit(records(1), origin="g/nf", sequence=5)  # the primary lacks this one
    clock.now = T0 + 60
    a.manager.windows.run_once()
    b.manager.windows.run_once()
    c = consumer(a, b, out, clock)
    assert c.step() == 1
    body = json.loads((out / f"window-{T0}.json").read_text())
    assert body["delivered_from"] == "secondary"
    assert "checksums differ: the secondary has 7 records, the primary 6" in body["choice"]
    c.close()
