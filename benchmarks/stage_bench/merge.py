"""Merge benchmark (issue 6, target: ≥ 1,000,000 records/s on one core, half of them
with a partner).

Two figures:

* ``operator``: ``Merger.process`` over one batch of ``n`` records of two procedures
  (a proxy and a firewall), matched on ``url`` with a 2 s tolerance on ``start_time``;
  a quarter of the records' sessions were seen by both (50 % of the records have a
  partner), the rest by one side only. Pure columnar work, no store.
* ``stage round``: the same records committed to a DuckDB store, then one
  ``MergeStage.run_once``: reading them, matching, and the transaction that deletes the
  originals, inserts the merged records and saves the watermark.

Run standalone (``python benchmarks/stage_bench/merge.py [--smoke]``) or through
``benchmarks/stages.py``; both pin the process to one core and set
``POLARS_MAX_THREADS=1`` before polars is imported.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    from benchmarks.stage_bench import Figure
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.stage_bench import Figure

T0_US = 1_700_000_000 * 1_000_000


def records(n: int, first_id: int = 1) -> Any:
    """``n`` records: n/4 sessions seen by both procedures (n/2 records with a partner)
    and n/2 seen by one; each session its own URL among many repeats."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(6)
    pairs = n // 4
    singles = n - 2 * pairs
    session = np.concatenate([np.arange(pairs), np.arange(pairs), pairs + np.arange(singles)])
    side = np.concatenate(
        [np.zeros(pairs, np.int8), np.ones(pairs, np.int8), rng.integers(0, 2, singles)]
    )
    order = rng.permutation(n)
    session, side = session[order], side[order]
    # sessions spread over an hour; a URL repeats every ~1000 sessions, far apart in time
    start = T0_US + session.astype(np.int64) * 3_600_000_000 // max(n, 1)
    start = start + side.astype(np.int64) * 300_000  # the firewall logs 0.3 s later
    urls = pa.array([f"http://site{i}.example/path" for i in range(max(n // 1000, 1))])
    url = urls.take(pa.array(session % len(urls)))
    ws = pa.array([f"10.1.{i // 256}.{i % 256}" for i in range(4096)]).take(
        pa.array(session % 4096)
    )
    site = pa.array([f"198.51.{i // 256}.{i % 256}" for i in range(4096)]).take(
        pa.array((session * 7) % 4096)
    )
    proc = pa.array(np.where(side == 0, "flow-one", "flow-two"))
    is_proxy = pa.array(side == 0)
    import pyarrow.compute as pc

    return pa.table(
        {
            "record_id": pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
            "ingested_at": pa.array(np.full(n, T0_US + 3_600_000_000), pa.timestamp("us", "UTC")),
            "procedure": proc,
            "url": url,
            "start_time": pa.array(start, pa.timestamp("us", "UTC")),
            "src_ip": pc.if_else(is_proxy, ws, pa.scalar("192.0.2.10")),
            "dst_ip": pc.if_else(is_proxy, pa.scalar("192.0.2.1"), site),
            "bytes": pa.array(rng.integers(100, 100_000, n).astype(np.uint64)),
            "protocol": pa.array(np.full(n, 6, np.uint8)),
        }
    )


def _config() -> Any:
    from netdistill.stages.merge import MergeConfig

    return MergeConfig(
        name="web-sessions",
        procedures=["flow-one", "flow-two"],
        match=["url"],
        tolerance={"field": "start_time", "seconds": 2},  # type: ignore[arg-type]
        winners={"src_ip": "flow-one", "dst_ip": "flow-two"},
        horizon_s=1e9,
        max_pending=10_000_000,
    )


def bench_operator(n: int) -> Figure:
    from netdistill.stages.merge_operator import Merger

    batch = records(n)
    Merger(_config().rules()).process(records(2000))  # warm up (imports, plans)
    merger = Merger(_config().rules())
    start, cpu = time.perf_counter(), time.process_time()
    result = merger.process(batch)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert result.merged.num_rows == n // 4, result.merged.num_rows
    assert merger.pending_count == n - 2 * (n // 4)
    return Figure(
        "merge",
        "records",
        n,
        n / elapsed,
        1_000_000.0,
        f"operator: {result.merged.num_rows:,} pairs merged in {elapsed:.3f} s ({cpu:.3f} s CPU)",
    )


def bench_stage(n: int) -> Figure:
    from netdistill.stages.base import StageContext, ensure_state_table
    from netdistill.stages.merge import MergeStage
    from netdistill.store.duckdb import DuckDBStore

    now = T0_US / 1e6 + 3600
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "store.duckdb", clock=lambda: now)
        store.commit(records(n), origin="bench", sequence=1)
        ensure_state_table(store)
        stage = MergeStage(_config(), StageContext(store, None, Path(tmp), clock=lambda: now))
        stage.ensure_tables()
        start = time.perf_counter()
        counts = stage.run_once(now)
        elapsed = time.perf_counter() - start
        left = store.query("SELECT count(*) AS c FROM records").column("c")[0].as_py()
        store.close()
    assert counts["merged"] == n // 4 and left == n - n // 4, (counts, left)
    return Figure(
        "merge",
        "records",
        n,
        n / elapsed,
        0.0,
        f"stage round (read, match, delete {counts['replaced']:,}, insert "
        f"{counts['merged']:,}, one DuckDB transaction) in {elapsed:.3f} s",
    )


def run(smoke: bool) -> list[Figure]:
    n = 20_000 if smoke else 1_000_000
    return [bench_operator(n), bench_stage(n)]


if __name__ == "__main__":
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.environ["POLARS_MAX_THREADS"] = "1"
    for figure in run("--smoke" in sys.argv):
        print(
            f"{figure.stage:8} {figure.n:>10,} {figure.unit:8} {figure.rate:>14,.0f}/s"
            f"  (target {figure.target_per_s:,.0f}/s)  {figure.note}"
        )
