#!/usr/bin/env python3
"""NetFlow ingest: decode rate on one core, and live loss/CPU against nfcapd and nfacctd.

    .venv/bin/python benchmarks/netflow_ingest.py            # full run, ~5 minutes
    .venv/bin/python benchmarks/netflow_ingest.py --smoke    # CI: under a minute

(a) Decode: ~1000 datagrams per format made by netdistill's encoder
    (``sources/netflow/encode.py``), decoded by ``NetflowDecoder().decode(datagrams)``
    repeatedly on core 0; flows per second of the best repetition. ``ipfix-biflow`` is
    IPFIX with RFC 5103 reverse counters (enterprise 29305) on every record, half of
    them with reverse traffic: "flows" counts exported biflows, "records" the usage
    records made (forward + reverse).

(b) Live: the same NetFlow v5 stream (30 flows per datagram, each flow 1 packet so a
    collector's packet total is its flow count) sent over loopback to each collector in
    turn — ``netdistill run --no-demo --netflow``, ``nfcapd`` and ``nfacctd`` — at rising
    rates. The sender is a separate process pinned to core 1 (``taskset -c 1``), the
    collector is pinned to core 0. Received flows are counted in each collector's own
    output: the store through ``netdistill query``'s path (the running manager's API),
    ``nfdump -I`` of nfcapd's file, the sum of the ``print`` plugin's PACKETS for
    nfacctd. CPU is utime+stime of the collector's process tree from /proc/PID/stat,
    before and after each step (after the collector has drained its socket).

A rate is lossless when under 0.1 % of the flows sent went missing. The highest lossless
rate of each collector is shown, and CPU seconds per million flows at that rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

FLOWS_PER_DATAGRAM = 30
LOSSLESS = 0.001  # < 0.1 % lost
COLLECTOR_CPU = "0"
SENDER_CPU = "1"


# --- the stream ------------------------------------------------------------------------


def make_flows(n: int, seed: int = 1) -> dict[str, object]:
    import numpy as np

    rng = np.random.default_rng(seed)
    start = 1_700_000_000_000 + np.sort(rng.integers(0, 60_000, n))
    return {
        "start_time": start,
        "end_time": start + rng.integers(0, 5_000, n),
        "src_ip": rng.integers(0x0A000000, 0x0AFFFFFF, n, dtype=np.uint32),
        "dst_ip": rng.integers(0xC6336400, 0xC63364FF, n, dtype=np.uint32),
        "src_port": rng.integers(1024, 65535, n),
        "dst_port": rng.choice(np.array([53, 80, 443, 8080]), n),
        "protocol": rng.choice(np.array([6, 17]), n),
        "bytes": rng.integers(40, 1500, n),
        "packets": np.ones(n, dtype=np.int64),
        "tcp_flags": rng.integers(0, 64, n),
        "input_if": rng.integers(1, 48, n),
        "output_if": rng.integers(1, 48, n),
    }


def v5_stream(datagrams: int) -> list[bytes]:
    from netdistill.sources.netflow.encode import encode_v5

    return encode_v5(make_flows(datagrams * FLOWS_PER_DATAGRAM))


# --- (a) decode rate -------------------------------------------------------------------


def biflows(n: int) -> dict[str, object]:
    """``make_flows`` plus reverse counters; every second biflow got no answer."""
    import numpy as np

    flows = make_flows(n)
    answered = np.arange(n) % 2 == 0
    flows["rev_bytes"] = np.where(answered, np.asarray(flows["bytes"]) * 3, 0)
    flows["rev_packets"] = answered.astype(np.int64)
    return flows


def encode_biflow_ipfix(flows: dict[str, object]) -> list[bytes]:
    from netdistill.sources.netflow.encode import IpfixExporter, encode_ipfix

    return encode_ipfix(flows, IpfixExporter(biflow=True))


def decode_rates(datagrams: int, repeats: int) -> list[tuple[str, int, int, int, float]]:
    """(format, datagrams, flows exported, records made, records/s)."""
    from netdistill.sources.base import Datagram
    from netdistill.sources.netflow.decode import NetflowDecoder
    from netdistill.sources.netflow.encode import encode_ipfix, encode_v5, encode_v9

    os.sched_setaffinity(0, {int(COLLECTOR_CPU)})
    out = []
    for name, encode, per, make in (
        ("v5", encode_v5, 30, make_flows),
        ("v9", encode_v9, 30, make_flows),
        ("ipfix", encode_ipfix, 30, make_flows),
        ("ipfix-biflow", encode_biflow_ipfix, 30, biflows),
    ):
        payloads = encode(make(datagrams * per))[:datagrams]
        now = time.time()
        batch = [Datagram("192.0.2.1", p, now) for p in payloads]
        first = NetflowDecoder().decode(batch).records
        records = first.num_rows
        reverse = first.column("biflow_reverse").to_pylist().count(True)
        best = float("inf")
        for _ in range(repeats):
            decoder = NetflowDecoder()
            t0 = time.perf_counter()
            result = decoder.decode(batch)
            best = min(best, time.perf_counter() - t0)
            assert result.records.num_rows == records
        out.append((name, len(batch), records - reverse, records, records / best))
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return out


# --- the sender (a separate process, pinned to the other core) ------------------------


def send_worker(port: int, flows_per_s: float, datagrams: int, stream_file: Path) -> None:
    """Send ``datagrams`` datagrams of the stream in a loop, paced to ``flows_per_s``;
    the v5 header's flow_sequence is rewritten so the stream never repeats a number.
    Prints a JSON line: datagrams sent, seconds, errors."""
    data = stream_file.read_bytes()
    pool: list[bytearray] = []
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack_from("!H", data, offset)
        pool.append(bytearray(data[offset + 2 : offset + 2 + length]))
        offset += 2 + length
    per_s = flows_per_s / FLOWS_PER_DATAGRAM
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.connect(("127.0.0.1", port))
    send = sock.send
    pack_into = struct.pack_into
    n_pool = len(pool)
    sent = errors = 0
    sequence = 0
    t0 = time.perf_counter()
    while sent < datagrams:
        owed = min(int((time.perf_counter() - t0) * per_s) + 1, datagrams) - sent
        if owed <= 0:
            time.sleep(0.0002)
            continue
        for _ in range(min(owed, 2048)):
            payload = pool[sent % n_pool]
            pack_into("!I", payload, 16, sequence & 0xFFFFFFFF)
            try:
                send(payload)
            except OSError:
                errors += 1
            sequence += FLOWS_PER_DATAGRAM
            sent += 1
    elapsed = time.perf_counter() - t0
    print(json.dumps({"datagrams": sent, "seconds": elapsed, "errors": errors}), flush=True)


def run_sender(port: int, flows_per_s: float, flows: int, stream_file: Path) -> dict[str, float]:
    datagrams = max(1, flows // FLOWS_PER_DATAGRAM)
    cmd = [
        "taskset", "-c", SENDER_CPU, sys.executable, str(Path(__file__).resolve()), "--send-worker",
        str(port), str(flows_per_s), str(datagrams), str(stream_file),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- collectors -------------------------------------------------------------------------


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and all its descendants still alive."""
    import peers

    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += peers.cpu_seconds(p)
        except OSError:
            continue
        todo.extend(children.get(p, []))
    return total


