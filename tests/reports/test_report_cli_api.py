"""``netdistill report`` on a store directory and through a running manager, and the
``/api/reports`` routes (token required, save, run, delete)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from reports_data import RANGE, build_store
from typer.testing import CliRunner

from netdistill.cli import app
from netdistill.manager.api import create_app
from netdistill.manager.discovery import read_manager_info
from netdistill.manager.main import Manager
from netdistill.reports.api import reports_router
from netdistill.scheme.models import ManagerConfig

QUARANTINE_CSV = (
    "source,reason,items,first_at,last_at\n"
    "nf,before_template,1,2026-03-01T00:03:00Z,2026-03-01T00:03:00Z\n"
    "nf,malformed,2,2026-03-01T00:01:00Z,2026-03-01T00:02:00Z\n"
    "proxy,malformed,1,2026-03-01T01:00:00Z,2026-03-01T01:00:00Z\n"
)
RANGE_ARGS = ["--from", RANGE["from"], "--to", RANGE["to"]]


def cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_cli_on_a_store_directory(tmp_path):
    store, _ = build_store(tmp_path / "records.duckdb")
    store.close()
    data = ["--data-dir", str(tmp_path)]
    result = cli("report", "audit_quarantine", *RANGE_ARGS, "--format", "csv", *data)
    assert result.exit_code == 0, result.output
    assert result.stdout == QUARANTINE_CSV
    one = cli(
        "report", "resource_consumption", *RANGE_ARGS, "-p", "account=a3", "-f", "json", *data
    )
    body = json.loads(one.stdout)
    assert [row[0] for row in body["rows"]] == ["a3"]
    page = tmp_path / "gaps.html"
    written = cli("report", "network_activity", *RANGE_ARGS, "-o", str(page), *data)
    assert written.exit_code == 0 and page.read_text().count("<polyline") == 3
    listing = cli("report", "list", *data)
    assert "billing_usage" in listing.stdout and "chargeback_department" in listing.stdout
    unknown = cli("report", "nope", *data)
    assert unknown.exit_code == 1 and "no report named 'nope'" in unknown.stderr
    bad = cli("report", "audit_gaps", "-p", "bucket_minutes=ten", *data)
    assert bad.exit_code == 1 and "bucket_minutes='ten'" in bad.stderr


def test_api_routes_need_the_token_and_save_run_delete(tmp_path):
    store, _ = build_store(tmp_path / "records.duckdb")
    try:
        client = TestClient(
            create_app(store, token="t", status=dict, guarded=[reports_router(store)])
        )
        definition = {
            "name": "per_exporter",
            "title": "Records per source",
            "sql": "SELECT source, count(*) AS n FROM records GROUP BY source ORDER BY source",
        }
        for method, url, kwargs in [
            ("GET", "/api/reports", {}),
            ("GET", "/api/reports/audit_gaps/run", {}),
            ("POST", "/api/reports", {"json": definition}),
            ("DELETE", "/api/reports/per_exporter", {}),
        ]:
            refused = client.request(method, url, **kwargs)
            assert refused.status_code == 401, url
            wrong = client.request(method, url, headers={"authorization": "Bearer x"}, **kwargs)
            assert wrong.status_code == 401, url
        client.headers["authorization"] = "Bearer t"
        documented = client.get("/openapi.json").json()["paths"]["/api/reports/{name}/run"]
        assert [p["name"] for p in documented["get"]["parameters"]] == [
            "name",
            "from",
            "to",
            "param",
            "format",
        ]
        catalogue = client.get("/api/reports").json()
        gaps = next(r for r in catalogue if r["name"] == "audit_gaps")
        assert [p["name"] for p in gaps["params"]] == ["from", "to", "source", "bucket_minutes"]
        assert next(r for r in catalogue if r["name"] == "network_activity")["chart"] == {
            "kind": "line",
            "x": "hour",
            "y": "bytes",
            "series": "service",
        }
        csv = client.get("/api/reports/audit_quarantine/run", params={**RANGE, "format": "csv"})
        assert csv.text == QUARANTINE_CSV
        assert csv.headers["content-type"].startswith("text/csv")
        run = client.get(
            "/api/reports/audit_gaps/run",
            params=[("from", RANGE["from"]), ("to", RANGE["to"]), ("param", "source=nf")],
        ).json()
        assert run["rows"] == [["nf", "2026-03-01T03:00:00Z", "2026-03-01T05:00:00Z", 2]]
        assert run["chart"] is None
        html = client.get("/api/reports/audit_quarantine/run", params={"format": "html"})
        assert html.headers["content-type"].startswith("text/html") and "<table>" in html.text

        assert client.post("/api/reports", json=definition).status_code == 201
        saved = client.get("/api/reports/per_exporter/run").json()
        assert saved["rows"] == [["nf", 16], ["radius", 14]]
        write = client.post("/api/reports", json={**definition, "sql": "DROP TABLE records"})
        assert write.status_code == 400
        assert write.json() == {
            "error": "report per_exporter: refused (rule: one-select): "
            "only a SELECT is allowed, not DROP"
        }
        assert client.delete("/api/reports/per_exporter").json() == {"deleted": "per_exporter"}
        assert client.get("/api/reports/per_exporter/run").status_code == 404
        assert client.delete("/api/reports/billing_usage").status_code == 400
        missing = client.get("/api/reports/chargeback_department/run", params={"format": "csv"})
        assert missing.status_code == 200  # this store has the field; drop it and ask again
        store.drop_field("department")
        missing = client.get("/api/reports/chargeback_department/run", params={"format": "csv"})
        assert missing.headers["x-netdistill-note"].startswith(
            "no data yet: records.department does not exist"
        )
    finally:
        store.close()


def test_cli_through_a_running_manager(tmp_path):
    store, _ = build_store(tmp_path / "records.duckdb")
    manager = Manager(store, ManagerConfig(api_port=0), data_dir=tmp_path)
    manager.start()
    try:
        # the manager holds the store file (a second, read-only open in this process
        # fails), so the CLI can only have answered through the manager's API
        assert read_manager_info(tmp_path) is not None
        result = cli(
            "report", "audit_quarantine", *RANGE_ARGS, "-f", "csv", "--data-dir", str(tmp_path)
        )
        assert result.exit_code == 0, result.output
        assert result.stdout == QUARANTINE_CSV
        listing = cli("report", "list", "--data-dir", str(tmp_path))
        assert "audit_deliveries" in listing.stdout
    finally:
        manager.stop()
        store.close()
