"""The manager's delivery API in-process: credentials, plan versions, idempotent ingest.

A real manager (store, uvicorn on a free loopback port) is driven over HTTP with httpx,
as a gatherer would; batches are real spool entries encoded by the gatherer's code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from netdistill.gatherer.spool import QUARANTINE, RECORDS, Entry
from netdistill.gatherer.wire import encode_table, pack_entries, to_ids
from netdistill.manager.api import quarantine_to_table
from netdistill.manager.serve import ManagerProcess
from netdistill.records.batch import Quarantined
from netdistill.records.schema import conform

TOKENS = {"g1": "secret-one", "g2": "secret-two", "old": "secret-old"}


def _scheme(path: Path, port: int, *, listen_port: int = 2055, revoked: str = "old") -> None:
    gatherers = "".join(
        f"  - name: {name}\n"
        f"    token_sha256: {hashlib.sha256(token.encode()).hexdigest()}\n"
        + ("    revoked: true\n" if name == revoked else "")
        for name, token in TOKENS.items()
    )
    path.write_text(
        f"manager: {{api_port: {port}}}\n"
        f"gatherers:\n{gatherers}"
        "sources:\n"
        f"  - {{type: netflow, name: nf1, gatherer: g1, listen: ['127.0.0.1:{listen_port}']}}\n"
    )


@pytest.fixture
def manager(tmp_path: Path):
    import peers

    _scheme(tmp_path / "scheme.yaml", peers.free_tcp_port())
    process = ManagerProcess(tmp_path / "scheme.yaml", tmp_path / "data")
    process.start()
    yield process
    process.stop()


def _client(process: ManagerProcess, gatherer: str) -> httpx.Client:
    return httpx.Client(
        base_url=process.manager.api_url,
        headers={"authorization": f"Bearer {TOKENS[gatherer]}"},
    )


def _batch(ports: range) -> pa.Table:
    n = len(ports)
    return conform(
        pa.table(
            {
                "src_ip": pa.array(["10.0.0.1"] * n),
                "src_port": pa.array(list(ports), pa.uint16()),
                "bytes": pa.array([100] * n, pa.uint64()),
            }
        )
    )


def _entry(process: ManagerProcess, seq: int, table: pa.Table, origin: str = "g1/nf1") -> Entry:
    ids = {f.name: f.id for f in process.store.fields}
    wire, _ = to_ids(table, ids)
    return Entry(seq, RECORDS, origin, seq, table.num_rows, encode_table(wire))


def test_credentials(manager: ManagerProcess) -> None:
    url = manager.manager.api_url
    assert httpx.get(f"{url}/api/plan", params={"gatherer": "g1"}).status_code == 401
    wrong = httpx.get(
        f"{url}/api/plan", params={"gatherer": "g1"}, headers={"authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    with _client(manager, "g2") as g2:  # g2's valid token used as g1
        assert g2.get("/api/plan", params={"gatherer": "g1"}).status_code == 403
        body = pack_entries([_entry(manager, 1, _batch(range(3)), origin="g1/nf1")])
        assert g2.post("/api/ingest", params={"gatherer": "g1"}, content=body).status_code == 403
        # its own name but another gatherer's origin inside the batch
        refused = g2.post("/api/ingest", params={"gatherer": "g2"}, content=body)
        assert refused.status_code == 503 and refused.json()["acked"] == 0
    with _client(manager, "old") as old:
        assert old.get("/api/plan", params={"gatherer": "old"}).status_code == 403
    assert manager.auth.refused == 5
    assert manager.store.query("select count(*) as n from records").column("n")[0].as_py() == 0


def test_plan_version_changes_with_the_gatherers_part(manager: ManagerProcess) -> None:
    with _client(manager, "g1") as g1, _client(manager, "g2") as g2:
        first = g1.get("/api/plan", params={"gatherer": "g1"}).json()
        assert [s["name"] for s in first["sources"]] == ["nf1"]
        assert {"id": 11, "name": "bytes", "type": "uint64"} in first["fields"]
        other = g2.get("/api/plan", params={"gatherer": "g2"}).json()
        assert other["sources"] == []
        again = g1.get("/api/plan", params={"gatherer": "g1"}).json()
        assert again["version"] == first["version"]
        _scheme(manager.scheme_path, 1, listen_port=2056)  # api_port change is not g1's part
        admin = {"authorization": f"Bearer {manager.manager.token}"}
        assert g1.post("/api/scheme/reload").status_code == 401
        assert g1.post("/api/scheme/reload", headers=admin).status_code == 200
        changed = g1.get("/api/plan", params={"gatherer": "g1"}).json()
        assert changed["version"] != first["version"]
        assert changed["sources"][0]["listen"] == ["127.0.0.1:2056"]
        assert g2.get("/api/plan", params={"gatherer": "g2"}).json()["version"] == other["version"]
        manager.scheme_path.write_text("sources: [{type: nope}]\n")
        bad = g1.post("/api/scheme/reload", headers=admin)
        assert bad.status_code == 400 and "scheme.yaml:1:" in bad.text
        assert g1.get("/api/plan", params={"gatherer": "g1"}).json() == changed


def test_ingest_is_idempotent_and_maps_field_ids(manager: ManagerProcess) -> None:
    entries = [_entry(manager, seq, _batch(range(seq * 10, seq * 10 + 10))) for seq in (1, 2, 3)]
    quarantine = quarantine_to_table(
        [Quarantined("nf1", "192.0.2.1", 1.0, "malformed", "short", b"\x00\x05", 3, "here")]
    )
    q_entry = Entry(4, QUARANTINE, "g1/nf1", 0, 0, encode_table(quarantine))
    with _client(manager, "g1") as g1:
        first = g1.post(
            "/api/ingest", params={"gatherer": "g1"}, content=pack_entries([*entries[:2], q_entry])
        )
        assert first.json() == {"acked": 4, "rows": 20}
        # the answer to the first request was "lost": everything is sent again, plus one
        again = g1.post(
            "/api/ingest", params={"gatherer": "g1"}, content=pack_entries([*entries, q_entry])
        )
        assert again.json() == {"acked": 4, "rows": 10}
    rows = manager.store.query(
        "select count(*) as n, sum(bytes) as b, count(distinct src_port) as p from records"
    ).to_pylist()
    assert rows == [{"n": 30, "b": 3000, "p": 30}]
    q = manager.store.query("select reason, location, payload from quarantine").to_pylist()
    assert q == [{"reason": "malformed", "location": "here", "payload": b"\x00\x05"}]
    assert manager.ingest.status()["duplicates_ignored"] == {"g1": 2}


def test_a_dropped_field_id_is_left_out(manager: ManagerProcess) -> None:
    manager.store.add_field("customer_tier", "string")
    table = _batch(range(4)).append_column("customer_tier", pa.array(["gold"] * 4))
    entry = _entry(manager, 1, table)  # spooled while the field existed
    manager.store.drop_field("customer_tier")
    manager.store.add_field("customer_tier", "int64")  # same name, new id: must stay null
    with _client(manager, "g1") as g1:
        assert g1.post(
            "/api/ingest", params={"gatherer": "g1"}, content=pack_entries([entry])
        ).json() == {"acked": 1, "rows": 4}
    rows = manager.store.query("select count(customer_tier) as n, count(*) as c from records")
    assert rows.to_pylist() == [{"n": 0, "c": 4}]


def test_procedures_enhance_a_gatherers_batches_on_the_manager(tmp_path: Path) -> None:
    import peers

    scheme = tmp_path / "scheme.yaml"
    _scheme(scheme, peers.free_tcp_port())
    scheme.write_text(
        scheme.read_text()
        + "lookups: [{name: Ports, type: ports}]\n"
        + "procedures:\n"
        + "  - {name: tag, trigger: nf1, fields: {service: 'Ports.Service(protocol, dst_port)"
        + ".service'}}\n"
    )
    process = ManagerProcess(scheme, tmp_path / "data")
    process.start()
    try:
        table = _batch(range(3))
        for name, values, type_ in (
            ("dst_port", [443, 25, 40000], pa.uint16()),
            ("protocol", [6, 6, 6], pa.uint8()),
        ):
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, pa.array(values, type_))
        with _client(process, "g1") as g1:
            body = pack_entries([_entry(process, 1, table)])
            assert g1.post("/api/ingest", params={"gatherer": "g1"}, content=body).json() == {
                "acked": 1,
                "rows": 3,
            }
        rows = process.store.query(
            "select dst_port, service, procedure from records order by dst_port"
        ).to_pylist()
        assert rows == [
            {"dst_port": 25, "service": "smtp", "procedure": "tag"},
            {"dst_port": 443, "service": "https", "procedure": "tag"},
            {"dst_port": 40000, "service": None, "procedure": "tag"},
        ]
    finally:
        process.stop()
