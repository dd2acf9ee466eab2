"""RADIUS.User against accounting records written into a real DuckDB store, checked
against a plain-Python reading of the same sessions (the oracle below), key by key."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from netdistill.lookups.radius_sessions import RadiusSessions, RadiusSessionsConfig
from netdistill.store.duckdb import DuckDBStore

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def record(
    status: str,
    nas: str,
    sid: str | None,
    user: str | None,
    ip: str | None,
    start: datetime | None,
    event: datetime,
    source: str = "radius",
) -> dict[str, object]:
    return {
        "source": source,
        "exporter": nas,
        "session_id": sid,
        "user_name": user,
        "src_ip": ip,
        "start_time": start,
        "end_time": event,
        "acct_status_type": status,
    }


def make_store(path: Path, rows: list[dict[str, object]]) -> DuckDBStore:
    store = DuckDBStore(path)
    store.add_field("acct_status_type", "string", "RADIUS Acct-Status-Type")
    schema = pa.schema(
        [(k, TS if k.endswith("_time") else pa.string()) for k in rows[0]]  # all strings/times
    )
    store.commit(pa.Table.from_pylist(rows, schema=schema), origin="test", sequence=1)
    return store


def scenario() -> tuple[list[dict[str, object]], list[tuple[str, datetime]], list[tuple]]:
    """Sessions with every case, flow keys, and the expected answer of each key."""
    m = lambda minutes: T0 + timedelta(minutes=minutes)  # noqa: E731
    rows = [
        # alice: 10.0.0.5 from 0 to 30 (Start, Interim, Stop)
        record("Start", "192.0.2.1", "a1", "alice", "10.0.0.5", m(0), m(0)),
        record("Interim-Update", "192.0.2.1", "a1", "alice", "10.0.0.5", m(0), m(10)),
        record("Stop", "192.0.2.1", "a1", "alice", "10.0.0.5", m(0), m(30)),
        # bob gets the same address later, still open
        record("Start", "192.0.2.1", "b1", "bob", "10.0.0.5", m(40), m(40)),
        # carol on another NAS, never stopped, but the NAS restarts at 90: over at 90
        record("Start", "192.0.2.2", "c1", "carol", "10.0.0.6", m(5), m(5)),
        record("Interim-Update", "192.0.2.2", "c1", "carol", "10.0.0.6", m(5), m(60)),
        record("Accounting-On", "192.0.2.2", None, None, None, None, m(90)),
        # dave's Start was lost: the session is known from its Interim (start 100)
        record("Interim-Update", "192.0.2.1", "d1", "dave", "10.0.0.7", m(100), m(120)),
        # an old session never stopped, then erin takes the address: erin wins after 200
        record("Start", "192.0.2.3", "z1", "zombie", "10.0.0.8", m(0), m(0)),
        record("Start", "192.0.2.3", "e1", "erin", "10.0.0.8", m(200), m(200)),
        # a record of another source is not read
        record("Start", "192.0.2.9", "x1", "mallory", "10.0.0.9", m(0), m(0), source="other"),
    ]
    keys = [
        ("10.0.0.5", m(-1)),  # before alice
        ("10.0.0.5", m(0)),  # alice starts (inclusive)
        ("10.0.0.5", m(30)),  # alice's Stop (inclusive)
        ("10.0.0.5", m(35)),  # between alice and bob
        ("10.0.0.5", m(500)),  # bob, open
        ("10.0.0.6", m(89)),  # carol
        ("10.0.0.6", m(91)),  # after the NAS restarted
        ("10.0.0.7", m(110)),  # dave from his Interim's start time
        ("10.0.0.8", m(100)),  # zombie
        ("10.0.0.8", m(250)),  # erin, the later start
        ("10.0.0.9", m(10)),  # other source
        ("10.9.9.9", m(10)),  # no session
    ]
    expected = [
        None,
        ("alice", "a1", "192.0.2.1"),
        ("alice", "a1", "192.0.2.1"),
        None,
        ("bob", "b1", "192.0.2.1"),
        ("carol", "c1", "192.0.2.2"),
        None,
        ("dave", "d1", "192.0.2.1"),
        ("zombie", "z1", "192.0.2.3"),
        ("erin", "e1", "192.0.2.3"),
        None,
        None,
    ]
    return rows, keys, expected


def key_table(keys: list[tuple[str | None, datetime | None]]) -> pa.Table:
    return pa.table(
        {
            "ip_address": pa.array([k[0] for k in keys], pa.string()),
            "at": pa.array([k[1] for k in keys], TS),
        }
    )


def answers(out: pa.Table) -> list[tuple | None]:
    return [None if r["session_id"] is None else tuple(r.values()) for r in out.to_pylist()]


def test_every_case_of_a_session(tmp_path: Path) -> None:
    rows, keys, expected = scenario()
    store = make_store(tmp_path / "r.duckdb", rows)
    radius = RadiusSessions(RadiusSessionsConfig(name="RADIUS", sources=["radius"]), store=store)
    keys_nulls = [*keys, (None, T0), ("10.0.0.5", None)]
    out = radius.call("User", key_table(keys_nulls))
    assert answers(out) == [*expected, None, None]
    assert out.schema.names == ["user_name", "session_id", "nas"]
    assert (radius.counters.calls, radius.counters.keys, radius.counters.misses) == (1, 14, 7)
    # without the source filter, mallory's record counts
    every = RadiusSessions(RadiusSessionsConfig(name="RADIUS"), store=store)
    assert answers(every.call("User", key_table(keys)))[10] == ("mallory", "x1", "192.0.2.9")
    store.close()


def oracle(rows: list[dict], ip: str, at: datetime) -> tuple | None:
    """Plain Python: the sessions holding ``ip`` at ``at``; the latest start wins."""
    best = None
    by_session: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["src_ip"] == ip:
            by_session.setdefault((r["exporter"], r["session_id"]), []).append(r)
    for (nas, sid), recs in by_session.items():
        start = min(r["start_time"] or r["end_time"] for r in recs)
        stops = [r["end_time"] for r in recs if r["acct_status_type"] == "Stop"]
        end = max(stops) if stops else None
        if start <= at and (end is None or at <= end) and (best is None or start > best[0]):
            best = (start, (recs[-1]["user_name"], sid, nas))
    return best[1] if best else None


def test_many_random_sessions_against_the_oracle(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = []
    for s in range(3000):
        ip = f"10.1.{rng.randrange(8)}.{rng.randrange(1, 60)}"
        nas = f"192.0.2.{rng.randrange(1, 5)}"
        start = T0 + timedelta(seconds=rng.randrange(86_400))
        user = f"user{s}"
        rows.append(record("Start", nas, f"s{s}", user, ip, start, start))
        if rng.random() < 0.8:
            stop = start + timedelta(seconds=rng.randrange(1, 7200))
            rows.append(record("Stop", nas, f"s{s}", user, ip, start, stop))
    keys = set()
    for _ in range(5000):
        ip = f"10.1.{rng.randrange(8)}.{rng.randrange(1, 60)}"
        at = T0 + timedelta(seconds=rng.randrange(90_000), microseconds=rng.randrange(10**6))
        keys.add((ip, at))
    ordered = sorted(keys)
    store = make_store(tmp_path / "r.duckdb", rows)
    radius = RadiusSessions(RadiusSessionsConfig(name="RADIUS"), store=store)
    got = answers(radius.call("User", key_table(ordered)))  # one SQL for ~5,000 keys
    by_ip: dict[object, list[dict]] = {}
    for r in rows:
        by_ip.setdefault(r["src_ip"], []).append(r)
    want = [oracle(by_ip.get(ip, []), ip, at) for ip, at in ordered]
    assert got == want
    assert sum(w is not None for w in want) > 1000  # the test is not vacuous
    store.close()


def test_needs_a_store() -> None:
    with pytest.raises(ValueError, match="needs the store"):
        RadiusSessions(RadiusSessionsConfig(name="RADIUS"))
    assert [f.notation() for f in RadiusSessionsConfig(name="RADIUS").functions()] == [
        "RADIUS.User(ip_address:ip, at:timestamp) → (user_name:string, session_id:string, nas:ip)"
    ]
