"""Query results for people and programs: table, CSV and JSON.

Times are shown in UTC ISO-8601 (``2026-11-23T09:00:00.123456Z``) and IP fields are
already text in the store, so every format shows the same values.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from typing import Any

import pyarrow as pa


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat() + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def rows(table: pa.Table) -> list[dict[str, Any]]:
    names = table.schema.names
    return [
        {n: _plain(v) for n, v in zip(names, row.values(), strict=True)}
        for row in table.to_pylist()
    ]


def to_json(table: pa.Table) -> str:
    return json.dumps(rows(table), ensure_ascii=False)


def to_csv(table: pa.Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.schema.names)
    for row in rows(table):
        writer.writerow(["" if v is None else v for v in row.values()])
    return out.getvalue()


def to_rich_table(table: pa.Table, *, limit: int = 1000) -> Any:
    from rich.table import Table

    view = Table(show_lines=False, header_style="bold")
    for name in table.schema.names:
        numeric = (
            pa.types.is_integer(table.schema.field(name).type)
            or pa.types.is_floating(table.schema.field(name).type)
            or pa.types.is_decimal(table.schema.field(name).type)
        )
        view.add_column(name, justify="right" if numeric else "left")
    for row in rows(table.slice(0, limit)):
        view.add_row(*("" if v is None else str(v) for v in row.values()))
    return view
