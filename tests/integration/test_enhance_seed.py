"""Seed 001's enhancement examples end to end, through ``netdistill run --config``.

(a) "Data Enhancement": the source IP of each record resolved to the host's name through
    the DNS server — NetFlow v9 (``encode.V9Exporter``) sent to a live run whose procedure
    is ``src_host: DNS.Name(src_ip).host_name``; dnsmasq serves a hosts file, which is
    the ground truth. Addresses it does not know are null and counted as misses, and the
    figure shows in ``GET /api/status``.
(b) Fig. 4B: a NetFlow record enhanced from the RADIUS record (who held the address when
    the flow started, sessions sent by the real ``radclient`` to the run's RADIUS
    source), the LDAP record (slapd: the user's department and name), the NMS DB record
    (a CSV: site of the exporter's input interface) and the QoS policy server record (a
    CSV: the department's QoS class, four steps deep). Every stored record is checked
    field by field against the truth the test builds, not against the server's answers.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import peers
import pytest

from netdistill.sources.netflow.encode import V9Exporter, encode_v9

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lookups"))
from peers_lookup import ADMIN, PASSWORD, SUFFIX, Dnsmasq, Slapd, write_hosts

pytestmark = pytest.mark.integration

SECRET = "seed-001"


class SchemeRun(peers.NetdistillRun):
    """``netdistill run --no-demo --config SCHEME``; ``port`` is the scheme's NetFlow port."""

    def __init__(self, data_dir: Path, scheme: Path, port: int) -> None:
        self.data_dir, self.port, self.ui_port = data_dir, port, peers.free_tcp_port()
        cmd = [
            *peers.netdistill_command(),
            "run",
            "--no-demo",
            "--config",
            str(scheme),
            "--data-dir",
            str(data_dir),
            "--ui-port",
            str(self.ui_port),
        ]
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir.parent / f"netdistill-run-{port}.log"
        self._spawn(cmd, self.log_path, None)

    def wait_committed(self, records: int, timeout_s: float = 60) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if int(status["committed_records"]) >= records:  # type: ignore[call-overload]
                return status
            time.sleep(0.2)
        raise TimeoutError(f"fewer than {records} records committed: {self.output()}")


def ip_int(text: str) -> int:
    return int.from_bytes(socket.inet_aton(text), "big")


def send_flows(port: int, flows: dict[str, np.ndarray], export_s: int) -> int:
    """NetFlow v9 datagrams of ``flows`` to the run; returns how many were sent."""
    datagrams = encode_v9(flows, V9Exporter(source_id=1), export_time_ms=export_s * 1000)
    peers.send_datagrams(datagrams, port)
    return len(datagrams)


def flow_table(src: list[str], start_s: list[int], input_if: list[int]) -> dict[str, np.ndarray]:
    n = len(src)
    start = np.array(start_s, np.int64) * 1000
    return {
        "start_time": start,
        "end_time": start + 1000,
        "src_ip": np.array([ip_int(s) for s in src], np.uint32),
        "dst_ip": np.full(n, ip_int("198.51.100.7"), np.uint32),
        "src_port": np.arange(n, dtype=np.uint16) + 20000,
        "dst_port": np.full(n, 443, np.uint16),
        "protocol": np.full(n, 6, np.uint8),
        "bytes": np.arange(n, dtype=np.uint64) * 10 + 100,
        "packets": np.full(n, 2, np.uint64),
        "input_if": np.array(input_if, np.uint32),
    }


# --- (a) source IP → source host through DNS ------------------------------------------------


def test_source_host_through_dns(tmp_path: Path) -> None:
    truth = write_hosts(tmp_path / "hosts", 300)
    known = list(truth)
    unknown = [f"10.77.240.{i}" for i in range(1, 21)]  # private, not in the file: NXDOMAIN
    addresses = known + unknown
    src = [addresses[(i * 7) % len(addresses)] for i in range(1000)]  # each 3-4 times
    port = peers.free_udp_port()
    now = int(time.time())
    with Dnsmasq(tmp_path / "dns", tmp_path / "hosts") as dnsmasq:
        scheme = tmp_path / "scheme.yaml"
        scheme.write_text(
            f"""version: 1
manager: {{commit_interval_s: 0.2}}
sources:
  - {{name: routers, type: netflow, listen: ["127.0.0.1:{port}"]}}
lookups:
  - {{name: DNS, type: dns, servers: ["{dnsmasq.server}"], timeout_s: 3.0, concurrency: 256}}
procedures:
  - name: hosts
    trigger: routers
    fields:
      src_host: DNS.Name(src_ip).host_name
"""
        )
        data = tmp_path / "data"
        with SchemeRun(data, scheme, port) as run:
            send_flows(port, flow_table(src, [now - 60] * len(src), [1] * len(src)), now)
            status = run.wait_committed(len(src))
            run.stop()
    rows = peers.query(data, "select src_ip, src_host from records where source = 'routers'")
    assert len(rows) == 1000
    assert sorted((r["src_ip"], r["src_host"]) for r in rows) == sorted(
        (ip, truth.get(ip)) for ip in src
    )
    assert sum(r["src_host"] is None for r in rows) == sum(ip in unknown for ip in src) == 60
    # the status the API gave: each distinct address asked once (answers and NXDOMAIN
    # cached), 20 of them misses, nothing timed out
    (dns_status,) = status["lookups"]  # type: ignore[misc]
    assert dns_status["name"] == "DNS"
    backend = dns_status["backend"]
    assert (backend["keys"], backend["misses"], backend["timeouts"], backend["errors"]) == (
        320,
        20,
        0,
        0,
    )
    assert dns_status["stats"]["answers"] == 320
    assert dns_status["cache_entries"] == 320


