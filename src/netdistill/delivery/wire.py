"""What crosses the network between a gatherer and a manager (SYSTEM.md §3, seed 000).

Request
-------
``POST /api/ingest?gatherer=G`` with ``Authorization: Bearer <G's token>`` and
``Content-Type: application/vnd.netdistill.batches``. The body is one or more spool
entries back to back, oldest first (several when the gatherer is catching up)::

    body    = entry entry ...
    entry   = header_len:u32 | header | payload_len:u32 | payload      (u32 little endian)
    header  = UTF-8 JSON object {"seq": int, "kind": int, "origin": "G/source", "rows": int}
    payload = an Arrow IPC stream (``kind`` 1, records) or an Arrow IPC stream of the
              quarantine table (``kind`` 2, ``arrow.quarantine_to_table``)

``seq`` is the gatherer spool's sequence (increasing, never reused); ``origin`` must
start with ``G/``; ``rows`` is informative (the manager counts what it decodes).

Watermark marks (kind 4, ``entry.MARK``)
----------------------------------------
A forwarder ends a request with a mark, and while it has nothing to send it posts a
request holding only a mark every ``forward.watermark_interval_s``. A mark is never
spooled; its payload is empty and its header is::

    {"seq": S, "kind": 4, "origin": "G/", "rows": 0,
     "watermark": W,                       # Unix s, the gatherer's wall clock
     "watermarks": {"source": W_s, ...},   # per running source; W = the smallest
     "lost_until": L}                      # Unix s; 0 when nothing was lost

It says: every record that each named source of G received before its ``W_s`` is in an
entry with a sequence ≤ ``S`` — which this manager has committed, since the mark comes
after them (in the same request, processed in order, or alone with ``S`` = the last
sequence the manager acknowledged). ``lost_until`` is the spool-append time of the
newest entry the gatherer skipped or evicted for *this* manager (lag limit, or
``drop_oldest``: ``gatherer/spool.py``): the windows still open before it cannot be
complete on this manager. ``gatherer/watermark.py`` says how W is computed (a receive
time; ``grace_s`` covers devices that hold records back). The manager answers a mark
like the entry before it (``acked`` = ``S``); a manager older than marks refuses kind 4
(422) after committing the entries before it, and the forwarder then stops sending
marks to it.

Records payload (wire format 2)
-------------------------------
An Arrow IPC *stream* (schema message, then record batches; body buffers compressed
with zstd) whose schema metadata has ``wire_format = "2"`` and whose columns are named
by **field name** (``bytes``, ``acct_status_type``), each field carrying its registry
type in the field metadata key ``type`` (``uint64``, ``ip``, ``string`` …; ``ip`` and
``string`` are both Arrow strings, so the Arrow type alone does not say it). Names and
types mean the same on every manager; the field *ids* of a registry do not (each
manager numbers the fields it adds in the order they were added, so two managers of
one gatherer give different ids as soon as an operator added a field on one of them).

A manager stores a batch when every column's name is in its registry with the same
registry type (the Arrow type is cast to the registry's when they differ, safely: an
overflow refuses). A column whose name it does not know, or knows with another type,
refuses the batch (``errors.BatchRefused``, naming the field and both types): a column
is never dropped silently and a value never lands in another column. Wire format 1 (columns
named by the id of the manager that gave the gatherer its plan, before issue 12) is
refused the same way; a gatherer converts the format-1 entries still in its spool at
upgrade with the registry it recorded (``gatherer/upgrade.py``).

Answers and acknowledgement: ``ack.py``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping, Sequence

import pyarrow as pa

from netdistill.delivery.entry import Entry
from netdistill.errors import BatchRefused
from netdistill.records.fields import FIELD_TYPES, FieldRegistry

WIRE_FORMAT = "2"
_FORMAT_KEY = b"wire_format"
_TYPE_KEY = b"type"
_LEN = struct.Struct("<I")
_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")
#: the registry type an Arrow type stands for when a column declares none (``ip`` is
#: never inferred: it must be declared)
_INFERRED = {arrow: name for name, (arrow, *_) in FIELD_TYPES.items() if name != "ip"}


def encode_table(table: pa.Table) -> bytes:
    """``table`` as an Arrow IPC stream, zstd-compressed."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_table(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()


def column_type(field: pa.Field, declared: Mapping[str, str] | None = None) -> str:
    """The registry type of a column: as declared by its producer, else from its field
    metadata (``records_schema`` puts it there), else inferred from the Arrow type."""
    if declared and field.name in declared:
        return declared[field.name]
    metadata = field.metadata or {}
    if _TYPE_KEY in metadata:
        return metadata[_TYPE_KEY].decode()
    return _INFERRED.get(field.type, str(field.type))


def with_types(table: pa.Table, declared: Mapping[str, str]) -> pa.Table:
    """``table`` as format 2: each field's metadata is exactly ``{type: registry type}``
    (a registry's field ids are not sent), the schema marked ``wire_format = 2``."""
    fields = [
        pa.field(f.name, f.type, f.nullable, {_TYPE_KEY: column_type(f, declared).encode()})
        for f in table.schema
    ]
    schema = pa.schema(fields, metadata={_FORMAT_KEY: WIRE_FORMAT.encode()})
    return pa.Table.from_arrays(table.columns, schema=schema)


