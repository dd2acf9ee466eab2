"""The Arrow form of quarantine items: one table per batch of ``Quarantined`` values.

The gatherer spools it, the wire carries it, and the store inserts it with one
``INSERT … SELECT`` (no row-by-row insert). ``conform_quarantine`` makes a table from
any sender — older gatherers without ``payload_length``, newer ones with columns this
version does not know — fit ``QUARANTINE_SCHEMA``, with columnar operations only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from netdistill.records.batch import Quarantined

#: columns of a quarantine batch (the store adds nothing: these are its columns)
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("exporter", pa.string()),
        ("received_at", pa.float64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("payload", pa.binary()),
        ("offset", pa.int64()),
        ("location", pa.string()),
        ("payload_length", pa.int64()),
    ]
)


def quarantine_table(items: Sequence[Quarantined]) -> pa.Table:
    """Items as one Arrow table (``QUARANTINE_SCHEMA``): one list per column."""
    return pa.table(
        [
            pa.array([getattr(q, name) for q in items], field.type)
            for name, field in zip(QUARANTINE_SCHEMA.names, QUARANTINE_SCHEMA, strict=True)
        ],
        schema=QUARANTINE_SCHEMA,
    )


def quarantine_items(table: pa.Table) -> list[Quarantined]:
    """The items of a quarantine table (columns it lacks take their defaults; columns
    ``Quarantined`` does not know are ignored, so old and new senders both fit)."""
    known = {f.name for f in dataclasses.fields(Quarantined)}
    columns = [n for n in table.column_names if n in known]
    return [Quarantined(**row) for row in table.select(columns).to_pylist()]


def conform_quarantine(table: pa.Table, payload_bytes: int | None = None) -> pa.Table:
    """``table`` (from the wire or an older gatherer) in ``QUARANTINE_SCHEMA``: missing
    columns null, ``payload_length`` filled from the payload where absent, and payloads
    cut to ``payload_bytes`` when given. Columnar: no per-item work."""
    columns = []
    for field in QUARANTINE_SCHEMA:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    out = pa.table(columns, schema=QUARANTINE_SCHEMA)
    payload = out.column("payload")
    length = pc.coalesce(out.column("payload_length"), pc.binary_length(payload).cast(pa.int64()))
    out = out.set_column(out.schema.get_field_index("payload_length"), "payload_length", length)
    if payload_bytes is not None:
        cut = pc.binary_slice(payload, 0, payload_bytes)
        out = out.set_column(out.schema.get_field_index("payload"), "payload", cut)
    return out
