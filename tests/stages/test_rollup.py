"""The rollup stage: every column of every account and company record equals the sums
this test computes itself (plain Python over the committed rows); periods close once,
after their grace, at the exact boundary; late records are counted, not added; export
files hold exactly the expected text, once across rounds and a restart; resend rewrites
identical bytes."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rollup_testdata import (
    CATEGORIES,
    DEC,
    NOV,
    OCT,
    US,
    Clock,
    boundary_rows,
    csv_text,
    expected,
    make_rows,
    make_runner,
    open_store,
    to_table,
)

from netdistill.scheme.load import parse_scheme
from netdistill.stages.runner import stages_router

METRICS = [f"{c}_{m}" for c in CATEGORIES for m in ("bytes", "seconds", "records")]


def rollup_rows(store: Any, table: str, period: str) -> list[dict[str, Any]]:
    return store.query(f'SELECT * FROM "{table}" WHERE period = $p', {"p": period}).to_pylist()


def check_period(store: Any, rows: list[dict[str, Any]], period: str) -> None:
    want = expected(rows)
    got_accounts = {
        (r["period"], r["company"], r["account_id"]): r
        for r in rollup_rows(store, "rollup_monthly_accounts", period)
    }
    want_accounts = {k: v for k, v in want["accounts"].items() if k[0] == period}
    assert set(got_accounts) == set(want_accounts)
    for key, columns in want_accounts.items():
        assert {c: got_accounts[key][c] for c in METRICS} == columns, key
    got_companies = {
        (r["period"], r["company"]): r
        for r in rollup_rows(store, "rollup_monthly_companies", period)
    }
    want_companies = {k: v for k, v in want["companies"].items() if k[0] == period}
    assert set(got_companies) == set(want_companies)
    for key, columns in want_companies.items():
        assert {c: got_companies[key][c] for c in ["accounts", *METRICS]} == columns, key
    # a company record is the sum of its account records (bytes and counts exactly)
    for (p, company), record in got_companies.items():
        members = [r for k, r in got_accounts.items() if k[1] == company]
        assert record["accounts"] == len(members)
        for c in METRICS:
            if not c.endswith("_seconds"):
                assert record[c] == sum(m[c] for m in members), (p, company, c)


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Any]:
    clock = Clock(NOV + timedelta(seconds=299))
    store = open_store(tmp_path, clock)
    rows = make_rows(400, seed=7, start=OCT, end=DEC) + boundary_rows()
    store.commit(to_table(rows), origin="test", sequence=1)
    return {"dir": tmp_path, "clock": clock, "store": store, "rows": rows}


def test_sums_equal_detail_and_periods_close_once(data: dict[str, Any]) -> None:
    store, clock, rows = data["store"], data["clock"], data["rows"]
    runner = make_runner(store, data["dir"], clock)
    assert runner.run_once()["monthly"]["periods_closed"] == 0  # 299 s after October
    clock.set(NOV + timedelta(seconds=300))
    assert runner.run_once()["monthly"]["periods_closed"] == 0  # start-up grace not over
    clock.set(NOV + timedelta(seconds=599))
    counts = runner.run_once()["monthly"]
    assert counts["periods_closed"] == 1 and counts["exported"] == 1
    assert runner.errors == {}
    check_period(store, rows, "2026-10")
    assert rollup_rows(store, "rollup_monthly_accounts", "2026-11") == []

    # the boundary: the last microsecond is October's, 00:00:00 is November's
    a1 = rollup_rows(store, "rollup_monthly_accounts", "2026-10")
    oct_smtp = sum(
        1
        for r in rows
        if r["end_time"] < NOV and r["account_id"] == "a1" and r["service"] == "smtp"
    )
    assert next(r for r in a1 if r["account_id"] == "a1")["mail_records"] >= oct_smtp >= 1

    # late: an October record arriving now is counted, October does not change
    before = rollup_rows(store, "rollup_monthly_accounts", "2026-10")
    late = {
        "end_time": NOV - 5 * US,
        "account_id": "a1",
        "company": "Acme",
        "service": "http",
        "bytes": 123,
        "duration_s": 1.0,
    }
    extra = {
        "end_time": NOV + timedelta(days=3),
        "account_id": "g1",
        "company": "Globex",
        "service": "rtsp",
        "bytes": 777,
        "duration_s": 0.5,
    }
    store.commit(to_table([late, extra]), origin="test", sequence=2)
    counts = runner.run_once()["monthly"]
    assert counts == {"periods_closed": 0, "late_records": 1, "exported": 0, "export_failures": 0}
    assert rollup_rows(store, "rollup_monthly_accounts", "2026-10") == before
    assert runner.status()["stages"][0]["late_records"] == 1

    clock.set(DEC + timedelta(seconds=300))
    assert runner.run_once()["monthly"]["periods_closed"] == 1
    check_period(store, [*rows, extra], "2026-11")
    periods = store.query(
        'SELECT period, records, bytes, accounts, companies FROM "rollup_monthly_periods"'
        " ORDER BY period"
    ).to_pylist()
    want = expected([*rows, extra])
    for p in periods:
        accounts = {k: v for k, v in want["accounts"].items() if k[0] == p["period"]}
        assert p["records"] == sum(v["total_records"] for v in accounts.values())
        assert p["bytes"] == sum(v["total_bytes"] for v in accounts.values())
        assert p["accounts"] == len(accounts)
        assert p["companies"] == len({k[1] for k in accounts})
    assert [p["period"] for p in periods] == ["2026-10", "2026-11"]
    for _ in range(3):  # nothing more to close or export
        assert runner.run_once()["monthly"] == {
            "periods_closed": 0,
            "late_records": 0,
            "exported": 0,
            "export_failures": 0,
        }
    assert runner.status()["stages"][0]["late_records"] == 1


def expected_csv(rows: list[dict[str, Any]], period: str, start: str, end: str) -> str:
    want = expected(rows)
    lines = [",".join(["period", "period_start", "period_end", "account_id", "company", *METRICS])]
    for p, company, account in sorted(k for k in want["accounts"] if k[0] == period):
        values = want["accounts"][(p, company, account)]
        lines.append(
            ",".join([p, start, end, account, company, *(csv_text(values[c]) for c in METRICS)])
        )
    return "\n".join(lines) + "\n"


def expected_company_jsonl(rows: list[dict[str, Any]], period: str, start: str, end: str) -> str:
    want = expected(rows)
    lines = []
    for p, company in sorted(k for k in want["companies"] if k[0] == period):
        values = want["companies"][(p, company)]
        record = {
            "period": p,
            "period_start": start,
            "period_end": end,
            "company": company,
            **{c: values[c] for c in ["accounts", *METRICS]},
        }
        lines.append(json.dumps(record, separators=(",", ":")))
    return "".join(line + "\n" for line in lines)


def exports_rows(store: Any) -> list[dict[str, Any]]:
    return store.query(
        "SELECT period, target, kind, outcome, rows, sha256 FROM exports ORDER BY sent_at, period"
    ).to_pylist()


def test_export_files_exactly_once_and_resend(data: dict[str, Any]) -> None:
    store, clock, rows, root = data["store"], data["clock"], data["rows"], data["dir"]
    runner = make_runner(store, root, clock)
    clock.set(DEC + timedelta(seconds=600))
    assert runner.run_once()["monthly"]["exported"] == 2
    out = root / "exports" / "monthly"
    assert sorted(p.name for p in out.iterdir()) == [
        f"{p}.{part}.{fmt}"
        for p in ("2026-10", "2026-11")
        for part in ("accounts", "companies")
        for fmt in ("csv", "jsonl")
    ]
    oct_csv = (out / "2026-10.accounts.csv").read_text()
    assert oct_csv == expected_csv(rows, "2026-10", "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
    assert (out / "2026-11.companies.jsonl").read_text() == expected_company_jsonl(
        rows, "2026-11", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"
    )
    # JSONL accounts carry the same values as the CSV
    jsonl = [json.loads(line) for line in (out / "2026-10.accounts.jsonl").read_text().splitlines()]
    assert [",".join(csv_text(v) for v in r.values()) for r in jsonl] == oct_csv.splitlines()[1:]
    first = exports_rows(store)
    want = expected(rows)
    assert [(r["period"], r["target"], r["kind"], r["outcome"], r["rows"]) for r in first] == [
        (
            p,
            "file",
            "scheduled",
            "ok",
            sum(1 for k in want["accounts"] if k[0] == p)
            + sum(1 for k in want["companies"] if k[0] == p),
        )
        for p in ("2026-10", "2026-11")
    ]
    snapshot = {p.name: p.read_bytes() for p in out.iterdir()}

    for _ in range(3):
        assert runner.run_once()["monthly"]["exported"] == 0
    # restart: a new store object and stage over the same files
    store.close()
    store = open_store(root, clock)
    runner = make_runner(store, root, clock)
    assert runner.run_once()["monthly"] == {
        "periods_closed": 0,
        "late_records": 0,
        "exported": 0,
        "export_failures": 0,
    }
    assert exports_rows(store) == first

    # a crash after the files were written but before the record: rewritten identically
    with store.transaction() as tx:
        tx.execute("DELETE FROM exports WHERE period = '2026-11'")
    (out / "2026-11.accounts.csv").unlink()
    assert runner.run_once()["monthly"]["exported"] == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == snapshot
    assert len(exports_rows(store)) == 2

    # resend on demand (the API): same bytes, recorded as a resend with the same sha256
    for path in out.iterdir():
        path.unlink()
    app = FastAPI()
    app.include_router(stages_router(runner))
    client = TestClient(app)
    response = client.post("/api/rollups/monthly/periods/2026-10/resend")
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["outcome"] == "ok" and result["kind"] == "resend"
    assert result["sha256"] == first[0]["sha256"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        k: v for k, v in snapshot.items() if k.startswith("2026-10")
    }
    listing = client.get("/api/rollups/monthly/periods").json()
    assert [p["period"] for p in listing["periods"]] == ["2026-10", "2026-11"]
    assert [(e["kind"], e["outcome"]) for e in listing["periods"][0]["exports"]] == [
        ("scheduled", "ok"),
        ("resend", "ok"),
    ]
    assert client.post("/api/rollups/monthly/periods/2026-12/resend").status_code == 404
    period = client.get("/api/rollups/monthly/periods/2026-11").json()
    assert len(period["accounts"]) == sum(1 for k in want["accounts"] if k[0] == "2026-11")
    assert runner.run_once()["monthly"]["exported"] == 0  # a resend is not a new export
    store.close()


@pytest.mark.parametrize("unit", ["day", "hour"])
def test_day_and_hour_boundaries(tmp_path: Path, unit: str) -> None:
    edge = NOV + timedelta(days=22)  # 2026-11-23T00:00:00Z
    clock = Clock(edge)
    store = open_store(tmp_path, clock)
    rows = [
        {
            "end_time": edge - US,
            "account_id": "a1",
            "company": "Acme",
            "service": "sip",
            "bytes": 10,
            "duration_s": 60.0,
        },
        {
            "end_time": edge,
            "account_id": "a1",
            "company": "Acme",
            "service": "sip",
            "bytes": 20,
            "duration_s": 30.0,
        },
        {
            "end_time": edge + timedelta(minutes=59, seconds=59),
            "account_id": "a1",
            "company": "Acme",
            "service": "ftp",
            "bytes": 40,
            "duration_s": 2.0,
        },
    ]
    store.commit(to_table(rows), origin="test", sequence=1)
    runner = make_runner(store, tmp_path, clock, period=unit, export="{directory: null}")
    clock.set(edge + timedelta(days=2))
    runner.run_once()
    assert runner.errors == {}
    got = store.query(
        "SELECT period, voip_bytes, voip_seconds, voip_records, ftp_bytes, total_records"
        ' FROM "rollup_monthly_accounts" ORDER BY period'
    ).to_pylist()
    if unit == "day":
        assert got == [
            {
                "period": "2026-11-22",
                "voip_bytes": 10,
                "voip_seconds": 60.0,
                "voip_records": 1,
                "ftp_bytes": 0,
                "total_records": 1,
            },
            {
                "period": "2026-11-23",
                "voip_bytes": 20,
                "voip_seconds": 30.0,
                "voip_records": 1,
                "ftp_bytes": 40,
                "total_records": 2,
            },
        ]
    else:  # 23:00 of the 22nd, then every hour of the 23rd and 24th (empty ones too)
        assert got[:2] == [
            {
                "period": "2026-11-22T23",
                "voip_bytes": 10,
                "voip_seconds": 60.0,
                "voip_records": 1,
                "ftp_bytes": 0,
                "total_records": 1,
            },
            {
                "period": "2026-11-23T00",
                "voip_bytes": 20,
                "voip_seconds": 30.0,
                "voip_records": 1,
                "ftp_bytes": 40,
                "total_records": 2,
            },
        ]
        assert len(got) == 2
        periods = store.query('SELECT count(*) AS n FROM "rollup_monthly_periods"').to_pylist()
        assert periods[0]["n"] == 1 + 48 - 1  # 22T23 … 24T22 (24T23 ends at +2 days, in grace)
    store.close()


def test_config_errors_name_the_place() -> None:
    bad = [
        ("categories: {http: [http], web: [HTTP]}", "is in categories 'http' and 'web'"),
        ("categories: {other: [x]}", "not 'other' or 'total'"),
        ('categories: {http: ["it\'s"]}', "bad service name"),
        ("period: week", "month"),
        ("export: {url: ftp://x}", "expected http:// or https://"),
        ('account: "a b"', "letters, digits and _"),
    ]
    for snippet, message in bad:
        with pytest.raises(Exception, match="stages") as info:
            parse_scheme(f"stages:\n  - {{name: r, type: rollup, {snippet}}}\n")
        assert message in str(info.value), snippet
    scheme = parse_scheme("stages:\n  - {name: r, type: rollup}\n")
    config = scheme.stages[0]
    assert config.account_columns()[:4] == ["period", "period_start", "period_end", "account_id"]
    assert len(config.metric_columns()) == 8 * 3


def test_missing_company_field_is_a_clear_error(tmp_path: Path) -> None:
    from netdistill.errors import StoreError
    from netdistill.stages.base import StageContext
    from netdistill.stages.runner import StageRunner
    from netdistill.store.duckdb import DuckDBStore

    store = DuckDBStore(tmp_path / "records.duckdb")
    scheme = parse_scheme("stages:\n  - {name: r, type: rollup, company: firm}\n")
    with pytest.raises(StoreError, match="records have no field 'firm'"):
        StageRunner(StageContext(store, scheme, tmp_path))
    store.close()


def test_input_selects_the_records_of_one_procedure(tmp_path: Path) -> None:
    from netdistill.stages.base import StageContext
    from netdistill.stages.runner import StageRunner

    clock = Clock(OCT)
    store = open_store(tmp_path, clock)
    rows = make_rows(80, seed=11, start=OCT, end=NOV)
    table = to_table(rows)
    procedures = ["enrich" if i % 3 else "other" for i in range(len(rows))]
    table = table.set_column(
        table.schema.get_field_index("procedure"), "procedure", pa.array(procedures)
    )
    store.commit(table, origin="t", sequence=1)
    scheme = parse_scheme(
        "sources:\n  - {name: routers, type: netflow, listen: ['127.0.0.1:0']}\n"
        "procedures:\n  - {name: enrich, trigger: routers}\n"
        "stages:\n  - {name: monthly, type: rollup, input: enrich, company: company,"
        " export: {directory: null}}\n"
    )
    runner = StageRunner(StageContext(store, scheme, tmp_path, clock=clock))
    clock.set(NOV + timedelta(seconds=300))
    assert runner.run_once()["monthly"]["periods_closed"] == 1
    mine = [r for r, p in zip(rows, procedures, strict=True) if p == "enrich"]
    check_period(store, mine, "2026-10")
    store.close()


def test_an_older_record_before_the_first_close_moves_the_first_period(tmp_path: Path) -> None:
    day = NOV + timedelta(days=22)
    clock = Clock(day)
    store = open_store(tmp_path, clock)
    record = {
        "account_id": "a1",
        "company": "Acme",
        "service": "smtp",
        "bytes": 5,
        "duration_s": 1.0,
    }
    store.commit(to_table([{**record, "end_time": day}]), origin="t", sequence=1)
    runner = make_runner(store, tmp_path, clock, period="day", export="{directory: null}")
    assert runner.run_once()["monthly"]["periods_closed"] == 0
    older = {**record, "end_time": day - timedelta(days=2), "bytes": 7}
    store.commit(to_table([older]), origin="t", sequence=2)
    clock.set(day + timedelta(days=1, seconds=300))
    assert runner.run_once()["monthly"] == {
        "periods_closed": 3,
        "late_records": 0,
        "exported": 0,
        "export_failures": 0,
    }
    got = store.query(
        'SELECT period, records, bytes FROM "rollup_monthly_periods" ORDER BY period'
    ).to_pylist()
    assert got == [
        {"period": "2026-11-21", "records": 1, "bytes": 7},
        {"period": "2026-11-22", "records": 0, "bytes": 0},
        {"period": "2026-11-23", "records": 1, "bytes": 5},
    ]
    store.close()


def test_changed_categories_refuse_the_old_tables(tmp_path: Path) -> None:
    from netdistill.errors import StoreError
    from netdistill.stages.base import StageContext
    from netdistill.stages.runner import StageRunner

    clock = Clock(NOV)
    store = open_store(tmp_path, clock)
    make_runner(store, tmp_path, clock)
    scheme = parse_scheme(
        "stages:\n  - {name: monthly, type: rollup, company: company, categories: {web: [http]}}\n"
    )
    with pytest.raises(StoreError, match="rollup_monthly_accounts was made by a different"):
        StageRunner(StageContext(store, scheme, tmp_path, clock=clock))
    store.close()
