"""Real servers for the network lookups' tests, on free loopback ports.

* ``Dnsmasq`` — dnsmasq answering A, AAAA and PTR from a hosts file only (no upstream,
  ``--local`` for the test domain so unknown names are NXDOMAIN, ``--bogus-priv`` so
  unknown private addresses are NXDOMAIN too).
* ``Slapd`` — a private OpenLDAP instance (mdb backend, core/cosine/inetOrgPerson
  schemas) loaded with ``slapadd`` before it starts.
* ``SilentUdp`` — a bound UDP socket that never answers (a dead DNS server).
* ``OddDns`` — a small DNS responder in a thread: answers some names after a delay,
  or answers with random bytes; answers built with dnspython.

``write_hosts`` writes the hosts file and returns the ground truth (address → name).
"""

from __future__ import annotations

import heapq
import ipaddress
import random
import socket
import subprocess
import threading
import time
from pathlib import Path

import dns.message
import dns.rrset
import peers
from peers import LOOPBACK, PeerProcess, free_tcp_port, free_udp_port

DOMAIN = "lab.example"


def host_addresses(n: int, *, v6: int = 0) -> dict[str, str]:
    """``n`` IPv4 and ``v6`` IPv6 addresses → host names (deterministic)."""
    out = {f"10.77.{i // 250}.{i % 250 + 1}": f"h{i:05d}.{DOMAIN}" for i in range(n)}
    out.update({f"2001:db8::{i + 1:x}": f"v6-{i:04d}.{DOMAIN}" for i in range(v6)})
    return out


def write_hosts(path: Path, n: int, *, v6: int = 0) -> dict[str, str]:
    truth = host_addresses(n, v6=v6)
    path.write_text("".join(f"{ip} {name}\n" for ip, name in truth.items()))
    return truth


class Dnsmasq(PeerProcess):
    def __init__(self, workdir: Path, hosts: Path, *, port: int | None = None) -> None:
        peers.require("dnsmasq")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_udp_port()
        cmd = [
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={hosts.resolve()}",
            f"--listen-address={LOOPBACK}",
            f"--port={self.port}",
            "--bind-interfaces",
            f"--pid-file={workdir.resolve() / f'dnsmasq-{self.port}.pid'}",
            "--cache-size=10000",
            "--dns-forward-max=10000",
            f"--local=/{DOMAIN}/",
            "--bogus-priv",
            "--user=root",
        ]
        self._spawn(cmd, workdir / f"dnsmasq-{self.port}.log", None)

    @property
    def server(self) -> str:
        return f"{LOOPBACK}:{self.port}"


SCHEMAS = ("core", "cosine", "inetorgperson")
SUFFIX = "dc=example,dc=org"
ADMIN = f"cn=admin,{SUFFIX}"
PASSWORD = "secret"


class Slapd(PeerProcess):
    """slapd on ldap://127.0.0.1:PORT/ with the entries of ``ldif`` (slapadd first)."""

    def __init__(self, workdir: Path, ldif: str, *, port: int | None = None) -> None:
        peers.require("slapd", "slapadd")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_tcp_port()
        db = workdir / "db"
        db.mkdir(exist_ok=True)
        conf = workdir / "slapd.conf"
        includes = "".join(f"include /etc/ldap/schema/{s}.schema\n" for s in SCHEMAS)
        conf.write_text(
            f"{includes}"
            f"pidfile {workdir.resolve()}/slapd.pid\n"
            "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
            "database mdb\n"
            f'suffix "{SUFFIX}"\nrootdn "{ADMIN}"\nrootpw {PASSWORD}\n'
            f"directory {db.resolve()}\nmaxsize 10485760\n"
        )
        data = workdir / "data.ldif"
        data.write_text(ldif)
        done = subprocess.run(
            ["slapadd", "-f", str(conf), "-l", str(data)], capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"slapadd failed: {done.stderr.decode()[-2000:]}")
        cmd = ["slapd", "-h", f"ldap://{LOOPBACK}:{self.port}/", "-f", str(conf), "-d", "0"]
        self._spawn(cmd, workdir / f"slapd-{self.port}.log", None)

    @property
    def url(self) -> str:
        return f"ldap://{LOOPBACK}:{self.port}"

    def wait_ready(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited {self.proc.returncode}")
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"slapd not listening on {self.port} within {timeout_s}s")


class SilentUdp:
    """A UDP port that receives and never answers."""

    def __enter__(self) -> SilentUdp:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port = int(self.sock.getsockname()[1])
        self.server = f"{LOOPBACK}:{self.port}"
        return self

    def drain(self) -> int:
        """How many datagrams arrived since the last drain."""
        self.sock.setblocking(False)
        n = 0
        while True:
            try:
                self.sock.recv(65535)
            except BlockingIOError:
                return n
            n += 1

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


