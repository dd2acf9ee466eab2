"""Decode rate of ``NetflowDecoder`` for NetFlow v5, v9 and IPFIX, in flows per second.

Self-contained: datagrams are built here with ``struct`` (1000 full datagrams per
version: v5 with 30 flows each, v9 and IPFIX ~1400 bytes), then one ``decode`` call per
batch turns them into the final Arrow table. Prints one line per version.

    .venv/bin/python benchmarks/netflow_decode.py
"""

from __future__ import annotations

import struct
import time

import numpy as np

from netdistill.sources.base import Datagram
from netdistill.sources.netflow import NetflowDecoder

N_DATAGRAMS = 1000
RNG = np.random.default_rng(7)
HOSTS = RNG.integers(0x0A000000, 0x0A000000 + 5000, size=5000, dtype=np.uint32)

# element, length: a typical router template (IPv4, ports, counters, times, ifaces, AS)
V9_FIELDS = [
    (8, 4),
    (12, 4),
    (15, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (5, 1),
    (6, 1),
    (10, 4),
    (14, 4),
    (1, 4),
    (2, 4),
    (22, 4),
    (21, 4),
    (16, 4),
    (17, 4),
    (61, 1),
]
IPFIX_FIELDS = [
    (8, 4),
    (12, 4),
    (15, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (5, 1),
    (6, 1),
    (10, 4),
    (14, 4),
    (1, 8),
    (2, 8),
    (152, 8),
    (153, 8),
    (16, 4),
    (17, 4),
    (61, 1),
]


def _records(fields: list[tuple[int, int]], n: int, now_ms: int, uptime: bool) -> bytes:
    dtype = np.dtype([(f"f{i}", f">u{length}") for i, (_, length) in enumerate(fields)])
    records = np.zeros(n, dtype=dtype)
    for i, (element, _) in enumerate(fields):
        name = f"f{i}"
        if element in (8, 12, 15):
            records[name] = RNG.choice(HOSTS, n)
        elif element in (7, 11):
            records[name] = RNG.integers(1, 65535, n)
        elif element == 4:
            records[name] = 6
        elif element in (1, 2):
            records[name] = RNG.integers(40, 1_000_000, n)
        elif element in (21, 22, 152, 153):
            base = 3_600_000 if uptime else now_ms
            records[name] = base - RNG.integers(0, 60_000, n)
        elif element in (10, 14, 16, 17):
            records[name] = RNG.integers(1, 100, n)
    return records.tobytes()


def v5_datagrams() -> list[Datagram]:
    out = []
    for k in range(N_DATAGRAMS):
        header = struct.pack(">HHIIIIBBH", 5, 30, 3_600_000, 1_700_000_000, 0, k * 30, 0, 0, 0)
        body = bytearray()
        for _ in range(30):
            src, dst, hop = (int(x) for x in RNG.choice(HOSTS, 3))
            body += struct.pack(
                ">IIIHHIIIIHHBBBBHHBBH",
                src,
                dst,
                hop,
                1,
                2,
                10,
                1500,
                3_590_000,
                3_599_000,
                1234,
                443,
                0,
                0x18,
                6,
                0,
                64512,
                64513,
                24,
                24,
                0,
            )
        out.append(Datagram("192.0.2.5", header + bytes(body), 1_700_000_000.0 + k))
    return out


def _template_set(set_id: int, template_id: int, fields: list[tuple[int, int]]) -> bytes:
    body = struct.pack(">HH", template_id, len(fields)) + b"".join(
        struct.pack(">HH", e, length) for e, length in fields
    )
    return struct.pack(">HH", set_id, 4 + len(body)) + body


def flowset_datagrams(version: int) -> list[Datagram]:
    fields = V9_FIELDS if version == 9 else IPFIX_FIELDS
    record_length = sum(length for _, length in fields)
    header_length = 20 if version == 9 else 16
    per_datagram = (1400 - header_length - 4) // record_length
    out = []
    now_s = 1_700_000_000
    for k in range(N_DATAGRAMS):
        data = _records(fields, per_datagram, now_s * 1000, uptime=version == 9)
        sets = struct.pack(">HH", 256, 4 + len(data)) + data
        if k == 0:
            sets = _template_set(0 if version == 9 else 2, 256, fields) + sets
        if version == 9:
            header = struct.pack(">HHIIII", 9, per_datagram, 3_600_000, now_s, k, 1)
        else:
            header = struct.pack(">HHIII", 10, 16 + len(sets), now_s, k * per_datagram, 1)
        out.append(Datagram("192.0.2.9", header + sets, now_s + k / 1000))
    return out


def measure(name: str, datagrams: list[Datagram], rounds: int = 5) -> None:
    best = float("inf")
    flows = 0
    for _ in range(rounds):
        decoder = NetflowDecoder()
        if name != "v5":  # templates known beforehand, as in steady state
            decoder.decode(datagrams[:1])
        start = time.perf_counter()
        result = decoder.decode(datagrams)
        best = min(best, time.perf_counter() - start)
        flows = result.records.num_rows
        assert not result.quarantined, result.quarantined[:1]
    print(f"{name:6s} {flows:7d} flows in {best * 1000:7.1f} ms: {flows / best:12,.0f} flows/s")


if __name__ == "__main__":
    measure("v5", v5_datagrams())
    measure("v9", flowset_datagrams(9))
    measure("ipfix", flowset_datagrams(10))
