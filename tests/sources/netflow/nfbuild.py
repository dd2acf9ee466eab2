"""Datagram builders (with ``struct``, independent of the decoder) and the capture reader
for the NetFlow decoder tests."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import dpkt

from netdistill.sources.base import Datagram


def _find_captures() -> Path:
    """``shared/captures`` beside the checkout or beside any folder above it (a git
    worktree can sit deeper than the main checkout); read in place, never copied."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "captures"
        if candidate.is_dir():
            return candidate
    return here.parents[3].parent / "shared" / "captures"


CAPTURES = _find_captures()
AKVORADO = CAPTURES / "akvorado-netflow"


def read_capture(name: str) -> list[Datagram]:
    """UDP payloads of an Ethernet pcap, with the IP source address as exporter."""
    out = []
    with open(AKVORADO / name, "rb") as fh:
        for ts, frame in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(frame).data
            family = socket.AF_INET6 if isinstance(ip, dpkt.ip6.IP6) else socket.AF_INET
            udp = ip.data
            out.append(Datagram(socket.inet_ntop(family, ip.src), bytes(udp.data), ts, udp.sport))
    return out


def v5_datagram(
    records: list[dict[str, int]],
    *,
    uptime_ms: int = 100_000,
    secs: int = 1_700_000_000,
    nsecs: int = 0,
    sequence: int = 0,
    sampling: int = 0,
    engine: tuple[int, int] = (0, 0),
) -> bytes:
    header = struct.pack(
        ">HHIIIIBBH", 5, len(records), uptime_ms, secs, nsecs, sequence, *engine, sampling
    )
    body = b"".join(
        struct.pack(
            ">IIIHHIIIIHHBBBBHHBBH",
            r.get("src", 0x0A000001),
            r.get("dst", 0x0A000002),
            r.get("hop", 0),
            r.get("in", 1),
            r.get("out", 2),
            r.get("packets", 1),
            r.get("bytes", 100),
            r.get("first", uptime_ms - 1000),
            r.get("last", uptime_ms),
            r.get("sport", 1000),
            r.get("dport", 80),
            0,
            r.get("flags", 0),
            r.get("proto", 6),
            r.get("tos", 0),
            r.get("src_as", 0),
            r.get("dst_as", 0),
            0,
            0,
            0,
        )
        for r in records
    )
    return header + body


def flowset(set_id: int, body: bytes) -> bytes:
    return struct.pack(">HH", set_id, 4 + len(body)) + body


def template_record(template_id: int, fields: list[tuple[int, int]]) -> bytes:
    """Template record; an element id ≥ 0x8000 gets a 4-byte enterprise number 9."""
    out = struct.pack(">HH", template_id, len(fields))
    for element, length in fields:
        out += struct.pack(">HH", element, length)
        if element & 0x8000:
            out += struct.pack(">I", 9)
    return out


def v9_options_template(
    template_id: int, scope: list[tuple[int, int]], options: list[tuple[int, int]]
) -> bytes:
    out = struct.pack(">HHH", template_id, 4 * len(scope), 4 * len(options))
    for element, length in scope + options:
        out += struct.pack(">HH", element, length)
    return out


def ipfix_options_template(
    template_id: int, scope: list[tuple[int, int]], options: list[tuple[int, int]]
) -> bytes:
    out = struct.pack(">HHH", template_id, len(scope) + len(options), len(scope))
    for element, length in scope + options:
        out += struct.pack(">HH", element, length)
    return out


def v9_message(
    sets: list[bytes],
    *,
    uptime_ms: int = 100_000,
    secs: int = 1_700_000_000,
    sequence: int = 0,
    source_id: int = 0,
) -> bytes:
    return struct.pack(">HHIIII", 9, len(sets), uptime_ms, secs, sequence, source_id) + b"".join(
        sets
    )


def ipfix_message(
    sets: list[bytes], *, export_s: int = 1_700_000_000, sequence: int = 0, domain: int = 0
) -> bytes:
    body = b"".join(sets)
    return struct.pack(">HHIII", 10, 16 + len(body), export_s, sequence, domain) + body


def dgram(payload: bytes, at: float = 1_700_000_000.0, exporter: str = "192.0.2.1") -> Datagram:
    return Datagram(exporter, payload, at)
