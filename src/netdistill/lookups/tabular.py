"""Loading the rows behind a table-like lookup (``table``, ``prefix``): a CSV file or an
SQL query, typed by the columns the scheme declares.

``database`` says where a query runs: ``store`` (the central database; the SQL is an
operator's, so it runs in the query sandbox, ``Store.query_user``: records, quarantine
and report tables only, docs/security.md), ``duckdb:/path/file.duckdb`` (opened read-only
and hardened like the store: no file, network or extension access from SQL) or
``sqlite:/path/file.db`` (Python's DBAPI ``sqlite3``). SQLAlchemy is not a dependency:
these three cover the seeds' "NMS DB" and policy-server exports without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from pydantic import BaseModel, ConfigDict, Field, model_validator

from netdistill.errors import LookupDataError, NetdistillError
from netdistill.records.fields import FIELD_TYPES


class RowsSource(BaseModel):
    """Exactly one of ``csv`` and ``sql``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    csv: str | None = Field(None, description="path of a CSV file with a header row")
    sql: str | None = Field(None, description="a SELECT whose column names match")
    database: str = Field("store", description="store | duckdb:/path | sqlite:/path")

    @model_validator(mode="after")
    def _one_source(self) -> RowsSource:
        if (self.csv is None) == (self.sql is None):
            raise ValueError("give exactly one of 'csv' and 'sql'")
        return self


def _query(source: RowsSource, store: Any) -> pa.Table:
    assert source.sql is not None
    database = source.database
    if database == "store":
        if store is None:
            raise LookupDataError("database 'store' needs the central store (not available)")
        try:
            table: pa.Table = store.query_user(source.sql)
        except NetdistillError as exc:
            raise LookupDataError(f"sql on the store: {exc}") from None
        return table
    kind, _, path = database.partition(":")
    if kind == "duckdb":
        from netdistill.store.duckdb import connect

        with connect(Path(path), read_only=True) as conn:
            return conn.sql(source.sql).to_arrow_table()
    if kind == "sqlite":
        import sqlite3

        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            cursor = conn.execute(source.sql)
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
    raise LookupDataError(f"unknown database {database!r}: expected store, duckdb:…, sqlite:…")


def load_rows(source: RowsSource, columns: Mapping[str, str], *, store: Any = None) -> pa.Table:
    """The rows of ``source`` with exactly ``columns`` (name → field type), cast safely."""
    try:
        if source.csv is not None:
            path = Path(source.csv)
            options = pacsv.ConvertOptions(
                column_types={n: pa.string() for n in columns}, strings_can_be_null=True
            )
            table = pacsv.read_csv(path, convert_options=options)
        else:
            table = _query(source, store)
    except (OSError, pa.ArrowInvalid) as exc:
        raise LookupDataError(f"{source.csv or source.database}: {exc}") from None
    out = []
    for name, type_ in columns.items():
        if name not in table.column_names:
            raise LookupDataError(
                f"{source.csv or source.database}: no column {name!r} "
                f"(columns: {', '.join(table.column_names)})"
            )
        column = table.column(name)
        target = FIELD_TYPES[type_][0]
        try:
            if type_ == "timestamp" and pa.types.is_string(column.type):
                column = column.cast(pa.timestamp("us", tz="UTC"))
            out.append(column.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise LookupDataError(
                f"{source.csv or source.database}: column {name!r} is not {type_}: {exc}"
            ) from None
    return pa.Table.from_arrays(out, names=list(columns))
