"""Shared by the rollup and export tests: known records, a movable clock, a stage built
from a scheme, and the expected roll-up computed here in plain Python (independently of
the stage's SQL)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from netdistill.records.schema import conform
from netdistill.scheme.load import parse_scheme
from netdistill.stages.base import StageContext
from netdistill.stages.runner import StageRunner
from netdistill.store.duckdb import DuckDBStore

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
US = timedelta(microseconds=1)

#: written out here, not imported from the stage: the test's own reading of the defaults
CATEGORY_OF = {
    **dict.fromkeys(["http", "https", "http-alt", "web", "quic"], "http"),
    **dict.fromkeys(
        ["smtp", "submission", "submissions", "imap", "imap2", "imaps", "pop3", "pop3s", "mail"],
        "mail",
    ),
    **dict.fromkeys(["sip", "sip-tls", "rtp", "voip"], "voip"),
    **dict.fromkeys(["rtsp", "rtmp", "streaming"], "streaming"),
    **dict.fromkeys(["ftp", "ftp-data", "ftps", "ftps-data"], "ftp"),
    **dict.fromkeys(["bittorrent", "p2p"], "p2p"),
}
CATEGORIES = ["http", "mail", "voip", "streaming", "ftp", "p2p", "other", "total"]
ACCOUNTS = [("a1", "Acme"), ("a2", "Acme"), ("a3", "Acme"), ("g1", "Globex"), (None, None)]
SERVICES = [
    "http",
    "https",
    "HTTP",
    "smtp",
    "imap",
    "pop3",
    "sip",
    "rtp",
    "rtsp",
    "ftp",
    "ftp-data",
    "bittorrent",
    "dns",
    "ssh",
    None,
]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


def make_rows(n: int, seed: int, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """``n`` records with end times in [start, end), plus the four boundary records."""
    rng = random.Random(seed)
    span_us = int((end - start) / US)
    rows = []
    for _ in range(n):
        account, company = rng.choice(ACCOUNTS)
        rows.append(
            {
                "end_time": start + rng.randrange(span_us) * US,
                "account_id": account,
                "company": company,
                "service": rng.choice(SERVICES),
                "bytes": rng.choice([None, *range(1, 10**9, 9_999_991)]),
                "duration_s": rng.randrange(0, 3_600_000_000) / 1e6,
            }
        )
    return rows


def boundary_rows() -> list[dict[str, Any]]:
    """The last microsecond of October and the first of November, same account."""
    return [
        {
            "end_time": NOV - US,
            "account_id": "a1",
            "company": "Acme",
            "service": "smtp",
            "bytes": 1000,
            "duration_s": 1.5,
        },
        {
            "end_time": NOV,
            "account_id": "a1",
            "company": "Acme",
            "service": "smtp",
            "bytes": 2000,
            "duration_s": 2.25,
        },
    ]


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    table = pa.Table.from_pylist(
        [{**r, "start_time": r["end_time"] - timedelta(seconds=r["duration_s"])} for r in rows]
    )
    return conform(table).append_column("company", table.column("company").cast(pa.string()))


def period_of(moment: datetime, unit: str) -> str:
    return moment.strftime({"month": "%Y-%m", "day": "%Y-%m-%d", "hour": "%Y-%m-%dT%H"}[unit])


def expected(rows: list[dict[str, Any]], unit: str = "month") -> dict[str, Any]:
    """{"accounts": {(period, company, account): {column: value}}, "companies": …} with
    seconds from integer microseconds, as documented."""
    acc: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        key = (period_of(r["end_time"], unit), r["company"] or "", r["account_id"] or "")
        category = CATEGORY_OF.get((r["service"] or "").lower(), "other")
        us = round(r["duration_s"] * 1e6)
        for c in (category, "total"):
            acc[key][f"{c}_bytes"] += r["bytes"] or 0
            acc[key][f"{c}_us"] += us
            acc[key][f"{c}_records"] += 1
    companies: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (period, company, _account), sums in acc.items():
        companies[(period, company)]["accounts"] += 1
        for name, value in sums.items():
            companies[(period, company)][name] += value

    def columns(sums: dict[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in CATEGORIES:
            out[f"{c}_bytes"] = sums[f"{c}_bytes"]
            out[f"{c}_seconds"] = sums[f"{c}_us"] / 1e6
            out[f"{c}_records"] = sums[f"{c}_records"]
        return out

    return {
        "accounts": {k: columns(v) for k, v in acc.items()},
        "companies": {k: {"accounts": v["accounts"], **columns(v)} for k, v in companies.items()},
    }


SCHEME = """
stages:
  - name: monthly
    type: rollup
    period: {period}
    company: company
    grace_s: 300
    export: {export}
"""


def open_store(data_dir: Path, clock: Clock) -> DuckDBStore:
    store = DuckDBStore(data_dir / "records.duckdb", clock=clock)
    if "company" not in store.fields:
        store.add_field("company", "string")
    return store


def make_runner(
    store: DuckDBStore,
    data_dir: Path,
    clock: Clock,
    *,
    period: str = "month",
    export: str = "{directory: exports, formats: [csv, jsonl]}",
) -> StageRunner:
    scheme = parse_scheme(SCHEME.format(period=period, export=export))
    return StageRunner(StageContext(store, scheme, data_dir, clock=clock))


def csv_text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)