def receive_buffer(port: int) -> int:
    """The kernel's receive buffer size of the socket on UDP 127.0.0.1:``port`` (ss)."""
    done = subprocess.run(["ss", "-uanm", "sport", "=", f":{port}"], capture_output=True, text=True)
    text = done.stdout
    if "rb" in text:
        return int(text.split("rb", 1)[1].split(",", 1)[0])
    return 0


@dataclass
class Step:
    collector: str
    rate: int
    sent: int
    received: int
    achieved_rate: float
    cpu_s: float
    kernel_drops: int
    #: seconds from the sender's last datagram until the collector had all it would get:
    #: more than a fraction of a second means it fell behind and buffered (socket or
    #: memory); a longer step at that rate would lose
    drain_s: float
    step_s: float

    @property
    def sustained_rate(self) -> float:
        return self.received / (self.step_s + self.drain_s)

    @property
    def lost_fraction(self) -> float:
        return (self.sent - self.received) / self.sent if self.sent else 0.0

    @property
    def cpu_per_million(self) -> float:
        return self.cpu_s / self.received * 1e6 if self.received else float("nan")


class NetdistillCollector:
    name = "netdistill"

    def __init__(self, workdir: Path) -> None:
        import peers

        self.peers = peers
        self.run = peers.NetdistillRun(workdir / "netdistill" / "data", cpu=int(COLLECTOR_CPU))
        self.run.__enter__()
        self.port = self.run.port
        from netdistill.manager.client import ManagerClient
        from netdistill.manager.discovery import read_manager_info

        self.client = ManagerClient(read_manager_info(self.run.data_dir))  # type: ignore[arg-type]
        self.buffer = receive_buffer(self.port)

    def count(self) -> int:
        table = self.client.query("select count(*) as n from records")
        return int(table.column("n")[0].as_py())

    def measure(self, send: callable) -> tuple[int, float, int]:  # type: ignore[valid-type]
        before, cpu0, drops0 = self.count(), tree_cpu_seconds(self.run.pid), self.drops()
        send(self.port)
        sent_at = time.monotonic()
        self.peers.wait_udp_drained(self.port, settle_s=0.0)
        last, stable_since = self.count(), time.monotonic()
        while time.monotonic() - stable_since < 1.5:
            time.sleep(0.1)
            now = self.count()
            if now != last:
                last, stable_since = now, time.monotonic()
        self.drain_s = max(0.0, stable_since - sent_at)
        return last - before, tree_cpu_seconds(self.run.pid) - cpu0, self.drops() - drops0

    def drops(self) -> int:
        return self.peers.udp_socket_drops(self.port)

    def close(self) -> None:
        self.run.stop()


