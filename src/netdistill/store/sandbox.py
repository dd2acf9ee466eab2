"""The query sandbox: how SQL that a person wrote runs on the store (SYSTEM.md §9).

Every path that runs a person's SQL comes here — ``POST /api/query`` (CLI through the
manager, console sessions), ``netdistill query`` straight on the file, saved reports
(checked when saved and again before each run, parameters always bound) and a ``table``
lookup whose rows come from the store. The manager's own SQL (stages, built-in reports,
the console's tables) uses ``Store.query``, which no person's text reaches.

Two layers, so that one mistake is not an escape (defence in depth):

1. **The statement, as DuckDB's own parser reads it** (``check``). ``duckdb.extract_statements``
   must find exactly one statement, of kind SELECT (``EXPLAIN <select>`` too, never
   ``EXPLAIN ANALYZE``, which *runs* its statement). ``json_serialize_sql`` — DuckDB's
   parse tree as JSON, which exists only for SELECTs — is then walked:

   * every base table named must be in the allow list (``ALLOWED_TABLES`` and the stage
     output patterns); a CTE name counts only inside the query node that defines it
     and below (a CTE called ``users`` in a subquery does not make an outer ``users``
     readable; a non-recursive CTE does not see itself);
   * table functions only from ``ALLOWED_TABLE_FUNCTIONS`` (``range``, ``generate_series``,
     ``unnest``): ``query()``, ``read_*``, ``glob``, ``duckdb_*()``, ``pragma_*`` … are
     refused, and so is a replacement scan (``FROM '/etc/passwd'``: a table name that is
     not allowed);
   * scalar, aggregate and window functions must be DuckDB built-ins that are not
     volatile (``nextval``, ``setseed``, ``sleep_ms`` … are), minus ``DENIED_FUNCTIONS``
     (``current_setting``, ``getvariable``: configuration); a built-in *macro* is allowed
     only when its own body passes the same rules (``pg_get_viewdef`` reads
     ``duckdb_views()`` and is refused, ``list_sum`` is allowed);
   * any parse-tree node of a kind this module does not know is refused (fail closed).

2. **The database refuses the rest.** The store's DuckDB instance is opened with
   ``enable_external_access=false`` (no file, network or extension access from SQL),
   ``python_enable_replacements=false`` (no Python variable read by name) and then
   ``lock_configuration=true`` (``SET`` cannot undo either) — see
   ``store/duckdb.py::connect``. DuckDB still lets SQL read the database file and its
   WAL (``read_blob('records.duckdb')`` works with external access off), which is one
   reason the first layer refuses every table function but three.

Limits (``QueryLimits``, the scheme's ``manager.query``): a query running longer than
``timeout_s`` is interrupted (``cursor.interrupt()`` from a timer), and one returning more
than ``max_rows`` rows is stopped while its record batches are fetched. Both raise
``QueryRefusedError`` naming the limit and its setting.

Every refusal is a ``QueryRefusedError`` whose message starts ``refused (rule: <rule>):``
(``one-select``, ``table``, ``table-function``, ``function``, ``syntax``, ``time-limit``,
``row-limit``); the API answers it with HTTP 400.

The walk is hand-written (DuckDB has no ready-made sandbox and sqlglot would be a
second parser that can disagree with the one that runs the query); it reads only the
JSON DuckDB produces.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from netdistill.errors import QueryRefusedError, StoreError

#: tables a person's query may read (besides the stage output patterns below)
ALLOWED_TABLES = frozenset(
    {
        "records",
        "quarantine",
        "windows",
        "alerts",
        "alert_actions",
        "exports",
        "balances",
        "balance_changes",
        # rating and invoices (docs/rating.md): issued documents are reports
        "invoices",
        "invoice_lines",
        "invoice_exports",
        "billing_usage",
        "billing_rated",
        "billing_plans",
        "billing_prices",
        "billing_tiers",
    }
)
#: stage outputs: ``agg_<stage>`` (aggregate), ``rollup_<name>_{periods,accounts,companies}``,
#: and on a central manager ``rollup_<name>_{pops,pop_periods}``, ``pop_agg_<stage>``
ALLOWED_TABLE_PATTERNS = (
    re.compile(r"^agg_[a-z0-9_]+$"),
    re.compile(r"^rollup_[a-z0-9_]+_(periods|accounts|companies|pops|pop_periods)$"),
    # what points of presence forwarded (docs/hierarchy.md)
    re.compile(r"^pop_agg_[a-z0-9_]+$"),
)
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
#: built-ins that are not volatile but read the configuration or session state
DENIED_FUNCTIONS = frozenset(
    {"current_setting", "getvariable", "current_schemas", "current_query", "txid_current"}
)
#: volatile built-ins that change nothing and read nothing
ALLOWED_VOLATILE = frozenset({"random", "uuid", "gen_random_uuid", "uuidv4", "uuidv7", "error"})
#: names the parser produces that ``duckdb_functions()`` does not list
PARSER_FUNCTIONS = frozenset({"unnest", "unlist", "columns", "struct_pack", "row"})

_QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
_TABLE_REFS = frozenset(
    {
        "BASE_TABLE",
        "JOIN",
        "SUBQUERY",
        "TABLE_FUNCTION",
        "EMPTY",
        "EXPRESSION_LIST",
        "SHOW_REF",
        "PIVOT",
    }
)
_EXPLAIN = re.compile(r"^\s*explain\s+", re.IGNORECASE)


class QueryLimits(BaseModel):
    """``manager.query``: the limits of one query a person wrote."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: PositiveFloat = Field(30.0, description="a longer query is interrupted")
    max_rows: PositiveInt = Field(
        1_000_000, description="a query returning more rows is stopped (aggregate or LIMIT)"
    )