def encode_records(table: pa.Table, declared: Mapping[str, str]) -> bytes:
    """A records batch as a format-2 payload; ``declared`` maps column names to registry
    types (the standard fields' and the producing source's ``FieldSpec`` types)."""
    return encode_table(with_types(table, declared))


def is_legacy(schema: pa.Schema) -> bool:
    """A format-1 payload: columns named by field id, no ``wire_format`` marker."""
    marker = (schema.metadata or {}).get(_FORMAT_KEY)
    return marker is None and all(name.isdigit() for name in schema.names)


def from_field_ids(
    table: pa.Table, fields: Mapping[int, tuple[str, str]]
) -> tuple[pa.Table, list[int]]:
    """A format-1 ``table`` (columns named by id) as format 2, with ``fields`` (id →
    (name, registry type)) of the registry that encoded it; returns it and the ids that
    registry does not name (a field dropped since: left out, as format 1 did)."""
    keep = [c for c in table.schema.names if int(c) in fields]
    unknown = [int(c) for c in table.schema.names if int(c) not in fields]
    named = table.select(keep).rename_columns([fields[int(c)][0] for c in keep])
    return with_types(named, {name: type_ for name, type_ in fields.values()}), unknown


def decode_records(payload: bytes, registry: FieldRegistry, *, seq: int = 0) -> pa.Table:
    """A records payload as the columns of ``registry`` it fills, typed as the registry
    types them; ``BatchRefused`` (naming the field and both types) for anything a manager
    must not store: a format-1 payload, an unknown field, another type."""
    try:
        table = decode_table(payload)
    except pa.ArrowInvalid as exc:
        raise BatchRefused(
            f"entry {seq}: the payload is not an Arrow IPC stream: {exc}", seq=seq
        ) from None
    if is_legacy(table.schema) and table.num_columns:
        raise BatchRefused(
            f"entry {seq}: the batch names its columns by field id (wire format 1, "
            "written before names were sent): a gatherer of this version converts such "
            "spool entries at start; upgrade the gatherer (docs/delivery.md, upgrading)",
            seq=seq,
        )
    columns = []
    for field in table.schema:
        sent = column_type(field)
        known = registry.get(field.name)
        if known is None:
            raise BatchRefused(
                f"entry {seq}: field {field.name!r} ({sent}) is not in this manager's field "
                f"registry; add it with 'netdistill fields add {field.name} {sent}'",
                seq=seq,
                field=field.name,
                sent_type=sent,
            )
        if known.type != sent:
            raise BatchRefused(
                f"entry {seq}: field {field.name!r} is {sent} in the batch but {known.type} "
                "in this manager's field registry",
                seq=seq,
                field=field.name,
                sent_type=sent,
                registered_type=known.type,
            )
        column = table.column(field.name)
        if column.type != known.arrow_type:
            try:
                column = column.cast(known.arrow_type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise BatchRefused(
                    f"entry {seq}: field {field.name!r} ({sent}) holds Arrow {column.type} "
                    f"values that are not {known.arrow_type}: {exc}",
                    seq=seq,
                    field=field.name,
                    sent_type=sent,
                    registered_type=known.type,
                ) from None
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.schema.names)


def pack_entries(entries: Sequence[Entry]) -> bytes:
    """The request body for ``entries`` (see the module docstring)."""
    parts = []
    for entry in entries:
        header = json.dumps(
            {"seq": entry.seq, "kind": entry.kind, "origin": entry.origin, "rows": entry.rows}
        ).encode()
        parts += [_LEN.pack(len(header)), header, _LEN.pack(len(entry.payload)), entry.payload]
    return b"".join(parts)


def pack_mark(
    seq: int, gatherer: str, watermark: float, per_source: Mapping[str, float], lost_until: float
) -> bytes:
    """A watermark mark (see the module docstring) as one entry of a request body."""
    from netdistill.delivery.entry import MARK

    header = json.dumps(
        {
            "seq": seq,
            "kind": MARK,
            "origin": f"{gatherer}/",
            "rows": 0,
            "watermark": round(watermark, 6),
            "watermarks": {k: round(v, 6) for k, v in per_source.items()},
            "lost_until": round(lost_until, 3),
        }
    ).encode()
    return _LEN.pack(len(header)) + header + _LEN.pack(0)


def unpack_entries(body: bytes) -> Iterator[tuple[dict[str, object], memoryview]]:
    """The (header, payload) pairs of a request body; ``BatchRefused`` names the offset of
    a malformed one (the same bytes would fail again)."""
    view = memoryview(body)
    offset = 0
    while offset < len(view):
        start = offset
        try:
            (header_len,) = _LEN.unpack_from(view, offset)
            header = json.loads(bytes(view[offset + 4 : offset + 4 + header_len]))
            offset += 4 + header_len
            (payload_len,) = _LEN.unpack_from(view, offset)
        except (struct.error, ValueError) as exc:
            raise BatchRefused(f"malformed batch header at offset {start}: {exc}") from None
        payload = view[offset + 4 : offset + 4 + payload_len]
        if len(payload) != payload_len or not isinstance(header, dict):
            raise BatchRefused(f"truncated batch at offset {start}")
        offset += 4 + payload_len
        yield header, payload
