"""Shared by the billing tests: a real DuckDB store, records committed as a source would,
the real rollup stage and the rating stage run by the real ``StageRunner``, and a clock
the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from netdistill.records.schema import conform
from netdistill.scheme.load import parse_scheme
from netdistill.stages.base import StageContext
from netdistill.stages.runner import StageRunner
from netdistill.store.duckdb import DuckDBStore

GB = 10**9


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


def open_store(data_dir: Path, clock: Clock) -> DuckDBStore:
    store = DuckDBStore(data_dir / "records.duckdb", clock=clock)
    if "company" not in store.fields:
        store.add_field("company", "string")
    return store


def record(
    end: str, account: str, service: str, *, bytes: int = 0, seconds: float = 1.0,
    company: str = "Acme",
) -> dict[str, Any]:  # fmt: skip
    end_time = t(end)
    return {
        "start_time": end_time - timedelta(seconds=seconds),
        "end_time": end_time,
        "account_id": account,
        "company": company,
        "service": service,
        "bytes": bytes,
        "duration_s": seconds,
    }


def commit(store: DuckDBStore, rows: list[dict[str, Any]], sequence: int) -> None:
    table = pa.Table.from_pylist(rows)
    table = conform(table).append_column("company", table.column("company").cast(pa.string()))
    store.commit(table, origin="test", sequence=sequence)


def runner(store: DuckDBStore, data_dir: Path, clock: Clock, scheme_text: str) -> StageRunner:
    scheme = parse_scheme(scheme_text)
    return StageRunner(StageContext(store, scheme, data_dir, clock=clock))


def rows(store: DuckDBStore, sql: str) -> list[dict[str, Any]]:
    return store.query(sql).to_pylist()
