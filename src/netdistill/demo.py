"""Synthetic devices for ``netdistill run`` without a scheme: a small ISP's traffic.

``DemoTraffic`` makes flows that look like a real edge router's: a few hundred customer
hosts in several 10.x /24s talking to external servers (content networks, mail, DNS and
NTP resolvers, a SIP provider), with a realistic service mix by port, heavy-tailed volumes
(Pareto for downloads, lognormal elsewhere), packet counts consistent with each service's
usual packet size, a request flow and a response flow per session (both directions, with
the matching interfaces and AS numbers), and a diurnal rate: quiet at night, busy in the
afternoon and evening, UTC.

It is deterministic: the hosts depend on ``seed`` only, and the flows of an interval on
``(seed, start, end, rate)`` only, so a test or a screenshot is repeatable.

``DemoExporter`` is the device: a background thread that every second makes the flows
that ended during the last second and sends them as NetFlow v9 or IPFIX
(``netdistill.sources.netflow.encode``) over UDP from a loopback address, the way a
router exports. ``demo_exporters`` builds the pair ``netdistill run`` starts.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from netdistill.sources.netflow.encode import (
    IpfixExporter,
    V9Exporter,
    encode_ipfix,
    encode_v9,
)

__all__ = ["SERVICES", "DemoExporter", "DemoTraffic", "Service", "demo_exporters", "diurnal"]


@dataclass(frozen=True, slots=True)
class Service:
    """One kind of session: who serves it, how big it is, how its packets look."""

    name: str
    protocol: int
    port: int
    share: float  # of sessions
    servers: str  # key of the external server pool; "internal" for inbound sessions
    response_bytes: tuple[str, float, float]  # ("pareto", x_min, alpha) | ("lognormal", mu, sigma)
    request_bytes: tuple[str, float, float]
    packet_bytes: int  # average payload-carrying packet size of the response
    duration_s: tuple[float, float]  # lognormal (mu, sigma) of the session duration
    tos: int = 0
    client_port_low: int = 32768  # Linux ephemeral port range
    client_port_high: int = 60999


TCP, UDP = 6, 17
EF = 46 << 2  # DSCP Expedited Forwarding, as voice is marked (RFC 3246)

SERVICES: tuple[Service, ...] = (
    Service("https", TCP, 443, 0.36, "web", ("pareto", 6_000, 1.2), ("lognormal", 7.3, 0.8), 1_300, (0.5, 1.6)),  # noqa: E501
    Service("quic", UDP, 443, 0.10, "web", ("pareto", 8_000, 1.15), ("lognormal", 7.5, 0.8), 1_250, (0.7, 1.5)),  # noqa: E501
    Service("http", TCP, 80, 0.07, "web", ("pareto", 3_000, 1.3), ("lognormal", 6.5, 0.6), 1_200, (0.0, 1.4)),  # noqa: E501
    Service("dns", UDP, 53, 0.24, "dns", ("lognormal", 4.9, 0.4), ("lognormal", 4.1, 0.2), 140, (-4.0, 0.8)),  # noqa: E501
    Service("smtp", TCP, 25, 0.03, "mail", ("lognormal", 6.5, 0.5), ("lognormal", 9.5, 1.3), 1_000, (0.3, 0.9)),  # noqa: E501
    Service("imaps", TCP, 993, 0.06, "mail", ("lognormal", 9.0, 1.6), ("lognormal", 7.0, 0.7), 1_100, (2.0, 1.2)),  # noqa: E501
    Service("ssh", TCP, 22, 0.02, "hosting", ("lognormal", 9.5, 2.0), ("lognormal", 8.5, 1.5), 400, (3.5, 1.5)),  # noqa: E501
    Service("sip", UDP, 5060, 0.02, "voip", ("lognormal", 7.0, 0.4), ("lognormal", 7.0, 0.4), 600, (4.0, 0.9), tos=EF, client_port_low=5060, client_port_high=5060),  # noqa: E501
    Service("rtp", UDP, 0, 0.03, "voip", ("lognormal", 14.0, 0.9), ("lognormal", 14.0, 0.9), 214, (4.5, 0.9), tos=EF, client_port_low=10000, client_port_high=20000),  # noqa: E501
    Service("ntp", UDP, 123, 0.03, "ntp", ("lognormal", 4.4, 0.0), ("lognormal", 4.4, 0.0), 76, (-6.0, 0.5), client_port_low=123, client_port_high=123),  # noqa: E501
    Service("smtp-in", TCP, 25, 0.02, "internal", ("lognormal", 6.5, 0.5), ("lognormal", 9.8, 1.3), 1_000, (0.3, 0.9)),  # noqa: E501
    Service("ssh-in", TCP, 22, 0.02, "internal", ("lognormal", 8.0, 1.5), ("lognormal", 7.0, 1.0), 300, (1.0, 1.5)),  # noqa: E501
)  # fmt: skip

#: External server pools: (first address, how many, AS number, uplink interface index).
SERVER_POOLS: dict[str, list[tuple[str, int, int, int]]] = {
    "web": [
        ("142.250.180.0", 40, 15169, 1),  # Google
        ("151.101.0.0", 30, 54113, 1),  # Fastly
        ("104.16.0.0", 40, 13335, 2),  # Cloudflare
        ("52.84.0.0", 30, 16509, 2),  # Amazon CloudFront
        ("157.240.0.0", 20, 32934, 1),  # Meta
        ("17.253.0.0", 15, 714, 2),  # Apple
    ],
    "dns": [("8.8.8.8", 1, 15169, 1), ("1.1.1.1", 1, 13335, 2), ("9.9.9.9", 1, 19281, 1)],
    "mail": [
        ("142.250.110.0", 10, 15169, 1),
        ("40.97.0.0", 10, 8075, 2),
        ("17.57.152.0", 5, 714, 2),
    ],
    "hosting": [("95.216.0.0", 10, 24940, 1), ("134.209.0.0", 10, 14061, 2)],
    "voip": [("198.51.100.10", 4, 64511, 1)],
    "ntp": [("162.159.200.1", 2, 13335, 2), ("129.6.15.28", 2, 49, 1)],
}
LOCAL_AS = 64500  # the demo ISP's own AS (RFC 5398 documentation range)
#: Customer networks: (first address of the /24, customer-facing interface index).
CUSTOMER_NETWORKS = (
    ("10.1.0.0", 11), ("10.1.1.0", 11), ("10.1.2.0", 12), ("10.12.7.0", 13),
    ("10.20.0.0", 14), ("10.20.1.0", 14), ("10.99.3.0", 15),
)  # fmt: skip


def diurnal(hour_utc: np.ndarray | float) -> np.ndarray:
    """Rate multiplier by hour of day (UTC), mean 1 over a day: lowest (0.35) around
    03:00, highest (1.65) around 15:00."""
    return 1.0 + 0.65 * np.cos(2 * np.pi * (np.asarray(hour_utc, dtype=float) - 15.0) / 24.0)


def _ipv4(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


class DemoTraffic:
    """Deterministic synthetic flows of a small ISP edge (see the module docstring)."""

    def __init__(self, seed: int = 0, hosts: int = 300) -> None:
        self.seed = seed
        rng = np.random.default_rng([seed, 0x6E64])
        networks = rng.integers(0, len(CUSTOMER_NETWORKS), hosts)
        # Distinct host numbers per /24 (2..254), at most 253 hosts per network.
        host_numbers = np.zeros(hosts, dtype=np.uint32)
        for index in range(len(CUSTOMER_NETWORKS)):
            members = np.flatnonzero(networks == index)
            host_numbers[members] = rng.choice(np.arange(2, 255), len(members), replace=False)
        bases = np.array([_ipv4(net) for net, _ in CUSTOMER_NETWORKS], dtype=np.uint32)
        self.host_ips = bases[networks] + host_numbers
        self.host_ifs = np.array([i for _, i in CUSTOMER_NETWORKS], dtype=np.uint32)[networks]
        # A few hosts make most of the traffic: lognormal activity weights.
        weights = rng.lognormal(0.0, 1.2, hosts)
        self.host_weights = weights / weights.sum()
        self.pools = {name: self._pool(entries) for name, entries in SERVER_POOLS.items()}
        shares = np.array([s.share for s in SERVICES])
        self.service_shares = shares / shares.sum()

    @staticmethod
    def _pool(entries: list[tuple[str, int, int, int]]) -> tuple[np.ndarray, ...]:
        ips: list[int] = []
        ases: list[int] = []
        uplinks: list[int] = []
        for first, count, asn, uplink in entries:
            ips.extend(_ipv4(first) + i for i in range(count))
            ases.extend([asn] * count)
            uplinks.extend([uplink] * count)
        return (
            np.array(ips, dtype=np.uint32),
            np.array(ases, dtype=np.uint32),
            np.array(uplinks, dtype=np.uint32),
        )

    def _session_times(
        self, rng: np.random.Generator, start: float, end: float, sessions_per_s: float
    ) -> np.ndarray:
        # Poisson arrivals per minute-aligned bin, each bin at the diurnal rate of its
        # middle: exact for long intervals, one bin for the exporter's one-second ticks.
        edges = np.arange(math.floor(start / 60.0) * 60.0, end + 60.0, 60.0)
        edges = np.clip(edges, start, end)
        edges = np.unique(edges)
        if len(edges) < 2:
            return np.zeros(0)
        widths = np.diff(edges)
        middles = edges[:-1] + widths / 2
        expected = sessions_per_s * widths * diurnal((middles % 86400.0) / 3600.0)
        counts = rng.poisson(expected)
        starts = np.repeat(edges[:-1], counts)
        return np.sort(starts + rng.random(len(starts)) * np.repeat(widths, counts))

    def _volume(
        self, rng: np.random.Generator, spec: tuple[str, float, float], n: int
    ) -> np.ndarray:
        kind, a, b = spec
        if kind == "pareto":
            values = a * (1.0 + rng.pareto(b, n))
            return np.minimum(values, 4e9)  # cap single flows at 4 GB
        return rng.lognormal(a, b, n)

    def flows(self, start: float, end: float, rate_fps: float) -> pa.Table:
        """Flows that ended in ``[start, end)`` (unix seconds) at a daily mean of
        ``rate_fps`` flows per second, sorted by end time. Columns as
        ``encode.flow_columns`` takes them (times as UTC millisecond timestamps), plus
        ``service``."""
        rng = np.random.default_rng(
            [self.seed, round(start * 1000), round(end * 1000), round(rate_fps * 1000)]
        )
        ends = self._session_times(rng, start, end, rate_fps / 2.0)  # two flows per session
        n = len(ends)
        service_index = rng.choice(len(SERVICES), n, p=self.service_shares)
        host = rng.choice(len(self.host_ips), n, p=self.host_weights)
        columns: dict[str, np.ndarray] = {
            "client": self.host_ips[host],
            "client_if": self.host_ifs[host],
            "server": np.zeros(n, np.uint32),
            "server_as": np.zeros(n, np.uint32),
            "uplink": np.zeros(n, np.uint32),
            "client_port": np.zeros(n, np.uint32),
            "server_port": np.zeros(n, np.uint32),
            "protocol": np.zeros(n, np.uint8),
            "tos": np.zeros(n, np.uint8),
            "request_bytes": np.zeros(n),
            "response_bytes": np.zeros(n),
            "packet_bytes": np.zeros(n),
            "duration": np.zeros(n),
        }
        inbound = np.zeros(n, dtype=bool)
        for index, service in enumerate(SERVICES):
            rows = np.flatnonzero(service_index == index)
            if not len(rows):
                continue
            k = len(rows)
            if service.servers == "internal":
                # Inbound: an outside client reaches a customer host's server port.
                ips, ases, uplinks = self.pools["hosting"]
                inbound[rows] = True
            else:
                ips, ases, uplinks = self.pools[service.servers]
            pick = rng.integers(0, len(ips), k)
            columns["server"][rows] = ips[pick]
            columns["server_as"][rows] = ases[pick]
            columns["uplink"][rows] = uplinks[pick]
            columns["client_port"][rows] = rng.integers(
                service.client_port_low, service.client_port_high + 1, k
            )
            columns["server_port"][rows] = (
                service.port if service.port else rng.integers(10000, 20000, k) & ~1
            )
            columns["protocol"][rows] = service.protocol
            columns["tos"][rows] = service.tos
            columns["request_bytes"][rows] = self._volume(rng, service.request_bytes, k)
            columns["response_bytes"][rows] = self._volume(rng, service.response_bytes, k)
            columns["packet_bytes"][rows] = service.packet_bytes
            # Routers cut long flows at the active timeout (30 min is common).
            columns["duration"][rows] = np.minimum(rng.lognormal(*service.duration_s, k), 1800)
        return self._both_directions(rng, ends, service_index, inbound, columns)

    def _both_directions(
        self,
        rng: np.random.Generator,
        ends: np.ndarray,
        service_index: np.ndarray,
        inbound: np.ndarray,
        c: dict[str, np.ndarray],
    ) -> pa.Table:
        n = len(ends)
        tcp = c["protocol"] == TCP
        header = np.where(tcp, 40, 28)  # IPv4 + TCP / UDP headers per packet
        # Response: packets from the volume and the service's packet size; the request
        # side of TCP also carries one ACK per two response segments.
        response_packets = np.maximum(1, np.ceil(c["response_bytes"] / c["packet_bytes"]))
        request_packets = np.maximum(1, np.ceil(c["request_bytes"] / 600.0))
        request_packets += np.where(tcp, np.floor(response_packets / 2), 0)
        rtp = service_index == [s.name for s in SERVICES].index("rtp")
        request_packets = np.where(rtp, response_packets, request_packets)  # symmetric voice
        # No packet above a 1500-byte MTU, whatever the volume drawn.
        response_payload = np.minimum(c["response_bytes"], (1500 - header) * response_packets)
        request_payload = np.minimum(c["request_bytes"], (1500 - header) * request_packets)
        response_bytes = np.round(response_payload + header * response_packets)
        request_bytes = np.round(request_payload + header * request_packets)
        end_ms = np.floor(ends * 1000).astype(np.int64)
        start_ms = end_ms - np.round(c["duration"] * 1000).astype(np.int64)
        # TCP flags: SYN|ACK|PSH|FIN, a few sessions reset.
        flags = np.where(tcp, 0x1B, 0) | np.where(tcp & (rng.random(n) < 0.04), 0x04, 0)
        client_as = np.full(n, LOCAL_AS, np.uint32)

        def side(first: str, second: str) -> tuple[np.ndarray, np.ndarray]:
            # Column `first` for outbound sessions, `second` for inbound ones.
            return np.where(inbound, c[second], c[first]), np.where(inbound, c[first], c[second])

        # For an inbound session the outside host is the client; the customer host serves.
        initiator, responder = side("client", "server")
        initiator_port = c["client_port"]
        responder_port = c["server_port"]
        initiator_as = np.where(inbound, c["server_as"], client_as)
        responder_as = np.where(inbound, client_as, c["server_as"])
        initiator_if = np.where(inbound, c["uplink"], c["client_if"])
        responder_if = np.where(inbound, c["client_if"], c["uplink"])
        names = np.array([s.name for s in SERVICES])[service_index]
        forward = {
            "src_ip": initiator, "dst_ip": responder,
            "src_port": initiator_port, "dst_port": responder_port,
            "bytes": request_bytes, "packets": request_packets,
            "src_as": initiator_as, "dst_as": responder_as,
            "input_if": initiator_if, "output_if": responder_if,
        }  # fmt: skip
        reverse = {
            "src_ip": responder, "dst_ip": initiator,
            "src_port": responder_port, "dst_port": initiator_port,
            "bytes": response_bytes, "packets": response_packets,
            "src_as": responder_as, "dst_as": initiator_as,
            "input_if": responder_if, "output_if": initiator_if,
        }  # fmt: skip
        order = np.argsort(np.concatenate([end_ms, end_ms]), kind="stable")

        def both(a: np.ndarray, b: np.ndarray, dtype: type) -> np.ndarray:
            return np.concatenate([a, b]).astype(dtype)[order]

        start_both = both(start_ms, start_ms, np.int64)
        end_both = both(end_ms, end_ms, np.int64)
        return pa.table(
            {
                "start_time": pa.array(
                    start_both.astype("datetime64[ms]"), pa.timestamp("ms", "UTC")
                ),
                "end_time": pa.array(end_both.astype("datetime64[ms]"), pa.timestamp("ms", "UTC")),
                "src_ip": both(forward["src_ip"], reverse["src_ip"], np.uint32),
                "dst_ip": both(forward["dst_ip"], reverse["dst_ip"], np.uint32),
                "src_port": both(forward["src_port"], reverse["src_port"], np.uint16),
                "dst_port": both(forward["dst_port"], reverse["dst_port"], np.uint16),
                "protocol": both(c["protocol"], c["protocol"], np.uint8),
                "bytes": both(forward["bytes"], reverse["bytes"], np.uint64),
                "packets": both(forward["packets"], reverse["packets"], np.uint64),
                "tcp_flags": both(flags, flags, np.uint16),
                "tos": both(c["tos"], c["tos"], np.uint8),
                "input_if": both(forward["input_if"], reverse["input_if"], np.uint32),
                "output_if": both(forward["output_if"], reverse["output_if"], np.uint32),
                "src_as": both(forward["src_as"], reverse["src_as"], np.uint32),
                "dst_as": both(forward["dst_as"], reverse["dst_as"], np.uint32),
                "service": np.concatenate([names, names])[order],
            }
        )


@dataclass(slots=True)
class SentTotals:
    """What an exporter has sent so far."""

    datagrams: int = 0
    flows: int = 0
    bytes: int = 0
    packets: int = 0
    payload_bytes: int = 0


class DemoExporter:
    """A synthetic router exporting NetFlow v9 or IPFIX over UDP once a second.

    ``start`` launches a daemon thread; ``stop`` ends it and joins (at most one tick).
    Each tick sends the flows of ``DemoTraffic`` that ended since the previous tick (the
    first tick covers the second before it). Counters are updated after each send, under
    a lock; ``sent_totals`` reads them consistently. The exporter's source address is
    ``source_address`` (any 127/8 address works on Linux, so two demo routers look like
    two devices to the collector)."""

    def __init__(
        self,
        to: tuple[str, int],
        protocol: str = "ipfix",
        *,
        domain_id: int = 1,
        source_address: str = "127.0.0.1",
        rate_fps: float = 300.0,
        seed: int = 0,
        hosts: int = 300,
        sampling_interval: int | None = None,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if protocol not in ("v9", "ipfix"):
            raise ValueError(f"protocol must be 'v9' or 'ipfix', not {protocol!r}")
        self.to = to
        self.protocol = protocol
        self.domain_id = domain_id
        self.source_address = source_address
        self.rate_fps = rate_fps
        self.interval_s = interval_s
        self.traffic = DemoTraffic(seed=seed, hosts=hosts)
        self._clock = clock
        self._exporter: V9Exporter | IpfixExporter
        if protocol == "v9":
            # Booted a day ago: uptime-relative flow times stay positive for any flow.
            self._exporter = V9Exporter(
                source_id=domain_id,
                sampling_interval=sampling_interval,
                boot_time_ms=int((clock() - 86400) * 1000),
            )
        else:
            self._exporter = IpfixExporter(
                observation_domain_id=domain_id, sampling_interval=sampling_interval
            )
        self._totals = SentTotals()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._last_tick: float | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("exporter already started")
        family = socket.AF_INET6 if ":" in self.source_address else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.bind((self.source_address, 0))
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"demo-{self.protocol}-{self.domain_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def sent_totals(self) -> SentTotals:
        with self._lock:
            t = self._totals
            return SentTotals(t.datagrams, t.flows, t.bytes, t.packets, t.payload_bytes)

    @property
    def flows_sent(self) -> int:
        return self.sent_totals().flows

    @property
    def datagrams_sent(self) -> int:
        return self.sent_totals().datagrams

    def tick(self, now: float | None = None) -> int:
        """Make and send the flows of the time since the last tick; return how many.
        The background thread calls it; tests may call it directly instead of ``start``."""
        now = self._clock() if now is None else now
        since = self._last_tick if self._last_tick is not None else now - self.interval_s
        self._last_tick = now
        flows = self.traffic.flows(since, now, self.rate_fps)
        encode = encode_v9 if self.protocol == "v9" else encode_ipfix
        datagrams = encode(flows, self._exporter, export_time_ms=int(now * 1000))  # type: ignore[arg-type]
        sock = self._socket
        if sock is None:
            raise RuntimeError("exporter not started")
        for datagram in datagrams:
            sock.sendto(datagram, self.to)
        with self._lock:
            self._totals.datagrams += len(datagrams)
            self._totals.flows += flows.num_rows
            self._totals.bytes += int(np.sum(flows.column("bytes").to_numpy()))
            self._totals.packets += int(np.sum(flows.column("packets").to_numpy()))
            self._totals.payload_bytes += sum(map(len, datagrams))
        return flows.num_rows

    def _run(self) -> None:
        next_tick = self._clock()
        while not self._stop.is_set():
            # The collector may not listen yet (ICMP unreachable): a router keeps
            # exporting regardless, and so do we.
            with contextlib.suppress(OSError):
                self.tick()
            next_tick += self.interval_s
            self._stop.wait(max(0.0, next_tick - self._clock()))


def demo_exporters(to: tuple[str, int], rate_fps: float = 300.0) -> list[DemoExporter]:
    """The two routers of the demo scheme: a NetFlow v9 edge router and an IPFIX one,
    different hosts, observation domains and loopback addresses."""
    return [
        DemoExporter(to, "v9", domain_id=1, source_address="127.0.0.2", rate_fps=rate_fps, seed=1),
        DemoExporter(
            to,
            "ipfix",
            domain_id=2,
            source_address="127.0.0.3",
            rate_fps=rate_fps,
            seed=2,
            sampling_interval=None,
        ),
    ]
