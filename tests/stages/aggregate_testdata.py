"""Records with known content in a real DuckDB store, for the filter and aggregate tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from netdistill.scheme.load import parse_scheme
from netdistill.stages.base import StageContext, ensure_state_table
from netdistill.stages.registry import STAGES
from netdistill.store.duckdb import DuckDBStore

#: first record's start: bins of 300 s start at T0
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()
#: the store's clock (ingested_at); stages read records ingested at or before their now
INGESTED = 1_000_000.0

HEAD = """\
sources:
  - {name: routers, type: netflow, listen: ["127.0.0.1:0"]}
  - {name: proxies, type: netflow, listen: ["127.0.0.1:0"]}
"""


def flows(n: int, seed: int, *, span_s: float = 1200.0, source: str = "routers") -> pa.Table:
    """``n`` NetFlow-like records: few hosts and ports so groups have many records."""
    rng = np.random.default_rng(seed)
    start = T0 + np.sort(rng.uniform(0, span_s, n))
    start_us = (start * 1e6).astype("int64")
    end_us = start_us + rng.integers(0, 30_000_000, n)
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "start_time": pa.array(start_us, pa.int64()).cast(ts),
            "end_time": pa.array(end_us, pa.int64()).cast(ts),
            "src_ip": [f"10.0.0.{i}" for i in rng.integers(1, 7, n)],
            "dst_ip": [f"192.0.2.{i}" for i in rng.integers(1, 4, n)],
            "src_port": pa.array(rng.choice([1024, 2048, 40000], n), pa.uint16()),
            "dst_port": pa.array(rng.choice([53, 80, 443], n), pa.uint16()),
            "protocol": pa.array(rng.choice([6, 17], n), pa.uint8()),
            "bytes": pa.array(rng.integers(40, 1_500_000, n), pa.uint64()),
            "packets": pa.array(rng.integers(1, 1000, n), pa.uint64()),
            "source": [source] * n,
        }
    )


def open_store(tmp_path: Path) -> DuckDBStore:
    store = DuckDBStore(tmp_path / "store.duckdb", clock=lambda: INGESTED)
    ensure_state_table(store)
    return store


def commit(store: DuckDBStore, table: pa.Table, sequence: int) -> None:
    store.commit(table, origin="test/routers", sequence=sequence)


def build_stage(store: DuckDBStore, scheme_text: str, name: str, **context: Any) -> Any:
    """The manager stage ``name`` of a scheme (HEAD + ``scheme_text``), tables ensured."""
    scheme = parse_scheme(HEAD + scheme_text, filename="s.yaml")
    config = next(s for s in scheme.stages if s.name == name)
    stage = STAGES.runtime_class(config.type)(
        config, StageContext(store, scheme, store.path.parent, **context)
    )
    stage.ensure_tables()
    return stage


def rows(table: pa.Table, columns: list[str]) -> list[tuple[Any, ...]]:
    """Sorted row tuples of ``columns`` (for comparing with a SQL answer)."""
    data = table.select(columns).to_pylist()
    return sorted(tuple(r[c] for c in columns) for r in data)
