"""Exports to a billing system: the exact rendering of a period (CSV, JSONL, JSON body),
the HTTP POST to a real server on 127.0.0.1 (received once, retried after a failure
with back-off), and ``netdistill export list/resend`` on a store."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from netdistill.accounting.export import Part, PeriodExport, render_body, render_files
from netdistill.cli import app

sys.path.insert(0, str(Path(__file__).parent.parent / "stages"))
from rollup_testdata import (
    DEC,
    NOV,
    OCT,
    Clock,
    expected,
    make_rows,
    make_runner,
    open_store,
    to_table,
)


def test_rendering_is_exact() -> None:
    from datetime import UTC, datetime

    part = Part(
        ["period", "period_start", "account_id", "http_bytes", "http_seconds"],
        [
            {
                "period": "2026-11",
                "period_start": datetime(2026, 11, 1, tzinfo=UTC),
                "account_id": "a,1",
                "http_bytes": 10,
                "http_seconds": 1.5,
                "ignored": 1,
            },
            {
                "period": "2026-11",
                "period_start": datetime(2026, 11, 1, tzinfo=UTC),
                "account_id": "b",
                "http_bytes": 0,
                "http_seconds": 0.0,
            },
        ],
    )
    export = PeriodExport(
        "monthly",
        "2026-11",
        "2026-11-01T00:00:00Z",
        "2026-12-01T00:00:00Z",
        "2026-12-01T00:05:00Z",
        {"accounts": part},
    )
    files = render_files(export, ["csv", "jsonl"])
    assert files == {
        "2026-11.accounts.csv": b"period,period_start,account_id,http_bytes,http_seconds\n"
        b'2026-11,2026-11-01T00:00:00Z,"a,1",10,1.5\n'
        b"2026-11,2026-11-01T00:00:00Z,b,0,0.0\n",
        "2026-11.accounts.jsonl": b'{"period":"2026-11","period_start":"2026-11-01T00:00:00Z",'
        b'"account_id":"a,1","http_bytes":10,"http_seconds":1.5}\n'
        b'{"period":"2026-11","period_start":"2026-11-01T00:00:00Z",'
        b'"account_id":"b","http_bytes":0,"http_seconds":0.0}\n',
    }
    body = json.loads(render_body(export))
    assert body["rollup"] == "monthly" and body["closed_at"] == "2026-12-01T00:05:00Z"
    assert body["accounts"][0] == {
        "period": "2026-11",
        "period_start": "2026-11-01T00:00:00Z",
        "account_id": "a,1",
        "http_bytes": 10,
        "http_seconds": 1.5,
    }


class Billing:
    """A billing system's endpoint on 127.0.0.1: answers ``statuses`` in turn (then 200)
    and keeps every request."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/usage"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def billing() -> Any:
    server = Billing([500])
    yield server
    server.close()


def test_http_post_once_retried_after_failure(tmp_path: Path, billing: Billing) -> None:
    clock = Clock(OCT)
    store = open_store(tmp_path, clock)
    rows = make_rows(120, seed=3, start=OCT, end=NOV)
    november = make_rows(10, seed=4, start=NOV, end=DEC)
    store.commit(to_table(rows + november), origin="test", sequence=1)
    export = f"{{directory: null, url: '{billing.url}', retry_initial_s: 30}}"
    runner = make_runner(store, tmp_path, clock, export=export)
    clock.set(DEC + timedelta(seconds=400))
    counts = runner.run_once()["monthly"]
    # October fails; November waits behind it (periods reach billing in order)
    assert (counts["periods_closed"], counts["exported"], counts["export_failures"]) == (2, 0, 1)
    assert len(billing.requests) == 1
    clock.set(DEC + timedelta(seconds=429))  # back-off: not before 30 s
    assert runner.run_once()["monthly"]["export_failures"] == 0
    assert len(billing.requests) == 1
    clock.set(DEC + timedelta(seconds=430))
    assert runner.run_once()["monthly"]["exported"] == 2
    for _ in range(3):
        runner.run_once()
    assert len(billing.requests) == 3  # one failed, then each period once; never again

    first, second, third = billing.requests
    assert first["body"] == second["body"]
    assert second["path"] == "/usage"
    assert second["headers"]["idempotency-key"] == "monthly/2026-10"
    assert third["headers"]["idempotency-key"] == "monthly/2026-11"
    sha = hashlib.sha256(second["body"]).hexdigest()
    assert second["headers"]["x-netdistill-sha256"] == sha
    body = json.loads(second["body"])
    want = expected(rows)
    assert body["period"] == "2026-10" and body["period_start"] == "2026-10-01T00:00:00Z"
    got = {(r["company"], r["account_id"]): r for r in body["accounts"]}
    assert set(got) == {(k[1], k[2]) for k in want["accounts"]}
    for (_period, company, account), columns in want["accounts"].items():
        assert {c: got[(company, account)][c] for c in columns} == columns
    assert [r["company"] for r in body["companies"]] == sorted(k[1] for k in want["companies"])
    assert sum(r["total_records"] for r in json.loads(third["body"])["accounts"]) == 10
    outcomes = store.query(
        "SELECT period, target, kind, outcome, sha256 FROM exports ORDER BY sent_at, period"
    ).to_pylist()
    assert [(o["period"], o["target"], o["kind"], o["outcome"]) for o in outcomes] == [
        ("2026-10", "http", "scheduled", "failed"),
        ("2026-10", "http", "scheduled", "ok"),
        ("2026-11", "http", "scheduled", "ok"),
    ]
    assert {o["sha256"] for o in outcomes[:2]} == {sha}

    # resend on demand posts the same body again
    [result] = runner.get("monthly").resend("2026-10")
    assert result["outcome"] == "ok" and len(billing.requests) == 4
    assert billing.requests[3]["body"] == second["body"]
    store.close()


