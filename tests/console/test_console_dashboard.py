"""Dashboard figures against hand counts over the same rows: ingest per source in the
last window, bytes per service per time bucket (with ``other`` past the top N), top
accounts, talkers and destinations."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from console_testkit import T0, make_kit

from netdistill.records.schema import conform

SERVICES = ["web", "dns", "mail", "voip", None]
ACCOUNTS = [("acme", None), (None, "alice"), ("globex", "bob"), (None, None)]


def make_rows(n: int, seed: int, source: str) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        account_id, user_name = rng.choice(ACCOUNTS)
        dst = rng.randrange(1, 6)
        rows.append(
            {
                "start_time": int((T0 - rng.randrange(3600)) * 1_000_000),
                "source": source,
                "service": rng.choice(SERVICES),
                "bytes": rng.randrange(1, 10**7),
                "packets": rng.randrange(1, 10**4),
                "account_id": account_id,
                "user_name": user_name,
                "src_ip": f"10.0.0.{rng.randrange(1, 6)}",
                "dst_ip": f"192.0.2.{dst}",
                "dst_host": f"h{dst}.example",
            }
        )
    return rows


def to_table(rows: list[dict]) -> pa.Table:
    table = pa.Table.from_pylist(rows)
    index = table.schema.get_field_index("start_time")
    return conform(
        table.set_column(
            index, "start_time", table.column("start_time").cast(pa.timestamp("us", tz="UTC"))
        )
    )


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def kit(tmp_path):
    k = make_kit(tmp_path, with_procedures=False)
    yield k
    k.store.close()


def test_ingest_rate_per_source_in_the_last_window(kit):
    first = make_rows(120, seed=1, source="nf") + make_rows(30, seed=2, source="radius")
    kit.store.commit(to_table(first), origin="g/a", sequence=1)  # ingested at T0
    kit.clock.now = T0 + 100
    second = make_rows(45, seed=3, source="nf")
    kit.store.commit(to_table(second), origin="g/a", sequence=2)  # ingested at T0 + 100
    viewer = kit.user("vera", "viewer")
    kit.clock.now = T0 + 30
    both = viewer.get("/api/dashboard/ingest", params={"window_s": 60}).json()
    assert both["sources"] == [
        {
            "source": "nf",
            "records": 120,
            "bytes": sum(r["bytes"] for r in first[:120]),
            "records_per_s": 2.0,
        },
        {
            "source": "radius",
            "records": 30,
            "bytes": sum(r["bytes"] for r in first[120:]),
            "records_per_s": 0.5,
        },
    ]
    kit.clock.now = T0 + 130  # the first batch is older than the window now
    late = viewer.get("/api/dashboard/ingest", params={"window_s": 60}).json()
    assert late["sources"] == [
        {
            "source": "nf",
            "records": 45,
            "bytes": sum(r["bytes"] for r in second),
            "records_per_s": 0.75,
        }
    ]


def test_traffic_by_service_per_bucket_with_other(kit):
    rows = make_rows(400, seed=4, source="nf")
    kit.store.commit(to_table(rows), origin="g/a", sequence=1)
    viewer = kit.user("vera", "viewer")
    start, end = T0 - 1800, T0 - 600
    inside = [r for r in rows if start * 10**6 <= r["start_time"] < end * 10**6]
    per_service: dict[str, int] = defaultdict(int)
    for r in inside:
        per_service[r["service"] or "(none)"] += r["bytes"]
    top2 = sorted(per_service, key=lambda s: (-per_service[s], s))[:2]
    expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in inside:
        bucket = r["start_time"] // 10**6 // 300 * 300
        service = r["service"] or "(none)"
        key = (iso(bucket), service if service in top2 else "other")
        expected[key][0] += r["bytes"]
        expected[key][1] += 1
    got = viewer.get(
        "/api/dashboard/traffic",
        params={"from": iso(start), "to": iso(end), "bucket_s": 300, "services": 2},
    ).json()
    assert (got["from"], got["to"], got["bucket_s"]) == (iso(start), iso(end), 300)
    assert {(s["t"], s["service"]): [s["bytes"], s["records"]] for s in got["series"]} == dict(
        expected
    )
    assert len(got["series"]) == len(expected) == 4 * 3  # 4 buckets × (2 services + other)
    assert sum(s["records"] for s in got["series"]) == len(inside)
    # default range: the last `minutes` before the clock
    hour = viewer.get("/api/dashboard/traffic", params={"minutes": 60, "bucket_s": 3600}).json()
    assert hour["from"] == iso(T0 - 3600) and hour["to"] == iso(T0)
    assert sum(s["bytes"] for s in hour["series"]) == sum(r["bytes"] for r in rows)


def test_top_accounts_talkers_destinations(kit):
    rows = make_rows(300, seed=5, source="nf")
    kit.store.commit(to_table(rows), origin="g/a", sequence=1)
    viewer = kit.user("vera", "viewer")

    def hand_top(key_of, limit):
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for r in rows:
            key = key_of(r)
            if key is None:
                continue
            totals[key][0] += r["bytes"]
            totals[key][1] += r["packets"]
            totals[key][2] += 1
        ordered = sorted(totals.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
        return [(k, b, p, n) for k, (b, p, n) in ordered]

    def get(by, limit):
        body = viewer.get("/api/dashboard/top", params={"by": by, "limit": limit}).json()
        assert body["by"] == by
        return body["rows"]

    accounts = get("account", 10)
    expected = hand_top(lambda r: r["account_id"] or r["user_name"], 10)
    assert [(r["key"], r["bytes"], r["packets"], r["records"]) for r in accounts] == expected
    assert [r["key"] for r in accounts] == sorted(
        ["acme", "alice", "globex"], key=lambda k: -dict((e[0], e[1]) for e in expected)[k]
    )
    talkers = get("src", 3)
    assert [(r["key"], r["bytes"], r["packets"], r["records"]) for r in talkers] == hand_top(
        lambda r: r["src_ip"], 3
    )
    destinations = get("dst", 5)
    assert [(r["key"], r["bytes"], r["packets"], r["records"]) for r in destinations] == hand_top(
        lambda r: r["dst_ip"], 5
    )
    assert [r["label"] for r in destinations] == [
        f"h{r['key'].rsplit('.', 1)[1]}.example" for r in destinations
    ]


def test_bad_parameters_are_refused_with_the_reason(kit):
    viewer = kit.user("vera", "viewer")
    assert viewer.get("/api/dashboard/top", params={"by": "color"}).json() == {
        "detail": "by: one of account, src, dst, service, not 'color'"
    }
    assert viewer.get("/api/dashboard/traffic", params={"from": "yesterday"}).json() == {
        "detail": "from: not an ISO-8601 time: 'yesterday'"
    }
    backwards = {"from": iso(T0), "to": iso(T0 - 60)}
    assert viewer.get("/api/dashboard/traffic", params=backwards).json() == {
        "detail": "from must be before to"
    }
    assert viewer.get("/api/dashboard/ingest", params={"window_s": 0}).status_code == 422
    assert viewer.get("/api/dashboard/top", params={"limit": 0}).status_code == 422
