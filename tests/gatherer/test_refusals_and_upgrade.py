"""A gatherer and a manager in one test process, over real sockets: refusals for good,
and spool entries written before batches carried field names.

* A poison batch (a field the manager does not know) between good ones: it is refused
  for good (422), moved to the gatherer's dead-letter area with the reason, shown in
  the status, and the batches behind it are stored at once (issue 13, item 3: before,
  they waited behind it for ever); ``netdistill gatherer dead-letter resend`` (a real
  process) is refused again until the field is added, then stores it exactly once.
* Upgrade: a spool holding format-1 entries (columns named by the ids of the manager
  that served the old plan) and the old ``plan.json``: the gatherer records that
  registry at start and converts the entries, so a manager whose ids differ stores
  every column by name; an id the old registry does not name is left out and counted.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import peers
import pyarrow as pa

from netdistill.delivery.entry import RECORDS
from netdistill.delivery.wire import encode_table
from netdistill.gatherer.forward import destination_name
from netdistill.gatherer.main import Gatherer
from netdistill.gatherer.spool import Spool
from netdistill.manager.serve import ManagerProcess
from netdistill.records.schema import conform
from netdistill.sources.netflow.encode import V5Exporter, encode_v5

TOKEN = "refusal-token"


def _v5(n: int) -> list[bytes]:
    index = np.arange(n)
    now = int(time.time() * 1000)
    return encode_v5(
        {
            "start_time": np.full(n, now - 2000),
            "end_time": np.full(n, now - 1000),
            "src_ip": (0x0A000000 + index).astype(np.uint32),
            "dst_ip": np.full(n, 0xC0000201, dtype=np.uint32),
            "src_port": np.full(n, 1234, dtype=np.uint16),
            "dst_port": np.full(n, 80, dtype=np.uint16),
            "protocol": np.full(n, 6, dtype=np.uint8),
            "bytes": np.full(n, 500, dtype=np.uint32),
            "packets": np.full(n, 1, dtype=np.uint32),
        },
        V5Exporter(),
    )


def _scheme(path: Path, api_port: int, sources: str) -> None:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    path.write_text(
        f"manager: {{api_port: {api_port}}}\n"
        f"gatherers:\n  - name: g\n    token_sha256: {digest}\n"
        "    commit_interval_s: 0.1\n"
        "    forward: {plan_poll_s: 0.3, backoff_max_s: 0.3}\n"
        f"sources:\n{sources}"
    )


def _wait(what: str, predicate: Any, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def _rows(process: ManagerProcess, sql: str) -> list[dict[str, Any]]:
    return list(process.store.query(sql).to_pylist())


def _poison(rows: int) -> bytes:
    """A records payload with a field no manager has: refused for good."""
    from netdistill.delivery.wire import encode_records

    table = pa.table(
        {
            "src_ip": [f"192.0.2.{i + 1}" for i in range(rows)],
            "bytes": pa.array([7] * rows, pa.uint64()),
            "vlan_poison": pa.array(list(range(rows)), pa.uint32()),
        }
    )
    return encode_records(table, {"src_ip": "ip", "bytes": "uint64", "vlan_poison": "uint32"})


def test_a_poison_batch_is_dead_lettered_and_the_rest_flows_on(tmp_path: Path) -> None:
    import subprocess

    udp = peers.free_udp_port()
    _scheme(
        tmp_path / "scheme.yaml",
        peers.free_tcp_port(),
        f"  - {{type: netflow, name: nf, gatherer: g, listen: ['127.0.0.1:{udp}']}}\n",
    )
    manager = ManagerProcess(tmp_path / "scheme.yaml", tmp_path / "manager")
    manager.start()
    gatherer = Gatherer("g", [manager.manager.api_url], token=TOKEN, data_dir=tmp_path / "g")
    count = "select count(*) n, count(distinct src_ip) k from records where source = 'nf'"
    try:
        gatherer.start()
        peers.wait_udp_bound(udp)
        (forwarder,) = gatherer.forwarders
        peers.send_datagrams(_v5(300), udp, per_second=3000)
        _wait("first stored", lambda: _rows(manager, count) == [{"n": 300, "k": 300}])
        poison_seq = gatherer.spool.append(RECORDS, "g/nf", 0, 5, _poison(5))
        peers.send_datagrams(_v5(200), udp, per_second=3000)  # behind the poison
        _wait("dead-lettered", lambda: forwarder.dead_lettered == 1)
        _wait("the rest stored", lambda: forwarder.status()["pending_records"] == 0)
        assert _rows(manager, count) == [{"n": 500, "k": 300}]  # 200 resent keys: 10.0.0.x
        status = gatherer.status()
        (state,) = status["managers"]
        assert state["dead_lettered"] == 1 and state["last_refusal"]["seq"] == poison_seq
        assert state["last_refusal"]["field"] == "vlan_poison"
        dead = status["dead_letter"]
        assert (dead["batches"], dead["records"]) == (1, 5)
        (entry,) = dead["entries"]
        assert entry["seq"] == poison_seq and entry["url"] == manager.manager.api_url
        assert "'vlan_poison' (uint32) is not in this manager's field registry" in entry["reason"]
        assert any("dead-letter" in alert for alert in status["alerts"])

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*peers.netdistill_command(), "gatherer", "dead-letter", *args,
                 "--data-dir", str(tmp_path / "g")],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip

        listed = cli("list")
        assert listed.returncode == 0 and f"{poison_seq}  g/nf  5 records" in listed.stdout
        again = cli("resend", "--token", TOKEN)
        assert again.returncode == 1 and "REFUSED again" in again.stdout, again
        manager.store.add_field("vlan_poison", "uint32")  # the operator's fix
        fixed = cli("resend", "--token", TOKEN)
        assert fixed.returncode == 0 and "re-sent" in fixed.stdout, fixed
        assert _rows(
            manager, "select count(*) n, sum(vlan_poison) v from records where source is null"
        ) == [{"n": 5, "v": 10}]
        assert gatherer.status()["dead_letter"]["batches"] == 0
        assert cli("resend", "--token", TOKEN).returncode == 1  # nothing left: no double
        assert len(list((tmp_path / "g" / "dead-letter" / "resent").glob("*.entry"))) == 1
    finally:
        gatherer.stop()
        manager.stop()


def test_format1_spool_entries_are_converted_at_upgrade(tmp_path: Path) -> None:
    """The old plan's manager numbered the RADIUS fields from 1001; the manager the
    upgraded gatherer sends to has an operator's field at 1001, so its ids are shifted."""
    radius, api_port = peers.free_udp_port(), peers.free_tcp_port()
    sources = (
        f"  - {{type: radius, name: rad, gatherer: g, listen: ['127.0.0.1:{radius}'],\n"
        "     clients: {127.0.0.1: {secret: s3cret}}}\n"
    )
    _scheme(tmp_path / "scheme.yaml", api_port, sources)
    # what the gatherer of the previous version left: its plan (with the old manager's
    # registry) and a spool with two format-1 entries, not yet acknowledged
    from netdistill.sources.radius.accounting import FIELDS
    from netdistill.store.duckdb import DuckDBStore

    old = DuckDBStore(tmp_path / "old.duckdb")
    for spec in FIELDS:
        old.add_field(spec.name, spec.type)
    old.add_field("dropped_since", "string")
    registry = [{"id": f.id, "name": f.name, "type": f.type} for f in old.fields]
    ids = {f.name: f.id for f in old.fields}
    old.drop_field("dropped_since")  # gone from the registry the old plan carried
    registry = [f for f in registry if f["name"] != "dropped_since"]
    old.close()
    data = tmp_path / "g"
    data.mkdir()
    (data / "plan.json").write_text(json.dumps({"version": "old", "fields": registry}))
    table = conform(
        pa.table(
            {
                "user_name": ["alice", "bob"],
                "session_id": ["s-1", "s-2"],
                "bytes": pa.array([30, 70], pa.uint64()),
                "source": ["rad", "rad"],
                "gatherer": ["g", "g"],
            }
        )
    )
    table = (
        table.append_column("acct_status_type", pa.array(["Stop", "Stop"]))
        .append_column("bytes_in", pa.array([10, 20], pa.uint64()))
        .append_column("bytes_out", pa.array([20, 50], pa.uint64()))
        .append_column("dropped_since", pa.array(["x", "y"]))
    )
    legacy = table.rename_columns([str(ids[n]) for n in table.schema.names])  # format 1
    url = f"http://127.0.0.1:{api_port}"
    spool = Spool(data / "spool", [destination_name(url)])
    spool.append(RECORDS, "g/rad", 1, 1, encode_table(legacy.slice(0, 1)))
    spool.append(RECORDS, "g/rad", 2, 1, encode_table(legacy.slice(1, 1)))
    spool.close()

    manager_dir = tmp_path / "manager"
    store = DuckDBStore(manager_dir / "records.duckdb")
    store.add_field("site_code", "string")  # before the RADIUS fields: ids shifted by one
    store.close()
    manager = ManagerProcess(tmp_path / "scheme.yaml", manager_dir)
    manager.start()
    assert manager.store.fields["bytes_in"].id == ids["bytes_in"] + 1
    gatherer = Gatherer("g", [url], token=TOKEN, data_dir=data)
    try:
        gatherer.start()
        (forwarder,) = gatherer.forwarders
        _wait("both sent", lambda: forwarder.status()["pending_batches"] == 0)
        recorded = json.loads((data / "spool" / "format1-fields.json").read_text())
        assert recorded["before_seq"] > 0 and len(recorded["fields"]) == len(registry)
        assert not json.loads((data / "plan.json").read_text()).get("fields")  # new plan
        rows = _rows(
            manager,
            "select user_name, session_id, bytes, acct_status_type, bytes_in, bytes_out, "
            "site_code, source from records order by user_name",
        )
        assert rows == [
            {"user_name": "alice", "session_id": "s-1", "bytes": 30, "acct_status_type": "Stop",
             "bytes_in": 10, "bytes_out": 20, "site_code": None, "source": "rad"},
            {"user_name": "bob", "session_id": "s-2", "bytes": 70, "acct_status_type": "Stop",
             "bytes_in": 20, "bytes_out": 50, "site_code": None, "source": "rad"},
        ]  # fmt: skip
        status = gatherer.status()
        assert status["format1_left_out"] == 2  # dropped_since, once per entry
        assert status["format1_converted"] == 2
        assert status["managers"][0]["dead_lettered"] == 0
    finally:
        gatherer.stop()
        manager.stop()
