"""``DuckDBStore.commit_many``: several batches in one transaction, idempotent per
(origin, sequence), all or nothing, and the same table as one ``commit`` per batch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from netdistill.records.ip import ipv4_to_text
from netdistill.records.schema import conform
from netdistill.store.duckdb import DuckDBStore


def batch(n: int, first: int = 1, *, with_ports: bool = False) -> pa.Table:
    columns = {
        "src_ip": ipv4_to_text(np.arange(n, dtype=np.uint32) % 7 + 0x0A000001),
        "bytes": pa.array(np.arange(first, first + n, dtype=np.uint64)),
        "packets": pa.array(np.ones(n, dtype=np.uint64)),
        "source": pa.array(["nf"] * n),
    }
    if with_ports:
        columns["dst_port"] = pa.array(np.full(n, 443, dtype=np.uint16))
    return conform(pa.table(columns))


@pytest.fixture
def store(tmp_path):
    s = DuckDBStore(tmp_path / "records.duckdb", clock=lambda: 1_800_000_000.0)
    yield s
    s.close()


def _totals(store: DuckDBStore) -> dict[str, object]:
    return store.query(
        "select count(*) n, sum(bytes) b, min(record_id) lo, max(record_id) hi, "
        "count(distinct record_id) ids, count(dst_port) ports from records"
    ).to_pylist()[0]


def test_idempotent_per_origin_and_sequence(store):
    assert store.commit_many(
        [(batch(10), "g/nf", 1), (batch(5, 100), "g/nf", 2), (batch(3), "h/nf", 1)]
    ) == [10, 5, 3]
    # 1..10, 100..104, 1..3 by hand; ids 1..18 in batch order
    assert _totals(store) == {"n": 18, "b": 55 + 510 + 6, "lo": 1, "hi": 18, "ids": 18, "ports": 0}
    # a resend of two with one new, and one given twice in the same call
    assert store.commit_many(
        [(batch(10), "g/nf", 1), (batch(4, 1000), "g/nf", 3), (batch(4, 1000), "g/nf", 3),
         (batch(3), "h/nf", 1)]
    ) == [0, 4, 0, 0]  # fmt: skip
    assert _totals(store) == {"n": 22, "b": 571 + 4006, "lo": 1, "hi": 22, "ids": 22, "ports": 0}
    commits = store.query(
        "select origin, sequence, rows from _commits order by origin, sequence"
    ).to_pylist()
    assert commits == [
        {"origin": "g/nf", "sequence": 1, "rows": 10},
        {"origin": "g/nf", "sequence": 2, "rows": 5},
        {"origin": "g/nf", "sequence": 3, "rows": 4},
        {"origin": "h/nf", "sequence": 1, "rows": 3},
    ]
    # commit sees what commit_many committed, and the other way round
    assert store.commit(batch(10), origin="g/nf", sequence=2) == 0
    assert store.commit(batch(2, 7), origin="g/nf", sequence=4) == 2
    assert store.commit_many([(batch(2, 7), "g/nf", 4), (pa.table({}), "g/nf", 5)]) == [0, 0]
    assert store.last_sequence("g/nf") == 5
    assert store.commit_many([]) == []


def test_mixed_schemas_in_one_call(store):
    assert store.commit_many(
        [(batch(3), "g/a", 1), (batch(2, 10, with_ports=True), "g/b", 1), (batch(1, 50), "g/a", 2)]
    ) == [3, 2, 1]
    assert _totals(store) == {"n": 6, "b": 6 + 21 + 50, "lo": 1, "hi": 6, "ids": 6, "ports": 2}
    by_id = store.query("select record_id, bytes from records order by record_id").to_pylist()
    assert [r["bytes"] for r in by_id] == [1, 2, 3, 10, 11, 50]  # ids in batch order


def test_all_or_nothing(store):
    bad = pa.table({"bytes": pa.array(["12", "not a number"])})
    with pytest.raises(Exception, match="not a number"):
        store.commit_many([(batch(4), "g/nf", 1), (bad, "g/nf", 2)])
    assert _totals(store)["n"] == 0
    assert store.last_sequence("g/nf") == 0
    assert store.commit_many([(batch(4), "g/nf", 1)]) == [4]
    assert _totals(store) == {"n": 4, "b": 10, "lo": 1, "hi": 4, "ids": 4, "ports": 0}


def test_same_table_as_one_commit_per_batch(tmp_path):
    batches = [(batch(50, 100 * k, with_ports=k % 2 == 0), "g/nf", k + 1) for k in range(6)]
    one, many = (DuckDBStore(tmp_path / f"{n}.duckdb", clock=lambda: 1.0) for n in ("1", "m"))
    for table, origin, seq in batches:
        one.commit(table, origin=origin, sequence=seq)
    many.commit_many(batches[:4])
    many.commit_many(batches[2:])
    sql = "select * from records order by record_id"
    assert one.query(sql).equals(many.query(sql))
    one.close()
    many.close()
