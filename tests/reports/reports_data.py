"""A store with known records for the report tests, and the same records as plain
Python dicts so that tests compute expected figures without SQL.

Day 2026-03-01 (UTC): source ``nf`` has records in hours 0, 1, 2, 5, 6 (a hole in hours
3–4); ``radius`` in every hour 0–6; one ``nf`` record of the day before, outside the
default test range. Some records carry ``procedure = m1`` (a merge whose stage state
exists) and a ``department``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from netdistill.records.batch import Quarantined
from netdistill.stages.base import ensure_state_table
from netdistill.store.duckdb import DuckDBStore

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
RANGE = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"}
COMMIT_AT = T0.timestamp() + 7 * 3600 + 5  # the store clock at commit time

SCHEMA = pa.schema(
    [
        ("start_time", pa.timestamp("us", tz="UTC")),
        ("end_time", pa.timestamp("us", tz="UTC")),
        ("duration_s", pa.float64()),
        ("dst_ip", pa.string()),
        ("dst_host", pa.string()),
        ("service", pa.string()),
        ("bytes", pa.uint64()),
        ("packets", pa.uint64()),
        ("user_name", pa.string()),
        ("account_id", pa.string()),
        ("source", pa.string()),
        ("procedure", pa.string()),
        ("department", pa.string()),
    ]
)


def make_records() -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    accounts = ["a1", "a2", "a3"]
    services = ["http", "dns"]
    departments = {"a1": "sales", "a2": "lab", "a3": None}
    n = 0
    for hour in (0, 1, 2, 5, 6):
        for k in range(3):
            n += 1
            account = accounts[(hour + k) % 3]
            start = T0 + dt.timedelta(hours=hour, minutes=7 * k + 1)
            records.append(
                {
                    "start_time": start,
                    "end_time": start + dt.timedelta(seconds=30 + k),
                    "duration_s": float(30 + k),
                    "dst_ip": f"192.0.2.{k + 1}",
                    "dst_host": "www.example.net" if k == 0 else None,
                    "service": services[k % 2],
                    "bytes": 1000 * hour + 100 * k + 7,
                    "packets": hour + k + 1,
                    "user_name": f"u{k}",
                    "account_id": account,
                    "source": "nf",
                    "procedure": "m1" if k == 2 else None,
                    "department": departments[account],
                }
            )
    for hour in range(7):
        for k in range(2):
            account = accounts[k]
            start = T0 + dt.timedelta(hours=hour, minutes=20 + 5 * k)
            records.append(
                {
                    "start_time": start,
                    "end_time": start + dt.timedelta(seconds=60),
                    "duration_s": 60.0,
                    "dst_ip": "198.51.100.9",
                    "dst_host": None,
                    "service": None,
                    "bytes": 500 + hour + 10 * k,
                    "packets": 2,
                    "user_name": f"r{k}",
                    "account_id": account,
                    "source": "radius",
                    "procedure": None,
                    "department": departments[account],
                }
            )
    yesterday = T0 - dt.timedelta(hours=3)
    records.append(
        {
            **records[0],
            "start_time": yesterday,
            "end_time": yesterday + dt.timedelta(seconds=5),
            "bytes": 999_999,
        }
    )
    return records


def in_range(records: list[dict[str, object]]) -> list[dict[str, object]]:
    end = T0 + dt.timedelta(days=1)
    return [r for r in records if T0 <= r["start_time"] < end]  # type: ignore[operator]


QUARANTINE = [
    Quarantined("nf", "192.0.2.254", T0.timestamp() + 60, "malformed", "short", b"\x00"),
    Quarantined("nf", "192.0.2.254", T0.timestamp() + 120, "malformed", "short", b"\x01"),
    Quarantined("nf", "192.0.2.254", T0.timestamp() + 180, "before_template", "", b"\x02"),
    Quarantined("proxy", "cache", T0.timestamp() + 3600, "malformed", "no URL", b"x"),
    Quarantined("proxy", "cache", T0.timestamp() - 3600, "malformed", "old", b"y"),
]


def build_store(path: Path) -> tuple[DuckDBStore, list[dict[str, object]]]:
    """A store at ``path`` holding ``make_records()`` (committed in two batches), the
    quarantine items, a stage state for merge ``m1`` and a department field."""
    store = DuckDBStore(path, clock=lambda: COMMIT_AT)
    store.add_field("department", "string")
    records = make_records()
    table = pa.Table.from_pylist(records, schema=SCHEMA)
    store.commit(table.slice(0, 10), origin="g1", sequence=1)
    store.commit(table.slice(10), origin="g1", sequence=2)
    store.commit_quarantine(QUARANTINE)
    ensure_state_table(store)
    with store.transaction() as tx:
        tx.execute("INSERT INTO _stage_state VALUES ('m1', 0, '{}', to_timestamp(?))", [COMMIT_AT])
    return store, records
