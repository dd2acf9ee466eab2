"""Decode rate on one core of ``NetflowDecoder`` (NetFlow v5, v9, IPFIX: flows/s) and
``SflowDecoder`` (sFlow v5: samples/s).

Self-contained: datagrams are built here with ``struct`` (1000 full datagrams per
version: v5 with 30 flows each, v9 and IPFIX ~1400 bytes; sFlow as a switch sends
them, 6 flow samples of a 128-byte raw header + extended switch record per ~1300-byte
datagram, and the same with router and gateway records as a BGP router sends them),
then one ``decode`` call per batch turns them into the final Arrow table. Prints one
line per format; ``--smoke`` runs 50 datagrams once (figures then mean little).

    .venv/bin/python benchmarks/netflow_decode.py [--smoke]
"""

from __future__ import annotations

import argparse
import os
import struct
import time

import numpy as np

from netdistill.sources.base import Datagram
from netdistill.sources.netflow import NetflowDecoder
from netdistill.sources.sflow import SflowDecoder

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


def _sflow_frame(k: int) -> bytes:
    """A 128-byte Ethernet/802.1Q/IPv4/TCP header as an agent copies it."""
    src, dst = (int(x) for x in RNG.choice(HOSTS, 2))
    ip = struct.pack(">BBHHHBBHII", 0x45, 0, 1500, k & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
    tcp = struct.pack(">HHIIBBHHH", 1024 + k % 50000, 443, k, 0, 0x50, 0x18, 65535, 0, 0)
    frame = b"\x02" * 6 + b"\x04" * 6 + struct.pack(">HHH", 0x8100, 100 + k % 4, 0x0800)
    return (frame + ip + tcp).ljust(128, b"\x00")


def _xdr(tag: int, body: bytes) -> bytes:
    return struct.pack(">II", tag, len(body)) + body


def sflow_datagrams(n: int, *, routed: bool) -> list[Datagram]:
    out = []
    per_datagram = 6 if not routed else 4
    for k in range(n):
        samples = []
        for j in range(per_datagram):
            records = [
                _xdr(1, struct.pack(">4I", 1, 1518, 4, 128) + _sflow_frame(k * 7 + j)),
                _xdr(1001, struct.pack(">4I", 100, 0, 200, 0)),
            ]
            if routed:
                records.append(_xdr(1002, struct.pack(">IIII", 1, 0x0A000001, 24, 16)))
                path = struct.pack(">II3I", 2, 3, 64500, 64501, 64502 + j)
                gateway = struct.pack(">II4I", 1, 0x0A000001, 64496, 64497, 64498, 1)
                records.append(_xdr(1003, gateway + path + struct.pack(">II", 0, 100)))
            header = struct.pack(
                ">8I", k * 7 + j, 3, 1000, (k * 7 + j) * 1000, 0, 10, 20, len(records)
            )
            samples.append(_xdr(1, header + b"".join(records)))
        payload = struct.pack(">IIIIIII", 5, 1, 0xC0000205, 0, k, k * 1000, len(samples))
        out.append(Datagram("192.0.2.5", payload + b"".join(samples), 1_700_000_000.0 + k))
    return out


def measure_sflow(name: str, datagrams: list[Datagram], rounds: int = 5) -> None:
    """Wall time as the other lines, and CPU time: on a loaded machine (CI, shared
    cores) the CPU figure is the decoder's own cost."""
    best = best_cpu = float("inf")
    samples = 0
    for _ in range(rounds):
        decoder = SflowDecoder()
        start, start_cpu = time.perf_counter(), time.process_time()
        result = decoder.decode(datagrams)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        samples = result.records.num_rows
        assert not result.quarantined, result.quarantined[:1]
    size = sum(len(d.payload) for d in datagrams) // len(datagrams)
    print(
        f"{name:6s} {samples:7d} samples in {best * 1000:7.1f} ms: {samples / best:12,.0f} "
        f"samples/s ({samples / max(best_cpu, 1e-9):,.0f}/s CPU time; {size}-byte datagrams; "
        "target 1,000,000/s)"
    )


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


def main() -> None:
    global N_DATAGRAMS
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small inputs, quick check")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    rounds = 1 if args.smoke else 5
    N_DATAGRAMS = 50 if args.smoke else 1000
    measure("v5", v5_datagrams(), rounds)
    measure("v9", flowset_datagrams(9), rounds)
    measure("ipfix", flowset_datagrams(10), rounds)
    # sFlow: a live batch is up to 20,000 datagrams (manager.max_batch_datagrams)
    n = 50 if args.smoke else 10_000
    measure_sflow("sflow", sflow_datagrams(n, routed=False), rounds)
    measure_sflow("sflow+bgp", sflow_datagrams(n, routed=True), rounds)


if __name__ == "__main__":
    main()
