"""Writes to the manager's own tables (``windows``, ``alerts``) beside ``records``.

The ``Store`` protocol only reads (``query``) and commits record batches; the window job
and the monitor also keep small tables of their own. They write them here, through the
DuckDB store's connection and under its lock, so the manager stays the store's only
writer and a write never interleaves with a record commit. Reading goes through
``Store.query`` like every other reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netdistill.errors import StoreError
from netdistill.store import Store


def _duckdb(store: Store) -> Any:
    from netdistill.store.duckdb import DuckDBStore

    if not isinstance(store, DuckDBStore):
        raise StoreError(f"the manager's own tables need the DuckDB store, not {type(store)}")
    return store


def execute(store: Store, sql: str, params: Sequence[object] = ()) -> None:
    """Run one writing statement (DDL or DML) on the store's connection."""
    duck = _duckdb(store)
    with duck._lock:
        duck._writable()
        duck._conn.execute(sql, list(params))


def execute_many(store: Store, statements: Sequence[tuple[str, Sequence[object]]]) -> None:
    """Run ``statements`` in one transaction: all of them are durable, or none."""
    duck = _duckdb(store)
    with duck._lock:
        duck._writable()
        conn = duck._conn
        conn.execute("BEGIN")
        try:
            for sql, params in statements:
                conn.execute(sql, list(params))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
