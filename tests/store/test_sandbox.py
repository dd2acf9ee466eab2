"""The query sandbox on the store itself (``Store.query_user``): every escape of the
table refused with its rule and nothing changed after it; DuckDB's own refusal as the
second layer; the queries of README.md and docs/*.md still run; time and row limits."""

from __future__ import annotations

import re
import time
from pathlib import Path

import duckdb
import pytest
from sandbox_escapes import ESCAPES, OPERATOR, RECORDS, build_world, snapshot

from netdistill.errors import QueryRefusedError, StoreError
from netdistill.manager.monitor import ensure_tables as ensure_alerts
from netdistill.manager.tables import execute
from netdistill.store.duckdb import DuckDBStore
from netdistill.store.sandbox import QueryLimits, QueryRun, check

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(tmp_path):
    w = build_world(tmp_path / "data")
    yield w
    w.store.close()


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory):
    """One world for the whole escape table: each escape must leave it as it was."""
    w = build_world(tmp_path_factory.mktemp("escapes") / "data")
    yield w
    w.store.close()


def test_the_findings_are_reproduced_on_the_trusted_path_only(world):
    """EXPLAIN ANALYZE <write> runs its statement when given to DuckDB as it is — which
    is why no person's SQL may reach ``Store.query``'s connection unchecked."""
    cursor = world.store._conn.cursor()
    cursor.execute("BEGIN")
    cursor.execute(f"EXPLAIN ANALYZE UPDATE users SET role = 'admin' WHERE name = '{OPERATOR}'")
    assert cursor.execute(f"SELECT role FROM users WHERE name = '{OPERATOR}'").fetchall() == [
        ("admin",)
    ]
    cursor.execute("ROLLBACK")
    with pytest.raises(QueryRefusedError, match=r"^refused \(rule: one-select\)"):
        world.store.query_user(
            f"EXPLAIN ANALYZE UPDATE users SET role = 'admin' WHERE name = '{OPERATOR}'"
        )
    assert world.console.users.role_of(OPERATOR).name == "operator"


@pytest.mark.parametrize(("template", "rule"), ESCAPES, ids=[e[0][:60] for e in ESCAPES])
def test_every_escape_is_refused_with_its_rule_and_changes_nothing(shared_world, template, rule):
    world = shared_world
    before = snapshot(world)
    sql = world.sql(template)
    with pytest.raises(QueryRefusedError) as refused:
        world.store.query_user(sql)
    assert refused.value.rule == rule
    assert str(refused.value).startswith(f"refused (rule: {rule}): ")
    assert snapshot(world) == before
    assert not world.out.exists()
    assert world.console.users.role_of(OPERATOR).name == "operator"


def test_refusal_messages_name_the_rule_and_what_broke_it(world):
    def message(sql: str) -> str:
        with pytest.raises(QueryRefusedError) as refused:
            world.store.query_user(sql)
        return str(refused.value)

    assert message("SELECT * FROM users") == (
        "refused (rule: table): 'users' is not readable here (records, quarantine and the "
        "report tables are: see docs/security.md)"
    )
    assert message("SELECT * FROM read_text('/etc/shadow')") == (
        "refused (rule: table-function): read_text() is not allowed "
        "(only generate_series, range, unnest)"
    )
    assert (
        message("SELECT nextval('s')") == "refused (rule: function): nextval() is not allowed here"
    )
    assert message("EXPLAIN ANALYZE SELECT 1") == (
        "refused (rule: one-select): EXPLAIN ANALYZE runs its statement; use EXPLAIN"
    )
    assert message("DELETE FROM records") == (
        "refused (rule: one-select): only a SELECT is allowed, not DELETE"
    )
    assert message("SELECT 1; SELECT 2") == (
        "refused (rule: one-select): exactly one statement is allowed, found 2"
    )


