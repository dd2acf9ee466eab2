"""The DuckDB store: idempotent commits, read-only queries, aging, live field changes."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from netdistill.errors import FieldError, QueryRefusedError, StoreError
from netdistill.records.batch import Quarantined
from netdistill.records.ip import ipv4_to_text
from netdistill.records.quarantine import quarantine_table
from netdistill.records.schema import SOURCE_SCHEMA, conform
from netdistill.store.duckdb import DuckDBStore


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def batch(n: int, *, first_byte_count: int = 1) -> pa.Table:
    return conform(
        pa.table(
            {
                "src_ip": ipv4_to_text(np.arange(n, dtype=np.uint32) % 7 + 0x0A000001),
                "dst_ip": ipv4_to_text(np.full(n, 0xC0000201, dtype=np.uint32)),
                "bytes": pa.array(
                    np.arange(first_byte_count, first_byte_count + n, dtype=np.uint64)
                ),
                "packets": pa.array(np.ones(n, dtype=np.uint64)),
                "start_time": pa.array(
                    np.full(n, 1_700_000_000_000_000, dtype="datetime64[us]")
                ).cast(pa.timestamp("us", tz="UTC")),
                "source": pa.array(["nf"] * n),
            }
        )
    )


@pytest.fixture
def store(tmp_path):
    s = DuckDBStore(tmp_path / "records.duckdb", clock=Clock(1_800_000_000.0))
    yield s
    s.close()


def test_commit_is_idempotent_on_origin_and_sequence(store):
    assert store.commit(batch(10), origin="g/nf", sequence=1) == 10
    assert store.commit(batch(10), origin="g/nf", sequence=1) == 0  # resend after lost ack
    assert store.commit(batch(5, first_byte_count=100), origin="g/nf", sequence=2) == 5
    assert store.commit(batch(3), origin="other/nf", sequence=1) == 3
    row = store.query(
        "select count(*) n, sum(bytes) b, min(record_id) lo, max(record_id) hi from records"
    ).to_pylist()[0]
    # 1..10, 100..104 and 1..3, computed by hand
    assert row == {"n": 18, "b": 55 + 510 + 6, "lo": 1, "hi": 18}
    assert store.last_sequence("g/nf") == 2
    assert store.last_sequence("nobody") == 0


def test_record_ids_continue_after_reopen(tmp_path):
    path = tmp_path / "r.duckdb"
    first = DuckDBStore(path)
    first.commit(batch(4), origin="o", sequence=1)
    first.close()
    second = DuckDBStore(path)
    second.commit(batch(2), origin="o", sequence=2)
    assert second.query(
        "select list(record_id order by record_id) ids from records"
    ).to_pylist() == [{"ids": [1, 2, 3, 4, 5, 6]}]
    second.close()


def test_ingested_at_is_stamped_by_the_store_clock(store):
    store.commit(batch(1), origin="o", sequence=1)
    (value,) = store.query("select ingested_at from records").column(0).to_pylist()
    assert value == dt.datetime.fromtimestamp(1_800_000_000, dt.UTC)


def test_queries_are_read_only_and_take_bound_parameters(store):
    store.commit(batch(14), origin="o", sequence=1)
    for sql in (
        "delete from records",
        "drop table records",
        "insert into records select * from records",
        "select 1; update records set bytes = 0",
    ):
        with pytest.raises(QueryRefusedError, match=r"^refused \(rule: one-select\)"):
            store.query_user(sql)
        with pytest.raises(StoreError, match="one SELECT"):
            store.query(sql)  # the manager's own reads only read too
    table = store.query_user(
        "select count(*) n from records where src_ip = $ip", {"ip": "10.0.0.1"}
    )
    assert table.to_pylist() == [{"n": 2}]  # i % 7 == 0 for i in 0..13
    with pytest.raises(StoreError, match="records_typo"):
        store.query("select * from records_typo")


def test_aging_deletes_only_records_older_than_the_retention(tmp_path):
    clock = Clock(1_000_000.0)
    store = DuckDBStore(tmp_path / "r.duckdb", clock=clock)
    store.commit(batch(3), origin="o", sequence=1)
    clock.now += 3600
    store.commit(batch(2), origin="o", sequence=2)
    clock.now += 1800
    assert store.age(retention_s=3600) == 3
    assert store.query("select count(*) n from records").to_pylist() == [{"n": 2}]
    store.close()


def test_the_aging_job_prunes_commit_keys_past_the_retry_horizon(tmp_path):
    """``_commits`` grew forever (issue 13, item 5): the aging job now forgets the keys
    older than the retry horizon, keeping each origin's newest (sequences continue)."""
    from netdistill.manager.main import AgingJob, retry_horizon_s

    clock = Clock(1_000_000.0)
    store = DuckDBStore(tmp_path / "r.duckdb", clock=clock)
    for seq in (1, 2, 3):
        store.commit(batch(1), origin="g/a", sequence=seq)
    store.commit(batch(1), origin="g/b", sequence=1)
    clock.now += 10 * 86400
    store.commit(batch(1), origin="g/a", sequence=4)
    horizon = retry_horizon_s([2 * 86400.0])  # the default max_lag_s (7 d) is longer
    assert horizon == 8 * 86400
    job = AgingJob(store, retention_s=1e9, interval_s=3600, commit_horizon_s=horizon, clock=clock)
    assert job.run_once() == 0
    assert job.pruned_commits == 3  # g/a 1..3; g/b 1 is its origin's newest
    keys = store.query("select origin, sequence from _commits order by all").to_pylist()
    assert keys == [{"origin": "g/a", "sequence": 4}, {"origin": "g/b", "sequence": 1}]
    assert store.last_sequence("g/a") == 4 and store.last_sequence("g/b") == 1
    assert store.commit(batch(1), origin="g/a", sequence=4) == 0  # still idempotent
    job.run_once()
    assert job.pruned_commits == 3
    store.close()