# --- (b) Fig. 4B: RADIUS, LDAP, NMS and QoS ---------------------------------------------------

PEOPLE = {  # uid → (cn, department); dave has a RADIUS session but no LDAP entry
    "alice": ("Alice Archer", "Engineering"),
    "bob": ("Bob Baker", "Sales"),
    "carol": ("Carol Cooper", "Engineering"),
    "erin": ("Erin Evans", "Support"),
    "frank": ("Frank Fisher", "Finance"),  # in LDAP, never on the network
}
QOS = {"Engineering": "gold", "Sales": "silver", "Support": "bronze"}  # no Finance row
NMS = {("127.0.0.1", 1): "north-pop", ("127.0.0.1", 2): "south-pop"}  # interface 3: none


def ldif() -> str:
    parts = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Ex\ndc: example\n",
        f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n",
    ]
    for uid, (cn, dept) in PEOPLE.items():
        parts.append(
            f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
            f"cn: {cn}\nsn: {uid}\ndepartmentNumber: {dept}\n"
        )
    return "\n".join(parts)


def radius_requests(t0: int) -> tuple[list[dict[str, object]], list[tuple[str, str, int, int]]]:
    """Accounting requests and the sessions they make: (user, address, start, end)."""
    sessions = [  # alice's address goes to erin after alice's Stop
        ("alice", "10.60.0.1", t0 - 3600, t0 - 1800),
        ("erin", "10.60.0.1", t0 - 1200, 2**62),
        ("bob", "10.60.0.2", t0 - 3600, 2**62),
        ("carol", "10.60.0.3", t0 - 3000, 2**62),
        ("dave", "10.60.0.4", t0 - 3600, 2**62),
    ]
    requests: list[dict[str, object]] = []
    for n, (user, ip, start, end) in enumerate(sessions):
        common = {
            "User-Name": user,
            "Acct-Session-Id": f"s-{n}",
            "NAS-IP-Address": "192.0.2.10",
            "Framed-IP-Address": ip,
        }
        requests.append({**common, "Acct-Status-Type": "Start", "Event-Timestamp": start})
        if end < 2**62:
            requests.append(
                {
                    **common,
                    "Acct-Status-Type": "Stop",
                    "Event-Timestamp": end,
                    "Acct-Session-Time": end - start,
                    "Acct-Input-Octets": 1000,
                    "Acct-Output-Octets": 2000,
                }
            )
    return requests, sessions