def refused(rule: str, why: str) -> QueryRefusedError:
    return QueryRefusedError(rule, f"refused (rule: {rule}): {why}")


def table_allowed(name: str) -> bool:
    name = name.lower()
    return name in ALLOWED_TABLES or any(p.match(name) for p in ALLOWED_TABLE_PATTERNS)


# --- layer 1: the parse tree --------------------------------------------------------------


class _Parser:
    """A private in-memory DuckDB (nothing in it, no external access) that serializes
    parse trees and knows the built-in functions. One per process, behind a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn = duckdb.connect(
            ":memory:", config={"enable_external_access": False, "lock_configuration": True}
        )
        rows = self._conn.execute(
            "SELECT DISTINCT function_name, function_type, stability FROM duckdb_functions() "
            "WHERE internal"
        ).fetchall()
        self.plain: set[str] = set(PARSER_FUNCTIONS)
        self.macros: dict[str, list[str]] = {}
        for name, kind, stability in rows:
            if kind in ("scalar", "aggregate", "window") and (
                stability != "VOLATILE" or name in ALLOWED_VOLATILE
            ):
                self.plain.add(name.lower())
        for name, body in self._conn.execute(
            "SELECT function_name, macro_definition FROM duckdb_functions() "
            "WHERE internal AND function_type = 'macro'"
        ).fetchall():
            self.macros.setdefault(name.lower(), []).append(body or "NULL")
        self._macro_ok: dict[str, bool] = {}
        self._computing: set[str] = set()
        for name in sorted(self.macros):  # all now, so later calls only read
            self._macro_allowed(name)

    def statements(self, sql: str) -> list[Any]:
        with self._lock:
            return list(self._conn.extract_statements(sql))

    def tree(self, sql: str) -> dict[str, Any]:
        with self._lock:
            row = self._conn.execute("SELECT json_serialize_sql($q)", {"q": sql}).fetchone()
        assert row is not None
        return dict(json.loads(row[0]))

    def function_allowed(self, name: str) -> bool:
        name = name.lower()
        if name in DENIED_FUNCTIONS:
            return False
        if name in self.macros and name not in self._computing:
            return self._macro_allowed(name)
        return name in self.plain

    def _macro_allowed(self, name: str) -> bool:
        if name not in self._macro_ok:
            # inside its own body, a macro's name is the built-in function it wraps
            # (``current_database`` → ``system.main.current_database()``)
            self._computing.add(name)
            try:
                for body in self.macros[name]:
                    tree = self.tree(f"SELECT {body}")
                    if tree.get("error"):
                        raise refused("function", f"the body of macro {name}")
                    _Walk(self, macro=True).statement(tree["statements"][0]["node"])
                self._macro_ok[name] = True
            except QueryRefusedError:
                self._macro_ok[name] = False
            finally:
                self._computing.discard(name)
        return self._macro_ok[name]


@functools.cache
def _parser() -> _Parser:
    return _Parser()


class _Walk:
    """One walk over a parse tree; raises ``QueryRefusedError`` at the first thing refused."""

    def __init__(self, parser: _Parser, *, macro: bool = False) -> None:
        self.parser = parser
        self.macro = macro  # a macro body: no tables at all

    def statement(self, node: dict[str, Any]) -> None:
        self.visit(node, frozenset())

    def visit(self, value: Any, ctes: frozenset[str]) -> None:
        if isinstance(value, list):
            for item in value:
                self.visit(item, ctes)
            return
        if not isinstance(value, dict):
            return
        if "class" in value:
            self.expression(value, ctes)
        elif "cte_map" in value and "modifiers" in value:
            self.query_node(value, ctes)
        elif "sample" in value and "alias" in value and "type" in value:
            self.table_ref(value, ctes)
        else:
            for item in value.values():
                self.visit(item, ctes)

    def query_node(self, node: dict[str, Any], ctes: frozenset[str]) -> None:
        kind = node.get("type")
        if kind not in _QUERY_NODES:
            raise refused("one-select", f"unknown query part {kind}")
        scope = ctes
        for entry in node["cte_map"]["map"]:
            # a CTE's body sees the CTEs before it, not itself (but see RECURSIVE_CTE_NODE)
            self.visit(entry["value"], scope)
            scope = scope | {str(entry["key"]).lower()}
        if kind == "RECURSIVE_CTE_NODE":
            # the anchor (left) does not see the CTE; the recursive part (right) does
            name = str(node.get("cte_name", "")).lower()
            self.visit(node.get("left"), scope)
            self.visit(node.get("right"), scope | {name})
            rest = {k: v for k, v in node.items() if k not in ("cte_map", "left", "right")}
        else:
            rest = {k: v for k, v in node.items() if k != "cte_map"}
        for item in rest.values():
            self.visit(item, scope)

    def table_ref(self, ref: dict[str, Any], ctes: frozenset[str]) -> None:
        kind = ref["type"]
        if kind not in _TABLE_REFS:
            raise refused("table", f"a {kind} reference is not allowed")
        if kind == "BASE_TABLE":
            self.base_table(ref, ctes)
            self.visit(ref.get("at_clause"), ctes)
            return
        if kind == "TABLE_FUNCTION":
            function = ref["function"]
            name = str(function.get("function_name", "")).lower()
            if name not in ALLOWED_TABLE_FUNCTIONS or function.get("class") != "FUNCTION":
                raise refused(
                    "table-function",
                    f"{name or '?'}() is not allowed (only "
                    f"{', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})",
                )
            self.visit(function.get("arguments"), ctes)
            self.visit([v for k, v in ref.items() if k not in ("function", "type")], ctes)
            return
        if kind == "SHOW_REF":
            if ref.get("query") is None:
                name = str(ref.get("table_name", "")).strip('"')
                if ref.get("show_type") != "SHOW" or not name:
                    raise refused("table", "SHOW of the catalogue is not allowed")
                self.base_table({"table_name": name, "schema_name": ref.get("schema_name")}, ctes)
            self.visit(ref.get("query"), ctes)
            return
        for key, item in ref.items():
            if key != "type":
                self.visit(item, ctes)

    def base_table(self, ref: dict[str, Any], ctes: frozenset[str]) -> None:
        name = str(ref.get("table_name", ""))
        schema = str(ref.get("schema_name") or "").lower()
        catalog = str(ref.get("catalog_name") or "").lower()
        if self.macro:
            raise refused("table", "a macro that reads a table")
        if not schema and not catalog and name.lower() in ctes:
            return
        if catalog or schema not in ("", "main") or not table_allowed(name):
            shown = ".".join(p for p in (catalog, schema, name) if p)
            raise refused(
                "table",
                f"{shown!r} is not readable here (records, quarantine and the report tables "
                "are: see docs/security.md)",
            )

    def expression(self, expr: dict[str, Any], ctes: frozenset[str]) -> None:
        if "function_name" in expr:
            name = str(expr["function_name"])
            if expr["class"] not in ("FUNCTION", "WINDOW") or not self.parser.function_allowed(
                name
            ):
                raise refused("function", f"{name}() is not allowed here")
        for key, item in expr.items():
            if key != "class":
                self.visit(item, ctes)


def check(sql: str) -> None:
    """Raise ``QueryRefusedError`` unless ``sql`` is one SELECT within the sandbox's rules."""
    parser = _parser()
    try:
        statements = parser.statements(sql)
    except duckdb.Error as exc:
        raise refused("syntax", _first_line(exc)) from None
    if len(statements) != 1:
        raise refused("one-select", f"exactly one statement is allowed, found {len(statements)}")
    kind = statements[0].type
    text = sql
    if kind == duckdb.StatementType.EXPLAIN:
        match = _EXPLAIN.match(sql)
        text = sql[match.end() :] if match else ""
        if re.match(r"^(analy[sz]e\b|\()", text.lstrip(), re.IGNORECASE):
            raise refused("one-select", "EXPLAIN ANALYZE runs its statement; use EXPLAIN")
        try:
            inner = parser.statements(text) if text else []
        except duckdb.Error:
            inner = []
        if len(inner) != 1 or inner[0].type != duckdb.StatementType.SELECT:
            raise refused("one-select", "only EXPLAIN of one SELECT is allowed")
    elif kind != duckdb.StatementType.SELECT:
        raise refused("one-select", f"only a SELECT is allowed, not {kind.name}")
    tree = parser.tree(text)
    if tree.get("error"):
        raise refused("syntax", str(tree.get("error_message", "cannot parse")))
    if len(tree["statements"]) != 1:
        raise refused("one-select", "exactly one statement is allowed")
    _Walk(parser).statement(tree["statements"][0]["node"])


