"""The wire format as its docstring writes it out, and reading batches by name.

Two real registries (DuckDB stores) that number the same fields differently read the
same payload into the same columns; what a registry must not store is refused, naming
the field and both types; format-1 payloads (columns by id) convert exactly with the
registry that made them.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pyarrow as pa
import pytest

from netdistill.delivery.ack import Answer, refusal_answer
from netdistill.delivery.entry import QUARANTINE, RECORDS, Entry
from netdistill.delivery.wire import (
    column_type,
    decode_records,
    decode_table,
    encode_records,
    encode_table,
    from_field_ids,
    is_legacy,
    pack_entries,
    unpack_entries,
)
from netdistill.errors import BatchRefused
from netdistill.records.fields import STANDARD_FIELDS
from netdistill.records.schema import conform
from netdistill.store.duckdb import DuckDBStore

TYPES = {f.name: f.type for f in STANDARD_FIELDS} | {"bytes_in": "uint64", "nas": "string"}


def _batch() -> pa.Table:
    table = conform(
        pa.table(
            {
                "src_ip": ["10.0.0.1", "2001:db8::1"],
                "bytes": pa.array([10, 20], pa.uint64()),
                "user_name": ["alice", None],
            }
        )
    )
    return table.append_column("bytes_in", pa.array([7, 8], pa.uint64())).append_column(
        "nas", pa.array(["n1", "n2"])
    )


@pytest.fixture
def registries(tmp_path: Path):
    """A: the RADIUS-like fields first; B: an operator's field first, so B's ids are
    A's shifted by one."""
    a, b = DuckDBStore(tmp_path / "a.duckdb"), DuckDBStore(tmp_path / "b.duckdb")
    b.add_field("site_code", "string")
    for store in (a, b):
        store.add_field("bytes_in", "uint64")
        store.add_field("nas", "string")
    yield a, b
    a.close()
    b.close()


def test_the_same_payload_lands_in_the_same_columns_whatever_the_ids(registries) -> None:
    a, b = registries
    assert a.fields["bytes_in"].id + 1 == b.fields["bytes_in"].id
    payload = encode_records(_batch(), TYPES)
    got_a, got_b = decode_records(payload, a.fields), decode_records(payload, b.fields)
    assert got_a.equals(got_b)
    assert got_a.select(["src_ip", "bytes", "user_name", "bytes_in", "nas"]).to_pylist() == [
        {"src_ip": "10.0.0.1", "bytes": 10, "user_name": "alice", "bytes_in": 7, "nas": "n1"},
        {"src_ip": "2001:db8::1", "bytes": 20, "user_name": None, "bytes_in": 8, "nas": "n2"},
    ]
    for store in (a, b):  # and the store takes it, column for column
        assert store.commit(got_a, origin="g/x", sequence=1) == 2
        rows = store.query("select bytes_in, nas from records order by bytes_in").to_pylist()
        assert rows == [{"bytes_in": 7, "nas": "n1"}, {"bytes_in": 8, "nas": "n2"}]


def test_the_payload_names_and_types_its_columns() -> None:
    schema = decode_table(encode_records(_batch(), TYPES)).schema
    assert (schema.metadata or {})[b"wire_format"] == b"2"
    assert schema.field("src_ip").metadata == {b"type": b"ip"}  # no registry id is sent
    assert schema.field("bytes_in").metadata == {b"type": b"uint64"}
    assert not is_legacy(schema)
    # a column nobody declared: its type inferred from Arrow (never ``ip``)
    assert column_type(pa.field("x", pa.string())) == "string"
    assert column_type(pa.field("x", pa.uint16())) == "uint16"
    assert column_type(pa.field("x", pa.list_(pa.int8()))) == "list<item: int8>"