def radclient(port: int, requests: list[dict[str, object]], tmp: Path) -> None:
    peers.require("radclient")
    path = tmp / "requests.txt"
    path.write_text(
        "\n\n".join("\n".join(f"{k} = {v}" for k, v in r.items()) for r in requests) + "\n"
    )
    done = subprocess.run(
        ["radclient", "-x", "-p", "1", "-f", str(path), f"127.0.0.1:{port}", "acct", SECRET],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_fig_4b_radius_ldap_nms_qos(tmp_path: Path) -> None:
    t0 = int(time.time())
    requests, sessions = radius_requests(t0)
    # flows: (address, start): alice's, the gap after her Stop, erin's, bob, carol before
    # and after her Start, dave (no LDAP entry), an address no session ever had
    moments = [
        ("10.60.0.1", t0 - 2400),
        ("10.60.0.1", t0 - 1500),
        ("10.60.0.1", t0 - 600),
        ("10.60.0.2", t0 - 100),
        ("10.60.0.3", t0 - 3300),
        ("10.60.0.3", t0 - 60),
        ("10.60.0.4", t0 - 60),
        ("10.60.0.9", t0 - 60),
    ]
    src, start, input_if = [], [], []
    for k in range(3 * len(moments)):  # three flows per moment, interfaces 1, 2, 3
        ip, at = moments[k % len(moments)]
        src.append(ip)
        start.append(at)
        input_if.append(k // len(moments) + 1)
    (tmp_path / "nms.csv").write_text(
        "exporter,input_if,site\n" + "".join(f"{e},{i},{s}\n" for (e, i), s in NMS.items())
    )
    (tmp_path / "qos.csv").write_text(
        "department,qos_class\n" + "".join(f"{d},{q}\n" for d, q in QOS.items())
    )
    netflow_port, radius_port = peers.free_udp_port(), peers.free_udp_port()
    with Slapd(tmp_path / "ldap", ldif()) as slapd:
        scheme = tmp_path / "scheme.yaml"
        scheme.write_text(
            f"""version: 1
manager: {{commit_interval_s: 0.2}}
sources:
  - {{name: routers, type: netflow, listen: ["127.0.0.1:{netflow_port}"]}}
  - name: bras
    type: radius
    listen: ["127.0.0.1:{radius_port}"]
    clients: {{"127.0.0.1": {{secret: "{SECRET}"}}}}
lookups:
  - {{name: RADIUS, type: radius_sessions, sources: [bras]}}
  - name: LDAP
    type: ldap
    url: {slapd.url}
    bind_dn: {ADMIN}
    password: {PASSWORD}
    base_dn: ou=people,{SUFFIX}
    functions:
      - name: Person
        inputs: {{uid: string}}
        filter: "(&(objectClass=inetOrgPerson)(uid={{uid}}))"
        outputs: {{department: string, cn: string}}
        attributes: {{department: departmentNumber}}
  - name: NMS
    type: table
    function: Site
    keys: {{exporter: string, input_if: uint32}}
    values: {{site: string}}
    csv: {tmp_path / "nms.csv"}
  - name: QoS
    type: table
    function: Class
    keys: {{department: string}}
    values: {{qos_class: string}}
    csv: {tmp_path / "qos.csv"}
procedures:
  - name: fig-4b
    trigger: routers
    add_fields: {{department: string, full_name: string, site: string, qos_class: string}}
    fields:
      user_name: RADIUS.User(src_ip, start_time).user_name
      session_id: RADIUS.User(src_ip, start_time).session_id
      department: LDAP.Person(RADIUS.User(src_ip, start_time).user_name).department
      full_name: LDAP.Person(RADIUS.User(src_ip, start_time).user_name).cn
      site: NMS.Site(exporter, input_if).site
      qos_class: >-
        QoS.Class(LDAP.Person(RADIUS.User(src_ip, start_time).user_name).department).qos_class
"""
        )
        data = tmp_path / "data"
        with SchemeRun(data, scheme, netflow_port) as run:
            peers.wait_udp_bound(radius_port)
            radclient(radius_port, requests, tmp_path)  # answered only once committed
            seen = peers.query(data, "select count(*) n from records where source = 'bras'")
            assert seen == [{"n": len(requests)}]
            send_flows(netflow_port, flow_table(src, start, input_if), t0)
            status = run.wait_committed(len(requests) + len(src))
            run.stop()
    rows = peers.query(
        data,
        "select src_ip, epoch(start_time)::bigint as start_s, input_if, exporter, user_name,"
        " session_id, department, full_name, site, qos_class from records"
        " where source = 'routers' order by src_port",
    )
    expected = []
    for ip, at, interface in zip(src, start, input_if, strict=True):
        held = [(n, user) for n, (user, a, s, e) in enumerate(sessions) if a == ip and s <= at <= e]
        session_id, user = (f"s-{held[-1][0]}", held[-1][1]) if held else (None, None)
        full_name, dept = PEOPLE.get(user or "", (None, None))
        expected.append(
            {
                "src_ip": ip,
                "start_s": at,
                "input_if": interface,
                "exporter": "127.0.0.1",
                "user_name": user,
                "session_id": session_id,
                "department": dept,
                "full_name": full_name,
                "site": NMS.get(("127.0.0.1", interface)),
                "qos_class": QOS.get(dept or ""),
            }
        )
    assert rows == expected
    # the truth has every kind of answer: users with and without LDAP entries, gaps
    assert {r["user_name"] for r in rows} == {"alice", "erin", "bob", "carol", "dave", None}
    assert sum(r["qos_class"] is None for r in rows) == 3 * 4  # gap, carol early, dave, .9
    lookups = {s["name"]: s for s in status["lookups"]}  # type: ignore[attr-defined]
    assert sorted(lookups) == ["LDAP", "NMS", "QoS", "RADIUS"]
    # distinct users asked of LDAP: alice, erin, bob, carol, dave (a miss)
    assert (lookups["LDAP"]["backend"]["keys"], lookups["LDAP"]["backend"]["misses"]) == (5, 1)
