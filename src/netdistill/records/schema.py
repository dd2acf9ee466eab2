"""Arrow schema of usage-record batches, and conforming a source's batch to it.

A source fills the columns it knows; ``conform`` adds the others as nulls, in registry
order, so every batch that reaches a stage or the store has the same schema.
"""

from __future__ import annotations

import pyarrow as pa

from netdistill.records.fields import MANAGER_FIELDS, STANDARD_FIELDS, Field, FieldRegistry


def records_schema(
    fields: FieldRegistry | tuple[Field, ...] = STANDARD_FIELDS,
    *,
    with_manager_fields: bool = False,
) -> pa.Schema:
    """The schema of a batch as sources emit it (without record_id and ingested_at by
    default: the manager stamps those on commit)."""
    return pa.schema(
        [
            pa.field(f.name, f.arrow_type, metadata={"field_id": str(f.id), "type": f.type})
            for f in fields
            if with_manager_fields or f.name not in MANAGER_FIELDS
        ]
    )


SOURCE_SCHEMA = records_schema()


def empty_batch(schema: pa.Schema = SOURCE_SCHEMA) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


def conform(table: pa.Table | pa.RecordBatch, schema: pa.Schema = SOURCE_SCHEMA) -> pa.Table:
    """Return ``table`` with exactly ``schema``'s columns: missing ones null, extra ones
    dropped, types cast (safely: an overflow raises rather than wraps)."""
    n = table.num_rows
    names = set(table.schema.names)
    columns = []
    for field in schema:
        if field.name in names:
            column = table.column(field.name)
            if column.type != field.type:
                column = column.cast(field.type)
            columns.append(column)
        else:
            columns.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def constant_column(value: str, n: int) -> pa.Array:
    """A string column of ``n`` copies of ``value``, built without a per-row Python list."""
    import numpy as np

    indices = pa.array(np.zeros(n, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(indices, pa.array([value])).cast(pa.string())


def with_constant(table: pa.Table, name: str, value: str) -> pa.Table:
    """``table`` with column ``name`` set to ``value`` on every row."""
    column = constant_column(value, table.num_rows)
    index = table.schema.get_field_index(name)
    if index < 0:
        return table.append_column(name, column)
    return table.set_column(index, table.schema.field(index), column)
