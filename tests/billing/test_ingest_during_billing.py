"""A billing run must not stall ingest: record batches committed from another thread
while a real rating round invoices thousands of accounts wait at most for one short
transaction of the round, never for the round. The invoices issued meanwhile are exact
(each account's total against the hand formula) and the records committed during the
round are all there.

The bound is about the design (the store's write lock is not held while documents are
rendered, and the round is cut into short transactions), so it is stated relative to
the round's own duration and also as a generous absolute figure: the test runs on a
loaded 2-core machine."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from billing_support import GB, Clock, open_store, rows, runner, t

from netdistill.billing.money import half_even
from netdistill.records.schema import conform

ACCOUNTS = 12_000
PER_ACCOUNT = 4
SCHEME = """
stages:
  - {name: hourly, type: rollup, period: hour, company: company, grace_s: 0,
     max_periods_per_run: 1000, export: {directory: null}}
rating:
  rollups: [hourly]
  default_plan: flat
  plans:
    flat:
      prices:
        - {name: web, category: http, unit: GB, rate: "0.37"}
  invoices: {directory: invoices}
"""


def november(accounts: int, per_account: int) -> pa.Table:
    rng = np.random.default_rng(7)
    n = accounts * per_account
    account = np.repeat(np.arange(accounts), per_account)
    hours = np.tile(np.arange(per_account), accounts) * (720 // per_account) + rng.integers(
        0, 720 // per_account, n
    )
    end_us = ((t("2026-11-01T00:00:00").timestamp() + hours * 3600 + 1800) * 1e6).astype("int64")
    table = pa.table(
        {
            "end_time": pa.array(end_us, pa.timestamp("us", tz="UTC")),
            "start_time": pa.array(end_us - 10**6, pa.timestamp("us", tz="UTC")),
            "account_id": pa.array([f"acct{i:05d}" for i in account]),
            "service": pa.array(["http"] * n),
            "bytes": pa.array(rng.integers(1, 3 * GB, n), pa.uint64()),
            "duration_s": pa.array(np.ones(n)),
        }
    )
    return conform(table).append_column("company", pa.array(["Acme"] * n))


def live_batch(i: int) -> pa.Table:
    """What a source commits meanwhile: December records of other accounts (their period
    is still open, so the round does not rate them)."""
    end = t("2026-12-02T00:00:00") + timedelta(seconds=i)
    table = pa.table(
        {
            "end_time": pa.array([end] * 20, pa.timestamp("us", tz="UTC")),
            "start_time": pa.array([end - timedelta(seconds=1)] * 20, pa.timestamp("us", tz="UTC")),
            "account_id": pa.array([f"live{j}" for j in range(20)]),
            "service": pa.array(["http"] * 20),
            "bytes": pa.array([1000] * 20, pa.uint64()),
            "duration_s": pa.array([1.0] * 20),
        }
    )
    return conform(table).append_column("company", pa.array(["Live"] * 20))


def test_record_commits_do_not_wait_for_the_billing_round(tmp_path: Path) -> None:
    clock = Clock(t("2026-12-01T00:00:01"))
    store = open_store(tmp_path, clock)
    data = november(ACCOUNTS, PER_ACCOUNT)
    store.commit(data, origin="test", sequence=1)
    stages = runner(store, tmp_path, clock, SCHEME)
    stages.get("hourly").run_once(clock())
    rating = stages.get("rating")
    # a round of this size is one chunk by default; cut it like a 100,000-account round
    rating.chunk_rows = 12_000

    waits: list[float] = []
    stop = threading.Event()

    def ingest() -> None:
        i = 0
        while not stop.is_set() and i < 100_000:
            i += 1
            started = time.perf_counter()
            store.commit(live_batch(i), origin="live", sequence=i)
            waits.append(time.perf_counter() - started)
            time.sleep(0.005)

    thread = threading.Thread(target=ingest, daemon=True)
    thread.start()
    started = time.perf_counter()
    counts = rating.run_once(clock())
    round_s = time.perf_counter() - started
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()

    # the round did its whole work, exactly
    assert counts["invoices"] == ACCOUNTS
    per_account = (
        pa.table({"a": data.column("account_id"), "b": data.column("bytes").cast(pa.int64())})
        .group_by("a")
        .aggregate([("b", "sum")])
        .to_pylist()
    )
    expected = {r["a"]: half_even(r["b_sum"] * 37, GB) for r in per_account}
    issued = {
        r["account_id"]: r["total_minor"]
        for r in rows(store, "SELECT account_id, total_minor FROM invoices")
    }
    assert issued == expected
    seqs = [r["seq"] for r in rows(store, "SELECT seq FROM invoices ORDER BY seq")]
    assert seqs == list(range(1, ACCOUNTS + 1))
    live = rows(store, "SELECT count(*) AS n FROM records WHERE company = 'Live'")[0]["n"]
    assert live == 20 * len(waits)

    # … while ingest went on: many commits during the round, none waited for it
    worst = max(waits)
    print(f"round {round_s:.2f} s, {len(waits)} commits, worst wait {worst:.3f} s")
    print(sorted(waits)[-10:])
    assert len(waits) >= 10
    assert worst < round_s / 3, (worst, round_s)
    assert worst < 2.5, (worst, round_s)
    store.close()
