"""The invoice CLI on a store file (no manager running) and the console's invoice
pages: a viewer reads the period view, the account view and a printable invoice but
cannot run billing; an operator can."""

from __future__ import annotations

import json
from pathlib import Path

from billing_support import GB, Clock, commit, open_store, record, runner, t
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from netdistill.cli import app as cli
from netdistill.console.app import Console
from netdistill.manager.api import create_app
from netdistill.stages.runner import stages_router

SCHEME = """
stages:
  - {name: hourly, type: rollup, period: hour, company: company, grace_s: 0,
     export: {directory: null}}
rating:
  rollups: [hourly]
  default_plan: flat
  plans:
    flat:
      minimum_charge: "2.00"
      prices:
        - {name: web, category: http, unit: GB, rate: "1.25"}
"""


def billed(tmp_path: Path) -> None:
    clock = Clock(t("2026-12-01T00:00:01"))
    store = open_store(tmp_path, clock)
    commit(store, [record("2026-11-02T10:00:00", "alice", "http", bytes=3 * GB),
                   record("2026-11-02T10:00:00", "bob", "http", bytes=GB)], 1)  # fmt: skip
    stages = runner(store, tmp_path, clock, SCHEME)
    assert stages.run_once()["rating"]["invoices"] == 2
    store.close()


def test_cli_list_show_export(tmp_path: Path) -> None:
    billed(tmp_path)
    run = CliRunner()
    listed = run.invoke(cli, ["invoices", "list", "-f", "json", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    docs = json.loads(listed.output)
    # alice 3 GB × 1.25 = 3.75; bob 1 GB × 1.25 = 1.25 + minimum top-up 0.75 = 2.00
    assert [(d["number"], d["account_id"], d["total"]) for d in docs] == [
        ("INV-00000001", "alice", "3.75"),
        ("INV-00000002", "bob", "2.00"),
    ]
    shown = run.invoke(cli, ["invoices", "show", "INV-00000002", "--data-dir", str(tmp_path)])
    assert shown.exit_code == 0 and "total 2.00 EUR" in shown.output
    missing = run.invoke(cli, ["invoices", "show", "INV-7", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "no invoice numbered 'INV-7'" in missing.output
    out = tmp_path / "out"
    exported = run.invoke(cli, ["invoices", "export", "-o", str(out), "--data-dir", str(tmp_path)])
    assert exported.exit_code == 0, exported.output
    assert (
        (out / "invoices.csv")
        .read_text()
        .splitlines()[1]
        .startswith("INV-00000001,invoice,alice,2026-11,")
    )
    assert (out / "lines.csv").read_text().splitlines()[1:] == [
        "INV-00000001,1,usage,flat,web,http,bytes,any,1,2026-11-01T00:00:00Z,"
        "2026-12-01T00:00:00Z,3,GB,1.25,3.75",
        "INV-00000002,1,usage,flat,web,http,bytes,any,1,2026-11-01T00:00:00Z,"
        "2026-12-01T00:00:00Z,1,GB,1.25,1.25",
        "INV-00000002,2,minimum,flat,minimum,,,,minimum,2026-11-01T00:00:00Z,"
        "2026-12-01T00:00:00Z,1,charge,,0.75",
    ]


def test_console_pages(tmp_path: Path) -> None:
    billed(tmp_path)
    clock = Clock(t("2026-12-01T00:00:02"))
    store = open_store(tmp_path, clock)
    stages = runner(store, tmp_path, clock, SCHEME)
    console = Console(store, token="tok", announce=lambda _p: None)
    app = create_app(store, token="tok", status=dict, guarded=[stages_router(stages)],
                     access=console.access.authorize)  # fmt: skip
    console.mount(app)
    console.users.add("vera", "password-vera", "viewer")
    console.users.add("otto", "password-otto", "operator")

    def login(user: str) -> TestClient:
        client = TestClient(app)
        answer = client.post("/api/auth/login", json={"user": user, "password": f"password-{user}"})
        client.headers["x-csrf-token"] = answer.json()["csrf_token"]
        return client

    assert TestClient(app).get("/invoices", follow_redirects=False).status_code == 303
    vera = login("vera")
    listing = vera.get("/invoices").text
    assert 'href="/invoices?period=2026-11"' in listing and "5.75 EUR" in listing
    assert "run-billing" not in listing  # viewers do not issue
    period = vera.get("/invoices?period=2026-11").text
    assert "INV-00000001" in period and "INV-00000002" in period
    account = vera.get("/invoices?account=bob").text
    assert "INV-00000002" in account and "INV-00000001" not in account
    page = vera.get("/invoices/INV-00000002").text
    assert 'data-testid="invoice-total">2.00 EUR' in page and "window.print()" in page
    assert "invoice-changed" not in page
    assert vera.post("/api/billing/run").status_code == 403
    otto = login("otto")
    assert "run-billing" in otto.get("/invoices").text
    assert otto.post("/api/billing/run").json()["counts"]["invoices"] == 0
    store.close()
