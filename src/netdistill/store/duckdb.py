"""The embedded store: one DuckDB file in the data directory.

Tables: ``records`` (the usage records, one column per registered field),
``quarantine`` (inputs that could not be used, with the reason and place, the payload
cut to the gate's ``payload_bytes`` and its whole length in ``payload_length``),
``_commits`` (origin, sequence) → rows, which makes ``commit`` idempotent, and
``_fields``, the persistent field registry (ids are never reused).

DuckDB allows one writing process per file, so while the manager runs, other processes
(``netdistill query``) go through the manager's API; when it does not, they open the file
read-only. Times are kept as TIMESTAMPTZ and the session time zone is UTC.

Two ways to read: ``query`` for the manager's own SQL (stages, built-in reports, the
console's tables), and ``query_user`` for SQL a person wrote, which runs in the query
sandbox (``store/sandbox.py``). Every connection is opened by ``connect``: no file,
network or extension access from SQL, no Python variables read by name, and the
configuration locked so that no statement can turn either back on. The manager's own
code needs none of them (Arrow tables reach DuckDB through ``register``; exports write
files with pyarrow), so the whole instance runs hardened: the sandbox's parser rules
and DuckDB's own refusal are two independent layers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from netdistill.errors import FieldError, StoreError
from netdistill.records.batch import Quarantined
from netdistill.records.fields import (
    MANAGER_FIELDS,
    STANDARD_FIELDS,
    Field,
    FieldRegistry,
    check_field_name,
    check_field_type,
)
from netdistill.records.quarantine import conform_quarantine, quarantine_table
from netdistill.store import sandbox
from netdistill.store.sandbox import QueryLimits, QueryRun

#: DuckDB settings of every connection (see the module docstring)
HARDENED = {"enable_external_access": False, "python_enable_replacements": False}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS _fields (
    id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, type VARCHAR NOT NULL,
    description VARCHAR, standard BOOLEAN NOT NULL, dropped BOOLEAN NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS _commits (
    origin VARCHAR NOT NULL, sequence BIGINT NOT NULL, rows BIGINT NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (origin, sequence));
CREATE TABLE IF NOT EXISTS quarantine (
    received_at TIMESTAMPTZ, source VARCHAR, exporter VARCHAR, reason VARCHAR,
    detail VARCHAR, "offset" INTEGER, payload BLOB);
ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS location VARCHAR;
"""