class NfcapdCollector:
    name = "nfcapd"

    def __init__(self, workdir: Path) -> None:
        import peers

        self.peers = peers
        self.workdir = workdir / "nfcapd"
        self.n = 0

    def measure(self, send: callable) -> tuple[int, float, int]:  # type: ignore[valid-type]
        self.n += 1
        flow_dir = self.workdir / f"step{self.n}"
        with self.peers.Nfcapd(flow_dir, cpu=int(COLLECTOR_CPU), buffer_bytes=64 << 20) as nfcapd:
            time.sleep(0.2)
            self.buffer = receive_buffer(nfcapd.port)
            cpu0 = tree_cpu_seconds(nfcapd.pid)
            send(nfcapd.port)
            sent_at = time.monotonic()
            self.peers.wait_udp_drained(nfcapd.port, settle_s=0.0)
            self.drain_s = time.monotonic() - sent_at
            time.sleep(0.3)
            cpu = tree_cpu_seconds(nfcapd.pid) - cpu0
            drops = self.peers.udp_socket_drops(nfcapd.port)
        received = self.peers.nfdump_summary(flow_dir).get("Flows", 0)
        shutil.rmtree(flow_dir, ignore_errors=True)
        return received, cpu, drops

    def close(self) -> None:
        pass


class NfacctdCollector:
    name = "nfacctd"

    def __init__(self, workdir: Path) -> None:
        import peers

        self.peers = peers
        self.workdir = workdir / "nfacctd"
        self.n = 0

    def measure(self, send: callable) -> tuple[int, float, int]:  # type: ignore[valid-type]
        self.n += 1
        step_dir = self.workdir / f"step{self.n}"
        collector = self.peers.Nfacctd(
            step_dir, cpu=int(COLLECTOR_CPU), aggregate=NFACCTD_AGGREGATE, buffer_bytes=64 << 20
        )
        with collector:
            time.sleep(0.5)
            self.buffer = receive_buffer(collector.port)
            cpu0 = sum(tree_cpu_seconds(p) for p in [collector.pid])
            send(collector.port)
            sent_at = time.monotonic()
            self.peers.wait_udp_drained(collector.port, settle_s=0.0)
            self.drain_s = time.monotonic() - sent_at
            time.sleep(0.5)
            cpu = tree_cpu_seconds(collector.pid) - cpu0
            drops = self.peers.udp_socket_drops(collector.port)
        received = sum(int(r["PACKETS"]) for r in collector.rows())
        shutil.rmtree(step_dir, ignore_errors=True)
        return received, cpu, drops

    def close(self) -> None:
        pass


