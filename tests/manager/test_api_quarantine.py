"""GET /api/quarantine: what was set aside, counted per source and reason, with its place."""

from fastapi.testclient import TestClient

from netdistill.manager.api import create_app
from netdistill.records.batch import Quarantined
from netdistill.store.duckdb import DuckDBStore


def test_quarantine_counts_and_items_with_their_place(tmp_path):
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.commit_quarantine(
        [
            Quarantined("proxy", "cache1", 1_700_000_000.0, "malformed", "no URL", b"bad line 1",
                        location="/var/log/squid/access.log:17"),
            Quarantined("proxy", "cache1", 1_700_000_001.0, "malformed", "no URL", b"bad line 2",
                        location="/var/log/squid/access.log:18"),
            Quarantined("edge", "192.0.2.1", 1_700_000_002.0, "data_before_template", "",
                        b"\x00\x09\xff", offset=20),
        ]
    )  # fmt: skip
    client = TestClient(create_app(store, token="t", status=dict))
    assert client.get("/api/quarantine").status_code == 401
    auth = {"authorization": "Bearer t"}
    body = client.get("/api/quarantine", headers=auth).json()
    assert body["counts"] == [
        {"source": "edge", "reason": "data_before_template", "n": 1},
        {"source": "proxy", "reason": "malformed", "n": 2},
    ]
    assert [i["location"] for i in body["items"]] == [
        "",
        "/var/log/squid/access.log:18",
        "/var/log/squid/access.log:17",
    ]
    assert body["items"][0]["offset"] == 20
    assert body["items"][0]["payload_preview"] == "\x00\t\\xff"
    assert body["items"][1]["received_at"] == "2023-11-14T22:13:21Z"
    only = client.get("/api/quarantine", params={"source": "proxy", "limit": 1}, headers=auth)
    assert only.json()["counts"] == [{"source": "proxy", "reason": "malformed", "n": 2}]
    assert [i["payload_preview"] for i in only.json()["items"]] == ["bad line 2"]
    store.close()