def test_what_a_registry_must_not_store_is_refused(registries) -> None:
    a, _ = registries
    unknown = _batch().append_column("vlan", pa.array([1, 2], pa.uint16()))
    with pytest.raises(BatchRefused) as refused:
        decode_records(encode_records(unknown, TYPES), a.fields, seq=9)
    value = refused.value
    assert (value.seq, value.field, value.sent_type) == (9, "vlan", "uint16")
    assert refused.value.registered_type is None
    a.alter_field("bytes_in", "uint32")
    with pytest.raises(BatchRefused, match="'bytes_in' is uint64 in the batch but uint32") as other:
        decode_records(encode_records(_batch(), TYPES), a.fields, seq=10)
    assert refusal_answer(other.value, acked=8) == {
        "acked": 8,
        "retriable": False,
        "seq": 10,
        "error": "entry 10: field 'bytes_in' is uint64 in the batch but uint32 in this "
        "manager's field registry",
        "field": "bytes_in",
        "sent_type": "uint64",
        "registered_type": "uint32",
    }
    with pytest.raises(BatchRefused, match="not an Arrow IPC stream"):
        decode_records(b"\x00garbage", a.fields, seq=11)


def test_an_arrow_type_is_cast_to_the_registrys_or_refused(registries) -> None:
    a, _ = registries
    table = pa.table({"bytes": pa.array([5, 6], pa.int64())})  # declared uint64
    got = decode_records(encode_records(table, {"bytes": "uint64"}), a.fields)
    assert got.schema.field("bytes").type == pa.uint64() and got["bytes"].to_pylist() == [5, 6]
    negative = pa.table({"bytes": pa.array([-1], pa.int64())})
    with pytest.raises(BatchRefused, match=r"'bytes' .* not uint64"):
        decode_records(encode_records(negative, {"bytes": "uint64"}), a.fields)


def test_format1_converts_exactly_with_the_registry_that_made_it(registries) -> None:
    a, b = registries
    table = _batch()
    ids = {f.name: f.id for f in a.fields}
    legacy = encode_table(table.rename_columns([str(ids[n]) for n in table.schema.names]))
    old = decode_table(legacy)
    assert is_legacy(old.schema)
    with pytest.raises(BatchRefused, match="by field id"):
        decode_records(legacy, b.fields)
    recorded = {f.id: (f.name, f.type) for f in a.fields if f.name != "nas"}  # nas dropped
    named, unknown = from_field_ids(old, recorded)
    assert unknown == [a.fields["nas"].id]
    got = decode_records(encode_table(named), b.fields)  # B numbers them differently
    assert got.to_pylist() == table.drop_columns(["nas"]).to_pylist()


def test_the_request_body_byte_by_byte() -> None:
    entries = [
        Entry(5, RECORDS, "g/nf", 3, 2, b"PAYLOAD"),
        Entry(6, QUARANTINE, "g/nf", 0, 0, b""),
    ]
    body = pack_entries(entries)
    header = json.dumps({"seq": 5, "kind": 1, "origin": "g/nf", "rows": 2}).encode()
    first = struct.pack("<I", len(header)) + header + struct.pack("<I", 7) + b"PAYLOAD"
    assert body.startswith(first)
    assert [(h, bytes(p)) for h, p in unpack_entries(body)] == [
        ({"seq": 5, "kind": 1, "origin": "g/nf", "rows": 2}, b"PAYLOAD"),
        ({"seq": 6, "kind": 2, "origin": "g/nf", "rows": 0}, b""),
    ]
    with pytest.raises(BatchRefused, match="truncated batch at offset 0"):
        list(unpack_entries(first[:-2]))
    with pytest.raises(BatchRefused, match="malformed batch header at offset 0"):
        list(unpack_entries(b"\x05\x00\x00\x00{nope"))


def test_answers() -> None:
    ok = Answer.parse(200, {"acked": 7, "rows": 3})
    assert (ok.acked, ok.retriable, ok.error) == (7, True, "")
    busy = Answer.parse(503, {"acked": 4, "error": "IOException", "retriable": True})
    assert (busy.acked, busy.retriable, busy.error) == (4, True, "IOException")
    refused = Answer.parse(
        422, {"acked": 4, "retriable": False, "seq": 5, "error": "no", "field": "f"}
    )
    assert (refused.acked, refused.retriable, refused.refused_seq, refused.field) == (
        4,
        False,
        5,
        "f",
    )
    # FastAPI's own 422 (a missing query parameter) has no retriable: false — retried
    assert Answer.parse(422, {"detail": [{"msg": "field required"}]}).retriable