class OddDns:
    """A DNS responder in a thread, for the failure cases dnsmasq cannot produce.

    ``answers`` maps a PTR/A question name (no final dot) to its answer text. Questions
    for names in ``slow`` are answered after ``delay_s``; with ``garbage`` every answer
    is random bytes (``keep_id``: with the question's id in front, so the client can tell
    which question the garbage answers). Names in ``dropped`` are ignored the first
    ``drop_first`` times they are asked (an overflowing server)."""

    def __init__(
        self,
        answers: dict[str, str],
        *,
        slow: frozenset[str] = frozenset(),
        delay_s: float = 0.0,
        garbage: bool = False,
        keep_id: bool = True,
        drop_first: int = 0,
        dropped: frozenset[str] = frozenset(),
    ) -> None:
        self.answers, self.slow, self.delay_s = answers, slow, delay_s
        self.drop_first, self.dropped = drop_first, dropped
        self.garbage, self.keep_id = garbage, keep_id
        self.received = 0
        self.asked: dict[str, int] = {}  # question name → datagrams received
        self._rng = random.Random(7)

    def __enter__(self) -> OddDns:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.02)
        self.port = int(self.sock.getsockname()[1])
        self.server = f"{LOOPBACK}:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def _reply(self, data: bytes) -> bytes:
        if self.garbage:
            noise = bytes(self._rng.getrandbits(8) for _ in range(self._rng.randrange(1, 60)))
            return data[:2] + noise if self.keep_id else noise
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True)
        if name in self.answers:
            rdtype = dns.rdatatype.to_text(question.rdtype)
            value = self.answers[name] + ("." if rdtype == "PTR" else "")
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", rdtype, value))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    def _run(self) -> None:
        later: list[tuple[float, int, bytes, tuple[str, int]]] = []
        seq = 0
        while not self._stop.is_set():
            now = time.monotonic()
            while later and later[0][0] <= now:
                _, _, reply, addr = heapq.heappop(later)
                self.sock.sendto(reply, addr)
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.received += 1
            reply = self._reply(data)
            name = dns.message.from_wire(data).question[0].name.to_text(omit_final_dot=True)
            self.asked[name] = self.asked.get(name, 0) + 1
            if name in self.dropped and self.asked[name] <= self.drop_first:
                continue  # as a full socket buffer would
            if name in self.slow:
                seq += 1
                heapq.heappush(later, (now + self.delay_s, seq, reply, addr))
            else:
                self.sock.sendto(reply, addr)


def ptr_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer


class Snmpd(PeerProcess):
    """net-snmp's agent on udp 127.0.0.1:PORT, read-only for ``community`` from loopback.
    It serves the machine's real interfaces (IF-MIB); ``overrides`` (OID → (type, value),
    snmpd.conf's ``override``) pin chosen values, e.g. an ifAlias or ifHighSpeed."""

    def __init__(
        self,
        workdir: Path,
        *,
        community: str,
        overrides: dict[str, tuple[str, str | int]] | None = None,
        port: int | None = None,
    ) -> None:
        import os

        peers.require("snmpd")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_udp_port()
        conf = workdir / f"snmpd-{self.port}.conf"
        lines = [f"agentAddress udp:{LOOPBACK}:{self.port}", f"rocommunity {community} {LOOPBACK}"]
        for oid, (type_, value) in (overrides or {}).items():
            shown = f'"{value}"' if type_ == "octet_str" else str(value)
            lines.append(f"override {oid} {type_} {shown}")
        conf.write_text("\n".join(lines) + "\n")
        persist = workdir / f"snmpd-{self.port}-state"
        persist.mkdir(exist_ok=True)
        cmd = [
            "snmpd",
            "-f",  # foreground
            "-C",  # this config file only
            "-c", str(conf),
            "-Lo",  # log to stdout (our log file)
            "-p", str(workdir / f"snmpd-{self.port}.pid"),
        ]  # fmt: skip
        # no MIB files are needed to serve numeric OIDs: skip loading them (and their noise)
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(persist), "MIBS": "", "MIBDIRS": ""}
        self.log = open(workdir / f"snmpd-{self.port}.log", "wb")  # noqa: SIM115 - stop()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"


def machine_interfaces() -> dict[int, str]:
    """ifIndex → name of this machine's network interfaces, read from /sys/class/net (as
    the kernel numbers them; net-snmp's ifTable uses the same indexes and names)."""
    out = {}
    for entry in Path("/sys/class/net").iterdir():
        index = entry / "ifindex"
        if index.exists():
            out[int(index.read_text())] = entry.name
    return dict(sorted(out.items()))