#: ``payload_length`` (the length a payload had before the quarantine gate cut it) came
#: later: a store without it gets it, filled from the payloads it kept whole
_ADD_PAYLOAD_LENGTH = """
ALTER TABLE quarantine ADD COLUMN payload_length BIGINT;
UPDATE quarantine SET payload_length = octet_length(payload);
"""


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open ``path`` hardened: ``HARDENED`` at connect, the session time zone UTC, then
    ``lock_configuration`` (the time zone is set after connecting, since the ICU
    extension that knows time zones is loaded only then)."""
    conn = duckdb.connect(str(path), read_only=read_only, config=dict(HARDENED))
    try:
        conn.execute("SET GLOBAL TimeZone = 'UTC'")
        conn.execute("SET lock_configuration = true")
    except BaseException:
        conn.close()
        raise
    return conn


class DuckDBStore:
    """The DuckDB implementation of ``netdistill.store.Store``."""

    def __init__(
        self, path: Path, *, read_only: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._clock = clock
        self._lock = threading.Lock()
        if read_only and not self.path.exists():
            raise StoreError(f"no store at {self.path}: nothing has been collected yet")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = connect(self.path, read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreError(
                    f"{self.path} is in use by another process (a running manager?): "
                    "query it through the manager, or stop it first"
                ) from None
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        if not read_only:
            self._conn.execute(_SCHEMA)
            self._migrate_quarantine()
            self._init_fields()
        self.fields = self._load_fields()
        if not read_only:
            self._create_records()
        row = self._conn.execute("SELECT max(record_id) FROM records").fetchone()
        self._next_record_id = (row[0] or 0) + 1 if row else 1

    def _migrate_quarantine(self) -> None:
        columns = self._conn.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'quarantine'"
            " AND schema_name = 'main'"
        ).fetchall()
        if ("payload_length",) not in columns:
            self._conn.execute("BEGIN")
            self._conn.execute(_ADD_PAYLOAD_LENGTH)
            self._conn.execute("COMMIT")

    # --- field registry ------------------------------------------------------------------

    def _init_fields(self) -> None:
        if self._conn.execute("SELECT count(*) FROM _fields").fetchone()[0]:  # type: ignore[index]
            return
        self._conn.executemany(
            "INSERT INTO _fields VALUES (?, ?, ?, ?, true, false)",
            [(f.id, f.name, f.type, f.description) for f in STANDARD_FIELDS],
        )

    def _load_fields(self) -> FieldRegistry:
        rows = self._conn.execute(
            "SELECT id, name, type, description, standard, dropped FROM _fields ORDER BY id"
        ).fetchall()
        live = [Field(r[0], r[1], r[2], r[3] or "", r[4]) for r in rows if not r[5]]
        return FieldRegistry(live, next_id=max((r[0] for r in rows), default=0) + 1)

    def _create_records(self) -> None:
        columns = ", ".join(f'"{f.name}" {f.duckdb_type}' for f in self.fields)
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS records ({columns})")

    def add_field(self, name: str, type_: str, description: str = "") -> None:
        with self._lock:
            self._writable()
            field = self.fields.add(name, type_, description)
            self._conn.execute("BEGIN")
            try:
                self._conn.execute(f'ALTER TABLE records ADD COLUMN "{name}" {field.duckdb_type}')
                self._conn.execute(
                    "INSERT INTO _fields VALUES (?, ?, ?, ?, false, false)",
                    (field.id, name, type_, description),
                )
                self._conn.execute("COMMIT")
            except duckdb.Error as exc:
                self._conn.execute("ROLLBACK")
                self.fields.drop(name)
                raise StoreError(f"cannot add field {name!r}: {exc}") from None

    def drop_field(self, name: str) -> None:
        with self._lock:
            self._writable()
            field = self.fields.drop(name)
            try:
                self._conn.execute(f'ALTER TABLE records DROP COLUMN "{name}"')
                self._conn.execute("UPDATE _fields SET dropped = true WHERE id = ?", (field.id,))
            except duckdb.Error as exc:
                self.fields = self._load_fields()
                raise StoreError(f"cannot drop field {name!r}: {exc}") from None

    def alter_field(self, name: str, type_: str) -> None:
        check_field_name(name)
        check_field_type(type_)
        with self._lock:
            self._writable()
            field = self.fields.alter(name, type_)
            try:
                self._conn.execute(
                    f'ALTER TABLE records ALTER COLUMN "{name}" TYPE {field.duckdb_type}'
                )
                self._conn.execute("UPDATE _fields SET type = ? WHERE id = ?", (type_, field.id))
            except duckdb.Error as exc:
                self.fields = self._load_fields()
                raise FieldError(f"cannot change field {name!r} to {type_}: {exc}") from None

    # --- writing ---------------------------------------------------------------------------

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.path} is open read-only")

    def _stamped(self, batch: pa.Table, first_id: int, now: float) -> pa.Table:
        """``batch``'s stored columns plus record_id (from ``first_id``) and ingested_at."""
        n = batch.num_rows
        columns = [c for c in batch.schema.names if c in self.fields and c not in MANAGER_FIELDS]
        return (
            batch.select(columns)
            .append_column("record_id", pa.array(np.arange(first_id, first_id + n)))
            .append_column(
                "ingested_at",
                pa.array(np.full(n, int(now * 1e6), dtype="datetime64[us]")).cast(
                    pa.timestamp("us", tz="UTC")
                ),
            )
        )

    def commit(self, batch: pa.Table, *, origin: str, sequence: int) -> int:
        with self._lock:
            self._writable()
            n = batch.num_rows
            now = self._clock()
            columns = [
                c for c in batch.schema.names if c in self.fields and c not in MANAGER_FIELDS
            ]
            table = batch.select(columns)
            table = table.append_column(
                "record_id", pa.array(np.arange(self._next_record_id, self._next_record_id + n))
            ).append_column(
                "ingested_at",
                pa.array(np.full(n, int(now * 1e6), dtype="datetime64[us]")).cast(
                    pa.timestamp("us", tz="UTC")
                ),
            )
            conn = self._conn
            conn.execute("BEGIN")
            try:
                done = conn.execute(
                    "SELECT rows FROM _commits WHERE origin = ? AND sequence = ?",
                    (origin, sequence),
                ).fetchone()
                if done is not None:
                    conn.execute("ROLLBACK")
                    return 0
                if n:
                    conn.register("_batch", table)
                    names = ", ".join(f'"{c}"' for c in table.schema.names)
                    conn.execute(f"INSERT INTO records ({names}) SELECT {names} FROM _batch")
                    conn.unregister("_batch")
                conn.execute(
                    "INSERT INTO _commits VALUES (?, ?, ?, to_timestamp(?))",
                    (origin, sequence, n, now),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._next_record_id += n
            return n

    def commit_many(self, batches: Sequence[tuple[pa.Table, str, int]]) -> list[int]:
        """Commit several ``(batch, origin, sequence)`` in **one** transaction.

        Idempotent per (origin, sequence) like ``commit``: one query finds which were
        committed before, the new batches are concatenated and inserted with one
        ``INSERT … SELECT`` (one per distinct schema), all their ``_commits`` rows are
        written, and the transaction commits once (one WAL flush instead of one per batch).
        Returns the rows inserted per batch, in order: 0 for a batch committed before,
        or given twice in this call. All or nothing: on an error nothing is committed."""
        if not batches:
            return []
        with self._lock:
            self._writable()
            now = self._clock()
            conn = self._conn
            keys = pa.table(
                {
                    "origin": pa.array([b[1] for b in batches], pa.string()),
                    "sequence": pa.array([b[2] for b in batches], pa.int64()),
                }
            )
            conn.execute("BEGIN")
            try:
                conn.register("_keys", keys)
                done = set(
                    conn.execute(
                        "SELECT origin, sequence FROM _commits JOIN _keys USING (origin, sequence)"
                    ).fetchall()
                )
                conn.unregister("_keys")
                counts: list[int] = []
                fresh: list[tuple[str, int, int]] = []
                groups: dict[tuple[tuple[str, str], ...], list[pa.Table]] = {}
                record_id = self._next_record_id
                for table, origin, sequence in batches:
                    if (origin, sequence) in done:
                        counts.append(0)
                        continue
                    done.add((origin, sequence))
                    stamped = self._stamped(table, record_id, now)
                    record_id += table.num_rows
                    counts.append(table.num_rows)
                    fresh.append((origin, sequence, table.num_rows))
                    if table.num_rows:
                        key = tuple((f.name, str(f.type)) for f in stamped.schema)
                        groups.setdefault(key, []).append(stamped)
                for key, tables in groups.items():
                    conn.register("_batch", pa.concat_tables(tables))
                    columns = ", ".join(f'"{name}"' for name, _ in key)
                    conn.execute(f"INSERT INTO records ({columns}) SELECT {columns} FROM _batch")
                    conn.unregister("_batch")
                if fresh:
                    origins, sequences, rows = zip(*fresh, strict=True)
                    conn.register(
                        "_new",
                        pa.table(
                            {
                                "origin": pa.array(origins, pa.string()),
                                "sequence": pa.array(sequences, pa.int64()),
                                "rows": pa.array(rows, pa.int64()),
                            }
                        ),
                    )
                    conn.execute(
                        "INSERT INTO _commits SELECT origin, sequence, rows, to_timestamp(?) "
                        "FROM _new",
                        (now,),
                    )
                    conn.unregister("_new")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._next_record_id = record_id
            return counts

    @contextmanager
    def transaction(self) -> Iterator[StoreWriter]:
        """One write transaction for the manager's stages: records inserted and deleted,
        the stage's own tables and its watermark change together, or not at all.

        Holds the store's write lock for the whole block, so a record commit never
        interleaves; keep the block short (no network I/O inside)."""
        with self._lock:
            self._writable()
            writer = StoreWriter(self, self._conn, self._next_record_id, self._clock())
            self._conn.execute("BEGIN")
            try:
                yield writer
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._next_record_id = writer.next_record_id

    def last_sequence(self, origin: str) -> int:
        row = self._conn.execute(
            "SELECT max(sequence) FROM _commits WHERE origin = ?", (origin,)
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def commit_quarantine(
        self,
        items: Sequence[Quarantined] | pa.Table,
        *,
        origin: str | None = None,
        sequence: int | None = None,
    ) -> int:
        """Insert quarantine items (``Quarantined`` values or a table in
        ``QUARANTINE_SCHEMA``) with **one** columnar ``INSERT … SELECT`` in one
        transaction: the store's lock is held for that insert only. With ``origin`` and
        ``sequence`` the insert is idempotent like ``commit`` (a marker row in
        ``_commits``, written in the same transaction): 0 when it was done before.

        Payloads are stored as given: the cap is the caller's (the pipeline's
        ``QuarantineGate``, the manager's ingest)."""
        table = items if isinstance(items, pa.Table) else quarantine_table(items)
        if not table.num_rows and origin is None:
            return 0
        table = conform_quarantine(table)
        with self._lock:
            self._writable()
            now = self._clock()
            conn = self._conn
            conn.execute("BEGIN")
            try:
                if origin is not None:
                    done = conn.execute(
                        "SELECT rows FROM _commits WHERE origin = ? AND sequence = ?",
                        (origin, sequence),
                    ).fetchone()
                    if done is not None:
                        conn.execute("ROLLBACK")
                        return 0
                if table.num_rows:
                    conn.register("_quarantine", table)
                    conn.execute(
                        "INSERT INTO quarantine (received_at, source, exporter, reason, detail,"
                        ' "offset", payload, location, payload_length) SELECT'
                        " to_timestamp(received_at), source, exporter, reason, detail,"
                        ' "offset", payload, location, payload_length FROM _quarantine'
                    )
                    conn.unregister("_quarantine")
                if origin is not None:
                    conn.execute(
                        "INSERT INTO _commits VALUES (?, ?, ?, to_timestamp(?))",
                        (origin, sequence, table.num_rows, now),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return table.num_rows

    def age(self, retention_s: float) -> int:
        with self._lock:
            self._writable()
            cutoff = self._clock() - retention_s
            row = self._conn.execute(
                "DELETE FROM records WHERE ingested_at < to_timestamp(?)", (cutoff,)
            ).fetchone()
            return int(row[0]) if row else 0

    def prune_commits(self, before: float) -> int:
        """Delete the idempotency rows of ``_commits`` committed before ``before`` (Unix
        s), except each origin's newest (``last_sequence`` continues from it); returns
        how many. A batch resent after its row is gone would be stored again, so
        ``before`` must be older than the longest retry horizon (``manager/aging.py``)."""
        with self._lock:
            self._writable()
            row = self._conn.execute(
                "DELETE FROM _commits WHERE committed_at < to_timestamp(?) AND"
                " (origin, sequence) NOT IN"
                " (SELECT (origin, max(sequence)) FROM _commits GROUP BY origin)",
                (before,),
            ).fetchone()
            return int(row[0]) if row else 0

    # --- reading ---------------------------------------------------------------------------

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> pa.Table:
        """The manager's own reads (trusted SQL: never a person's text, see
        ``query_user``). Must be one SELECT; runs without the sandbox's limits."""
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise StoreError(f"cannot parse query: {exc}") from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise StoreError(f"Store.query takes one SELECT: {sql[:80]!r}")
        cursor = self._conn.cursor()
        try:
            return cursor.sql(sql, params=dict(params) if params else None).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(str(exc).splitlines()[0] if str(exc) else repr(exc)) from None
        finally:
            cursor.close()

    def query_user(
        self,
        sql: str,
        params: Mapping[str, object] | None = None,
        *,
        limits: QueryLimits | None = None,
        measured: QueryRun | None = None,
    ) -> pa.Table:
        """Run SQL a person wrote, in the query sandbox (``store/sandbox.py``): one
        SELECT over the allowed tables, within ``limits``; raises ``QueryRefusedError``
        naming the rule otherwise. ``measured`` receives the rows and time taken."""
        return sandbox.run(self._conn, sql, params, limits or QueryLimits(), measured)

    def close(self) -> None:
        with self._lock:
            if not self.read_only:
                self._conn.execute("CHECKPOINT")
            self._conn.close()


class StoreWriter:
    """What a ``DuckDBStore.transaction`` block may do (see there)."""

    def __init__(self, store: DuckDBStore, conn: Any, next_record_id: int, now: float) -> None:
        self._store = store
        self._conn = conn
        self.next_record_id = next_record_id
        self.now = now

    def insert_records(self, batch: pa.Table) -> int:
        """Insert ``batch`` into ``records`` (record_id and ingested_at stamped here);
        columns ``records`` lacks are ignored, as in ``commit``."""
        if not batch.num_rows:
            return 0
        stamped = self._store._stamped(batch, self.next_record_id, self.now)
        self.insert_arrow("records", stamped)
        self.next_record_id += batch.num_rows
        return batch.num_rows

    def delete_records(self, record_ids: Sequence[int] | pa.Array) -> int:
        """Delete these records (a merge replacing them); returns how many there were."""
        ids = (
            pa.array(record_ids, pa.int64()) if not isinstance(record_ids, pa.Array) else record_ids
        )
        if not len(ids):
            return 0
        self._conn.register("_ids", pa.table({"record_id": ids}))
        try:
            row = self._conn.execute(
                "DELETE FROM records WHERE record_id IN (SELECT record_id FROM _ids)"
            ).fetchone()
        finally:
            self._conn.unregister("_ids")
        return int(row[0]) if row else 0

    def insert_arrow(self, table_name: str, table: pa.Table) -> None:
        """Append ``table``'s rows to ``table_name``, matching columns by name."""
        if not table.num_rows:
            return
        self._conn.register("_rows", table)
        try:
            names = ", ".join(f'"{c}"' for c in table.schema.names)
            self._conn.execute(f'INSERT INTO "{table_name}" ({names}) SELECT {names} FROM _rows')
        finally:
            self._conn.unregister("_rows")

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        self._conn.execute(sql, list(params))

    def query(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        """Read inside the transaction (sees its own writes)."""
        return self._conn.sql(sql, params=list(params) or None).to_arrow_table()
