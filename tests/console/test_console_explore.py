"""The explorer API against hand counts over the same rows: every bucket of a range (empty
ones as zero), bit/s and packets/s per bucket, the partial bucket's rate over the part
covered, top-N by any field with filters, the matching records and their CSV; and the
guarantee that no request text reaches the SQL: unknown fields, injected names and
values are refused or compared as values, with nothing changed."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

import pytest
from console_testkit import T0, make_kit
from test_console_dashboard import iso, make_rows, to_table


@pytest.fixture
def kit(tmp_path):
    k = make_kit(tmp_path, with_procedures=False)
    yield k
    k.store.close()


@pytest.fixture
def rows(kit):
    rows = make_rows(500, seed=7, source="nf") + make_rows(100, seed=8, source="radius")
    kit.store.commit(to_table(rows), origin="g/a", sequence=1)
    return rows


def seconds(row):
    return row["start_time"] / 10**6


def test_series_every_bucket_rates_and_partial(kit, rows):
    viewer = kit.user("vera", "viewer")
    # a range from an aligned start to 90 s into a 300 s bucket, with an empty hole
    start, end = T0 - 3000, T0 - 210
    inside = [r for r in rows if start <= seconds(r) < end and r["source"] == "nf"]
    got = viewer.get(
        "/api/explore/series",
        params={
            "from": iso(start),
            "to": iso(end),
            "bucket_s": 300,
            "by": "service",
            "top": 2,
            "filter": "source=nf",
        },
    ).json()
    assert got["buckets"] == [iso(start + 300 * i) for i in range(10)]
    assert got["covered_s"] == [300.0] * 9 + [90.0]
    assert got["partial"] == [False] * 9 + [True]
    per_service: dict[str, int] = defaultdict(int)
    for r in inside:
        per_service[r["service"] or "(none)"] += r["bytes"]
    top2 = sorted(per_service, key=lambda s: (-per_service[s], s))[:2]
    expected: dict[str, list[list[int]]] = {}
    for r in inside:
        service = r["service"] or "(none)"
        key = service if service in top2 else "other"
        i = int((seconds(r) - start) // 300)
        series = expected.setdefault(key, [[0] * 10, [0] * 10, [0] * 10])
        series[0][i] += r["bytes"]
        series[1][i] += r["packets"]
        series[2][i] += 1
    assert [s["key"] for s in got["series"]] == [*top2, "other"]
    for s in got["series"]:
        b, p, n = expected[s["key"]]
        assert (s["bytes"], s["packets"], s["records"]) == (b, p, n), s["key"]
        covered = [300] * 9 + [90]
        assert s["bits_per_s"] == pytest.approx(
            [x * 8 / c for x, c in zip(b, covered, strict=True)]
        )
        assert s["packets_per_s"] == pytest.approx([x / c for x, c in zip(p, covered, strict=True)])
    assert sum(sum(s["records"]) for s in got["series"]) == len(inside)
    assert got["filters"] == [{"field": "source", "op": "=", "value": "nf"}]


def test_series_empty_buckets_are_zero_not_missing(kit):
    viewer = kit.user("vera", "viewer")
    one = make_rows(1, seed=9, source="nf")
    one[0]["start_time"] = int((T0 - 3600 + 30) * 10**6)  # in the first minute only
    kit.store.commit(to_table(one), origin="g/a", sequence=1)
    got = viewer.get(
        "/api/explore/series", params={"minutes": 60, "bucket_s": 60, "filter": "source=nf"}
    ).json()
    assert len(got["buckets"]) == 60 and got["partial"] == [False] * 60
    (series,) = got["series"]
    assert series["key"] == "all"
    assert series["bytes"] == [one[0]["bytes"]] + [0] * 59
    nothing = viewer.get(
        "/api/explore/series", params={"minutes": 10, "bucket_s": 60, "filter": "source=none"}
    ).json()
    assert len(nothing["buckets"]) == 10 and nothing["series"] == []


def test_top_any_field_with_filters(kit, rows):
    viewer = kit.user("vera", "viewer")
    chosen = [r for r in rows if r["source"] == "nf" and r["service"] != "web"]

    def hand(field, metric):
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for r in chosen:
            key = "(none)" if r[field] is None else str(r[field])
            totals[key][0] += r["bytes"]
            totals[key][1] += r["packets"]
            totals[key][2] += 1
        index = {"bytes": 0, "packets": 1, "records": 2}[metric]
        ordered = sorted(totals.items(), key=lambda kv: -kv[1][index])
        return [(k, *v) for k, v in ordered]

    for field, metric in [("dst_ip", "bytes"), ("src_ip", "packets"), ("account_id", "records")]:
        got = viewer.get(
            "/api/explore/top",
            params={
                "by": field,
                "metric": metric,
                "limit": 100,
                "filter": ["source=nf", "service!=web"],
                "label": "dst_host" if field == "dst_ip" else None,
            },
        ).json()
        got_rows = [(r["key"], r["bytes"], r["packets"], r["records"]) for r in got["rows"]]
        assert sorted(got_rows) == sorted(hand(field, metric)), field
        assert [r[1 + ["bytes", "packets", "records"].index(metric)] for r in got_rows] == sorted(
            (r[1 + ["bytes", "packets", "records"].index(metric)] for r in got_rows), reverse=True
        )
        if field == "dst_ip":
            assert all(r["label"] == f"h{r['key'].rsplit('.', 1)[1]}.example" for r in got["rows"])
    # (none) selects the records without a value
    none = viewer.get(
        "/api/explore/top", params={"by": "source", "filter": "account_id=(none)"}
    ).json()
    assert {r["key"]: r["records"] for r in none["rows"]} == {
        s: sum(1 for r in rows if r["source"] == s and r["account_id"] is None)
        for s in ("nf", "radius")
    }


def test_comparisons_on_numbers(kit, rows):
    viewer = kit.user("vera", "viewer")
    big = viewer.get(
        "/api/explore/top",
        params={"by": "source", "filter": ["bytes>=5000000", "packets<5000"]},
    ).json()
    assert {r["key"]: r["records"] for r in big["rows"]} == {
        s: n
        for s in ("nf", "radius")
        if (
            n := sum(
                1 for r in rows if r["source"] == s and r["bytes"] >= 5e6 and r["packets"] < 5000
            )
        )
    }
    upto = viewer.get("/api/explore/records", params={"filter": "record_id<=10"}).json()
    assert upto["total"] == 10


def test_records_page_and_csv(kit, rows):
    viewer = kit.user("vera", "viewer")
    matching = sorted(
        (r for r in rows if r["account_id"] == "acme" and r["source"] == "radius"),
        key=lambda r: -r["start_time"],
    )
    params = {"filter": ["account_id=acme", "source=radius"], "columns": "bytes,src_ip,dst_ip"}
    page = viewer.get("/api/explore/records", params={**params, "limit": 5, "offset": 2}).json()
    assert page["total"] == len(matching) and page["columns"] == ["bytes", "src_ip", "dst_ip"]
    assert page["rows"] == [
        {"bytes": r["bytes"], "src_ip": r["src_ip"], "dst_ip": r["dst_ip"]} for r in matching[2:7]
    ]
    download = viewer.get("/api/explore/records", params={**params, "format": "csv"})
    assert download.headers["content-disposition"] == 'attachment; filename="records.csv"'
    assert download.headers["x-netdistill-total"] == str(len(matching))
    table = list(csv.reader(io.StringIO(download.text)))
    assert table[0] == ["bytes", "src_ip", "dst_ip"]
    assert table[1:] == [[str(r["bytes"]), r["src_ip"], r["dst_ip"]] for r in matching]
    default = viewer.get("/api/explore/records", params={"limit": 1}).json()
    assert default["columns"][:3] == ["start_time", "source", "exporter"]
    assert default["rows"][0]["start_time"].endswith("Z")


def test_no_request_text_reaches_the_sql(kit, rows):
    viewer = kit.user("vera", "viewer")
    before = kit.store.query("SELECT count(*) AS n FROM records").to_pylist()[0]["n"]
    refusals = {
        ("top", "by", 'service" FROM users --'): (
            "by: no field named 'service\" FROM users --' in records"
        ),
        ("top", "by", "password_hash"): "by: no field named 'password_hash' in records",
        ("top", "label", "1); DROP TABLE records; --"): (
            "label: no field named '1); DROP TABLE records; --' in records"
        ),
        ("records", "columns", "bytes,(SELECT password_hash FROM users)"): (
            "columns: no field named '(SELECT password_hash FROM users)' in records"
        ),
        ("series", "by", "1=1"): "by: no field named '1=1' in records",
        ("series", "time_field", "source"): "time_field: source is not a timestamp",
        ("top", "filter", "nope=1"): "filter 'nope=1': no field named 'nope' in records",
        ("top", "filter", "bytes=1 OR 1=1"): (
            "filter 'bytes=1 OR 1=1': '1 OR 1=1' is not a uint64 "
            "(invalid literal for int() with base 10: '1 OR 1=1')"
        ),
        ("top", "filter", "bytes"): (
            "filter 'bytes': expected FIELD=VALUE, FIELD!=VALUE, or <, <=, >, >="
        ),
        ("top", "filter", "=1"): "filter '=1': expected FIELD=VALUE, FIELD!=VALUE, or <, <=, >, >=",
        ("top", "filter", "source>a"): "filter 'source>a': > compares numbers and times only",
        ("top", "metric", "sum(bytes)"): "metric: one of bytes, packets, records, not 'sum(bytes)'",
        ("records", "format", "xlsx"): "format: json or csv, not 'xlsx'",
    }
    for (route, name, value), detail in refusals.items():
        params = {"by": "source", name: value}
        answer = viewer.get(f"/api/explore/{route}", params=params)
        assert (answer.status_code, answer.json()) == (400, {"detail": detail}), (route, name)
    # a value is a value: compared, never run
    injected = viewer.get(
        "/api/explore/top", params={"by": "source", "filter": "account_id=x' OR '1'='1"}
    ).json()
    assert injected["rows"] == []
    assert kit.store.query("SELECT count(*) AS n FROM records").to_pylist()[0]["n"] == before
    too_many = viewer.get("/api/explore/series", params={"minutes": 60 * 24 * 30, "bucket_s": 60})
    assert too_many.json() == {
        "detail": "bucket_s: 43200 buckets of 60 s in this range; at most 2000 "
        "(choose longer buckets)"
    }
    assert viewer.get("/api/explore/records", params={"limit": 5000}).json() == {
        "detail": "limit: at most 1000 rows as JSON (use format=csv)"
    }


def test_explorer_runs_in_the_query_sandbox_within_its_limits(kit, rows):
    from netdistill.store.sandbox import QueryLimits

    kit.console.explorer._limits = lambda: QueryLimits(max_rows=3)
    viewer = kit.user("vera", "viewer")
    answer = viewer.get("/api/explore/records", params={"limit": 10})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("refused (rule: row-limit)")


def test_explorer_and_its_page_need_a_session(kit):
    anonymous = kit.anonymous()
    for path in ["/api/explore/fields", "/api/explore/series", "/api/explore/records"]:
        assert anonymous.get(path).status_code == 401, path
    assert anonymous.get("/api/explore/top", params={"by": "source"}).status_code == 401
    page = anonymous.get("/explore", follow_redirects=False)
    assert page.headers["location"] == "/login?next=/explore"
    viewer = kit.user("vera", "viewer")
    assert 'data-testid="chart-explore"' in viewer.get("/explore").text
    fields = viewer.get("/api/explore/fields").json()
    assert {"name": "bytes", "type": "uint64"}.items() <= fields["fields"][10].items()
    assert fields["metrics"] == ["bytes", "packets", "records"]
