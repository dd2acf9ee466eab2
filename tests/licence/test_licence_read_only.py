"""A manager (in this process, over real sockets) whose only licence is past its grace
period: configuration changes are refused with the licence's message, for every role
and the token alike, while delivery, queries and licence changes go on; installing a
valid licence ends it. And the version comparison the gatherers table shows."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import peers
from licence_kit import TestVendor

from netdistill import __version__
from netdistill.licence import tables
from netdistill.manager.serve import ManagerProcess
from netdistill.manager.versions import mismatches, older_than
from netdistill.plugins import inventory
from netdistill.store.duckdb import DuckDBStore


def test_an_expired_licence_makes_configuration_read_only(tmp_path: Path) -> None:
    vendor = TestVendor()
    data = tmp_path / "data"
    # installed a year ago, expired 30 days ago, 14 days of grace: over
    long_ago = datetime.now(UTC) - timedelta(days=395)
    store = DuckDBStore(data / "records.duckdb")
    tables.ensure_tables(store)
    text = vendor.issue("OLD-1", now=long_ago, days=365, gatherers=3)
    tables.put_licence(store, "OLD-1", text, "cli", long_ago.timestamp())
    store.close()
    port = peers.free_tcp_port()
    scheme = tmp_path / "scheme.yaml"
    digest = hashlib.sha256(b"g-token").hexdigest()
    scheme.write_text(
        f"manager: {{api_port: {port}}}\ngatherers:\n  - {{name: g1, token_sha256: {digest}}}\n"
        "sources: []\n"
    )
    process = ManagerProcess(scheme, data, licence_keys=vendor.trusted)
    process.start()
    try:
        api = httpx.Client(
            base_url=process.manager.api_url,
            headers={"authorization": f"Bearer {process.manager.token}"},
            timeout=30,
        )
        status = api.get("/api/status").json()["licence"]
        assert status["edition"] == "expired"
        reason = status["read_only"]
        assert reason.startswith("read-only: every installed licence is past its grace period.")
        for method, path, body in [
            ("POST", "/api/fields", {"name": "vlan", "type": "uint16"}),
            ("DELETE", "/api/fields/service", None),
            ("POST", "/api/scheme/reload", None),
            ("PUT", "/api/scheme", {"yaml": scheme.read_text()}),
        ]:
            answer = api.request(method, path, json=body)
            assert answer.status_code == 403, (path, answer.text)
            assert answer.json() == {"detail": reason}
        assert process.store.fields.get("vlan") is None
        # no credential: 401 as always, nothing said about the licence
        assert httpx.post(f"{process.manager.api_url}/api/fields", json={}).status_code == 401
        # reading, querying and checking a scheme go on
        assert api.post("/api/query", json={"sql": "select 1 as x"}).status_code == 200
        assert api.post("/api/scheme/validate", json={"yaml": scheme.read_text()}).status_code < 400
        # a gatherer is still admitted (collection never stops), up to the community 2
        plan = httpx.get(
            f"{process.manager.api_url}/api/plan",
            params={"gatherer": "g1"},
            headers={"authorization": "Bearer g-token"},
        )
        assert plan.status_code == 200, plan.text
        # a valid licence ends read-only mode
        added = api.post("/api/licences", json={"text": vendor.issue("NEW-1", gatherers=3)})
        assert added.status_code == 200, added.text
        assert added.json() == {"installed": "NEW-1", "edition": "licensed"}
        assert api.get("/api/status").json()["licence"]["read_only"] == ""
        answer = api.post("/api/fields", json={"name": "vlan", "type": "uint16"})
        assert answer.status_code == 200, answer.text
        # a forged licence is refused with its message
        forged = vendor.issue("NEW-2").replace('"gatherers": 0', '"gatherers": 50')
        refused = api.post("/api/licences", json={"text": forged})
        assert refused.status_code == 400
        assert "changed after it was signed" in refused.json()["error"]
        assert api.delete("/api/licences/NO-SUCH").status_code == 404
        kinds = [a["kind"] for a in api.get("/api/alerts").json()]
        assert kinds == ["licence_expired", "licence_read_only"]
    finally:
        process.stop()


def test_version_and_plugin_mismatches() -> None:
    mine = inventory()
    assert mine["sources"]["netflow"] == f"netdistill {__version__}"
    same = {"version": __version__, "plugins": mine}
    assert mismatches(same, version=__version__, plugins=mine) == []
    other = {
        "version": "0.0.9",
        "plugins": {
            "sources": {
                **{k: v for k, v in mine["sources"].items() if k != "sflow"},
                "ticker": "netdistill-ticker 1.0",
            },
            "distributions": {"netdistill-ticker": "1.0"},
        },
    }
    plugins = {**mine, "distributions": {**mine["distributions"], "netdistill-ticker": "1.1"}}
    assert mismatches(other, version=__version__, plugins=plugins) == [
        f"netdistill 0.0.9 on the gatherer, {__version__} on the manager",
        f"source type sflow: missing on the gatherer, netdistill {__version__} on the manager",
        "source type ticker: netdistill-ticker 1.0 on the gatherer, missing on the manager",
        "plugin netdistill-ticker: 1.0 on the gatherer, 1.1 on the manager",
    ]
    # a heartbeat from before plugins were reported: the version only
    assert mismatches({"version": "0.0.9"}, version="0.1.0", plugins=mine) == [
        "netdistill 0.0.9 on the gatherer, 0.1.0 on the manager"
    ]
    assert older_than("0.1.0", "0.2") and not older_than("0.2.0", "0.2")
    assert older_than(None, "0.1") and older_than("not-a-version", "0.1")
    assert not older_than("1.10.0", "1.9")  # numeric, not text
