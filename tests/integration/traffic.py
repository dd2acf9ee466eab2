"""A traffic capture with known ground truth, for exporters that read pcaps (softflowd -r).

``build_traffic_pcap`` writes an Ethernet pcap of many hosts talking TCP and UDP over IPv4
and a few over IPv6: several packets per flow, sizes from 40 to 1500 bytes, both
directions. It returns the ground truth per unidirectional flow: the 5-tuple, the packet
count and the byte count as a flow exporter counts them (IP total length: IPv4 header +
payload, or the IPv6 40-byte header + payload length), and the first and last packet
times.

Pure Python with ``struct`` so the test does not depend on the library it might check.
Deterministic for a given seed; every 5-tuple is used by one flow only, all packets fall
within a short window (well under softflowd's default timeouts), so an exporter reading
the file reports exactly one flow record per direction.
"""

from __future__ import annotations

import ipaddress
import random
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from peers import Caught

from netdistill.sources.netflow.encode import V5Exporter, encode_v5

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
TCP = 6
UDP = 17

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

#: pcap global header: magic, v2.4, tz 0, sigfigs 0, snaplen 65535, LINKTYPE_ETHERNET
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


@dataclass(frozen=True, slots=True)
class FlowKey:
    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int
    protocol: int


@dataclass(slots=True)
class FlowTruth:
    key: FlowKey
    packets: int = 0
    bytes: int = 0
    first: float = 0.0
    last: float = 0.0

    @property
    def ipv6(self) -> bool:
        return ":" in self.key.src_ip


@dataclass(slots=True)
class GroundTruth:
    flows: dict[FlowKey, FlowTruth]
    first_packet_time: float
    last_packet_time: float

    def select(self, *, ipv6: bool = True) -> list[FlowTruth]:
        return [f for f in self.flows.values() if ipv6 or not f.ipv6]

    def totals(self, *, ipv6: bool = True) -> tuple[int, int, int]:
        flows = self.select(ipv6=ipv6)
        return len(flows), sum(f.bytes for f in flows), sum(f.packets for f in flows)

    def conversation_times(self, key: FlowKey) -> tuple[float, float]:
        """First and last packet of the flow and its reverse together: softflowd keeps one
        bidirectional flow and exports both directions with its start and end."""
        reverse = FlowKey(key.dst_ip, key.src_ip, key.dst_port, key.src_port, key.protocol)
        flows = [f for f in (self.flows.get(key), self.flows.get(reverse)) if f is not None]
        return min(f.first for f in flows), max(f.last for f in flows)

    def bytes_by_src_ip(self, *, ipv6: bool = True) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.select(ipv6=ipv6):
            out[f.key.src_ip] = out.get(f.key.src_ip, 0) + f.bytes
        return out


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _mac(n: int) -> bytes:
    return b"\x02\x00" + n.to_bytes(4, "big")


def _l4(protocol: int, sport: int, dport: int, payload_len: int, flags: int, seq: int) -> bytes:
    payload = bytes((seq + i) & 0xFF for i in range(payload_len))
    if protocol == TCP:
        # checksum left 0: flow exporters do not verify it
        return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
    return struct.pack("!HHHH", sport, dport, 8 + payload_len, 0) + payload


def _frame(key: FlowKey, payload_len: int, flags: int, seq: int, ident: int) -> tuple[bytes, int]:
    """One Ethernet frame of ``key``; returns it and the IP length a flow exporter counts."""
    l4 = _l4(key.protocol, key.src_port, key.dst_port, payload_len, flags, seq)
    src = ipaddress.ip_address(key.src_ip)
    dst = ipaddress.ip_address(key.dst_ip)
    if src.version == 4:
        total = 20 + len(l4)
        header = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            total,
            ident & 0xFFFF,
            0x4000,
            64,
            key.protocol,
            0,
            src.packed,
            dst.packed,
        )
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        ethertype = ETHERTYPE_IPV4
    else:
        total = 40 + len(l4)
        header = struct.pack(
            "!IHBB16s16s", 6 << 28, len(l4), key.protocol, 64, src.packed, dst.packed
        )
        ethertype = ETHERTYPE_IPV6
    ether = _mac(int(src) & 0xFFFFFFFF) + _mac(int(dst) & 0xFFFFFFFF) + struct.pack("!H", ethertype)
    return ether + header + l4, total


@dataclass(frozen=True, slots=True)
class _Conversation:
    client: str
    server: str
    client_port: int
    server_port: int
    protocol: int
    exchanges: int  # request/response pairs
    start: float


def _conversations(
    rng: random.Random, n_v4: int, n_v6: int, base: float
) -> Iterator[_Conversation]:
    clients4 = [f"10.{1 + i // 200}.{i % 200}.{10 + i % 7}" for i in range(40)]
    servers4 = [f"192.0.2.{i}" for i in range(1, 13)] + [f"198.51.100.{i}" for i in range(1, 9)]
    clients6 = [f"2001:db8:1::{i:x}" for i in range(1, 7)]
    servers6 = [f"2001:db8:ffff::{i:x}" for i in range(1, 4)]
    used: set[tuple[str, str, int, int, int]] = set()
    for i in range(n_v4 + n_v6):
        v6 = i >= n_v4
        client = rng.choice(clients6 if v6 else clients4)
        server = rng.choice(servers6 if v6 else servers4)
        protocol = TCP if rng.random() < 0.65 else UDP
        server_port = rng.choice([80, 443, 8080, 25] if protocol == TCP else [53, 123, 5060, 4789])
        while True:
            client_port = rng.randrange(1024, 65535)
            tup = (client, server, client_port, server_port, protocol)
            if tup not in used:
                used.add(tup)
                break
        yield _Conversation(
            client,
            server,
            client_port,
            server_port,
            protocol,
            exchanges=rng.randint(1, 12),
            start=base + rng.uniform(0, 20),
        )


