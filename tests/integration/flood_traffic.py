"""Junk for the flood test and benchmark: bad NetFlow, RADIUS and syslog input whose
fate is known in advance, a ``netdistill run`` with one source of each kind, and a probe
that times what must stay answered during a flood.

Every junk item is built so that the collector must reject it, and for a known reason,
so a test can check the counters exactly (``expected`` of each generator):

* NetFlow — random bytes with a version that is not 5, 9 or 10 (``unknown_version``);
  v5 datagrams cut short (``truncated``); v9 datagrams whose data set has a length below
  4 (``malformed``) or past the end of the datagram (``truncated``).
* RADIUS (from a configured client) — short random packets and requests whose Length
  exceeds what arrived (``malformed``, quarantined); requests with a byte flipped after
  the header (``bad_authenticator``) and Access-Requests (``wrong_code``), counted only.
* syslog — random binary messages that no format takes (``malformed``).

Everything goes to 127.0.0.1 only; senders bind other loopback addresses (127.0.0.x)
where a test needs distinct devices.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import peers
from pyrad import packet

from netdistill.sources.netflow.encode import V5Exporter, V9Exporter, encode_v5, encode_v9
from netdistill.sources.radius.accounting import DICTIONARY

LOOPBACK = peers.LOOPBACK
SECRET = "flood-secret"


# --- valid input ---------------------------------------------------------------------------


def flows(n: int, seed: int, start_ms: int = 1_700_000_000_000) -> dict[str, np.ndarray]:
    """``n`` IPv4 flows with known bytes and packets."""
    rng = np.random.default_rng(seed)
    start = start_ms + np.sort(rng.integers(0, 60_000, n))
    return {
        "start_time": start,
        "end_time": start + rng.integers(0, 5_000, n),
        "src_ip": rng.integers(0x0A000000, 0x0AFFFFFF, n, dtype=np.uint32),
        "dst_ip": rng.integers(0xC0A80000, 0xC0A8FFFF, n, dtype=np.uint32),
        "src_port": rng.integers(1024, 65535, n),
        "dst_port": rng.choice([80, 443, 53, 25], n),
        "protocol": rng.choice([6, 17], n),
        "bytes": rng.integers(40, 1_000_000, n),
        "packets": rng.integers(1, 1_000, n),
    }


def accounting_request(attributes: dict[str, object], identifier: int) -> bytes:
    pkt = packet.AcctPacket(id=identifier & 0xFF, secret=SECRET.encode(), dict=DICTIONARY)
    for name, value in attributes.items():
        pkt[name] = value
    return bytes(pkt.RequestPacket())


def stop_request(session: str, octets_in: int, octets_out: int, identifier: int) -> bytes:
    return accounting_request(
        {
            "Acct-Status-Type": "Stop",
            "Acct-Session-Id": session,
            "User-Name": "flood",
            "Acct-Input-Octets": octets_in,
            "Acct-Output-Octets": octets_out,
            "Acct-Session-Time": 10,
        },
        identifier,
    )


# --- junk ----------------------------------------------------------------------------------


@dataclass
class Junk:
    """Payloads to send, and per reason how many the collector must reject for it."""

    payloads: list[bytes] = field(default_factory=list)
    expected: Counter[str] = field(default_factory=Counter)

    def add(self, payload: bytes, reason: str) -> None:
        self.payloads.append(payload)
        self.expected[reason] += 1


def netflow_junk(n: int, seed: int = 7) -> Junk:
    rng = np.random.default_rng(seed)
    junk = Junk()
    v5 = encode_v5(flows(30 * 40, seed), V5Exporter())
    v9 = encode_v9(flows(2_000, seed + 1), V9Exporter(template_refresh_datagrams=10**6))
    v9_data = v9[1:]  # the first carries the templates
    noise = rng.bytes(n * 1500)
    for i in range(n):
        kind = i % 4
        if kind == 0:  # random bytes, a version no collector knows
            size = int(rng.integers(2, 1500))
            body = bytearray(noise[i * 1500 : i * 1500 + size])
            version = int(rng.integers(11, 65536))
            body[0:2] = version.to_bytes(2, "big")
            junk.add(bytes(body), "unknown_version")
        elif kind == 1:  # a v5 datagram cut short
            whole = v5[int(rng.integers(0, len(v5)))]
            junk.add(whole[: int(rng.integers(2, len(whole)))], "truncated")
        else:  # a v9 data set whose length is broken
            body = bytearray(v9_data[int(rng.integers(0, len(v9_data)))])
            if kind == 2:
                body[22:24] = int(rng.integers(0, 4)).to_bytes(2, "big")
                junk.add(bytes(body), "malformed")
            else:
                body[22:24] = (len(body) - 20 + int(rng.integers(1, 5000))).to_bytes(2, "big")
                junk.add(bytes(body), "truncated")
    return junk


def radius_junk(n: int, seed: int = 11) -> Junk:
    rng = np.random.default_rng(seed)
    junk = Junk()
    valid = [stop_request(f"junk-{i}", i, i, i) for i in range(64)]
    for i in range(n):
        kind = i % 4
        if kind == 0:  # shorter than the header
            junk.add(rng.bytes(int(rng.integers(1, 20))), "malformed")
        elif kind == 1:  # Length says more than arrived
            whole = valid[i % len(valid)]
            junk.add(whole[: int(rng.integers(20, len(whole)))], "malformed")
        elif kind == 2:  # a byte flipped: the authenticator no longer verifies
            body = bytearray(valid[i % len(valid)])
            at = int(rng.integers(20, len(body)))
            body[at] ^= 0xFF
            junk.add(bytes(body), "bad_authenticator")
        else:  # an Access-Request sent to the accounting port
            body = bytearray(valid[i % len(valid)])
            body[0] = 1
            junk.add(bytes(body), "wrong_code")
    return junk


def syslog_junk(n: int, seed: int = 13, max_bytes: int = 8_000) -> Junk:
    rng = np.random.default_rng(seed)
    junk = Junk()
    for _ in range(n):
        junk.add(rng.bytes(int(rng.integers(200, max_bytes))), "malformed")
    return junk


def send(
    payloads: Sequence[bytes], port: int, *, source: str = LOOPBACK, per_second: float
) -> None:
    """Send ``payloads`` to 127.0.0.1:``port`` from ``source`` (a loopback address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        start = time.perf_counter()
        for n, payload in enumerate(payloads, 1):
            sock.sendto(payload, (LOOPBACK, port))
            ahead = n / per_second - (time.perf_counter() - start)
            if ahead > 0.001:
                time.sleep(ahead)


# --- the system under test -----------------------------------------------------------------


class FloodRun(peers.PeerProcess):
    """``netdistill run --no-demo --config`` with a netflow, a radius and a syslog source
    on free loopback ports; ``extra_scheme`` is appended under ``manager:``."""

    def __init__(self, workdir: Path, *, manager_extra: str = "", netflow_extra: str = "") -> None:
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.netflow_port = peers.free_udp_port()
        self.radius_port = peers.free_udp_port()
        self.syslog_port = peers.free_udp_port()
        self.port = self.netflow_port
        self.ui_port = peers.free_tcp_port()
        scheme = workdir / "scheme.yaml"
        scheme.write_text(
            "version: 1\n"
            "manager:\n"
            f"  api_port: {self.ui_port}\n"
            f"{manager_extra}"
            "sources:\n"
            "  - name: nf\n"
            "    type: netflow\n"
            f'    listen: ["{LOOPBACK}:{self.netflow_port}"]\n'
            f"{netflow_extra}"
            "  - name: bras\n"
            "    type: radius\n"
            f'    listen: ["{LOOPBACK}:{self.radius_port}"]\n'
            f'    clients: {{"127.0.0.1": {{secret: "{SECRET}"}}}}\n'
            "  - name: fw\n"
            "    type: syslog\n"
            f'    listen: ["udp://{LOOPBACK}:{self.syslog_port}"]\n'
            "    formats: [netfilter]\n"
        )
        self.log_path = workdir / "run.log"
        cmd = [
            *peers.netdistill_command(),
            "run",
            "--no-demo",
            "--config",
            str(scheme),
            "--data-dir",
            str(self.data_dir),
        ]
        self._spawn(cmd, self.log_path, None)

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        manager = self.data_dir / "manager.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"netdistill run exited: {self.output()}")
            if manager.exists():
                try:
                    self.info = json.loads(manager.read_text())
                except ValueError:
                    pass
                else:
                    for port in (self.netflow_port, self.radius_port, self.syslog_port):
                        peers.wait_udp_bound(port, max(1.0, deadline - time.monotonic()))
                    return
            time.sleep(0.1)
        raise TimeoutError(f"netdistill run not ready in {timeout_s}s: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    @property
    def api(self) -> str:
        return str(self.info["api"]).rstrip("/")

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        cookie: str | None = None,
        timeout_s: float = 30,
    ) -> tuple[int, bytes, dict[str, str]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        if cookie is None:
            request.add_header("Authorization", f"Bearer {self.info['token']}")
        else:
            request.add_header("Cookie", cookie)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def status(self) -> dict[str, object]:
        code, body, _ = self.call("GET", "/api/status")
        assert code == 200, body
        return dict(json.loads(body))

    def source_status(self, name: str) -> dict[str, object]:
        sources = self.status()["sources"]
        return next(s for s in sources if s["name"] == name)  # type: ignore[union-attr]

    def login_cookie(self, user: str = "probe", password: str = "probe-password-1") -> str:
        """Add a console user and log in: the session cookie."""
        code, body, _ = self.call(
            "POST", "/api/users", {"name": user, "password": password, "role": "viewer"}
        )
        assert code == 200, body
        code, body, headers = self.call(
            "POST", "/api/auth/login", {"user": user, "password": password}, cookie=""
        )
        assert code == 200, body
        return headers["set-cookie"].split(";", 1)[0]


# --- the probe -----------------------------------------------------------------------------


class Probe:
    """Times, in a loop until stopped: one valid Accounting-Request sent with radclient
    (answered or not), ``/api/status``, the login page and a logged-in console page.

    Worst latencies per probe are in ``worst``; a RADIUS request not answered counts as
    its timeout."""

    def __init__(self, run: FloodRun, workdir: Path, cookie: str, *, every_s: float = 0.25):
        self.run = run
        self.workdir = workdir
        self.cookie = cookie
        self.every_s = every_s
        self.worst: dict[str, float] = {}
        self.samples: dict[str, list[float]] = {}
        self.unanswered = 0
        self.sent_sessions: list[tuple[str, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="probe", daemon=True)

    def _time(self, name: str, action: object) -> None:
        started = time.monotonic()
        ok = action()  # type: ignore[operator]
        took = time.monotonic() - started
        self.samples.setdefault(name, []).append(took)
        self.worst[name] = max(self.worst.get(name, 0.0), took)
        if not ok and name == "radius":
            self.unanswered += 1

    def _radius(self) -> bool:
        n = len(self.sent_sessions) + 1
        session = f"probe-{n}"
        request = self.workdir / f"probe-{n}.txt"
        request.write_text(
            "Acct-Status-Type = Stop\n"
            f'Acct-Session-Id = "{session}"\n'
            'User-Name = "probe"\n'
            f"Acct-Input-Octets = {n * 1000}\n"
            f"Acct-Output-Octets = {n * 10}\n"
            "Acct-Session-Time = 5\n"
        )
        target = f"{LOOPBACK}:{self.run.radius_port}"
        done = subprocess.run(
            ["radclient", "-f", str(request), "-r", "1", "-t", "10", target, "acct", SECRET],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        self.sent_sessions.append((session, n * 1000, n * 10))
        return done.returncode == 0

    def _get(self, path: str, cookie: str | None) -> bool:
        code, _, _ = self.run.call("GET", path, cookie=cookie, timeout_s=30)
        return code == 200

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._time("radius", self._radius)
            self._time("status", lambda: self._get("/api/status", None))
            self._time("login_page", lambda: self._get("/login", ""))
            self._time("console_page", lambda: self._get("/", self.cookie))
            self._stop.wait(self.every_s)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
