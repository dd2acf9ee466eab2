"""Two aggregators and failover, with real processes (seed 000, claims 1–2).

Two ``netdistill manager`` processes with 2-second windows are fed the same batches
through their APIs, as a gatherer with two destinations does; ``netdistill accounting``
runs as a process. The primary is killed with SIGKILL mid-run: the consumer must switch
to the secondary and keep delivering. The primary restarts on the same data directory
(its store keeps what it committed before the kill), is fed what it missed, as a
gatherer's spool would, and the consumer must go back. The consumer itself is killed
and restarted once. Every delivered window must appear exactly once, in order, with no
gap, and equal the ground truth computed here from the records sent.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
from peers import free_tcp_port, netdistill_command

from netdistill.manager.client import ManagerClient
from netdistill.manager.discovery import read_manager_info
from netdistill.records.schema import conform

LENGTH_S, GRACE_S = 2, 3
ACCOUNTS = [("acct-1", None), ("acct-2", None), (None, "alice"), ("", "bob"), (None, None)]


class Proc:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*netdistill_command(), *args], stdout=self.log, stderr=subprocess.STDOUT
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_manager(tmp: Path, name: str, port: int) -> tuple[Proc, ManagerClient]:
    scheme = tmp / f"{name}.yaml"
    scheme.write_text(
        f"version: 1\nmanager:\n  api_port: {port}\n"
        f"  windows: {{length_s: {LENGTH_S}, grace_s: {GRACE_S}, interval_s: 0.2}}\n"
    )
    data = tmp / name
    proc = Proc(["manager", "--config", str(scheme), "--data-dir", str(data)], tmp / f"{name}.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = read_manager_info(data)
        if info is not None and info.pid == proc.proc.pid:
            return proc, ManagerClient(info, timeout_s=10)
        assert proc.proc.poll() is None, (tmp / f"{name}.log").read_text()
        time.sleep(0.1)
    raise AssertionError(f"manager {name} did not start")


def make_batch(rng: random.Random, n: int) -> pa.Table:
    now_us = int(time.time() * 1e6)
    rows = []
    for _ in range(n):
        account, user = rng.choice(ACCOUNTS)
        end = now_us - rng.randrange(300_000)
        rows.append(
            {
                "end_time": end,
                "start_time": end - rng.randrange(5_000_000),
                "account_id": account,
                "user_name": user,
                "src_ip": f"192.0.2.{rng.randrange(1, 3)}",
                "service": rng.choice(["http", "dns", "smtp", None]),
                "bytes": rng.randrange(40, 10**7),
                "packets": rng.randrange(1, 5000),
                "duration_s": rng.randrange(0, 5_000_000) / 1e6,
            }
        )
    table = pa.Table.from_pylist(rows)
    ts = pa.timestamp("us", tz="UTC")
    for name in ("end_time", "start_time"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(name).cast(ts))
    return conform(table)


def ground_truth(batches: list[pa.Table]) -> dict[int, list[dict[str, object]]]:
    """Per window: rows by (account, service), summed here in plain Python."""
    sums: dict[tuple[int, str, str], list[int]] = {}
    for table in batches:
        for r in table.to_pylist():
            start = int(r["end_time"].timestamp()) // LENGTH_S * LENGTH_S
            account = r["account_id"] or r["user_name"] or r["src_ip"]
            key = (start, account, r["service"] or "")
            s = sums.setdefault(key, [0, 0, 0, 0])
            s[0] += r["bytes"]
            s[1] += r["packets"]
            s[2] += 1
            s[3] += round(r["duration_s"] * 1e6)
    out: dict[int, list[dict[str, object]]] = {}
    for (start, account, service), (b, p, n, d) in sorted(sums.items()):
        out.setdefault(start, []).append(
            {
                "account": account,
                "service": service,
                "bytes": b,
                "packets": p,
                "sessions": n,
                "duration_s": d / 1e6,
            }
        )
    return out


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_consumer_fails_over_and_back_delivering_each_window_once(tmp_path):
    rng = random.Random(7)
    ports = {"a": free_tcp_port(), "b": free_tcp_port()}
    primary, to_primary = start_manager(tmp_path, "a", ports["a"])
    secondary, to_secondary = start_manager(tmp_path, "b", ports["b"])
    out = tmp_path / "accounting"
    consumer_args = [
        "accounting",
        "--primary", f"http://127.0.0.1:{ports['a']}",
        "--secondary", f"http://127.0.0.1:{ports['b']}",
        "--primary-token-file", str(tmp_path / "a" / "manager.json"),
        "--secondary-token-file", str(tmp_path / "b" / "manager.json"),
        "--out", str(out),
        "--poll-s", "0.3", "--failures", "3", "--stall-s", "3",
    ]  # fmt: skip
    consumer = Proc(consumer_args, tmp_path / "consumer.log")
    sent: list[pa.Table] = []
    missed: list[tuple[int, pa.Table]] = []  # what the primary's spool would still hold
    sequence = 0

    def feed(seconds: float, primary_up: bool) -> None:
        nonlocal sequence
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sequence += 1
            batch = make_batch(rng, 25)
            sent.append(batch)
            assert to_secondary.commit(batch, origin="edge-1/nf", sequence=sequence) == 25
            if primary_up:
                assert to_primary.commit(batch, origin="edge-1/nf", sequence=sequence) == 25
            else:
                missed.append((sequence, batch))
            time.sleep(0.2)

    try:
        feed(5, primary_up=True)
        wait_for(lambda: read_json(out / "cursor.json").get("delivered"), 20, "a first window")
        primary.kill(signal.SIGKILL)
        feed(5, primary_up=False)
        wait_for(
            lambda: read_json(out / "status.json").get("source") == "secondary", 20, "failover"
        )
        primary, to_primary = start_manager(tmp_path, "a", ports["a"])
        for seq, batch in missed:  # the gatherer's spool catches the primary up
            to_primary.commit(batch, origin="edge-1/nf", sequence=seq)
        feed(3, primary_up=True)
        consumer.kill(signal.SIGKILL)  # the consumer crashes and restarts
        consumer = Proc(consumer_args, tmp_path / "consumer.log")
        feed(3, primary_up=True)
        wait_for(
            lambda: read_json(out / "status.json").get("source") == "primary", 30, "going back"
        )
        last = max(int(r.timestamp()) for b in sent for r in b.column("end_time").to_pylist())
        final = last // LENGTH_S * LENGTH_S + LENGTH_S  # an empty window after the data
        wait_for(
            lambda: (read_json(out / "cursor.json").get("last_start") or 0) >= final,
            30,
            "the last windows",
        )
    finally:
        consumer.kill(signal.SIGTERM)
        primary.kill(signal.SIGTERM)
        secondary.kill(signal.SIGTERM)

    truth = ground_truth(sent)
    files = sorted(out.glob("window-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    reports = [json.loads(p.read_text()) for p in files]
    starts = [r["start"] for r in reports]
    first = min(truth)
    assert starts[0] == first
    assert starts == list(range(first, starts[-1] + LENGTH_S, LENGTH_S))  # in order, no gap
    assert starts[-1] >= final
    for report in reports:
        assert report["rows"] == truth.get(report["start"], []), report["start"]
    assert sum(r["records"] for r in reports) == sum(b.num_rows for b in sent)

    sources = [r["delivered_from"] for r in reports]
    assert sources[0] == "primary" and sources[-1] == "primary"
    assert "secondary" in sources
    # one contiguous stretch from the secondary: primary … secondary … primary
    changes = [i for i in range(1, len(sources)) if sources[i] != sources[i - 1]]
    assert len(changes) == 2
    switches = [json.loads(line) for line in (out / "switches.log").read_text().splitlines()]
    assert [(s["from"], s["to"]) for s in switches] == [
        ("primary", "secondary"),
        ("secondary", "primary"),
    ]
    assert "health checks" in switches[0]["reason"]
    assert "caught up" in switches[1]["reason"]
    assert switches[0]["next_window"] == starts[changes[0]]
    assert switches[1]["next_window"] == starts[changes[1]]
    log = (tmp_path / "consumer.log").read_text()
    assert "switching from the primary to the secondary" in log
    assert "switching from the secondary to the primary" in log
    cursor = read_json(out / "cursor.json")
    assert cursor["delivered"] == len(reports) and cursor["last_start"] == starts[-1]
    assert not os.path.exists(out / ".cursor.json.tmp")
