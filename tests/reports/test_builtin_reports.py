"""Every built-in report against figures computed here in plain Python from the records
committed (reports_data.py), and the 'no data yet' answers of a store without the
optional tables."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from reports_data import COMMIT_AT, RANGE, T0, build_store, in_range

from netdistill import output
from netdistill.errors import ReportError
from netdistill.manager import monitor
from netdistill.manager.tables import execute
from netdistill.reports import find_report, run_report
from netdistill.store.duckdb import DuckDBStore


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    store, records = build_store(tmp_path_factory.mktemp("reports") / "s.duckdb")
    yield store, records
    store.close()


def run(store, name, **params):
    result = run_report(store, find_report(store, name), {**RANGE, **params})
    assert result.note == ""
    return output.rows(result.table)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"


def hour_of(record) -> str:
    return iso(record["start_time"].replace(minute=0, second=0, microsecond=0))


def test_network_activity_per_hour_and_service(built):
    store, records = built
    expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in in_range(records):
        row = expected[(hour_of(r), r["service"] or "(none)")]
        row[0] += 1
        row[1] += r["bytes"]
        row[2] += r["packets"]
    assert run(store, "network_activity") == [
        {"hour": h, "service": s, "records": n, "bytes": b, "packets": p}
        for (h, s), (n, b, p) in sorted(expected.items())
    ]
    only = run(store, "network_activity", source="radius")
    assert {row["service"] for row in only} == {"(none)"}
    assert sum(row["records"] for row in only) == 14


def test_top_destinations_respects_top(built):
    store, records = built
    totals: dict[str, int] = defaultdict(int)
    for r in in_range(records):
        totals[r["dst_host"] or r["dst_ip"]] += r["bytes"]
    best = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
    rows = run(store, "top_destinations", top="2")
    assert [(row["destination"], row["bytes"]) for row in rows] == best


def test_resource_consumption_per_account(built):
    store, records = built
    acc: dict[str, dict] = {}
    for r in in_range(records):
        a = acc.setdefault(
            r["account_id"], {"records": 0, "bytes": 0, "packets": 0, "d": 0.0, "u": set()}
        )
        a["records"] += 1
        a["bytes"] += r["bytes"]
        a["packets"] += r["packets"]
        a["d"] += r["duration_s"]
        a["u"].add(r["user_name"])
    expected = [
        {
            "account_id": name,
            "records": a["records"],
            "bytes": a["bytes"],
            "packets": a["packets"],
            "duration_s": round(a["d"], 3),
            "users": len(a["u"]),
        }
        for name, a in sorted(acc.items(), key=lambda kv: (-kv[1]["bytes"], kv[0]))
    ]
    assert run(store, "resource_consumption") == expected
    assert run(store, "resource_consumption", account="a2") == [
        e for e in expected if e["account_id"] == "a2"
    ]
    assert run(store, "resource_consumption", top="1") == expected[:1]


def test_default_range_is_the_last_24_hours(built):
    store, records = built
    now = T0.timestamp() + 12 * 3600  # range: [T0 - 12 h, T0 + 12 h)
    result = run_report(store, find_report(store, "resource_consumption"), clock=lambda: now)
    low, high = T0 - dt.timedelta(hours=12), T0 + dt.timedelta(hours=12)
    chosen = [r for r in records if low <= r["start_time"] < high]
    assert sum(r["bytes"] for r in chosen) == sum(row["bytes"] for row in output.rows(result.table))
    assert any(r["bytes"] == 999_999 for r in chosen)  # the record of the day before
    assert result.values["from"] == dt.datetime.fromtimestamp(now - 86400, dt.UTC)


def test_audit_records_per_source_per_hour(built):
    store, records = built
    expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in in_range(records):
        expected[(r["source"], hour_of(r))][0] += 1
        expected[(r["source"], hour_of(r))][1] += r["bytes"]
    assert run(store, "audit_sources") == [
        {"source": s, "hour": h, "records": n, "bytes": b}
        for (s, h), (n, b) in sorted(expected.items())
    ]


def _gaps(records, source: str, minutes: int) -> list[dict]:
    """Runs of empty buckets between the first and last bucket with data."""
    step = dt.timedelta(minutes=minutes)
    seen = {
        T0 + step * ((r["start_time"] - T0) // step)
        for r in in_range(records)
        if r["source"] == source
    }
    gaps, bucket, current = [], min(seen), None
    while bucket <= max(seen):
        if bucket not in seen:
            if current is None:
                current = {"source": source, "gap_start": bucket, "empty_buckets": 0}
                gaps.append(current)
            current["empty_buckets"] += 1
            current["gap_end"] = bucket + step
        else:
            current = None
        bucket += step
    return [{**g, "gap_start": iso(g["gap_start"]), "gap_end": iso(g["gap_end"])} for g in gaps]


def test_audit_gaps_where_the_test_left_a_hole(built):
    store, records = built
    assert run(store, "audit_gaps") == [
        {
            "source": "nf",
            "gap_start": "2026-03-01T03:00:00Z",
            "gap_end": "2026-03-01T05:00:00Z",
            "empty_buckets": 2,
        }
    ]
    half_hours = run(store, "audit_gaps", bucket_minutes="30")
    assert half_hours == _gaps(records, "nf", 30) + _gaps(records, "radius", 30)
    assert [g["empty_buckets"] for g in half_hours if g["source"] == "nf"] == [1, 1, 5, 1]


def test_audit_quarantine_counts(built):
    store, _ = built
    assert run(store, "audit_quarantine") == [
        {
            "source": "nf",
            "reason": "before_template",
            "items": 1,
            "first_at": "2026-03-01T00:03:00Z",
            "last_at": "2026-03-01T00:03:00Z",
        },
        {
            "source": "nf",
            "reason": "malformed",
            "items": 2,
            "first_at": "2026-03-01T00:01:00Z",
            "last_at": "2026-03-01T00:02:00Z",
        },
        {  # its older item is before the range
            "source": "proxy",
            "reason": "malformed",
            "items": 1,
            "first_at": "2026-03-01T01:00:00Z",
            "last_at": "2026-03-01T01:00:00Z",
        },
    ]


def test_audit_merges_and_deliveries(built):
    store, records = built
    merged = [r for r in in_range(records) if r["procedure"] == "m1"]
    assert run(store, "audit_merges") == [
        {"stage": "m1", "hour": hour_of(r), "records": 1, "bytes": r["bytes"]} for r in merged
    ]
    assert run(store, "audit_deliveries") == [
        {
            "origin": "g1",
            "hour": iso(dt.datetime.fromtimestamp(COMMIT_AT, dt.UTC).replace(minute=0, second=0)),
            "batches": 2,
            "rows": len(records),
            "first_sequence": 1,
            "last_sequence": 2,
        }
    ]


def test_billing_usage_per_account_and_period(built):
    store, records = built
    for period, width in (("day", dt.timedelta(days=1)), ("hour", dt.timedelta(hours=1))):
        expected: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0])
        for r in in_range(records):
            start = T0 + width * ((r["start_time"] - T0) // width)
            row = expected[(iso(start), r["account_id"], r["service"] or "(none)")]
            row[0] += 1
            row[1] += r["bytes"]
            row[2] += r["packets"]
            row[3] += r["duration_s"]
        assert run(store, "billing_usage", period=period) == [
            {
                "period_start": p,
                "account_id": a,
                "service": s,
                "records": n,
                "bytes": b,
                "packets": k,
                "duration_s": round(d, 3),
            }
            for (p, a, s), (n, b, k, d) in sorted(expected.items())
        ]
    with pytest.raises(ReportError, match="period='year': expected one of hour, day"):
        run(store, "billing_usage", period="year")


def test_chargeback_per_department(built):
    store, records = built
    dept: dict[str, dict] = {}
    for r in in_range(records):
        d = dept.setdefault(r["department"] or "(none)", {"a": set(), "n": 0, "b": 0, "p": 0})
        d["a"].add(r["account_id"])
        d["n"] += 1
        d["b"] += r["bytes"]
        d["p"] += r["packets"]
    total = sum(d["b"] for d in dept.values())
    durations = defaultdict(float)
    for r in in_range(records):
        durations[r["department"] or "(none)"] += r["duration_s"]
    assert run(store, "chargeback_department") == [
        {
            "department": name,
            "accounts": len(d["a"]),
            "records": d["n"],
            "bytes": d["b"],
            "packets": d["p"],
            "duration_s": round(durations[name], 3),
            "bytes_pct": round(100 * d["b"] / total, 2),
        }
        for name, d in sorted(dept.items(), key=lambda kv: (-kv[1]["b"], kv[0]))
    ]


def test_alerts_report(built):
    store, _ = built
    monitor.ensure_tables(store)
    for i, (at, subject) in enumerate([(T0.timestamp() + 10, "g1"), (T0.timestamp() + 20, "g2")]):
        execute(
            store,
            "INSERT INTO alerts VALUES (?, to_timestamp(?), 'gatherer_silent', ?, 'quiet', NULL)",
            (i + 1, at, subject),
        )
    rows = run(store, "network_alerts")
    assert [(row["subject"], row["raised_at"]) for row in rows] == [
        ("g2", "2026-03-01T00:00:20Z"),
        ("g1", "2026-03-01T00:00:10Z"),
    ]


def test_missing_optional_tables_say_no_data_yet(tmp_path):
    store = DuckDBStore(tmp_path / "empty.duckdb")
    try:
        for name, why in [
            ("chargeback_department", "records.department does not exist (no procedure fills"),
            ("audit_merges", "_stage_state does not exist (no merge or other manager stage"),
            ("network_alerts", "alerts does not exist"),
        ]:
            result = run_report(store, find_report(store, name), RANGE)
            assert result.note.startswith(f"no data yet: {why}")
            assert result.table.num_rows == 0
            assert result.table.schema.names == list(result.report.columns)
        assert run(store, "network_activity") == []
    finally:
        store.close()


def test_parameters_are_bound_not_pasted(built):
    store, records = built
    attempt = "a1' OR '1'='1"
    assert run(store, "resource_consumption", account=attempt) == []
    assert run(store, "network_activity", source="nf'; DROP TABLE records; --") == []
    assert store.query("SELECT count(*) AS n FROM records").to_pylist() == [{"n": len(records)}]
    with pytest.raises(ReportError, match=r"top='3; DELETE FROM records'"):
        run(store, "resource_consumption", top="3; DELETE FROM records")
    with pytest.raises(ReportError, match="has no parameter nope"):
        run(store, "resource_consumption", nope="1")
    with pytest.raises(ReportError, match="from='yesterday'"):
        run(store, "resource_consumption", **{"from": "yesterday"})
