"""The quarantine gate: payloads cut with their length kept, per-source token buckets,
rejects past the cap counted by reason; the Arrow form the spool and store share."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import ValidationError

from netdistill.records.batch import Quarantined
from netdistill.records.quarantine import (
    QUARANTINE_SCHEMA,
    conform_quarantine,
    quarantine_items,
    quarantine_table,
)
from netdistill.sources.quarantine import UNLIMITED, QuarantineGate, QuarantineLimits


def item(reason: str = "malformed", size: int = 10) -> Quarantined:
    return Quarantined(
        "nf", "192.0.2.1", 1.0, reason, "bad", bytes(range(256)) * (size // 256) + bytes(size % 256)
    )


def test_defaults_validate():
    limits = QuarantineLimits()
    assert (limits.payload_bytes, limits.rows_per_s, limits.burst_rows) == (2048, 100.0, 10_000)
    with pytest.raises(ValidationError):
        QuarantineLimits.model_validate({"rows_per_s": 0})
    with pytest.raises(ValidationError):
        QuarantineLimits.model_validate({"rows": 5})  # unknown key


def test_a_source_block_overrides_only_the_keys_it_sets():
    manager = QuarantineLimits(rows_per_s=5, payload_bytes=100)
    own = QuarantineLimits.model_validate({"burst_rows": 7})
    merged = manager.merged(own)
    assert (merged.rows_per_s, merged.payload_bytes, merged.burst_rows) == (5, 100, 7)
    assert manager.merged(None) is manager


def test_rows_past_the_burst_are_counted_then_the_rate_refills():
    now = [0.0]
    gate = QuarantineGate(QuarantineLimits(rows_per_s=10, burst_rows=100), clock=lambda: now[0])
    batch = [item("malformed")] * 150 + [item("truncated")] * 50
    admitted = gate.admit(batch)
    assert len(admitted) == 100
    assert gate.stored == {"malformed": 100}
    assert gate.counted_only == {"malformed": 50, "truncated": 50}
    now[0] = 2.5  # 25 tokens back
    assert len(gate.admit([item("truncated")] * 40)) == 25
    assert gate.stored == {"malformed": 100, "truncated": 25}
    assert gate.counted_only == {"malformed": 50, "truncated": 65}
    now[0] = 1000.0  # refills to the burst, not beyond
    assert len(gate.admit([item()] * 300)) == 100


def test_payloads_are_cut_and_their_length_kept():
    gate = QuarantineGate(QuarantineLimits(payload_bytes=2048))
    long, short = item(size=5000), item(size=100)
    cut, whole = gate.admit([long, short])
    assert cut.payload == long.payload[:2048] and cut.payload_length == 5000
    assert whole.payload == short.payload and whole.payload_length == 100
    assert gate.payload_bytes_cut == 5000 - 2048
    assert gate.admit([cut])[0].payload_length == 5000  # cut twice: the first length stays


def test_the_byte_bucket_caps_what_is_stored():
    gate = QuarantineGate(
        QuarantineLimits(payload_bytes=1000, bytes_per_s=1, burst_bytes=2500), clock=lambda: 0.0
    )
    admitted = gate.admit([item(size=4000)] * 5)  # 1000 bytes each once cut
    assert len(admitted) == 2
    assert gate.counted_only == {"malformed": 3}


def test_unlimited_cuts_payloads_but_counts_nothing_out():
    gate = QuarantineGate(UNLIMITED, clock=lambda: 0.0)
    admitted = gate.admit([item(size=3000)] * 50_000)
    assert len(admitted) == 50_000 and not gate.counted_only
    assert {len(q.payload) for q in admitted} == {2048}


def test_live_limits_keep_the_counts():
    gate = QuarantineGate(QuarantineLimits(burst_rows=1), clock=lambda: 0.0)
    gate.admit([item()] * 3)
    gate.configure(QuarantineLimits(burst_rows=5))
    assert len(gate.admit([item()] * 10)) == 5
    assert gate.stored == {"malformed": 6} and gate.counted_only == {"malformed": 7}


def test_the_arrow_form_round_trips_and_conforms_old_tables():
    items = [item(size=3000), Quarantined("fw", "192.0.2.9", 2.5, "x", "d", b"ab", 3, "f:1")]
    table = quarantine_table(items)
    assert table.schema == QUARANTINE_SCHEMA
    assert quarantine_items(table) == items
    # a table from a gatherer that predates payload_length (and has a column we don't)
    old = table.drop_columns(["payload_length"]).append_column("extra", pa.array([1, 2]))
    assert [q.payload_length for q in quarantine_items(old)] == [None, None]
    conformed = conform_quarantine(old, payload_bytes=1000)
    assert conformed.schema == QUARANTINE_SCHEMA
    assert conformed.column("payload_length").to_pylist() == [3000, 2]
    assert [len(p) for p in conformed.column("payload").to_pylist()] == [1000, 2]