def live(
    collectors: list[str], rates: list[int], step_s: float, workdir: Path, buffers: dict[str, int]
) -> list[Step]:
    import peers

    stream = v5_stream(2000)  # 60,000 distinct flows, looped with fresh sequence numbers
    stream_file = workdir / "stream.bin"
    stream_file.write_bytes(b"".join(struct.pack("!H", len(p)) + p for p in stream))
    steps: list[Step] = []
    for name in collectors:
        binary = {"netdistill": None, "nfcapd": "nfcapd", "nfacctd": "nfacctd"}[name]
        if binary and peers.missing(binary, "nfdump" if name == "nfcapd" else binary):
            print(f"skipping {name}: {peers.missing(binary)}", file=sys.stderr)
            continue
        collector = {"netdistill": NetdistillCollector, "nfcapd": NfcapdCollector,
                     "nfacctd": NfacctdCollector}[name](workdir)  # fmt: skip
        try:
            lossy_in_a_row = 0
            for rate in rates:
                flows = int(rate * step_s) // FLOWS_PER_DATAGRAM * FLOWS_PER_DATAGRAM
                sender: dict[str, float] = {}

                def send(
                    port: int,
                    rate: int = rate,
                    flows: int = flows,
                    sender: dict[str, float] = sender,
                ) -> None:
                    sender.update(run_sender(port, rate, flows, stream_file))

                received, cpu, drops = collector.measure(send)
                sent = int(sender["datagrams"]) * FLOWS_PER_DATAGRAM
                step = Step(name, rate, sent, received, sent / sender["seconds"], cpu, drops,
                            collector.drain_s, sender["seconds"])  # fmt: skip
                steps.append(step)
                print(
                    f"  {name:10} {rate:>9,} flows/s: sent {sent:>10,} received {received:>10,} "
                    f"lost {step.lost_fraction:7.3%}  cpu {cpu:6.2f}s  drain {step.drain_s:5.1f}s  "
                    f"(sender reached {step.achieved_rate:,.0f}/s)",
                    file=sys.stderr,
                    flush=True,
                )
                lossy_in_a_row = lossy_in_a_row + 1 if step.lost_fraction >= 0.05 else 0
                if lossy_in_a_row >= 2:
                    break  # well past saturation: higher steps only lose more
            if name == "netdistill":
                # once, the real CLI path (`netdistill query`) for the final count
                assert isinstance(collector, NetdistillCollector)
                via_cli = peers.query(collector.run.data_dir, "select count(*) as n from records")
                assert int(via_cli[0]["n"]) == collector.count()  # type: ignore[call-overload]
        finally:
            buffers[name] = getattr(collector, "buffer", 0)
            collector.close()
    return steps


# --- report -----------------------------------------------------------------------------


def print_decode(rows: list[tuple[str, int, int, int, float]]) -> None:
    print("\n(a) decode rate, one core (NetflowDecoder().decode, best of the repetitions)")
    print(f"{'format':13} {'datagrams':>10} {'flows':>8} {'records':>8} {'records/s':>12}")
    for name, datagrams, flows, records, rate in rows:
        print(f"{name:13} {datagrams:>10,} {flows:>8,} {records:>8,} {rate:>12,.0f}")


