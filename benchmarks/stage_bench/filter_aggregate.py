"""Filter and aggregate over synthetic NetFlow-like batches, one core.

Input: batches of 1,000,000 records (``--smoke``: 50,000) as the aggregate stage reads
them (Arrow, IPs as text), drawn from 300,000 conversations between 10,000 hosts
(source hosts Zipf-distributed, ephemeral source ports, six service ports, TCP/UDP/ICMP
80/17/3 %), start times spread over 60 s per batch — each 5-tuple is seen a few times
per 5-minute bin, as with an exporter's active timeout. Figures (records/s, CPU time of
this process):

* ``filter``: ``Filter.apply`` (``protocol in (6, 17) and bytes > 100``), Arrow in and out;
* ``aggregate 5-tuple``: ``Aggregator.process`` of every batch then ``flush`` of all
  groups (the classic NetFlow aggregation, default accumulators, 300 s bins);
* ``filter + aggregate``: the same with the filter fused into the aggregation query, as
  the stage runs its ``where`` — the figure the target is stated for;
* ``aggregate stage round``: one ``AggregateStage.run_once`` over one batch committed to a
  DuckDB store — the read from the store, the aggregation, the emitted rows and the state
  written in one transaction.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from netdistill.expr import compile_predicate
from netdistill.stages.aggregate_operator import Aggregator
from netdistill.stages.filter import STANDARD_TYPES, Filter
from stage_bench import Figure

WHERE = "protocol in (6, 17) and bytes > 100"
KEYS = ["src_ip", "dst_ip", "src_port", "dst_port", "protocol"]
TARGET = 5_000_000.0


def make_batches(count: int, size: int, *, seed: int = 1) -> list[pa.Table]:
    rng = np.random.default_rng(seed)
    hosts = pa.array([f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}" for i in range(10_000)])
    conversations = 300_000
    services = np.array([80, 443, 53, 25, 22, 123], dtype=np.uint16)
    c_src = rng.zipf(1.3, conversations) % 10_000
    c_dst = rng.integers(0, 10_000, conversations)
    c_src_port = rng.integers(1024, 65536, conversations).astype(np.uint16)
    c_dst_port = services[rng.integers(0, len(services), conversations)]
    c_protocol = rng.choice(
        np.array([6, 17, 1], dtype=np.uint8), conversations, p=[0.8, 0.17, 0.03]
    )
    ts = pa.timestamp("us", tz="UTC")
    batches = []
    for index in range(count):
        t0_us = (1_780_000_000 + 60 * index) * 1_000_000
        start = t0_us + np.sort(rng.integers(0, 60_000_000, size))
        pick = rng.integers(0, conversations, size)
        batches.append(
            pa.table(
                {
                    "src_ip": hosts.take(pa.array(c_src[pick])),
                    "dst_ip": hosts.take(pa.array(c_dst[pick])),
                    "src_port": pa.array(c_src_port[pick]),
                    "dst_port": pa.array(c_dst_port[pick]),
                    "protocol": pa.array(c_protocol[pick]),
                    "bytes": pa.array(rng.integers(40, 1_500_000, size).astype(np.uint64)),
                    "packets": pa.array(rng.integers(1, 1000, size).astype(np.uint64)),
                    "start_time": pa.array(start.astype(np.int64)).cast(ts),
                    "end_time": pa.array((start + 5_000_000).astype(np.int64)).cast(ts),
                }
            )
        )
    return batches


def _aggregate(batches: list[pa.Table], where: str | None) -> tuple[float, int, int]:
    """CPU seconds to fold every batch and flush; records folded; rows emitted."""
    predicate = compile_predicate(where, STANDARD_TYPES) if where else None
    aggregator = Aggregator(KEYS, where=predicate, bin_s=300.0)
    started = time.process_time()
    folded = sum(aggregator.process(batch, 0.0) for batch in batches)
    emitted = aggregator.flush(float("inf")).num_rows
    return time.process_time() - started, folded, emitted


def _stage_round(batch: pa.Table) -> tuple[float, dict[str, int]]:
    """CPU seconds of one round of the stage over ``batch`` committed to a fresh store."""
    import tempfile
    from pathlib import Path

    from netdistill.records.schema import with_constant
    from netdistill.scheme.load import parse_scheme
    from netdistill.stages.aggregate import AggregateStage
    from netdistill.stages.base import StageContext, ensure_state_table
    from netdistill.store.duckdb import DuckDBStore

    scheme = parse_scheme(
        "sources:\n  - {name: routers, type: netflow, listen: ['127.0.0.1:0']}\n"
        "stages:\n  - {name: conversations, type: aggregate, input: routers,\n"
        f"     where: '{WHERE}', by: [{', '.join(KEYS)}]}}\n"
    )
    with tempfile.TemporaryDirectory() as directory:
        store = DuckDBStore(Path(directory) / "bench.duckdb", clock=lambda: 0.0)
        try:
            store.commit(with_constant(batch, "source", "routers"), origin="bench", sequence=1)
            ensure_state_table(store)
            stage = AggregateStage(scheme.stages[0], StageContext(store, scheme, Path(directory)))
            stage.ensure_tables()
            started = time.process_time()
            counts = stage.run_once(4_000_000_000.0)  # every bin closed
            return time.process_time() - started, counts
        finally:
            store.close()


def _duckdb_reference(batches: list[pa.Table]) -> float:
    """CPU seconds for DuckDB itself (one thread) to filter and group the same batches:
    a yardstick for the operator, not part of netdistill's path."""
    import duckdb

    connection = duckdb.connect()
    connection.execute("SET threads = 1")
    keys = ", ".join(KEYS)
    sql = (
        f"SELECT {keys}, sum(bytes) AS bytes, sum(packets) AS packets, count(*) AS records, "
        "min(start_time) AS start_time, max(end_time) AS end_time FROM batch "
        f"WHERE {WHERE} GROUP BY ALL"
    )
    started = time.process_time()
    for batch in batches:
        connection.register("batch", batch)
        connection.sql(sql).to_arrow_table()
        connection.unregister("batch")
    elapsed = time.process_time() - started
    connection.close()
    return elapsed