def test_what_the_sandbox_allows(world):
    q = world.store.query_user
    assert q("SELECT count(*) AS n FROM records").to_pylist() == [{"n": RECORDS}]
    assert q("SELECT count(*) AS n FROM main.records").to_pylist() == [{"n": RECORDS}]
    # a CTE may be named like a credential table; it is the CTE that is read
    assert q("WITH users AS (SELECT 7 AS x) SELECT x FROM users").to_pylist() == [{"x": 7}]
    assert q(
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 4) "
        "SELECT sum(n) AS s FROM t"
    ).to_pylist() == [{"s": 10}]
    assert q(
        "SELECT sum(x) AS s, list_sum([1, 2]) AS l FROM range(5) t(x), unnest([1]) u(y)"
    ).to_pylist() == [{"s": 10, "l": 3}]
    assert q(
        "SELECT user_name, sum(bytes) AS b, row_number() OVER (ORDER BY sum(bytes) DESC) AS r "
        "FROM records GROUP BY ALL ORDER BY r"
    ).column("user_name").to_pylist() == ["u0", "u2", "u1"]  # sums 287, 273, 260
    plan = q("EXPLAIN SELECT count(*) FROM records").to_pylist()
    assert plan and plan[0]["explain_key"] == "physical_plan"
    assert q("SELECT count(*) AS n FROM quarantine").to_pylist() == [{"n": 0}]
    # bound parameters are values, never SQL
    injected = q(
        "SELECT count(*) AS n FROM records WHERE user_name = $u",
        {"u": "x' OR 1=1; UPDATE users SET role = 'admin' --"},
    )
    assert injected.to_pylist() == [{"n": 0}]
    assert world.console.users.role_of(OPERATOR).name == "operator"
    # a mistake that is not a refusal is a plain store error, naming it
    with pytest.raises(StoreError, match="nosuch") as error:
        q("SELECT nosuch FROM records")
    assert not isinstance(error.value, QueryRefusedError)


