"""RADIUS accounting: requests/s decoded, and requests/s answered end to end.

* ``radius decode``: the pure decoder (authenticator check, attribute walk, session
  deltas, Arrow table, responses built) over prepared Accounting-Requests.
* ``radius answered``: a RadiusSource in the real pipeline committing to a DuckDB store,
  with the state written to SQLite before each batch's answers; a sender process (on
  another core when there is one) keeps up to 10,000 requests outstanding and counts the
  Accounting-Responses. The rate is requests answered per second of wall time, with the
  receiver, decoder, store and state all on this process's one core; ``per CPU-s`` is
  the same run per second of this process's CPU time, which is the fairer figure on a
  machine where other work shares that core.

Requests: sessions of Start, three Interim-Updates and Stop, 12 attributes each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyrad import packet

from netdistill.sources.base import Datagram
from netdistill.sources.radius.accounting import (
    DICTIONARY,
    AccountingDecoder,
    ClientTable,
)
from netdistill.sources.radius.sessions import AnsweredRequests, SessionTable
from source_bench import Figure

SECRET = b"bench-secret"
TARGET = 20_000.0
#: requests outstanding at once (many NASes, each with a few in flight)
WINDOW = 10_000

_SENDER = r"""
import json, socket, sys, threading, time
path, port, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
packets, at = [], 0
while at < len(data):
    n = int.from_bytes(data[at:at + 2], "big"); packets.append(data[at + 2:at + 2 + n]); at += 2 + n
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
sock.connect(("127.0.0.1", port))
received = [0]
last = [0.0]
def receive():
    sock.settimeout(5.0)
    while received[0] < len(packets):
        try:
            sock.recv(4096)
        except OSError:
            return
        received[0] += 1
        last[0] = time.perf_counter()
thread = threading.Thread(target=receive, daemon=True)
thread.start()
first = time.perf_counter()
for i, p in enumerate(packets):
    while i - received[0] >= window:
        time.sleep(0.0002)
    sock.send(p)
thread.join(60)
print(json.dumps({"sent": len(packets), "received": received[0], "seconds": last[0] - first}))
"""


def build_requests(n: int) -> list[bytes]:
    requests: list[bytes] = []
    session = 0
    while len(requests) < n:
        session += 1
        common = {
            "User-Name": f"user{session}@isp.example",
            "Acct-Session-Id": f"{session:08x}",
            "NAS-IP-Address": "192.0.2.1",
            "NAS-Port": session % 4096,
            "Framed-IP-Address": f"10.{session >> 16 & 255}.{session >> 8 & 255}.{session & 255}",
            "Calling-Station-Id": "00-11-22-33-44-55",
        }
        for step, status in enumerate(
            ["Start", "Interim-Update", "Interim-Update", "Interim-Update", "Stop"]
        ):
            pkt = packet.AcctPacket(id=len(requests) & 255, secret=SECRET, dict=DICTIONARY)
            for name, value in common.items():
                pkt[name] = value
            pkt["Acct-Status-Type"] = status
            pkt["Acct-Input-Octets"] = step * 10_000
            pkt["Acct-Output-Octets"] = step * 100_000
            pkt["Acct-Input-Packets"] = step * 10
            pkt["Acct-Output-Packets"] = step * 100
            pkt["Acct-Session-Time"] = step * 60
            requests.append(bytes(pkt.RequestPacket()))
    return requests[:n]


def _decoder() -> AccountingDecoder:
    return AccountingDecoder(
        source="bench",
        clients=ClientTable({"127.0.0.1": SECRET}),
        sessions=SessionTable(),
        answered=AnsweredRequests(window_s=300, limit=1_000_000),
    )


def bench_decode(requests: list[bytes]) -> Figure:
    decoder = _decoder()
    datagrams = [Datagram("127.0.0.1", r, 1.7e9, 40000) for r in requests]
    # CPU time: one thread, so it is the decoder's own cost even on a shared core
    started = time.process_time()
    for i in range(0, len(datagrams), 20_000):
        decoder.decode(datagrams[i : i + 20_000])
    seconds = time.process_time() - started
    assert decoder.counters.records == len(requests), decoder.counters
    return Figure(
        "radius decode",
        "requests",
        len(requests),
        seconds,
        TARGET,
        "pure, per CPU-s: check, walk, deltas, Arrow, answers",
    )


def bench_answered(requests: list[bytes]) -> list[Figure]:
    from netdistill.delivery.pipeline import Pipeline
    from netdistill.sources.radius.config import RadiusSourceConfig
    from netdistill.sources.radius.listener import RadiusSource
    from netdistill.store import ensure_fields
    from netdistill.store.duckdb import DuckDBStore

    with tempfile.TemporaryDirectory() as tmp:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = RadiusSourceConfig.model_validate(
            {
                "name": "bench",
                "type": "radius",
                "listen": [f"127.0.0.1:{port}"],
                "clients": {"127.0.0.1": {"secret": SECRET.decode()}},
            }
        )
        store = DuckDBStore(Path(tmp) / "records.duckdb")
        source = RadiusSource(config, state_dir=Path(tmp) / "state")
        ensure_fields(store, source.fields, source="bench")
        pipeline = Pipeline([source], store, interval_s=0.1)
        path = Path(tmp) / "requests.bin"
        path.write_bytes(b"".join(len(r).to_bytes(2, "big") + r for r in requests))
        cpu_started = time.process_time()
        pipeline.start()
        try:
            cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
            others = sorted(set(range(os.cpu_count() or 1)) - set(cpus))
            sender = subprocess.Popen(
                [sys.executable, "-c", _SENDER, str(path), str(port), str(WINDOW)],
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=(lambda: os.sched_setaffinity(0, {others[0]})) if others else None,
            )
            out, _ = sender.communicate(timeout=300)
        finally:
            pipeline.stop()
        cpu_seconds = time.process_time() - cpu_started
        result = json.loads(out)
        stored = store.query("select count(*) n from records").column(0)[0].as_py()
        store.close()
    note = f"{result['received']:,} answered, {stored:,} stored, DuckDB + SQLite state"
    return [
        Figure("radius answered", "requests", result["received"], result["seconds"], TARGET, note),
        Figure(
            "radius answered per CPU-s",
            "requests",
            result["received"],
            cpu_seconds,
            TARGET,
            "the same run, per second of this process's CPU time",
        ),
    ]


def run(smoke: bool) -> list[Figure]:
    n = 2_000 if smoke else 100_000
    requests = build_requests(n)
    return [bench_decode(requests), *bench_answered(requests)]