def run(smoke: bool) -> list[Figure]:
    count, size = (2, 50_000) if smoke else (5, 1_000_000)
    batches = make_batches(count, size)
    n = count * size

    filter_ = Filter("bench", WHERE, STANDARD_TYPES)
    filter_.apply(batches[0].slice(0, 1000))  # compile once, outside the timing
    started = time.process_time()
    kept = sum(filter_.apply(batch)[0].num_rows for batch in batches)
    filter_s = time.process_time() - started

    _aggregate(batches[:1], WHERE)  # warm up polars' kernels
    aggregate_s, folded, emitted = _aggregate(batches, None)
    both_s, both_folded, both_emitted = _aggregate(batches, WHERE)
    assert folded == n and both_folded == kept
    size_note = f"{count} batches of {size:,}"
    round_s, counts = _stage_round(batches[0])
    duckdb_s = _duckdb_reference(batches)
    return [
        Figure("filter", "records", n, n / filter_s, 0.0, f"{kept:,} kept; {size_note}"),
        Figure(
            "aggregate 5-tuple",
            "records",
            n,
            n / aggregate_s,
            0.0,
            f"{emitted:,} groups emitted; {size_note}",
        ),
        Figure(
            "filter + aggregate 5-tuple",
            "records",
            n,
            n / both_s,
            TARGET,
            f"{both_folded:,} aggregated into {both_emitted:,} groups; CPU time",
        ),
        Figure(
            "  same in DuckDB (reference)",
            "records",
            n,
            n / duckdb_s,
            0.0,
            "DuckDB's own hash aggregate, one thread, same data and filter; CPU time",
        ),
        Figure(
            "aggregate stage round",
            "records",
            counts["read"],
            counts["read"] / round_s,
            0.0,
            f"read from DuckDB, {counts['emitted']:,} rows out, one transaction; CPU time",
        ),
    ]