def build_traffic_pcap(
    path: Path, *, n_v4: int = 300, n_v6: int = 24, seed: int = 7
) -> GroundTruth:
    """Write the capture to ``path`` and return what an exact flow exporter must report."""
    rng = random.Random(seed)
    base = 1_700_000_000.0  # 2023-11-14T22:13:20Z, a whole second
    packets: list[tuple[float, bytes]] = []
    flows: dict[FlowKey, FlowTruth] = {}
    ident = 0

    def emit(key: FlowKey, t: float, payload_len: int, flags: int) -> None:
        nonlocal ident
        ident += 1
        frame, ip_len = _frame(key, payload_len, flags, ident * 7919, ident)
        packets.append((t, frame))
        truth = flows.get(key)
        if truth is None:
            truth = flows[key] = FlowTruth(key, first=t, last=t)
        truth.packets += 1
        truth.bytes += ip_len
        truth.first = min(truth.first, t)
        truth.last = max(truth.last, t)

    for conv in _conversations(rng, n_v4, n_v6, base):
        up = FlowKey(conv.client, conv.server, conv.client_port, conv.server_port, conv.protocol)
        down = FlowKey(conv.server, conv.client, conv.server_port, conv.client_port, conv.protocol)
        # millisecond-aligned times: v5/v9 carry milliseconds, so truth is exactly representable
        t = round(conv.start, 3)

        def step(t: float) -> float:
            return round(t + rng.randint(1, 400) / 1000.0, 3)

        if conv.protocol == TCP:
            emit(up, t, 0, TCP_SYN)
            t = step(t)
            emit(down, t, 0, TCP_SYN | TCP_ACK)
            t = step(t)
            emit(up, t, 0, TCP_ACK)
        for _ in range(conv.exchanges):
            t = step(t)
            emit(up, t, rng.randint(0, 400), TCP_PSH | TCP_ACK)
            for _ in range(rng.randint(1, 4)):
                t = step(t)
                emit(
                    down,
                    t,
                    rng.choice([0, 64, 512, 1200, 1460 if conv.protocol == TCP else 1472]),
                    TCP_PSH | TCP_ACK,
                )
        if conv.protocol == TCP:
            t = step(t)
            emit(up, t, 0, TCP_FIN | TCP_ACK)
            t = step(t)
            emit(down, t, 0, TCP_FIN | TCP_ACK)
            t = step(t)
            emit(up, t, 0, TCP_ACK)

    packets.sort(key=lambda p: p[0])
    with open(path, "wb") as out:
        out.write(_PCAP_HEADER)
        for t, frame in packets:
            sec = int(t)
            usec = round((t - sec) * 1_000_000)
            out.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            out.write(frame)
    return GroundTruth(flows, packets[0][0], packets[-1][0])


def keyed_v5_flows(first: int, n: int) -> tuple[list[bytes], int]:
    """NetFlow v5 datagrams for flows ``first .. first+n-1``, each with its own
    (src_ip, src_port) key so a duplicate or a loss shows, and the sum of their bytes."""
    index = np.arange(first, first + n, dtype=np.int64)
    now = int(time.time() * 1000)
    columns = {
        "start_time": np.full(n, now - 5000),
        "end_time": np.full(n, now - 1000),
        "src_ip": (0x0A000000 + index // 1000).astype(np.uint32),
        "dst_ip": np.full(n, 0xC0000201, dtype=np.uint32),
        "src_port": (index % 1000 + 1024).astype(np.uint16),
        "dst_port": np.full(n, 443, dtype=np.uint16),
        "protocol": np.full(n, 6, dtype=np.uint8),
        "bytes": (1000 + index % 977).astype(np.uint32),
        "packets": np.full(n, 3, dtype=np.uint32),
    }
    return encode_v5(columns, V5Exporter()), int(columns["bytes"].sum())


@dataclass(frozen=True)
class Export:
    """What softflowd sent for one format: the datagrams in order, and the truth."""

    format: str
    version: int
    datagrams: list[Caught]
    truth: GroundTruth
    workdir: Path

    @property
    def ipv6(self) -> bool:
        return self.version != 5  # NetFlow v5 cannot carry IPv6 flows


def keyed_totals(data_dir: Path) -> dict[str, int]:
    """What the running manager of ``data_dir`` stored of a keyed stream: flows, bytes
    and distinct (src_ip, src_port) keys (fewer keys than flows = a duplicate)."""
    from netdistill.manager.client import ManagerClient
    from netdistill.manager.discovery import read_manager_info

    info = read_manager_info(data_dir)
    if info is None:
        raise AssertionError(f"no manager is running on {data_dir}")
    client = ManagerClient(info)
    try:
        row = client.query(
            "select count(*) as flows, coalesce(sum(bytes), 0) as bytes, "
            "count(distinct (src_ip, src_port)) as keys from records"
        ).to_pylist()[0]
    finally:
        client.close()
    return {k: int(v) for k, v in row.items()}
