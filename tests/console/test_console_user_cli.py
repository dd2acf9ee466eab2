"""``netdistill user`` on a store file and through a running manager's API: the users
table, hashes that verify, sessions ended, the audit log."""

from __future__ import annotations

import os

from console_testkit import CHEAP_HASHER
from typer.testing import CliRunner

from netdistill.cli import app
from netdistill.console.users import UserBook
from netdistill.manager.main import Manager
from netdistill.scheme.models import ManagerConfig
from netdistill.store.duckdb import DuckDBStore

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args))


def test_user_commands_on_the_store_file(tmp_path):
    data = str(tmp_path)
    added = cli(
        "user", "add", "noc", "--role", "operator", "--password", "noc-pass-1", "--data-dir", data
    )
    assert added.exit_code == 0, added.output
    assert added.output.strip() == "added noc (operator)"
    listed = cli("user", "list", "--data-dir", data)
    assert listed.output.split() == ["noc", "operator"]
    assert (
        cli("user", "passwd", "noc", "--password", "noc-pass-2", "--data-dir", data).exit_code == 0
    )
    assert (
        cli("user", "role", "noc", "viewer", "--data-dir", data).output.strip()
        == "noc is now viewer"
    )
    bad = cli("user", "role", "noc", "boss", "--data-dir", data)
    assert bad.exit_code == 1 and "unknown role 'boss'" in bad.output
    short = cli("user", "add", "x", "--password", "short", "--data-dir", data)
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    store = DuckDBStore(tmp_path / "records.duckdb")
    try:
        users = UserBook(store, hasher=CHEAP_HASHER)
        assert users.authenticate("noc", "noc-pass-1") is None
        assert users.authenticate("noc", "noc-pass-2").name == "viewer"
        audit = store.query("SELECT user_name, action FROM audit_log ORDER BY id").to_pylist()
        assert [(a["user_name"], a["action"]) for a in audit] == [
            ("cli", "user_add"),
            ("cli", "user_change"),
            ("cli", "user_change"),
        ]
    finally:
        store.close()
    assert cli("user", "remove", "noc", "--data-dir", data).output.strip() == "removed noc"
    assert cli("user", "list", "--data-dir", data).output.strip() == ""


def test_user_commands_through_a_running_manager(tmp_path):
    store = DuckDBStore(tmp_path / "records.duckdb")
    manager = Manager(store, ManagerConfig(api_host="127.0.0.1", api_port=0), data_dir=tmp_path)
    manager.start()
    try:
        data = str(tmp_path)
        assert os.path.exists(tmp_path / "manager.json")
        added = cli("user", "add", "noc", "--password", "noc-pass-1", "--data-dir", data)
        assert added.exit_code == 0, added.output
        assert cli("user", "list", "--data-dir", data).output.split() == [
            "admin",
            "admin",
            "noc",
            "viewer",
        ]
        gone = cli("user", "remove", "admin", "--data-dir", data)
        assert gone.exit_code == 1
        assert "'admin' is the last admin; make another admin first" in gone.output
        audit = store.query(
            "SELECT user_name, action FROM audit_log WHERE user_name = 'token' ORDER BY id"
        ).to_pylist()
        assert audit == [{"user_name": "token", "action": "POST /api/users"}]
    finally:
        manager.stop()
        store.close()