def test_cli_list_and_resend_on_the_store(tmp_path: Path) -> None:
    clock = Clock(OCT)
    store = open_store(tmp_path, clock)
    rows = make_rows(60, seed=5, start=OCT, end=DEC)
    store.commit(to_table(rows), origin="test", sequence=1)
    runner = make_runner(store, tmp_path, clock)
    clock.set(DEC + timedelta(seconds=400))
    assert runner.run_once()["monthly"]["exported"] == 2
    store.close()
    out = tmp_path / "exports" / "monthly"
    before = (out / "2026-11.accounts.csv").read_bytes()
    (out / "2026-11.accounts.csv").unlink()

    cli = CliRunner()
    result = cli.invoke(app, ["export", "list", "--data-dir", str(tmp_path), "-f", "json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)["monthly"]
    want = expected(rows)
    assert [p["period"] for p in listing] == ["2026-10", "2026-11"]
    for item in listing:
        accounts = {k: v for k, v in want["accounts"].items() if k[0] == item["period"]}
        assert (item["records"], item["bytes"], item["accounts"], item["companies"]) == (
            sum(v["total_records"] for v in accounts.values()),
            sum(v["total_bytes"] for v in accounts.values()),
            len(accounts),
            len({k[1] for k in accounts}),
        )
        assert [(e["target"], e["kind"], e["outcome"]) for e in item["exports"]] == [
            ("file", "scheduled", "ok")
        ]
    result = cli.invoke(app, ["export", "list", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0 and result.output.count("monthly") == 2

    result = cli.invoke(
        app, ["export", "resend", "monthly", "--period", "2026-11", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    rows_11 = sum(1 for k in want["accounts"] if k[0] == "2026-11") + sum(
        1 for k in want["companies"] if k[0] == "2026-11"
    )
    assert result.output.strip() == f"monthly 2026-11 file: ok, {rows_11} rows"
    assert (out / "2026-11.accounts.csv").read_bytes() == before

    result = cli.invoke(
        app, ["export", "list", "monthly", "--data-dir", str(tmp_path), "-f", "json"]
    )
    exports = json.loads(result.output)["monthly"][1]["exports"]  # the CLI's clock is real
    assert sorted((e["kind"], e["outcome"]) for e in exports) == [
        ("resend", "ok"),
        ("scheduled", "ok"),
    ]
    result = cli.invoke(
        app, ["export", "resend", "monthly", "--period", "2027-01", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 1 and "period '2027-01' is not closed" in result.output
    result = cli.invoke(
        app, ["export", "resend", "nope", "--period", "2026-11", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 1 and "no rollup named 'nope'" in result.output


def test_cli_goes_through_a_running_manager(tmp_path: Path) -> None:
    from netdistill.manager.main import Manager
    from netdistill.scheme.models import ManagerConfig

    clock = Clock(OCT)
    store = open_store(tmp_path, clock)
    rows = make_rows(50, seed=9, start=OCT, end=NOV)
    store.commit(to_table(rows), origin="test", sequence=1)
    runner = make_runner(store, tmp_path, clock)
    clock.set(NOV + timedelta(seconds=400))
    assert runner.run_once()["monthly"]["exported"] == 1
    manager = Manager(store, ManagerConfig(api_port=0), data_dir=tmp_path, stages=runner)
    manager.start()
    try:
        cli = CliRunner()
        # the store file is the manager's: these work only through its API
        result = cli.invoke(app, ["export", "list", "--data-dir", str(tmp_path), "-f", "json"])
        assert result.exit_code == 0, result.output
        [period] = json.loads(result.output)["monthly"]
        want = expected(rows)
        assert period["period"] == "2026-10"
        assert (
            period["records"]
            == len(rows)
            == sum(v["total_records"] for v in want["accounts"].values())
        )
        out = tmp_path / "exports" / "monthly" / "2026-10.companies.jsonl"
        before = out.read_bytes()
        out.unlink()
        result = cli.invoke(
            app,
            [
                "export",
                "resend",
                "monthly",
                "--period",
                "2026-10",
                "--target",
                "file",
                "--data-dir",
                str(tmp_path),
            ],
        )
        assert result.exit_code == 0, result.output
        assert result.output.startswith("monthly 2026-10 file: ok, ")
        assert out.read_bytes() == before
        result = cli.invoke(
            app,
            [
                "export",
                "resend",
                "monthly",
                "--period",
                "2026-10",
                "--target",
                "http",
                "--data-dir",
                str(tmp_path),
            ],
        )
        assert result.exit_code == 1 and "has no http export" in result.output
    finally:
        manager.stop()
        store.close()
