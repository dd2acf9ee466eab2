"""The query sandbox through every door a person has: ``POST /api/query`` as viewer,
operator, admin (console sessions over HTTP) and with the token; saved reports at save
and at run time (an operator saves, a viewer runs) with bound parameters; the audit log
entry of each query, exactly; the limits from the manager's settings; and
``netdistill query`` through a running manager and straight on the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sandbox_escapes import (
    ESCAPES,
    OPERATOR,
    PASSWORD,
    RECORDS,
    TOKEN,
    World,
    build_world,
    snapshot,
)
from typer.testing import CliRunner

from netdistill.cli import app as cli_app
from netdistill.manager.api import create_app
from netdistill.manager.main import Manager
from netdistill.manager.tables import execute
from netdistill.reports.api import reports_router
from netdistill.scheme.models import ManagerConfig
from netdistill.store.duckdb import DuckDBStore
from netdistill.store.sandbox import QueryLimits

UPDATE = f"EXPLAIN ANALYZE UPDATE users SET role = 'admin' WHERE name = '{OPERATOR}'"


class Api:
    def __init__(self, world: World) -> None:
        self.world = world
        self.limits = QueryLimits()
        app = create_app(
            world.store,
            token=TOKEN,
            status=lambda: {},
            guarded=[reports_router(world.store, limits=lambda: self.limits)],
            access=world.console.access.authorize,
            query_limits=lambda: self.limits,
        )
        world.console.mount(app)
        self.app = app
        world.console.users.add("vera", "password-vera", "viewer")
        self.viewer = self.login("vera", "password-vera")
        self.operator = self.login(OPERATOR, PASSWORD)
        self.admin = self.login("admin", world.admin_password)
        # the first admin changes the generated password first (the console insists)
        changed = self.admin.post(
            "/api/auth/password",
            json={"old_password": world.admin_password, "new_password": "admin-chosen-1"},
        )
        assert changed.status_code == 200, changed.text
        self.token = TestClient(app, headers={"authorization": f"Bearer {TOKEN}"})

    def login(self, user: str, password: str) -> TestClient:
        client = TestClient(self.app)
        answer = client.post("/api/auth/login", json={"user": user, "password": password})
        assert answer.status_code == 200, answer.text
        client.headers["x-csrf-token"] = answer.json()["csrf_token"]
        return client

    def audit(self, since: int = 0) -> list[dict[str, Any]]:
        """The ``query`` entries after id ``since``, oldest first, ``ms`` checked and
        dropped (it is the only figure that varies)."""
        rows = self.world.store.query(
            "SELECT id, user_name, detail FROM audit_log WHERE action = 'query' AND id > $s "
            "ORDER BY id",
            {"s": since},
        ).to_pylist()
        entries = []
        for row in rows:
            detail = json.loads(row["detail"])
            if "ms" in detail:
                assert isinstance(detail.pop("ms"), float | int)
            entries.append({"user": row["user_name"], **detail})
        return entries

    def last_id(self) -> int:
        return int(self.world.store.query("SELECT max(id) AS m FROM audit_log").to_pylist()[0]["m"])


@pytest.fixture
def api(tmp_path):
    world = build_world(tmp_path / "data")
    yield Api(world)
    world.store.close()


def rows(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return list(pa.ipc.open_stream(response.content).read_all().to_pylist())


def test_every_escape_is_refused_for_every_role_and_changes_nothing(api):
    world = api.world
    before = snapshot(world)
    for template, rule in ESCAPES:
        sql = world.sql(template)
        assert api.viewer.post("/api/query", json={"sql": sql}).status_code == 403, sql
        for who in (api.operator, api.admin, api.token):
            answer = who.post("/api/query", json={"sql": sql})
            assert answer.status_code == 400, (sql, answer.text)
            assert answer.json()["error"].startswith(f"refused (rule: {rule}): "), sql
    assert snapshot(world) == before
    assert not world.out.exists()
    assert world.console.users.role_of(OPERATOR).name == "operator"
    # and the sandbox still answers what it should
    assert rows(
        api.operator.post("/api/query", json={"sql": "SELECT count(*) AS n FROM records"})
    ) == [{"n": RECORDS}]


def test_each_query_is_audited_with_who_text_rows_time_and_outcome(api):
    since = api.last_id()
    ok = api.operator.post(
        "/api/query",
        json={"sql": "SELECT user_name FROM records WHERE bytes <= $b", "params": {"b": 2}},
    )
    assert rows(ok) == [{"user_name": "u0"}, {"user_name": "u1"}]
    assert api.admin.post("/api/query", json={"sql": UPDATE}).status_code == 400
    assert api.viewer.post("/api/query", json={"sql": "SELECT 1"}).status_code == 403
    assert (
        api.token.post("/api/query", json={"sql": "SELECT nosuch FROM records"}).status_code == 400
    )
    assert TestClient(api.app).post("/api/query", json={"sql": "SELECT 1"}).status_code == 401
    entries = api.audit(since)
    assert entries[0] == {
        "user": OPERATOR,
        "via": "api",
        "sql": "SELECT user_name FROM records WHERE bytes <= $b",
        "params": {"b": 2},
        "rows": 2,
        "refused": False,
        "rule": None,
        "error": None,
    }
    assert entries[1] == {
        "user": "admin",
        "via": "api",
        "sql": UPDATE,
        "params": {},
        "rows": 0,
        "refused": True,
        "rule": "one-select",
        "error": "refused (rule: one-select): EXPLAIN ANALYZE runs its statement; use EXPLAIN",
    }
    assert entries[2] == {
        "user": "vera",
        "via": "api",
        "sql": "SELECT 1",
        "status": 403,
        "refused": True,
        "rule": "role",
    }
    assert entries[3]["user"] == "token" and entries[3]["refused"] is False
    assert entries[3]["error"].startswith('Binder Error: Referenced column "nosuch" not found')
    assert entries[4] == {
        "user": "?",
        "via": "api",
        "sql": "SELECT 1",
        "status": 401,
        "refused": True,
        "rule": "role",
    }
    assert len(entries) == 5


def test_saved_reports_are_sandboxed_at_save_and_at_run_time(api):
    world = api.world
    since = api.last_id()
    evil = {"name": "evil", "title": "x", "sql": UPDATE}
    refused = api.operator.post("/api/reports", json=evil)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "report evil: refused (rule: one-select): EXPLAIN ANALYZE runs its "
        "statement; use EXPLAIN"
    }
    sneaky = {"name": "sneaky", "title": "x", "sql": "SELECT name, password_hash FROM users"}
    assert api.operator.post("/api/reports", json=sneaky).status_code == 400
    # one saved before the sandbox existed (written as an old manager would have)
    execute(
        world.store,
        "INSERT INTO saved_reports VALUES ('evil', ?, to_timestamp(0))",
        (json.dumps(evil),),
    )
    ran = api.viewer.get("/api/reports/evil/run")
    assert ran.status_code == 400
    assert ran.json()["error"].startswith("report evil: refused (rule: one-select): ")
    assert world.console.users.role_of(OPERATOR).name == "operator"
    # a good report with a parameter: the value is bound, never SQL
    good = {
        "name": "by_user",
        "title": "Bytes of one user",
        "sql": "SELECT count(*) AS n, sum(bytes) AS b FROM records WHERE user_name = $who",
        "params": [{"name": "who", "required": True}],
    }
    assert api.operator.post("/api/reports", json=good).status_code == 201
    run = api.viewer.get("/api/reports/by_user/run", params={"param": "who=u1"}).json()
    assert run["rows"] == [[13, 260]]
    injected = api.viewer.get(
        "/api/reports/by_user/run",
        params={"param": "who=u1' OR 1=1; UPDATE users SET role='admin' --"},
    ).json()
    assert injected["rows"] == [[0, None]]
    assert world.console.users.role_of(OPERATOR).name == "operator"
    entries = api.audit(since)
    assert [(e["user"], e["via"], e["refused"], e["rule"]) for e in entries] == [
        (OPERATOR, "report save evil", True, "one-select"),
        (OPERATOR, "report save sneaky", True, "table"),
        ("vera", "report evil", True, "one-select"),
        ("vera", "report by_user", False, None),
        ("vera", "report by_user", False, None),
    ]
    assert entries[3]["params"] == {"who": "u1"} and entries[3]["rows"] == 1
    # built-in reports are the manager's own SQL: not audited as queries
    assert api.viewer.get("/api/reports/audit_quarantine/run").status_code == 200
    assert len(api.audit(since)) == 5


def test_limits_come_from_the_manager_settings(api):
    api.limits = QueryLimits(timeout_s=0.3, max_rows=5)
    slow = api.operator.post(
        "/api/query",
        json={"sql": "SELECT sum(x * y) FROM range(100000000) a(x), range(100000000) b(y)"},
    )
    assert slow.status_code == 400
    assert slow.json() == {
        "error": "refused (rule: time-limit): the query ran longer than 0.3 s and was "
        "stopped (manager.query.timeout_s)"
    }
    big = api.operator.post("/api/query", json={"sql": "SELECT * FROM records"})
    assert big.status_code == 400
    assert big.json()["error"].startswith("refused (rule: row-limit): the query returns more")
    assert len(rows(api.operator.post("/api/query", json={"sql": "SELECT * FROM range(5)"}))) == 5
    assert ManagerConfig().query == QueryLimits(timeout_s=30.0, max_rows=1_000_000)
    assert ManagerConfig.model_validate({"query": {"timeout_s": 5}}).query.timeout_s == 5


# --- netdistill query -------------------------------------------------------------------------


def cli(data_dir: Path, sql: str) -> Any:
    return CliRunner().invoke(
        cli_app, ["query", "--data-dir", str(data_dir), "--format", "json", sql]
    )


def assert_cli_refuses_every_escape(world: World) -> None:
    for template, rule in ESCAPES:
        sql = world.sql(template)
        result = cli(world.data_dir, sql)
        assert result.exit_code == 1, (sql, result.output)
        assert f"refused (rule: {rule}): " in result.output, (sql, result.output)


def test_cli_through_a_running_manager_and_on_the_file(tmp_path):
    world = build_world(tmp_path / "data")
    manager = Manager(world.store, ManagerConfig(api_port=0), data_dir=world.data_dir)
    manager.start()
    before = snapshot(world)  # with the manager's own tables (windows, alerts)
    try:
        assert json.loads(Path(world.data_dir / "manager.json").read_text())["api"]
        assert_cli_refuses_every_escape(world)
        assert json.loads(cli(world.data_dir, "SELECT count(*) AS n FROM records").output) == [
            {"n": RECORDS}
        ]
        # the real command, in its own process, through the manager
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "netdistill",
                "query",
                "--data-dir",
                str(world.data_dir),
                UPDATE,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert "manager: refused (rule: one-select)" in done.stderr
        audited = world.store.query(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'query' AND user_name = 'token'"
        ).to_pylist()
        assert audited == [{"n": len(ESCAPES) + 2}]
    finally:
        manager.stop()
    assert snapshot(world) == before
    world.store.close()
    # no manager: the file, opened read-only and hardened
    assert_cli_refuses_every_escape(world)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "netdistill",
            "query",
            "--data-dir",
            str(world.data_dir),
            "SELECT * FROM read_text('/etc/shadow')",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "refused (rule: table-function)" in done.stderr
    assert not world.out.exists()
    store = DuckDBStore(world.data_dir / "records.duckdb")
    world.store = store
    try:
        assert snapshot(world) == before  # otto is still an operator
    finally:
        store.close()
