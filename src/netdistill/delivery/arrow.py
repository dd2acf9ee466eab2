"""Arrow IPC streams and the quarantine as an Arrow table: what both sides convert.

``table_to_ipc``/``ipc_to_table`` carry query results and commits over the manager's
API (types such as timestamps and unsigned ints survive the trip); the quarantine
conversions carry quarantined input in a spool entry (kind ``QUARANTINE``) and over
``POST /api/quarantine``. Moved here unchanged from ``manager/api.py`` so that the
gatherer does not import the manager.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pyarrow as pa

from netdistill.records.batch import Quarantined


def table_to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def ipc_to_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def quarantine_to_table(items: Sequence[Quarantined]) -> pa.Table:
    names = [f.name for f in dataclasses.fields(Quarantined)]
    return pa.Table.from_pylist(
        [dataclasses.asdict(q) for q in items],
        schema=pa.schema(
            [
                (
                    n,
                    pa.binary()
                    if n == "payload"
                    else pa.float64()
                    if n == "received_at"
                    else pa.int64()
                    if n == "offset"
                    else pa.string(),
                )
                for n in names
            ]
        ),
    )


def quarantine_from_table(table: pa.Table) -> list[Quarantined]:
    return [Quarantined(**row) for row in table.to_pylist()]
