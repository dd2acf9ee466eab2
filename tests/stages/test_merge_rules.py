"""Merge rules on hand-made batches: the operator without a store (three procedures, no
tolerance, max_pending) and the config's checks."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from pydantic import ValidationError

from netdistill.stages.merge import MergeConfig
from netdistill.stages.merge_operator import Merger, MergeRules

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def batch(rows: list[tuple[str, str, float, str | None, int | None]], first_id: int) -> pa.Table:
    """rows: (procedure, session_id, start offset s, user_name, bytes)."""
    n = len(rows)
    return pa.table(
        {
            "record_id": pa.array(range(first_id, first_id + n), pa.int64()),
            "ingested_at": pa.array([T0] * n, pa.timestamp("us", "UTC")),
            "procedure": [r[0] for r in rows],
            "session_id": [r[1] for r in rows],
            "start_time": pa.array(
                [T0 + dt.timedelta(seconds=r[2]) for r in rows], pa.timestamp("us", "UTC")
            ),
            "user_name": pa.array([r[3] for r in rows], pa.string()),
            "bytes": pa.array([r[4] for r in rows], pa.uint64()),
        }
    )


def test_three_procedures_merge_into_one() -> None:
    rules = MergeRules("m", ("nas", "proxy", "fw"), ("session_id",), "start_time", 2.0)
    merger = Merger(rules)
    first = merger.process(batch([("nas", "s1", 0, None, 10), ("proxy", "s1", 1, "ann", 20)], 1))
    # a partial merge (2 of 3 procedures): returned to store, still waiting for fw
    assert first.merged.column("user_name").to_pylist() == ["ann"]
    assert first.merged.column("bytes").to_pylist() == [10]  # first received
    assert first.parts.tolist() == [0b011]
    assert sorted(first.deleted.to_pylist()) == [1, 2]
    merger.commit_ids(100, 0.0)
    assert merger.pending_count == 1
    second = merger.process(batch([("fw", "s1", 0.5, "bob", None), ("fw", "s2", 0, None, 1)], 3))
    assert second.parts.tolist() == [0b111]
    assert second.merged.column("user_name").to_pylist() == ["ann"]  # the first non-null
    assert second.merged.column("bytes").to_pylist() == [10]
    assert sorted(second.deleted.to_pylist()) == [3, 100]  # the fw record, the partial merge
    assert merger.pending_count == 1  # s2


@pytest.mark.parametrize("order", ["nas first", "fw first"])
def test_prefer_and_offsets_make_the_record_independent_of_arrival(order: str) -> None:
    """Three procedures, fw's clock learnt 30 s ahead: with ``prefer`` the merged record
    is the same in either arrival order, and fw's start time is given in nas's clock."""
    rules = MergeRules(
        "m",
        ("nas", "proxy", "fw"),
        ("session_id",),
        "start_time",
        2.0,
        winners={"start_time": "fw"},
        prefer=("proxy", "nas"),
    )
    merger = Merger(rules, offsets_us={"fw": 30e6})
    rows = [
        ("nas", "s1", 0, None, 10),
        ("proxy", "s1", 1, "ann", 20),
        ("fw", "s1", 30.5, "bob", 30),
    ]
    if order == "fw first":
        rows.reverse()
    first = merger.process(batch(rows[:2], 1))
    merger.commit_ids(100, 0.0)
    second = merger.process(batch(rows[2:], 3))
    merged = (first.merged if first.parts.tolist() == [0b111] else second.merged).to_pylist()
    assert len(merged) == 1
    assert merged[0]["user_name"] == "ann"  # proxy preferred over fw's "bob"
    assert merged[0]["bytes"] == 20  # proxy preferred
    assert merged[0]["start_time"] == T0 + dt.timedelta(seconds=0.5)  # fw, less 30 s


def test_without_tolerance_pairs_in_arrival_order() -> None:
    rules = MergeRules("m", ("a", "b"), ("session_id",), None, 0.0)
    merger = Merger(rules)
    rows = [("a", "s", 0, "a1", None), ("a", "s", 900, "a2", None), ("b", "s", 5000, None, 7)]
    result = merger.process(batch(rows, 1))
    # the b record pairs with its neighbour in arrival order (the second a), a1 waits
    assert result.merged.column("user_name").to_pylist() == ["a2"]
    assert sorted(result.deleted.to_pylist()) == [2, 3]
    assert merger.pending_count == 1


def test_max_pending_evicts_the_oldest() -> None:
    rules = MergeRules("m", ("a", "b"), ("session_id",), "start_time", 2.0, max_pending=3)
    merger = Merger(rules)
    merger.process(batch([("a", f"s{i}", i, None, i) for i in range(5)], 1))
    assert merger.expire(T0.timestamp()) == 2
    assert merger.counters.evicted == 2
    result = merger.process(batch([("b", "s0", 0, None, 1), ("b", "s4", 4, None, 1)], 6))
    assert sorted(result.deleted.to_pylist()) == [5, 7]  # s0 (record 1) was evicted


def test_config_checks_and_defaults() -> None:
    config = MergeConfig(name="m", procedures=["a", "b"], match=["url"])
    assert (config.tolerance, config.horizon_s, config.max_pending) == (None, 60.0, 1_000_000)
    assert config.references() == ["a", "b"]
    with pytest.raises(ValidationError, match="winner of 'src_ip' is 'c'"):
        MergeConfig(name="m", procedures=["a", "b"], match=["url"], winners={"src_ip": "c"})
    with pytest.raises(ValidationError, match="prefer names 'c'"):
        MergeConfig(name="m", procedures=["a", "b"], match=["url"], prefer=["c"])
    with pytest.raises(ValidationError, match="prefer names a procedure twice"):
        MergeConfig(name="m", procedures=["a", "b"], match=["url"], prefer=["a", "a"])
    with pytest.raises(ValidationError, match="named twice"):
        MergeConfig(name="m", procedures=["a", "a"], match=["url"])
    with pytest.raises(ValidationError, match="extra"):
        MergeConfig(name="m", procedures=["a", "b"], match=["url"], window=3)  # type: ignore[call-arg]