def test_fields_add_drop_alter_while_committing(store):
    store.commit(batch(2), origin="o", sequence=1)
    store.add_field("customer", "string", "billing customer")
    with_customer = batch(3).append_column("customer", pa.array(["acme"] * 3))
    store.commit(with_customer, origin="o", sequence=2)
    assert store.query(
        "select customer, count(*) n from records group by 1 order by 1"
    ).to_pylist() == [{"customer": "acme", "n": 3}, {"customer": None, "n": 2}]
    assert store.fields["customer"].id >= 1001
    store.alter_field("src_port", "uint32")
    assert store.query("select typeof(src_port) t from records limit 1").to_pylist() == [
        {"t": "UINTEGER"}
    ]
    store.drop_field("url")
    assert "url" not in store.query("select * from records limit 0").schema.names
    store.commit(batch(1), origin="o", sequence=3)  # batches still carry url: ignored
    assert store.query("select count(*) n from records").to_pylist() == [{"n": 6}]
    with pytest.raises(FieldError):
        store.add_field("customer", "string")
    with pytest.raises(FieldError):
        store.add_field("Bad-Name", "string")
    with pytest.raises(FieldError):
        store.add_field("x", "complex")
    with pytest.raises(FieldError):
        store.drop_field("record_id")


def test_field_registry_survives_reopen_and_never_reuses_ids(tmp_path):
    path = tmp_path / "r.duckdb"
    store = DuckDBStore(path)
    store.add_field("a", "string")
    a_id = store.fields["a"].id
    store.drop_field("a")
    store.add_field("b", "uint32")
    store.close()
    again = DuckDBStore(path)
    assert "a" not in again.fields
    assert again.fields["b"].id == a_id + 1
    assert again.fields["b"].type == "uint32"
    again.close()


def test_quarantine_keeps_payload_reason_and_place(store):
    store.commit_quarantine(
        [
            Quarantined(
                "nf",
                "192.0.2.1",
                1_700_000_000.0,
                "malformed",
                "set length 4 < 4-byte header",
                b"\x00\x0a\xff",
                offset=20,
            )
        ]
    )
    assert store.query(
        'select exporter, reason, "offset", payload from quarantine'
    ).to_pylist() == [
        {"exporter": "192.0.2.1", "reason": "malformed", "offset": 20, "payload": b"\x00\x0a\xff"}
    ]


def test_read_only_open_and_lock_errors(tmp_path, store):
    with pytest.raises(StoreError, match="nothing has been collected"):
        DuckDBStore(tmp_path / "absent.duckdb", read_only=True)
    assert SOURCE_SCHEMA.names[0] == "start_time"


def test_quarantine_is_one_columnar_insert_idempotent_per_origin(store):
    items = [
        Quarantined(
            "nf",
            "192.0.2.1",
            1_700_000_000.0 + i,
            "malformed",
            "x",
            bytes([i % 256]) * 9,
            offset=i,
            location=f"p:{i}",
            payload_length=9,
        )
        for i in range(5_000)
    ]
    assert store.commit_quarantine(items, origin="g/nf#quarantine", sequence=3) == 5_000
    assert store.commit_quarantine(items, origin="g/nf#quarantine", sequence=3) == 0  # resent
    assert store.commit_quarantine(quarantine_table(items[:2])) == 2  # a table goes as it is
    assert store.query(
        'select count(*) n, sum("offset") o, min(received_at) t, count(distinct location) l,'
        " sum(payload_length) s from quarantine"
    ).to_pylist() == [
        {
            "n": 5_002,
            "o": sum(range(5_000)) + 1,
            "t": dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC),
            "l": 5_000,
            "s": 9 * 5_002,
        }
    ]
    assert store.last_sequence("g/nf#quarantine") == 3


def test_an_old_store_gets_payload_length_from_its_payloads(tmp_path):
    path = tmp_path / "old.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute(
        "CREATE TABLE quarantine (received_at TIMESTAMPTZ, source VARCHAR, exporter VARCHAR,"
        ' reason VARCHAR, detail VARCHAR, "offset" INTEGER, payload BLOB, location VARCHAR)'
    )
    conn.execute("INSERT INTO quarantine (source, payload) VALUES ('fw', 'abcdef'::BLOB)")
    conn.close()
    store = DuckDBStore(path)
    assert store.query("select source, payload_length from quarantine").to_pylist() == [
        {"source": "fw", "payload_length": 6}
    ]
    store.close()
    again = DuckDBStore(path)  # opening again changes nothing
    assert again.query("select count(*) n from quarantine").to_pylist() == [{"n": 1}]
    again.close()
