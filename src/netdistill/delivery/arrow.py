"""Arrow IPC streams and the quarantine as an Arrow table: what both sides convert.

``table_to_ipc``/``ipc_to_table`` carry query results and commits over the manager's
API (types such as timestamps and unsigned ints survive the trip); the quarantine
conversions carry quarantined input in a spool entry (kind ``QUARANTINE``) and over
``POST /api/quarantine`` (their columns: ``records/quarantine.py``). Moved here from
``manager/api.py`` so that the gatherer does not import the manager.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from netdistill.records.batch import Quarantined
from netdistill.records.quarantine import quarantine_items, quarantine_table

#: the media type of an Arrow IPC stream body (requests and answers of the API)
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def table_to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def ipc_to_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def quarantine_to_table(items: Sequence[Quarantined]) -> pa.Table:
    """Quarantine items as one table (``records/quarantine.py``'s ``QUARANTINE_SCHEMA``,
    ``payload_length`` included)."""
    return quarantine_table(items)


def quarantine_from_table(table: pa.Table) -> list[Quarantined]:
    """The items of a quarantine table; columns this version does not know are ignored,
    missing ones take their defaults (gatherers older or newer than the manager)."""
    return quarantine_items(table)
