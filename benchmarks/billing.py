"""Rating and invoicing speed: one billing run over a month of hourly roll-up rows.

Records for ``--accounts`` accounts (10 each, in distinct hours of November 2026, web
and VoIP) are committed to a real DuckDB store, rolled up per hour by the real rollup
stage (≈ 1 M account rows at 100,000 accounts), then one rating round rates every row
and issues one invoice per account (graduated tiers, an allowance, a time-of-day rate,
a minimum charge, a mid-month plan change for 1 % of the accounts), and writes the
invoice files. A second round takes 1,000 late records and issues the notes.

How exactness is kept at this speed: quantities stay integers (bytes, microseconds,
records) and amounts integer minor units from the roll-up rows to the invoice lines;
DuckDB computes every line with 128-bit integers (``HUGEINT``: an overflow is an error)
and rounds half to even with integer division (``billing/money.py``); Python ``Decimal``
appears only when a document is rendered (JSON/CSV strings, the SHA-256) and when the
scheme is read. No float touches money.

    .venv/bin/python benchmarks/billing.py [--smoke] [--accounts N]

Target: the billing run for 100,000 accounts under a minute on this machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from netdistill.billing.money import from_minor
from netdistill.records.schema import conform
from netdistill.scheme.load import parse_scheme
from netdistill.stages.base import StageContext
from netdistill.stages.runner import StageRunner
from netdistill.store.duckdb import DuckDBStore

SCHEME = """
stages:
  - {name: hourly, type: rollup, period: hour, company: company, grace_s: 0,
     max_periods_per_run: 1000, export: {directory: null}}
rating:
  rollups: [hourly]
  default_plan: basic
  plans:
    basic:
      minimum_charge: "5.00"
      prices:
        - {name: web-night, category: http, unit: GB, rate: "0.10", when: {hours: [22, 6]}}
        - {name: web, category: http, unit: GB, included: "1",
           tiers: [{up_to: "2", rate: "0.50"}, {rate: "0.25"}]}
        - {name: calls, category: voip, unit: minute, rate: "0.02"}
    gold:
      prices:
        - {name: web, category: http, unit: GB, rate: "0.20"}
        - {name: calls, category: voip, unit: minute, rate: "0.01"}
  assignments:
{assignments}
"""

NOV = datetime(2026, 11, 1, tzinfo=UTC)


class TimedStore(DuckDBStore):
    """The real store, timing each write transaction (the write lock is held for it)."""

    longest = 0.0
    count = 0

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        started = time.perf_counter()
        with super().transaction() as tx:
            yield tx
        self.longest = max(self.longest, time.perf_counter() - started)
        self.count += 1


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now


def records(accounts: int, per_account: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = accounts * per_account
    account = np.repeat(np.arange(accounts), per_account)
    # distinct hours per account: an account's records are spread over the month
    hours = (np.tile(np.arange(per_account), accounts) * (720 // per_account)
             + rng.integers(0, 720 // per_account, n))  # fmt: skip
    end = NOV.timestamp() + hours * 3600 + rng.integers(0, 3600, n)
    end_us = (end * 1e6).astype("int64")
    seconds = rng.integers(1, 600, n).astype("float64")
    service = np.where(rng.random(n) < 0.8, "http", "sip")
    table = pa.table(
        {
            "end_time": pa.array(end_us, pa.timestamp("us", tz="UTC")),
            "start_time": pa.array(
                end_us - (seconds * 1e6).astype("int64"), pa.timestamp("us", tz="UTC")
            ),
            "account_id": pa.array([f"acct{i:06d}" for i in account]),
            "service": pa.array(service),
            "bytes": pa.array(rng.integers(1, 2 * 10**9, n), pa.uint64()),
            "duration_s": pa.array(seconds),
        }
    )
    companies = pa.array([f"co{i % 1000:03d}" for i in account])
    return conform(table).append_column("company", companies)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a small run, to check it works")
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args()
    accounts = 2_000 if args.smoke else args.accounts
    changed = max(1, accounts // 100)
    assignments = "\n".join(
        f'    - {{account: acct{i:06d}, plan: gold, from: "2026-11-16T00:00:00Z"}}'
        for i in range(changed)
    )
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        clock = Clock(NOV + timedelta(days=30, seconds=1))
        store = TimedStore(data_dir / "records.duckdb", clock=clock)
        store.add_field("company", "string")
        started = time.perf_counter()
        batch = records(accounts, 10, seed=1)
        for i, offset in enumerate(range(0, batch.num_rows, 500_000), start=1):
            store.commit(batch.slice(offset, 500_000), origin="bench", sequence=i)
        committed = time.perf_counter() - started
        scheme = parse_scheme(SCHEME.replace("{assignments}", assignments))
        runner = StageRunner(StageContext(store, scheme, data_dir, clock=clock))
        rollup, rating = runner.get("hourly"), runner.get("rating")
        started = time.perf_counter()
        rollup.run_once(clock())
        rolled = time.perf_counter() - started
        rows = store.query("SELECT count(*) AS n FROM rollup_hourly_accounts").column("n")[0]
        store.longest, store.count = 0.0, 0
        started = time.perf_counter()
        counts = rating.run_once(clock())
        billing_s = time.perf_counter() - started
        longest_tx, transactions = store.longest, store.count
        late = records(1_000, 1, seed=2)
        store.commit(late, origin="bench", sequence=99)
        started = time.perf_counter()
        rollup.run_once(clock())
        late_counts = rating.run_once(clock())
        late_s = time.perf_counter() - started
        total = store.query("SELECT sum(total_minor) AS t FROM invoices").column("t")[0]
        store.close()
    print(f"billing benchmark ({'smoke' if args.smoke else 'full'}): {accounts:,} accounts")
    print(f"  records committed        {batch.num_rows:>12,}   {committed:8.2f} s")
    print(f"  roll-up rows (hourly)    {rows.as_py():>12,}   {rolled:8.2f} s")
    print(f"  rating + invoices        {counts['usage_rows']:>12,} usage rows rated,"
          f" {counts['invoices']:,} invoices, {counts['files_written']} files"
          f"   {billing_s:8.2f} s")  # fmt: skip
    print(f"  write transactions       {transactions:>12,} in the billing run, the longest"
          f" {longest_tx:.2f} s (record commits wait at most that)")  # fmt: skip
    print(f"  late round               {late_counts['late_rows']:>12,} late rows,"
          f" {late_counts['notes']:,} notes   {late_s:8.2f} s")  # fmt: skip
    print(f"  invoiced total           {from_minor(int(total.as_py()), 2):>12,} EUR")
    print(f"  target: billing run for 100,000 accounts < 60 s; this run {billing_s:.1f} s")


if __name__ == "__main__":
    main()
