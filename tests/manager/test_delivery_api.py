"""The manager's delivery API in-process: credentials, plan versions, idempotent ingest,
batches by field name, refusals.

A real manager (store, uvicorn on a free loopback port) is driven over HTTP with httpx,
as a gatherer would; batches are real spool entries encoded by the delivery code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from netdistill.delivery.arrow import quarantine_to_table
from netdistill.delivery.entry import QUARANTINE, RECORDS, Entry
from netdistill.delivery.wire import encode_records, encode_table, pack_entries
from netdistill.manager.serve import ManagerProcess
from netdistill.records.batch import Quarantined
from netdistill.records.fields import STANDARD_FIELDS
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


STANDARD_TYPES = {f.name: f.type for f in STANDARD_FIELDS}


def _entry(
    seq: int, table: pa.Table, origin: str = "g1/nf1", types: dict[str, str] | None = None
) -> Entry:
    payload = encode_records(table, {**STANDARD_TYPES, **(types or {})})
    return Entry(seq, RECORDS, origin, seq, table.num_rows, payload)


def test_credentials(manager: ManagerProcess) -> None:
    url = manager.manager.api_url
    assert httpx.get(f"{url}/api/plan", params={"gatherer": "g1"}).status_code == 401
    wrong = httpx.get(
        f"{url}/api/plan", params={"gatherer": "g1"}, headers={"authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    with _client(manager, "g2") as g2:  # g2's valid token used as g1
        assert g2.get("/api/plan", params={"gatherer": "g1"}).status_code == 403
        body = pack_entries([_entry(1, _batch(range(3)), origin="g1/nf1")])
        assert g2.post("/api/ingest", params={"gatherer": "g1"}, content=body).status_code == 403
        # its own name but another gatherer's origin inside the batch
        refused = g2.post("/api/ingest", params={"gatherer": "g2"}, content=body)
        assert refused.status_code == 422 and refused.json()["acked"] == 0
        assert refused.json()["retriable"] is False and "'g1/nf1'" in refused.json()["error"]
    with _client(manager, "old") as old:
        assert old.get("/api/plan", params={"gatherer": "old"}).status_code == 403
    assert manager.auth.refused == 5
    assert manager.store.query("select count(*) as n from records").column("n")[0].as_py() == 0


def test_plan_version_changes_with_the_gatherers_part(manager: ManagerProcess) -> None:
    with _client(manager, "g1") as g1, _client(manager, "g2") as g2:
        first = g1.get("/api/plan", params={"gatherer": "g1"}).json()
        assert [s["name"] for s in first["sources"]] == ["nf1"]
        assert "fields" not in first  # batches carry names: no registry to hand out
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
    entries = [_entry(seq, _batch(range(seq * 10, seq * 10 + 10))) for seq in (1, 2, 3)]
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


def _post(manager: ManagerProcess, entries: list[Entry]) -> httpx.Response:
    with _client(manager, "g1") as g1:
        return g1.post("/api/ingest", params={"gatherer": "g1"}, content=pack_entries(entries))


def _stored(manager: ManagerProcess) -> int:
    return int(manager.store.query("select count(*) as n from records").column("n")[0].as_py())


def test_a_field_known_with_another_type_is_refused_for_good(manager: ManagerProcess) -> None:
    """A field dropped and added again with another type while a batch was spooled:
    refused (422, not retriable), naming the field and both types; the entries before it
    in the same request are committed and acknowledged, nothing of it is stored."""
    manager.store.add_field("customer_tier", "string")
    good = _entry(1, _batch(range(4)))
    table = _batch(range(4, 8)).append_column("customer_tier", pa.array(["gold"] * 4))
    bad = _entry(2, table, types={"customer_tier": "string"})  # spooled while it was string
    manager.store.drop_field("customer_tier")
    manager.store.add_field("customer_tier", "int64")
    answer = _post(manager, [good, bad, _entry(3, _batch(range(8, 12)))])
    assert answer.status_code == 422
    assert answer.json() == {
        "acked": 1,
        "retriable": False,
        "seq": 2,
        "error": "entry 2: field 'customer_tier' is string in the batch but int64 in this "
        "manager's field registry",
        "field": "customer_tier",
        "sent_type": "string",
        "registered_type": "int64",
    }
    assert _stored(manager) == 4  # entry 1 only
    # sending it again gives the same answer (the gatherer will not retry in a loop)
    assert _post(manager, [bad]).json()["seq"] == 2
    assert manager.ingest.status()["refused"] == {"g1": 2}
    assert _stored(manager) == 4


def test_an_unknown_field_is_refused_not_dropped(manager: ManagerProcess) -> None:
    table = _batch(range(3)).append_column("vlan_id", pa.array([7, 8, 9], pa.uint16()))
    answer = _post(manager, [_entry(1, table, types={"vlan_id": "uint16"})])
    assert answer.status_code == 422
    body = answer.json()
    assert body["retriable"] is False and body["acked"] == 0 and body["seq"] == 1
    assert (body["field"], body["sent_type"], body["registered_type"]) == (
        "vlan_id",
        "uint16",
        None,
    )
    assert "'vlan_id' (uint16) is not in this manager's field registry" in body["error"]
    assert _stored(manager) == 0
    manager.store.add_field("vlan_id", "uint16")  # the operator's fix: now it is stored
    assert _post(manager, [_entry(1, table, types={"vlan_id": "uint16"})]).json() == {
        "acked": 1,
        "rows": 3,
    }
    rows = manager.store.query("select vlan_id from records order by vlan_id").to_pylist()
    assert rows == [{"vlan_id": 7}, {"vlan_id": 8}, {"vlan_id": 9}]


def test_an_ip_column_is_not_a_string_column(manager: ManagerProcess) -> None:
    """``ip`` and ``string`` are both Arrow strings: the registry type in the field
    metadata tells them apart."""
    manager.store.add_field("peer_host", "string")
    table = _batch(range(2)).append_column("peer_host", pa.array(["10.0.0.9", "10.0.0.8"]))
    answer = _post(manager, [_entry(1, table, types={"peer_host": "ip"})])
    assert answer.status_code == 422
    assert (answer.json()["sent_type"], answer.json()["registered_type"]) == ("ip", "string")


def test_a_batch_named_by_field_ids_is_refused(manager: ManagerProcess) -> None:
    """Wire format 1 (columns named by the ids of the plan's manager) from a gatherer
    not yet upgraded: refused for good, so it stays in that gatherer's spool."""
    table = _batch(range(3))
    ids = {f.name: f.id for f in manager.store.fields}
    legacy = table.rename_columns([str(ids[n]) for n in table.schema.names])
    entry = Entry(1, RECORDS, "g1/nf1", 1, 3, encode_table(legacy))
    answer = _post(manager, [entry])
    assert answer.status_code == 422 and answer.json()["retriable"] is False
    assert "by field id (wire format 1" in answer.json()["error"]
    assert _stored(manager) == 0


def test_a_store_failure_is_retriable(manager: ManagerProcess) -> None:
    conn = manager.store._conn  # a store failure from outside, as a full disk would be
    conn.execute("ALTER TABLE records RENAME TO records_away")
    answer = _post(manager, [_entry(1, _batch(range(3)))])
    assert answer.status_code == 503
    assert answer.json()["retriable"] is True and answer.json()["acked"] == 0
    conn.execute("ALTER TABLE records_away RENAME TO records")
    assert _post(manager, [_entry(1, _batch(range(3)))]).json() == {"acked": 1, "rows": 3}


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
            body = pack_entries([_entry(1, table)])
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