def test_the_database_refuses_files_extensions_and_settings_by_itself(world):
    """The second layer, without the parser's: the connection's own configuration."""
    cursor = world.store._conn.cursor()
    for sql in (
        "SELECT * FROM read_text('/etc/shadow')",
        f"SELECT * FROM read_text('{world.data_dir}/manager.json')",
        f"SELECT * FROM glob('{world.data_dir}/*')",
        f"COPY (SELECT 1) TO '{world.out}'",
        f"ATTACH '{world.data_dir}/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
    ):
        with pytest.raises(duckdb.PermissionException, match="disabled"):
            cursor.execute(sql)
    for sql in (
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "SET TimeZone = 'Europe/Paris'",
        "SET python_enable_replacements = true",
    ):
        with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
            cursor.execute(sql)
    assert cursor.execute("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]
    assert not world.out.exists() and not (world.data_dir / "other.duckdb").exists()
    # the read-only opening (``netdistill query`` on the file) is hardened the same way
    world.store.close()
    reader = DuckDBStore(world.data_dir / "records.duckdb", read_only=True)
    try:
        with pytest.raises(duckdb.PermissionException):
            reader._conn.cursor().execute("SELECT * FROM read_text('/etc/shadow')")
        with pytest.raises(QueryRefusedError, match="rule: table"):
            reader.query_user("SELECT * FROM users")
        assert reader.query_user("SELECT count(*) AS n FROM records").to_pylist() == [
            {"n": RECORDS}
        ]
    finally:
        reader.close()
    world.store = DuckDBStore(world.data_dir / "records.duckdb")  # for the fixture


def _documented_queries() -> list[tuple[str, str, dict[str, str]]]:
    """Every ``netdistill query … "SQL"`` of README.md and docs/*.md, with its -p values,
    and the saved report of docs/reports.md."""
    found = []
    command = re.compile(
        r'netdistill query((?: +(?:-p|--param|--format|-f) +\S+)*) +"((?:[^"\\\n]|\\.)*)"'
    )
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in command.finditer(text):
            params = dict(re.findall(r"(?:-p|--param) +(\w+)=(\S+)", match.group(1)))
            found.append((path.name, match.group(2).replace("\\$", "$"), params))
        for sql in re.findall(r'"sql": "((?:[^"\\\n]|\\.)*)"', text):
            found.append((path.name, sql, {"from": "2020-01-01", "to": "2100-01-01"}))
    return found


def test_the_documented_queries_still_run(world):
    documented = _documented_queries()
    assert len(documented) >= 12  # README, store, stages, monitoring, reports, security …
    store = world.store
    ensure_alerts(store)
    execute(store, "CREATE TABLE agg_conversations (src_ip VARCHAR, bytes UBIGINT)")
    execute(store, "INSERT INTO agg_conversations VALUES ('10.0.0.1', 5)")
    for where, sql, params in documented:
        try:
            store.query_user(sql, params or None)
        except StoreError as exc:
            pytest.fail(f"{where}: {sql!r} failed: {exc}")


def test_time_limit_interrupts_a_long_query(world):
    limits = QueryLimits(timeout_s=0.3)
    measured = QueryRun()
    started = time.monotonic()
    with pytest.raises(QueryRefusedError) as stopped:
        world.store.query_user(
            "SELECT sum(x * y) AS s FROM range(100000000) a(x), range(100000000) b(y)",
            limits=limits,
            measured=measured,
        )
    elapsed = time.monotonic() - started
    assert str(stopped.value) == (
        "refused (rule: time-limit): the query ran longer than 0.3 s and was stopped "
        "(manager.query.timeout_s)"
    )
    assert stopped.value.rule == "time-limit"
    assert 0.3 <= elapsed < 5, elapsed
    # the store answers the next query at once
    assert world.store.query_user("SELECT count(*) AS n FROM records").to_pylist() == [
        {"n": RECORDS}
    ]


def test_row_limit_stops_a_huge_result_while_fetching(world):
    limits = QueryLimits(max_rows=25)
    assert world.store.query_user("SELECT * FROM range(25)", limits=limits).num_rows == 25
    with pytest.raises(QueryRefusedError) as stopped:
        world.store.query_user("SELECT * FROM records", limits=limits)
    assert str(stopped.value) == (
        "refused (rule: row-limit): the query returns more than 25 rows "
        "(manager.query.max_rows); aggregate, or add a LIMIT"
    )
    # streamed: a billion-row result is stopped after its first batches, not built
    started = time.monotonic()
    measured = QueryRun()
    with pytest.raises(QueryRefusedError, match="rule: row-limit"):
        world.store.query_user(
            "SELECT * FROM range(1000000000)",
            limits=QueryLimits(max_rows=100_000),
            measured=measured,
        )
    assert time.monotonic() - started < 5
    assert 100_000 < measured.rows < 1_000_000


def test_check_alone_reads_only_the_text():
    check("SELECT * FROM agg_conversations JOIN rollup_monthly_accounts USING (account_id)")
    check("SELECT * FROM windows, alerts, exports, balances, balance_changes, alert_actions")
    for name in ("alert_tasks", "_agg_state_x", "rollup_x_secret", "answered_requests"):
        with pytest.raises(QueryRefusedError, match="rule: table"):
            check(f"SELECT * FROM {name}")


def test_a_table_lookup_over_the_store_runs_in_the_sandbox(world):
    """An operator writes a lookup's SQL in the scheme: the same sandbox as a query."""
    from netdistill.lookups.tabular import LookupDataError, RowsSource, load_rows

    columns = {"name": "string", "role": "string"}
    for sql, rule in (
        ("SELECT name, role FROM users", "table"),
        (
            f"EXPLAIN ANALYZE UPDATE users SET role = 'admin' WHERE name = '{OPERATOR}'",
            "one-select",
        ),
    ):
        with pytest.raises(LookupDataError, match=rf"^sql on the store: refused \(rule: {rule}\)"):
            load_rows(RowsSource(sql=sql), columns, store=world.store)
    assert world.console.users.role_of(OPERATOR).name == "operator"
    rows = load_rows(
        RowsSource(sql="SELECT user_name AS name, 'x' AS role FROM records GROUP BY 1 ORDER BY 1"),
        columns,
        store=world.store,
    )
    assert rows.column("name").to_pylist() == ["u0", "u1", "u2"]
