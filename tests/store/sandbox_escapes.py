"""Shared by the query-sandbox tests (store, API, CLI): a store holding what an attacker
wants (console users with password hashes, sessions, the audit log, scheme versions, a
saved report, records) beside a ``manager.json`` with a token, the escape attempts with
the rule that must refuse each, and a snapshot to prove that nothing changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from argon2 import PasswordHasher

from netdistill.console.app import Console
from netdistill.records.ip import ipv4_to_text
from netdistill.records.schema import conform
from netdistill.reports import Report, save_report
from netdistill.scheme.versions import SchemeVersions
from netdistill.store.duckdb import DuckDBStore

CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
T0 = 1_800_000_000.0
OPERATOR = "otto"
PASSWORD = "password-otto"
RECORDS = 40
TOKEN = "world-token"

#: (SQL, rule that refuses it). ``{data}`` is the data directory, ``{out}`` a file that
#: must never be written, ``{db}`` the store file.
ESCAPES: list[tuple[str, str]] = [
    # EXPLAIN ANALYZE runs its statement
    ("EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}'", "one-select"),
    ("EXPLAIN ANALYZE CREATE TABLE pwned AS SELECT 1 AS x", "one-select"),
    (f"EXPLAIN ANALYZE UPDATE users SET role = 'admin' WHERE name = '{OPERATOR}'", "one-select"),
    ("EXPLAIN ANALYZE INSERT INTO users SELECT * FROM users", "one-select"),
    ("EXPLAIN ANALYZE DELETE FROM records", "one-select"),
    (f"explain (analyze) update users set role = 'admin' where name = '{OPERATOR}'", "one-select"),
    (
        f"EXPLAIN /* x */ ANALYZE UPDATE users SET role = 'admin' WHERE name = '{OPERATOR}'",
        "one-select",
    ),
    # other statements
    ("COPY records TO '{out}'", "one-select"),
    ("COPY (SELECT * FROM users) TO '{out}'", "one-select"),
    ("ATTACH '{data}/other.duckdb' AS other", "one-select"),
    ("INSTALL httpfs", "one-select"),
    ("LOAD httpfs", "one-select"),
    ("SET enable_external_access = true", "one-select"),
    ("RESET lock_configuration", "one-select"),
    ("PRAGMA enable_profiling", "one-select"),
    ("CALL pragma_version()", "one-select"),
    ("CREATE TABLE pwned (x INT)", "one-select"),
    (f"UPDATE users SET role = 'admin' WHERE name = '{OPERATOR}'", "one-select"),
    ("SELECT 1; SELECT 2", "one-select"),
    (f"SELECT 1; UPDATE users SET role = 'admin' WHERE name = '{OPERATOR}'", "one-select"),
    ("", "one-select"),
    ("SELEC 1", "syntax"),
    # host files and the store's own file
    ("SELECT * FROM read_csv('/etc/shadow')", "table-function"),
    ("SELECT * FROM read_text('/etc/shadow')", "table-function"),
    ("SELECT * FROM read_blob('/etc/shadow')", "table-function"),
    ("SELECT * FROM read_text('{data}/manager.json')", "table-function"),
    ("SELECT * FROM read_csv_auto('{data}/manager.json')", "table-function"),
    ("SELECT * FROM read_json('{data}/manager.json')", "table-function"),
    ("SELECT * FROM read_blob('{db}')", "table-function"),
    ("SELECT * FROM glob('/etc/*')", "table-function"),
    ("SELECT * FROM glob('{data}/*')", "table-function"),
    ("SELECT * FROM '/etc/passwd'", "table"),
    ("SELECT * FROM '{data}/manager.json'", "table"),
    ("SELECT * FROM range(1) r, LATERAL read_text('/etc/shadow')", "table-function"),
    # the catalogue and the configuration
    ("SELECT * FROM duckdb_settings()", "table-function"),
    ("SELECT * FROM duckdb_tables()", "table-function"),
    ("SELECT * FROM pragma_table_info('users')", "table-function"),
    ("SELECT * FROM query('SELECT * FROM users')", "table-function"),
    ("SELECT * FROM query_table('users')", "table-function"),
    ("SELECT current_setting('allowed_paths')", "function"),
    ("SELECT getvariable('x')", "function"),
    ("SELECT pg_get_viewdef(1)", "function"),  # a macro over duckdb_views()
    ("SELECT nextval('seq')", "function"),
    ("SELECT setseed(0.5)", "function"),
    ("SELECT pg_sleep(60)", "function"),
    ("SHOW TABLES", "table"),
    ("DESCRIBE users", "table"),
    ("SUMMARIZE users", "table"),
    ("SHOW users", "table"),
    # credential and console tables, directly and by every detour
    ("SELECT * FROM users", "table"),
    ("SELECT * FROM sessions", "table"),
    ("SELECT * FROM audit_log", "table"),
    ("SELECT * FROM scheme_versions", "table"),
    ("SELECT * FROM saved_reports", "table"),
    ("SELECT * FROM _commits", "table"),
    ("SELECT * FROM _fields", "table"),
    ("SELECT * FROM main.users", "table"),
    ("SELECT * FROM records.main.users", "table"),
    ("SELECT * FROM information_schema.tables", "table"),
    ("TABLE users", "table"),
    ("SELECT count(*) FROM records WHERE user_name IN (SELECT name FROM users)", "table"),
    ("SELECT (SELECT max(password_hash) FROM users)", "table"),
    ("SELECT count(*) FROM records WHERE EXISTS (SELECT 1 FROM sessions)", "table"),
    ("SELECT user_name FROM records UNION SELECT password_hash FROM users", "table"),
    ("SELECT * FROM records r, LATERAL (SELECT * FROM sessions) s", "table"),
    # a CTE named like a table counts only where it is defined
    ("SELECT * FROM (WITH users AS (SELECT 1 AS x) SELECT * FROM users) s, users", "table"),
    ("WITH users AS (SELECT * FROM users) SELECT * FROM users", "table"),
    (
        "WITH RECURSIVE users AS (SELECT * FROM users UNION ALL SELECT * FROM users) "
        "SELECT * FROM users",
        "table",
    ),
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a", "table"),
    ("EXPLAIN SELECT * FROM users", "table"),
]


@dataclass
class World:
    data_dir: Path
    store: DuckDBStore
    console: Console
    admin_password: str

    @property
    def out(self) -> Path:
        return self.data_dir / "out.csv"

    def sql(self, template: str) -> str:
        return template.format(
            data=self.data_dir, out=self.out, db=self.data_dir / "records.duckdb"
        )


def records(n: int = RECORDS) -> pa.Table:
    return conform(
        pa.table(
            {
                "src_ip": ipv4_to_text(np.arange(n, dtype=np.uint32) % 4 + 0x0A000001),
                "bytes": pa.array(np.arange(1, n + 1, dtype=np.uint64)),
                "packets": pa.array(np.ones(n, dtype=np.uint64)),
                "start_time": pa.array(
                    np.full(n, int(T0) * 1_000_000, dtype="datetime64[us]")
                ).cast(pa.timestamp("us", tz="UTC")),
                "source": pa.array(["nf"] * n),
                "user_name": pa.array([f"u{i % 3}" for i in range(n)]),
            }
        )
    )


def build_world(data_dir: Path) -> World:
    """The store, its console tables (admin + operator ``otto``), a scheme version, a
    saved report, ``RECORDS`` records, and ``manager.json`` with a token."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = DuckDBStore(data_dir / "records.duckdb", clock=lambda: T0)
    announced: list[str] = []
    console = Console(store, token=TOKEN, announce=announced.append, hasher=CHEAP_HASHER)
    console.users.add(OPERATOR, PASSWORD, "operator")
    console.sessions.create(OPERATOR)
    SchemeVersions(store).add("sources: []\n", user="admin", comment="first")
    save_report(store, Report(name="per_source", title="x", sql="SELECT 1 AS one"))
    store.commit(records(), origin="test", sequence=1)
    (data_dir / "manager.json").write_text(json.dumps({"token": TOKEN}))
    return World(data_dir, store, console, announced[0])


def snapshot(world: World) -> dict[str, Any]:
    """What an escape would change: the users' roles, the tables, the records, the files."""
    store = world.store
    return {
        "roles": store.query("SELECT name, role FROM users ORDER BY name").to_pylist(),
        "tables": store.query(
            "SELECT table_name FROM information_schema.tables ORDER BY 1"
        ).to_pylist(),
        "records": store.query("SELECT count(*) AS n FROM records").to_pylist(),
        "files": sorted(
            p.name
            for p in world.data_dir.iterdir()
            if not p.name.endswith(".wal") and p.name != "manager.json"
        ),
    }
