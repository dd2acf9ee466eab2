"""The central database behind one interface (the seeds' central database).

The manager is the only writer. ``Store.commit`` is idempotent on (origin, sequence):
a batch resent after a lost acknowledgement never creates duplicate records. DuckDB is
the embedded default (``store/duckdb.py``); a PostgreSQL store implements the same
protocol and passes the same tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from netdistill.errors import FieldError
from netdistill.records.batch import FieldSpec, Quarantined
from netdistill.records.fields import FieldRegistry
from netdistill.store.sandbox import QueryLimits, QueryRun


class Store(Protocol):
    """The records table and everything derived from it.

    Guarantees: ``commit`` returns only after the batch is durable (on disk for DuckDB);
    it may be called from one thread at a time per store, while ``query`` may be called
    from any thread concurrently. ``query`` never changes the store; it is for the
    manager's own SQL. SQL a person wrote goes to ``query_user`` (the query sandbox,
    ``store/sandbox.py``), never to ``query``.
    """

    fields: FieldRegistry

    def commit(self, batch: pa.Table, *, origin: str, sequence: int) -> int:
        """Insert ``batch`` (source schema; record_id and ingested_at are stamped here).
        Returns the number of rows inserted: 0 when (origin, sequence) was committed before."""

    def commit_quarantine(
        self,
        items: Sequence[Quarantined] | pa.Table,
        *,
        origin: str | None = None,
        sequence: int | None = None,
    ) -> int:
        """Insert bad input set aside (items, or a table in ``QUARANTINE_SCHEMA``) in one
        columnar insert; with ``origin``/``sequence`` idempotent like ``commit``. The
        write lock is held for that one insert, never across batches."""

    def last_sequence(self, origin: str) -> int:
        """The highest sequence committed for ``origin`` (0 if none)."""

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> pa.Table: ...

    def query_user(
        self,
        sql: str,
        params: Mapping[str, object] | None = None,
        *,
        limits: QueryLimits | None = None,
        measured: QueryRun | None = None,
    ) -> pa.Table:
        """Run a person's SQL in the sandbox; ``QueryRefusedError`` names a broken rule."""

    def age(self, retention_s: float) -> int:
        """Delete records ingested more than ``retention_s`` ago; return how many."""

    def prune_commits(self, before: float) -> int:
        """Forget the idempotency keys of batches committed before ``before`` (Unix s),
        keeping each origin's newest; returns how many were deleted."""

    def add_field(self, name: str, type_: str, description: str = "") -> None: ...

    def drop_field(self, name: str) -> None: ...

    def alter_field(self, name: str, type_: str) -> None: ...

    def close(self) -> None: ...


def ensure_fields(store: Store, specs: Sequence[FieldSpec], *, source: str) -> list[str]:
    """Add the fields ``source`` produces that ``records`` lacks; returns the names added.

    A field that exists with another type is an error naming both types: the operator
    altered or added it on purpose, and silently casting would lose data."""
    added = []
    for spec in specs:
        field = store.fields.get(spec.name)
        if field is None:
            store.add_field(spec.name, spec.type, spec.description)
            added.append(spec.name)
        elif field.type != spec.type:
            raise FieldError(
                f"source {source!r} produces field {spec.name!r} as {spec.type}, but records "
                f"has it as {field.type}; change it back with "
                f"'netdistill fields alter {spec.name} {spec.type}' or rename the field"
            )
    return added


def open_duckdb(path: Path, *, read_only: bool = False) -> Store:
    from netdistill.store.duckdb import DuckDBStore

    return DuckDBStore(path, read_only=read_only)


__all__ = ["Store", "ensure_fields", "open_duckdb"]