# --- running it ---------------------------------------------------------------------------


@dataclass
class QueryRun:
    """What ``run`` measured (for the audit log)."""

    rows: int = 0
    elapsed_ms: float = 0.0


def run(
    connection: Any,
    sql: str,
    params: Mapping[str, object] | None,
    limits: QueryLimits,
    measured: QueryRun | None = None,
) -> pa.Table:
    """Check ``sql`` and run it on a fresh cursor of ``connection`` within ``limits``."""
    measured = measured if measured is not None else QueryRun()
    started = time.monotonic()
    try:
        check(sql)
        return _execute(connection, sql, params, limits, measured)
    finally:
        measured.elapsed_ms = round((time.monotonic() - started) * 1000, 1)


def _execute(
    connection: Any,
    sql: str,
    params: Mapping[str, object] | None,
    limits: QueryLimits,
    measured: QueryRun,
) -> pa.Table:
    cursor = connection.cursor()
    interrupted = threading.Event()

    def interrupt() -> None:
        interrupted.set()
        with contextlib.suppress(duckdb.Error):  # finished meanwhile
            cursor.interrupt()

    timer = threading.Timer(limits.timeout_s, interrupt)
    timer.daemon = True
    timer.start()
    try:
        # a relation streams its record batches (``cursor.execute`` would first
        # materialize every row): the row limit stops a huge result early
        relation = cursor.sql(sql, params=dict(params) if params else None)
        reader = relation.to_arrow_reader(min(limits.max_rows + 1, 65_536))
        batches = list(_bounded(reader, limits, measured))
        return pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.InterruptException:
        raise _timed_out(limits) from None
    except duckdb.Error as exc:
        if interrupted.is_set():
            raise _timed_out(limits) from None
        raise StoreError(_first_line(exc)) from None
    except pa.ArrowException as exc:
        if interrupted.is_set():
            raise _timed_out(limits) from None
        raise StoreError(str(exc)) from None
    finally:
        timer.cancel()
        cursor.close()


def _bounded(
    reader: pa.RecordBatchReader, limits: QueryLimits, measured: QueryRun
) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        measured.rows += batch.num_rows
        if measured.rows > limits.max_rows:
            raise refused(
                "row-limit",
                f"the query returns more than {limits.max_rows:,} rows "
                "(manager.query.max_rows); aggregate, or add a LIMIT",
            )
        yield batch


def _timed_out(limits: QueryLimits) -> QueryRefusedError:
    return refused(
        "time-limit",
        f"the query ran longer than {limits.timeout_s:g} s and was stopped "
        "(manager.query.timeout_s)",
    )


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else repr(exc)
