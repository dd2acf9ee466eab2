"""Synthetic devices beside the demo routers: a NAS, a firewall and a web proxy.

They speak to the demo scheme's other sources the way real devices do, about the same
customer hosts as the routers (``demo_hosts``: the hosts of every demo router), so the
demo shows one customer's usage from several devices and the RADIUS lookup can name the
user behind each flow:

* ``DemoNas`` — RADIUS accounting (RFC 2866) from 127.0.0.13: a session per customer
  host, Start (back-dated an hour, as if the sessions were up before the demo began),
  an Interim-Update with growing totals every ``interim_s``, Stop and a new session
  now and then. User names are ``user001`` … in host order.
* ``DemoFirewall`` — Linux netfilter ``LOG`` lines over syslog (RFC 3164, UDP) from
  127.0.0.14: scans of customer hosts dropped at the border.
* ``DemoProxy`` — a Squid native ``access.log`` that it appends to, as a proxy would.

Rates are a few events per second: enough to see, little CPU. Each device is a thread
that ``tick``s once a second; ``tick(now)`` is deterministic for a given seed, so tests
can drive it without threads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from netdistill.demo import DemoTraffic


def _text(address: int) -> str:
    return ".".join(str((int(address) >> shift) & 255) for shift in (24, 16, 8, 0))


def demo_hosts(seeds: list[int]) -> list[str]:
    """The customer hosts of the demo routers with these seeds, in address order."""
    addresses = np.unique(np.concatenate([DemoTraffic(seed).host_ips for seed in seeds]))
    return [_text(a) for a in addresses]


class _Ticker(ABC):
    """A thread calling ``tick(now)`` once a second until stopped."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    @abstractmethod
    def tick(self, now: float) -> int:
        """Send what is due at ``now``; returns how many messages were sent."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(OSError):  # a demo device never takes the demo down
                self.sent += self.tick(time.time())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.close()

    def close(self) -> None:  # noqa: B027 - devices without a socket have nothing to close
        """Release what the device holds (its socket)."""


def _udp_from(source_address: str, target: tuple[str, int]) -> socket.socket:
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):  # 127.0.0.13 exists on Linux loopback; else any
        sock.bind((source_address if family == socket.AF_INET else "::1", 0))
    sock.connect(target)
    return sock


class DemoNas(_Ticker):
    """A NAS reporting one RADIUS accounting session per customer host."""

    def __init__(
        self,
        to: tuple[str, int],
        secret: str,
        hosts: list[str],
        *,
        seed: int = 1,
        interim_s: float = 30.0,
        source_address: str = "127.0.0.13",
    ) -> None:
        super().__init__()
        from netdistill.sources.radius.accounting import DICTIONARY

        self._dictionary = DICTIONARY
        self.secret = secret.encode()
        self.interim_s = interim_s
        self.nas_ip = source_address
        self._rng = np.random.default_rng([seed, 0x4E4153])
        self.hosts = hosts
        self._sock = _udp_from(source_address, to)
        n = len(self.hosts)
        self._session = np.zeros(n, dtype=np.int64)  # session counter per host
        self._started = np.full(n, np.nan)  # session start (unix s), NaN = none yet
        self._next = np.zeros(n)  # when the next update is due
        self._ends = np.zeros(n)  # when the session stops
        self._octets = np.zeros((n, 2), dtype=np.int64)  # in, out
        self._identifier = 0

    def _send(self, host: int, status: str, now: float) -> None:
        from pyrad import packet

        self._identifier = (self._identifier + 1) & 255
        request = packet.AcctPacket(id=self._identifier, secret=self.secret, dict=self._dictionary)
        started = float(self._started[host])
        request["User-Name"] = f"user{host + 1:03d}"
        request["Acct-Session-Id"] = f"demo-{host + 1:03d}-{int(self._session[host])}"
        request["Acct-Status-Type"] = status
        request["NAS-IP-Address"] = self.nas_ip
        request["NAS-Port"] = host + 1
        request["Framed-IP-Address"] = self.hosts[host]
        request["Event-Timestamp"] = int(now)
        request["Acct-Session-Time"] = max(0, int(now - started))
        octets_in, octets_out = (int(x) for x in self._octets[host])
        request["Acct-Input-Octets"] = octets_in & 0xFFFFFFFF
        request["Acct-Output-Octets"] = octets_out & 0xFFFFFFFF
        request["Acct-Input-Gigawords"] = octets_in >> 32
        request["Acct-Output-Gigawords"] = octets_out >> 32
        request["Acct-Input-Packets"] = octets_in // 900
        request["Acct-Output-Packets"] = octets_out // 1200
        if status == "Stop":
            request["Acct-Terminate-Cause"] = "Idle-Timeout"
        self._sock.send(bytes(request.RequestPacket()))

    def tick(self, now: float) -> int:
        sent = 0
        rng = self._rng
        for host in range(len(self.hosts)):
            if np.isnan(self._started[host]):
                # The first sessions were up an hour before the demo began.
                first = bool(self._session[host] == 0)
                self._started[host] = now - 3600.0 if first else now
                self._session[host] += 1
                self._octets[host] = 0
                self._ends[host] = now + float(rng.lognormal(7.5, 1.0))
                self._next[host] = now + float(rng.uniform(0, self.interim_s))
                self._send(host, "Start", float(self._started[host]))
                sent += 1
            elif now >= self._ends[host]:
                self._send(host, "Stop", now)
                self._started[host] = np.nan
                sent += 1
            elif now >= self._next[host]:
                self._octets[host] += rng.lognormal([13.0, 15.0], 1.2).astype(np.int64)
                self._next[host] = now + self.interim_s
                self._send(host, "Interim-Update", now)
                sent += 1
        return sent

    def close(self) -> None:
        self._sock.close()


#: (protocol, destination port) of what the demo border firewall drops
_SCANNED = ((6, 22), (6, 23), (6, 445), (6, 3389), (17, 161), (17, 1900))
_SCANNERS = ("45.155.205.", "185.224.128.", "194.26.29.", "80.82.77.")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class DemoFirewall(_Ticker):
    """A border firewall logging dropped scans as netfilter ``LOG`` lines over syslog."""

    def __init__(
        self,
        to: tuple[str, int],
        hosts: list[str],
        *,
        seed: int = 1,
        lines_per_second: float = 4.0,
        source_address: str = "127.0.0.14",
    ) -> None:
        super().__init__()
        self._rng = np.random.default_rng([seed, 0x4657])
        self.hosts = hosts
        self.rate = lines_per_second
        self._sock = _udp_from(source_address, to)

    def line(self, now: float) -> str:
        rng = self._rng
        protocol, port = _SCANNED[int(rng.integers(len(_SCANNED)))]
        source = _SCANNERS[int(rng.integers(len(_SCANNERS)))] + str(int(rng.integers(2, 254)))
        target = self.hosts[int(rng.integers(len(self.hosts)))]
        t = time.gmtime(now)
        stamp = (
            f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        )
        name, extra = ("TCP", " WINDOW=1024 RES=0x00 SYN URGP=0") if protocol == 6 else ("UDP", "")
        length = 44 if protocol == 6 else 78
        return (
            f"<4>{stamp} fw1 kernel: [DROP-IN] IN=eth0 OUT= "
            f"MAC=00:16:3e:00:00:01:00:16:3e:00:00:02:08:00 SRC={source} DST={target} "
            f"LEN={length} TOS=0x00 PREC=0x00 TTL={int(rng.integers(40, 250))} "
            f"ID={int(rng.integers(0, 65535))} PROTO={name} SPT={int(rng.integers(1024, 65535))} "
            f"DPT={port}" + (f" LEN={length - 20}" if protocol == 17 else extra)
        )

    def tick(self, now: float) -> int:
        n = int(self._rng.poisson(self.rate))
        for _ in range(n):
            self._sock.send(self.line(now).encode())
        return n

    def close(self) -> None:
        self._sock.close()


#: (URL, content type, typical size, the site's address)
_SITES = (
    ("http://www.example.com/", "text/html", 14_000, "93.184.216.34"),
    ("http://cdn.example.net/app.js", "application/javascript", 180_000, "198.51.100.20"),
    ("http://images.example.org/photo.jpg", "image/jpeg", 420_000, "198.51.100.31"),
    ("http://updates.example.com/pkg.deb", "application/octet-stream", 9_000_000, "203.0.113.7"),
    ("http://news.example.com/today", "text/html", 65_000, "203.0.113.45"),
)
#: the proxy's own address: what the firewall in front of it sees as every session's source
PROXY_ADDRESS = "192.0.2.3"


class DemoProxy(_Ticker):
    """A web proxy appending Squid native ``access.log`` lines to ``path``.

    With ``firewall`` (a syslog target), each request the proxy fetches from the site (a
    cache miss) is also logged by the border firewall in front of it, as a CEF line with
    the proxy as source, the site as destination and the URL (seed 001, "Record Merges":
    the proxy knows the client, the firewall the destination; the URL ties them). Each
    request's URL is unique (``?r=N``), as real URLs mostly are."""

    def __init__(
        self,
        path: Path,
        hosts: list[str],
        *,
        seed: int = 1,
        lines_per_second: float = 5.0,
        firewall: tuple[str, int] | None = None,
        firewall_address: str = "127.0.0.14",
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rng = np.random.default_rng([seed, 0x5351])
        self.hosts = hosts
        self.rate = lines_per_second
        self._request = 0
        self._firewall = _udp_from(firewall_address, firewall) if firewall else None
        self.firewall_lines: list[str] = []  # of the current tick, sent after the log write

    def line(self, now: float) -> str:
        rng = self._rng
        site, content_type, size, address = _SITES[int(rng.integers(len(_SITES)))]
        self._request += 1
        url = f"{site}?r={self._request}"
        client = self.hosts[int(rng.integers(len(self.hosts)))]
        elapsed_ms = int(rng.lognormal(5.0, 1.0))
        hit = rng.random() < 0.3
        action = "TCP_MEM_HIT/200" if hit else "TCP_MISS/200"
        peer = "HIER_NONE/-" if hit else f"HIER_DIRECT/{address}"
        bytes_ = int(size * rng.uniform(0.8, 1.2))
        if not hit:
            self.firewall_lines.append(self._cef(now, address, url, bytes_))
        return (
            f"{now:.3f} {elapsed_ms:6d} {client} {action} {bytes_} GET {url} - {peer} "
            f"{content_type}\n"
        )

    def _cef(self, now: float, address: str, url: str, bytes_: int) -> str:
        t = time.gmtime(now)
        stamp = (
            f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        )
        request = url.replace("\\", "\\\\").replace("=", "\\=")  # CEF value escapes
        return (
            f"<134>{stamp} fw1 CEF:0|Demo|BorderFirewall|1.0|100|allowed|3|"
            f"src={PROXY_ADDRESS} spt={int(self._rng.integers(32768, 61000))} dst={address} "
            f"dpt=80 proto=TCP request={request} start={int(now * 1000)} out={bytes_}"
        )

    def tick(self, now: float) -> int:
        n = int(self._rng.poisson(self.rate))
        self.firewall_lines = []
        if n:
            with self.path.open("a", encoding="ascii") as log:
                log.write("".join(self.line(now) for _ in range(n)))
        if self._firewall is not None:
            for line in self.firewall_lines:
                self._firewall.send(line.encode())
        return n + len(self.firewall_lines)

    def close(self) -> None:
        if self._firewall is not None:
            self._firewall.close()
