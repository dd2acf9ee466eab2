"""Delivery benchmark: spool write cost, manager commit cost, catch-up rate end to end.

    .venv/bin/python benchmarks/delivery.py [--smoke] [--records N] [--batch N]

1. Spool write: encode (field ids, Arrow IPC + zstd) and append with fsync, per million
   records: CPU seconds and MB on disk.
2. Where the manager's time goes, in-process: decode + id→name mapping, then
   ``DuckDBStore.commit`` (one transaction per batch) and ``commit_many`` (8 batches per
   transaction, as the manager does when a request carries several): DuckDB's insert
   alone, measured in the same run for scale.
3. Catch-up end to end over loopback: N records spooled while the manager is down, then
   a real ``netdistill manager`` process is started and a forwarder drains the spool;
   records/s from the first request to the last acknowledgement. Steady-state delivery
   runs the same path (spool read → HTTP → decode → commit → ack), so this is also the
   end-to-end rate.
4. Catch-up with one destination down (issue 13): a spool with two destinations, the
   second never up, bounded to 8 batches (lag limit 4 batches per destination); the
   records are appended while a forwarder sends to the live manager. Before the lag
   limits the spool blocked at its bound and the live manager stopped receiving; now
   the dead one is skipped (counted) and the live one gets everything: records/s to the
   live manager, batches the appender had to wait (``blocked``), records not delivered
   to the dead one.

Figures are from a shared 2-core machine and noisy.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from netdistill.delivery.entry import RECORDS
from netdistill.delivery.wire import decode_records, encode_records
from netdistill.gatherer.config import ForwardConfig
from netdistill.gatherer.forward import Forwarder, destination_name
from netdistill.gatherer.spool import Spool
from netdistill.records.fields import STANDARD_FIELDS, FieldRegistry
from netdistill.records.schema import conform
from netdistill.store.duckdb import DuckDBStore

TOKEN = "bench-token"


def batch(first: int, n: int) -> pa.Table:
    """A realistic flow batch: most standard columns filled, like a NetFlow source."""
    rng = np.random.default_rng(first)
    index = np.arange(first, first + n)
    start = (1_700_000_000_000_000 + index * 1000).astype("datetime64[us]")
    ips = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(256)]
    src = pa.array(np.array(ips, dtype=object)[rng.integers(0, 256, n)])
    return conform(
        pa.table(
            {
                "start_time": pa.array(start).cast(pa.timestamp("us", tz="UTC")),
                "end_time": pa.array(start + 5_000_000).cast(pa.timestamp("us", tz="UTC")),
                "duration_s": np.full(n, 5.0),
                "src_ip": src,
                "dst_ip": pa.array(np.array(ips, dtype=object)[rng.integers(0, 256, n)]),
                "src_port": (index % 65536).astype(np.uint16),
                "dst_port": rng.integers(0, 1024, n).astype(np.uint16),
                "protocol": np.full(n, 6, dtype=np.uint8),
                "bytes": rng.integers(40, 1_500_000, n).astype(np.uint64),
                "packets": rng.integers(1, 1000, n).astype(np.uint64),
                "exporter": pa.array(["192.0.2.1"] * n),
                "source": pa.array(["nf"] * n),
                "gatherer": pa.array(["g"] * n),
                "input_if": rng.integers(0, 48, n).astype(np.uint32),
                "output_if": rng.integers(0, 48, n).astype(np.uint32),
                "tcp_flags": np.full(n, 0x1B, dtype=np.uint16),
                "sampling_rate": np.ones(n, dtype=np.uint32),
            }
        )
    )


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def spool_write(directory: Path, total: int, size: int) -> tuple[Spool, dict[str, float]]:
    types = {f.name: f.type for f in STANDARD_FIELDS}
    tables = [batch(i * size, size) for i in range(4)]
    spool = Spool(directory, [destination_name(URL[0])], max_bytes=1 << 40)
    c0, t0 = cpu(), time.perf_counter()
    for k in range(total // size):
        spool.append(RECORDS, "g/nf", k + 1, size, encode_records(tables[k % 4], types))
    cpu_s, wall = cpu() - c0, time.perf_counter() - t0
    disk = sum(p.stat().st_size for p in directory.glob("*.seg"))
    millions = total / 1e6
    return spool, {
        "cpu_s_per_million": cpu_s / millions,
        "mb_per_million": disk / 1e6 / millions,
        "records_per_s": total / wall,
    }


def manager_costs(directory: Path, spool: Spool, total: int) -> dict[str, float]:
    store = DuckDBStore(directory / "costs.duckdb")
    registry = FieldRegistry()
    entries = spool.read(destination_name(URL[0]), max_entries=10_000)
    decode = commit = 0.0
    for entry in entries:
        t0 = time.perf_counter()
        table = decode_records(entry.payload, registry)
        t1 = time.perf_counter()
        store.commit(table, origin=entry.origin, sequence=entry.seq)
        commit += time.perf_counter() - t1
        decode += t1 - t0
    store.close()
    many = DuckDBStore(directory / "costs-many.duckdb")
    tables = [(decode_records(e.payload, registry), e.origin, e.seq) for e in entries]
    c0, t0 = cpu(), time.perf_counter()
    for k in range(0, len(tables), 8):
        many.commit_many(tables[k : k + 8])
    commit_many, commit_many_cpu = time.perf_counter() - t0, cpu() - c0
    many.close()
    return {
        "decode_us_per_record": decode / total * 1e6,
        "commit_us_per_record": commit / total * 1e6,
        "commit_many_us_per_record": commit_many / total * 1e6,
        "commit_many_cpu_us_per_record": commit_many_cpu / total * 1e6,
    }


URL: list[str] = []


def catch_up(root: Path, spool: Spool, total: int, per_request: int) -> dict[str, float]:
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "integration"))
    import peers

    scheme = root / "scheme.yaml"
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    port = int(URL[0].rsplit(":", 1)[1])
    scheme.write_text(
        f"manager: {{api_port: {port}}}\ngatherers: [{{name: g, token_sha256: {digest}}}]\n"
    )
    proc = subprocess.Popen(
        [*peers.netdistill_command(), "manager", "--config", str(scheme), "--data-dir",
         str(root / "manager")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (root / "manager" / "manager.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        forwarder = Forwarder(
            spool, URL[0], gatherer="g", token=TOKEN,
            config=ForwardConfig(max_batches_per_request=per_request),
        )  # fmt: skip
        c0, m0, t0 = cpu(), peers.cpu_seconds(proc.pid), time.perf_counter()
        while forwarder.send_once():
            pass
        wall = time.perf_counter() - t0
        sent = forwarder.sent_records
        manager_cpu = peers.cpu_seconds(proc.pid) - m0
        return {
            "records": sent,
            "records_per_s": sent / wall,
            "drain_s": wall,
            "gatherer_cpu_s": cpu() - c0,
            "manager_cpu_s": manager_cpu,
        }
    finally:
        peers.stop_process(proc)


def one_down(root: Path, total: int, size: int) -> dict[str, float]:
    """See the module docstring, part 4."""
    import threading

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "integration"))
    import peers

    from netdistill.errors import SpoolFull

    types = {f.name: f.type for f in STANDARD_FIELDS}
    payloads = [encode_records(batch(i * size, size), types) for i in range(4)]
    frame = len(payloads[0]) + 64
    live = f"http://127.0.0.1:{peers.free_tcp_port()}"
    dead = f"http://127.0.0.1:{peers.free_tcp_port()}"  # nothing listens there
    limits = {destination_name(u): (4 * frame, None) for u in (live, dead)}
    spool = Spool(
        root / "spool-one-down",
        [destination_name(live), destination_name(dead)],
        max_bytes=8 * frame,
        segment_bytes=frame,
        lag_limits=limits,
    )
    scheme = root / "one-down.yaml"
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    scheme.write_text(
        f"manager: {{api_port: {live.rsplit(':', 1)[1]}}}\n"
        f"gatherers: [{{name: g, token_sha256: {digest}}}]\n"
    )
    proc = subprocess.Popen(
        [*peers.netdistill_command(), "manager", "--config", str(scheme), "--data-dir",
         str(root / "manager-one-down")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    waited = 0
    try:
        deadline = time.monotonic() + 30
        while not (root / "manager-one-down" / "manager.json").exists():
            assert time.monotonic() < deadline, "the manager did not start"
            time.sleep(0.05)
        forwarder = Forwarder(
            spool, live, gatherer="g", token=TOKEN,
            config=ForwardConfig(max_batches_per_request=8),
        )  # fmt: skip
        batches = total // size
        t0 = time.perf_counter()
        forwarder.start()

        def append() -> None:
            nonlocal waited
            for k in range(batches):
                while True:
                    try:
                        spool.append(RECORDS, "g/nf", k + 1, size, payloads[k % 4])
                        break
                    except SpoolFull:
                        waited += 1
                        time.sleep(0.01)

        appender = threading.Thread(target=append)
        appender.start()
        appender.join()
        while forwarder.sent_records < total and time.perf_counter() - t0 < 600:
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        forwarder.stop()
        lag = spool.lag_status(destination_name(dead))
        return {
            "records": forwarder.sent_records,
            "records_per_s": forwarder.sent_records / wall,
            "blocked": spool.counters.blocked,
            "not_delivered_records": float(lag["not_delivered_records"]),  # type: ignore[arg-type]
            "dead_behind": float(bool(lag["behind"])),
        }
    finally:
        peers.stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small and quick")
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    args = parser.parse_args()
    total = 200_000 if args.smoke else args.records
    size = min(args.batch, total)
    total -= total % size
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "integration"))
    import peers

    URL.append(f"http://127.0.0.1:{peers.free_tcp_port()}")
    with tempfile.TemporaryDirectory(prefix="delivery-bench-") as tmp:
        root = Path(tmp)
        spool, write = spool_write(root / "spool", total, size)
        print(f"records {total:,} in batches of {size:,}; fsync per batch; zstd Arrow IPC")
        print(
            f"spool write     {write['records_per_s']:>12,.0f} records/s   "
            f"{write['cpu_s_per_million']:.2f} CPU-s and "
            f"{write['mb_per_million']:.1f} MB on disk per million records"
        )
        costs = manager_costs(root, spool, total)
        print(
            f"manager, in-process: decode {costs['decode_us_per_record']:.3f} µs/record, "
            f"DuckDB commit {costs['commit_us_per_record']:.3f} µs/record; "
            f"commit_many (8 batches) {costs['commit_many_us_per_record']:.3f} µs/record "
            f"({costs['commit_many_cpu_us_per_record']:.3f} CPU-µs)"
        )
        result = catch_up(root, spool, total, per_request=8)
        print(
            f"catch-up e2e    {result['records_per_s']:>12,.0f} records/s   "
            f"{result['records']:,} records drained in {result['drain_s']:.2f} s; CPU: "
            f"gatherer {result['gatherer_cpu_s']:.2f} s, manager {result['manager_cpu_s']:.2f} s "
            f"({result['manager_cpu_s'] / (result['records'] / 1e6):.2f} CPU-s per million)"
        )
        down = one_down(root, total, size)
        print(
            f"one down e2e    {down['records_per_s']:>12,.0f} records/s   "
            f"{down['records']:,.0f} of {total:,} records to the live manager with the other "
            f"never up; spool bound 8 batches: {down['blocked']:.0f} appends waited, "
            f"{down['not_delivered_records']:,.0f} records counted as not delivered to the "
            f"dead one (behind: {bool(down['dead_behind'])})"
        )
        os.sync()


if __name__ == "__main__":
    main()
