"""One gatherer, two managers whose field registries differ (issue 12), real processes.

Manager A starts first and serves the gatherer its plan; manager B never serves a plan
(the gatherer asks A first) and its registry has one operator-added field that A lacks
(``netdistill fields add`` before it starts), so every field a source adds later gets
another id on B than on A. The gatherer collects a RADIUS source (the real
``radclient`` sends accounting) and NetFlow v5 (the project's encoder) and forwards to
both.

Checked: both stores hold every record with every column, exactly: the RADIUS rows
equal a hand-computed truth, column by column; the NetFlow rows equal the encoded
flows; A's and B's rows are equal in full (everything but the ids and the entry time
each store stamps). Before batches carried field names, B stored the RADIUS records
without their RADIUS columns (B never created them and dropped the unknown ids while
acknowledging) and, once B created them, refused every batch with 503 forever (every
RADIUS id shifted by one).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import peers
import pytest
from traffic import keyed_v5_flows

from netdistill.manager.discovery import read_manager_info

TOKEN = "two-registries-token"
SECRET = "testing123"
T0 = 1_700_000_000  # event times of the RADIUS requests (Event-Timestamp)
SESSIONS = [  # (user, session id, address, session time, in/out octets, in/out packets)
    ("alice", "s-1", "10.70.0.1", 600, 1_000_000, 2_000_000, 1000, 2000),
    ("bob", "s-2", "10.70.0.2", 30, 5_000_000_000, 7, 4_000_000, 1),  # Gigawords
    ("carol", "s-3", "10.70.0.3", 3600, 123, 456, 7, 8),
]
FLOWS = 3000  # NetFlow v5 flows, 100 datagrams


class Deployment:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.netflow_port = peers.free_udp_port()
        self.radius_port = peers.free_udp_port()
        self.ports = {"a": peers.free_tcp_port(), "b": peers.free_tcp_port()}
        self.urls = {k: f"http://127.0.0.1:{p}" for k, p in self.ports.items()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []
        digest = hashlib.sha256(TOKEN.encode()).hexdigest()
        for name, port in self.ports.items():
            (root / f"{name}.yaml").write_text(
                f"manager: {{api_port: {port}}}\n"
                "gatherers:\n"
                f"  - name: g1\n    token_sha256: {digest}\n"
                "    commit_interval_s: 0.2\n"
                "    forward: {backoff_initial_s: 0.1, backoff_max_s: 0.5, plan_poll_s: 1.0}\n"
                "sources:\n"
                "  - {type: netflow, name: nf, gatherer: g1,\n"
                f"     listen: ['127.0.0.1:{self.netflow_port}']}}\n"
                "  - {type: radius, name: rad, gatherer: g1,\n"
                f"     listen: ['127.0.0.1:{self.radius_port}'],\n"
                f"     clients: {{127.0.0.1: {{secret: {SECRET}}}}}}}\n"
            )

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(
            [*peers.netdistill_command(), *args], stdout=log, stderr=subprocess.STDOUT
        )
        return self.procs[name]

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def start_manager(self, name: str) -> None:
        data = self.root / name
        proc = self._spawn(name, "manager", "--config", str(self.root / f"{name}.yaml"),
                           "--data-dir", str(data))  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, self.log(name)
            info = read_manager_info(data)
            if info is not None and info.pid == proc.pid:
                return
            time.sleep(0.1)
        raise TimeoutError(self.log(name))

    def start_gatherer(self) -> None:
        self._spawn(
            "gatherer", "gatherer", "--name", "g1",
            "--manager", self.urls["a"], "--manager", self.urls["b"],
            "--token", TOKEN, "--data-dir", str(self.root / "gatherer"),
        )  # fmt: skip
        peers.wait_udp_bound(self.netflow_port, 30)
        peers.wait_udp_bound(self.radius_port, 30)

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.root / "gatherer" / "gatherer-status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def rows(self, name: str, sql: str) -> list[dict[str, Any]]:
        from netdistill.manager.client import ManagerClient

        info = read_manager_info(self.root / name)
        assert info is not None, self.log(name)
        client = ManagerClient(info)
        try:
            return list(client.query(sql).to_pylist())
        finally:
            client.close()

    def field_ids(self, name: str) -> dict[str, int]:
        from netdistill.manager.client import ManagerClient

        info = read_manager_info(self.root / name)
        assert info is not None, self.log(name)
        client = ManagerClient(info)
        try:
            return {f["name"]: int(f["id"]) for f in client.fields()}
        finally:
            client.close()

    def wait(self, what: str, predicate: Any, timeout_s: float = 40) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"{what}: {self.status()}\n{self.log('gatherer')}")

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                peers.stop_process(proc)
        for log in self._logs:
            log.close()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(tmp_path)
    yield d
    d.close()


def radius_requests() -> list[dict[str, object]]:
    requests: list[dict[str, object]] = []
    for k, (user, session, address, seconds, octets_in, octets_out, p_in, p_out) in enumerate(
        SESSIONS
    ):
        common: dict[str, object] = {
            "User-Name": user,
            "Acct-Session-Id": session,
            "NAS-IP-Address": "192.0.2.10",
            "NAS-Identifier": "nas-1",
            "NAS-Port": 100 + k,
            "Framed-IP-Address": address,
            "Calling-Station-Id": f"00-11-22-33-44-0{k}",
            "Called-Station-Id": "ap-1",
        }
        start = T0 + 100 * k
        requests.append({**common, "Acct-Status-Type": "Start", "Event-Timestamp": start})
        requests.append(
            {
                **common,
                "Acct-Status-Type": "Stop",
                "Event-Timestamp": start + seconds,
                "Acct-Session-Time": seconds,
                "Acct-Input-Octets": octets_in % (1 << 32),
                "Acct-Input-Gigawords": octets_in >> 32,
                "Acct-Output-Octets": octets_out,
                "Acct-Input-Packets": p_in,
                "Acct-Output-Packets": p_out,
                "Acct-Terminate-Cause": "User-Request",
            }
        )
    return requests


def radius_truth() -> list[dict[str, object]]:
    """Every column of the records the requests make, by hand (docs/radius.md)."""
    rows: list[dict[str, object]] = []
    for k, (user, session, address, seconds, octets_in, octets_out, p_in, p_out) in enumerate(
        SESSIONS
    ):
        start = datetime.fromtimestamp(T0 + 100 * k, UTC)
        end = datetime.fromtimestamp(T0 + 100 * k + seconds, UTC)
        same = {
            "exporter": "192.0.2.10",
            "session_id": session,
            "user_name": user,
            "src_ip": address,
            "start_time": start,
            "nas_identifier": "nas-1",
            "nas_port": 100 + k,
            "calling_station_id": f"00-11-22-33-44-0{k}",
            "called_station_id": "ap-1",
            "source": "rad",
            "gatherer": "g1",
            "service": "access",
        }
        rows.append(
            {
                **same,
                "end_time": start,
                "acct_status_type": "Start",
                "duration_s": 0.0,
                "bytes": 0,
                "packets": 0,
                "bytes_in": 0,
                "bytes_out": 0,
                "packets_in": 0,
                "packets_out": 0,
                "session_time_s": 0,
                "terminate_cause": None,
            }
        )
        rows.append(
            {
                **same,
                "end_time": end,
                "acct_status_type": "Stop",
                "duration_s": float(seconds),
                "bytes": octets_in + octets_out,
                "packets": p_in + p_out,
                "bytes_in": octets_in,
                "bytes_out": octets_out,
                "packets_in": p_in,
                "packets_out": p_out,
                "session_time_s": seconds,
                "terminate_cause": "User-Request",
            }
        )
    return rows


def radclient(port: int, tmp: Path) -> None:
    peers.require("radclient")
    path = tmp / "requests.txt"
    path.write_text(
        "\n\n".join("\n".join(f"{k} = {v}" for k, v in r.items()) for r in radius_requests()) + "\n"
    )
    done = subprocess.run(  # -p 1: one at a time, so each Start is recorded before its Stop
        ["radclient", "-x", "-p", "1", "-f", str(path), f"127.0.0.1:{port}", "acct", SECRET],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def netflow_truth() -> dict[tuple[str, int], tuple[str, int, int, int, int]]:
    """(src_ip, src_port) → (dst_ip, dst_port, protocol, bytes, packets), as
    ``traffic.keyed_v5_flows`` encodes them."""
    return {
        (f"10.0.0.{i // 1000}", i % 1000 + 1024): ("192.0.2.1", 443, 6, 1000 + i % 977, 3)
        for i in range(FLOWS)
    }


RADIUS_SQL = (
    "select * exclude (record_id, ingested_at) from records where source = 'rad' "
    "order by session_id, end_time, acct_status_type desc"
)
NETFLOW_SQL = (
    "select * exclude (record_id, ingested_at) from records where source = 'nf' "
    "order by src_ip, src_port"
)


def test_two_managers_with_different_registries_store_every_column(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    peers.netdistill("fields", "add", "site_code", "string", "--data-dir", str(tmp_path / "b"))
    d.start_manager("a")
    d.start_manager("b")
    d.start_gatherer()
    radclient(d.radius_port, tmp_path)  # answered only once spooled
    datagrams, total_bytes = keyed_v5_flows(0, FLOWS)
    peers.send_datagrams(datagrams, d.netflow_port, per_second=2000)
    expected = len(SESSIONS) * 2 + FLOWS

    def drained() -> dict[str, Any] | None:
        status = d.status()
        managers = status.get("managers", [])
        spooled = (status.get("spool") or {}).get("appended_records")
        done = len(managers) == 2 and all(m["pending_batches"] == 0 for m in managers)
        return status if spooled == expected and done else None

    final = d.wait("both managers acknowledged everything", drained)
    for manager in final["managers"]:
        assert manager.get("dead_lettered", 0) == 0, manager

    truth = radius_truth()
    columns = list(truth[0])
    for name in ("a", "b"):
        rows = d.rows(name, RADIUS_SQL)
        got_rows = [{c: r[c] for c in columns} for r in rows]
        for g, t in zip(got_rows, truth, strict=False):  # the first differing column
            assert {k: v for k, v in g.items() if t[k] != v} == {}, (name, t)
        assert got_rows == truth, name
        # every other column (NetFlow's, B's site_code, procedure …) is empty
        assert [{k: v for k, v in r.items() if k not in truth[0] and v is not None}
                for r in rows] == [{}] * len(truth), name  # fmt: skip
        flows = d.rows(name, NETFLOW_SQL)
        got = {
            (r["src_ip"], r["src_port"]): (
                r["dst_ip"], r["dst_port"], r["protocol"], r["bytes"], r["packets"]
            )
            for r in flows
        }  # fmt: skip
        assert len(flows) == FLOWS and got == netflow_truth(), name
        assert sum(r["bytes"] for r in flows) == total_bytes
    # the registries differ: every RADIUS field has another id on B than on A
    ids = {name: d.field_ids(name) for name in ("a", "b")}
    assert "site_code" in ids["b"] and "site_code" not in ids["a"]
    shifted = [f for f in ids["a"] if f.startswith("acct_") and ids["b"][f] != ids["a"][f]]
    assert "acct_status_type" in shifted, (ids["a"], ids["b"])
    # A's and B's rows are equal in full; B's own extra field is empty
    for sql in (RADIUS_SQL, NETFLOW_SQL):
        a_rows, b_rows = d.rows("a", sql), d.rows("b", sql)
        assert all(r.pop("site_code") is None for r in b_rows)
        assert a_rows == b_rows
