"""A gatherer and a manager in one test process, over real sockets: refusals for good,
and spool entries written before batches carried field names.

* The operator changed a field's type on the manager: every batch is refused (422) —
  the gatherer keeps the entries, counts and shows the refusal, and asks again only
  every ``refused_retry_s`` (no hot loop); once the type is changed back, everything
  spooled meanwhile is stored, exactly once.
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
        "    forward: {plan_poll_s: 0.3, backoff_max_s: 0.3, refused_retry_s: 0.5}\n"
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


def test_a_refused_batch_is_kept_counted_and_asked_again_slowly(tmp_path: Path) -> None:
    udp = peers.free_udp_port()
    _scheme(
        tmp_path / "scheme.yaml",
        peers.free_tcp_port(),
        f"  - {{type: netflow, name: nf, gatherer: g, listen: ['127.0.0.1:{udp}']}}\n",
    )
    manager = ManagerProcess(tmp_path / "scheme.yaml", tmp_path / "manager")
    manager.start()
    manager.store.alter_field("tos", "uint16")  # the operator's change; NetFlow sends uint8
    gatherer = Gatherer("g", [manager.manager.api_url], token=TOKEN, data_dir=tmp_path / "g")
    try:
        gatherer.start()
        peers.wait_udp_bound(udp)
        peers.send_datagrams(_v5(300), udp, per_second=3000)
        (forwarder,) = gatherer.forwarders
        _wait("refused", lambda: forwarder.refused is not None)
        asked = forwarder.requests
        time.sleep(1.2)  # refused_retry_s 0.5: two or three more requests, not hundreds
        status = gatherer.status()
        (state,) = status["managers"]
        assert 1 <= state["requests"] - asked <= 4, state
        assert state["refused_batches"] == 1 and state["refusals"] >= 2
        assert state["refused"]["field"] == "tos" and state["refused"]["origin"] == "g/nf"
        assert "'tos' is uint8 in the batch but uint16" in state["refused"]["error"]
        assert state["pending_records"] == 300  # kept in the spool, nothing acknowledged
        assert status["alerts"] == [
            f"manager {manager.manager.api_url} refuses spool entry {state['refused']['seq']}"
        ]
        assert _rows(manager, "select count(*) n from records") == [{"n": 0}]
        assert manager.ingest.status()["refused"]["g"] >= 2

        manager.store.alter_field("tos", "uint8")  # fixed: the next try is taken
        _wait("stored", lambda: forwarder.status()["pending_records"] == 0)
        assert forwarder.refused is None
        assert _rows(manager, "select count(*) n, count(distinct src_ip) k from records") == [
            {"n": 300, "k": 300}
        ]
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
        assert status["managers"][0]["refused_batches"] == 0
    finally:
        gatherer.stop()
        manager.stop()