def print_live(steps: list[Step], rates: list[int], buffers: dict[str, int]) -> None:
    names = list(dict.fromkeys(s.collector for s in steps))
    print(
        "\n(b) live NetFlow v5 over loopback, 30 flows/datagram; sender on core 1, collector "
        "on core 0"
    )
    print("    lost % of flows sent, CPU seconds per million flows received")
    print("    drain: seconds after the sender stopped until the collector had everything")
    header = f"{'flows/s':>10} " + " ".join(
        f"{n + ' lost':>16} {'cpu/M':>6} {'drain':>6}" for n in names
    )
    print(header)
    for rate in rates:
        cells = []
        for n in names:
            step = next((s for s in steps if s.collector == n and s.rate == rate), None)
            if step is None:
                cells.append(f"{'-':>16} {'-':>6} {'-':>6}")
            else:
                cells.append(
                    f"{step.lost_fraction:>16.3%} {step.cpu_per_million:>6.2f} "
                    f"{step.drain_s:>5.1f}s"
                )
        print(f"{rate:>10,} " + " ".join(cells))
    print("\nsummary")
    print(
        f"{'collector':12} {'highest lossless flows/s':>26} {'cpu-s per M flows there':>24} "
        f"{'kept up to (drain<1s)':>22} {'processing flows/s':>19} {'socket buffer':>14}"
    )
    for n in names:
        mine = [s for s in steps if s.collector == n]
        ok = [s for s in mine if s.lost_fraction < LOSSLESS]
        best = max(ok, key=lambda s: s.rate, default=None)
        kept = max((s.rate for s in ok if s.drain_s < 1.0), default=0)
        processing = max((s.sustained_rate for s in mine), default=0.0)
        print(
            f"{n:12} {best.rate if best else 0:>26,} "
            f"{best.cpu_per_million if best else float('nan'):>24.2f} "
            f"{kept:>22,} {processing:>19,.0f} {buffers.get(n, 0):>14,}"
        )
    print(
        "(socket buffer: the kernel's rb of the collector's socket; netdistill sets 64 MiB "
        "with SO_RCVBUFFORCE, nfcapd -B / nfacctd_pipe_size get net.core.rmem_max)"
    )


#: What nfacctd keeps. By default one row per flow key with its times, the closest work
#: to netdistill's one stored record per flow; ``--nfacctd-aggregate proto`` lets nfacctd
#: sum everything into one row per protocol (far less work, not comparable).
NFACCTD_AGGREGATE = (
    "src_host,dst_host,src_port,dst_port,proto,tos,src_as,dst_as,in_iface,out_iface,"
    "timestamp_start,timestamp_end"
)


def main() -> None:
    global NFACCTD_AGGREGATE
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="small and quick, for CI (< 60 s)")
    parser.add_argument("--rates", help="comma-separated flows/s steps")
    parser.add_argument("--step-seconds", type=float)
    parser.add_argument("--collectors", default="netdistill,nfcapd,nfacctd")
    parser.add_argument(
        "--nfacctd-aggregate",
        default=NFACCTD_AGGREGATE,
        help="pmacct aggregate primitives for nfacctd's print plugin",
    )
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument(
        "--send-worker",
        nargs=4,
        metavar=("PORT", "RATE", "DATAGRAMS", "FILE"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    NFACCTD_AGGREGATE = args.nfacctd_aggregate
    if args.send_worker:
        port, rate, datagrams, path = args.send_worker
        send_worker(int(port), float(rate), int(datagrams), Path(path))
        return

    if args.smoke:
        rates = [100_000, 400_000]
        step_s = args.step_seconds or 1.0
        datagrams, repeats = 300, 3
    else:
        rates = [100_000, 200_000, 400_000, 600_000, 1_000_000, 1_500_000, 2_000_000]
        step_s = args.step_seconds or 5.0
        datagrams, repeats = 1000, 10
    if args.rates:
        rates = [int(float(r)) for r in args.rates.split(",")]
    if (os.cpu_count() or 1) < 2:
        print("note: one CPU only; sender and collector share it", file=sys.stderr)

    if not args.skip_decode:
        print_decode(decode_rates(datagrams, repeats))
    if not args.skip_live:
        with tempfile.TemporaryDirectory(prefix="netflow-ingest-") as tmp:
            buffers: dict[str, int] = {}
            steps = live(args.collectors.split(","), rates, step_s, Path(tmp), buffers)
            print_live(steps, rates, buffers)


if __name__ == "__main__":
    main()
