"""What crosses the network between a gatherer and a manager (SYSTEM.md §3, seed 000).

A batch is an Arrow IPC stream compressed with zstd whose columns are named by field
**id** from the registry (``"11"`` for ``bytes``), not by name: a field renamed or
dropped on the manager while a batch is in a spool cannot land in the wrong column. The
gatherer encodes once, when it spools; the forwarder sends the spooled bytes as they
are. The manager maps ids back to its registry's current names; an id it no longer
knows (a dropped field) is left out.

A request body holds one or more spool entries (several when catching up)::

    entry = header_len:u32 | header (JSON: seq, kind, origin, rows) | payload_len:u32 | payload

All integers little endian. The manager answers ``{"acked": seq}``: every entry up to
``seq`` is durably committed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping, Sequence

import pyarrow as pa

from netdistill.gatherer.spool import Entry
from netdistill.records.fields import FieldRegistry

_LEN = struct.Struct("<I")
_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def encode_table(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_table(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()


def to_ids(table: pa.Table, ids: Mapping[str, int]) -> tuple[pa.Table, list[str]]:
    """``table`` with columns renamed to field ids; returns it and the columns left out
    (names the registry does not know)."""
    keep = [name for name in table.schema.names if name in ids]
    unknown = [name for name in table.schema.names if name not in ids]
    selected = table.select(keep)
    return selected.rename_columns([str(ids[name]) for name in keep]), unknown


def from_ids(table: pa.Table, registry: FieldRegistry) -> pa.Table:
    """``table`` with id columns renamed to the registry's names; unknown ids left out."""
    names = {str(f.id): f.name for f in registry}
    keep = [column for column in table.schema.names if column in names]
    return table.select(keep).rename_columns([names[c] for c in keep])


def pack_entries(entries: Sequence[Entry]) -> bytes:
    parts = []
    for entry in entries:
        header = json.dumps(
            {"seq": entry.seq, "kind": entry.kind, "origin": entry.origin, "rows": entry.rows}
        ).encode()
        parts += [_LEN.pack(len(header)), header, _LEN.pack(len(entry.payload)), entry.payload]
    return b"".join(parts)


def unpack_entries(body: bytes) -> Iterator[tuple[dict[str, object], memoryview]]:
    """The (header, payload) pairs of a request body; ``ValueError`` names the offset of
    a malformed one."""
    view = memoryview(body)
    offset = 0
    while offset < len(view):
        try:
            (header_len,) = _LEN.unpack_from(view, offset)
            header = json.loads(bytes(view[offset + 4 : offset + 4 + header_len]))
            offset += 4 + header_len
            (payload_len,) = _LEN.unpack_from(view, offset)
        except (struct.error, ValueError) as exc:
            raise ValueError(f"malformed batch header at offset {offset}: {exc}") from None
        payload = view[offset + 4 : offset + 4 + payload_len]
        if len(payload) != payload_len or not isinstance(header, dict):
            raise ValueError(f"truncated batch at offset {offset}")
        offset += 4 + payload_len
        yield header, payload
