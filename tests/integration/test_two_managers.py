"""One gatherer, two managers (seed 000's two flow aggregation processes), real processes.

``netdistill gatherer --manager A --manager B`` receives a paced NetFlow v5 stream
(every flow its own (src_ip, src_port), so the ground truth is exact). Manager B is
killed with SIGKILL mid-stream and started again later on the same data directory.

Checked:
* both stores end with exactly the ground truth: flow count, byte sum, distinct keys
  (so no duplicate), whatever each missed while down;
* spool segments are deleted only once both managers acknowledged them: the scheme
  rolls a segment after every batch, so while B is down the segments on disk hold
  exactly the batches B has not acknowledged (A acknowledged them all), and the spool
  grows; after B returns and catches up, nothing is pending and only the newest
  segment (the one being written) remains.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peers
import pytest
from traffic import keyed_totals, keyed_v5_flows

from netdistill.gatherer.forward import destination_name
from netdistill.manager.discovery import read_manager_info

TOKEN = "two-managers-token"


class TwoManagers:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.udp_port = peers.free_udp_port()
        self.ports = {"a": peers.free_tcp_port(), "b": peers.free_tcp_port()}
        self.urls = {k: f"http://127.0.0.1:{p}" for k, p in self.ports.items()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []
        digest = hashlib.sha256(TOKEN.encode()).hexdigest()
        for name, port in self.ports.items():
            (root / f"{name}.yaml").write_text(
                f"manager: {{api_port: {port}}}\n"
                "gatherers:\n"
                f"  - name: g1\n    token_sha256: {digest}\n"
                "    commit_interval_s: 0.2\n"
                "    spool: {segment_bytes: 1}\n"  # one batch per segment
                "    forward: {backoff_initial_s: 0.1, backoff_max_s: 0.8, plan_poll_s: 1.0,\n"
                "              max_batches_per_request: 8}\n"
                "sources:\n"
                "  - {type: netflow, name: nf, gatherer: g1,\n"
                f"     listen: ['127.0.0.1:{self.udp_port}']}}\n"
            )

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(
            [*peers.netdistill_command(), *args], stdout=log, stderr=subprocess.STDOUT
        )

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def start_manager(self, name: str) -> None:
        data = self.root / name
        self._spawn(name, "manager", "--config", str(self.root / f"{name}.yaml"),
                    "--data-dir", str(data))  # fmt: skip
        proc = self.procs[name]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, self.log(name)
            info = read_manager_info(data)
            if info is not None and info.pid == proc.pid:
                return
            time.sleep(0.1)
        raise TimeoutError(self.log(name))

    def start_gatherer(self) -> None:
        self._spawn(
            "gatherer", "gatherer", "--name", "g1",
            "--manager", self.urls["a"], "--manager", self.urls["b"],
            "--token", TOKEN, "--data-dir", str(self.root / "gatherer"),
        )  # fmt: skip
        peers.wait_udp_bound(self.udp_port, 30)

    def kill(self, name: str) -> None:
        self.procs[name].kill()  # SIGKILL: no clean-up of any kind
        self.procs[name].wait(10)

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.root / "gatherer" / "gatherer-status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def segments(self) -> int:
        return len(list((self.root / "gatherer" / "spool").glob("*.seg")))

    def totals(self, name: str) -> dict[str, int]:
        return keyed_totals(self.root / name)

    def wait(self, what: str, predicate: Any, timeout_s: float = 60) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"{what}: {self.status()}")

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                peers.stop_process(proc)
        for log in self._logs:
            log.close()


@pytest.fixture
def two(tmp_path: Path) -> Iterator[TwoManagers]:
    t = TwoManagers(tmp_path)
    yield t
    t.close()


def test_one_gatherer_two_managers_one_killed_and_back(two: TwoManagers) -> None:
    t = two
    b_dest = destination_name(t.urls["b"])
    t.start_manager("a")
    t.start_manager("b")
    t.start_gatherer()
    datagrams, total_bytes = keyed_v5_flows(0, 60_000)  # 2,000 datagrams over 2 s
    sender = threading.Thread(
        target=peers.send_datagrams, args=(datagrams, t.udp_port), kwargs={"per_second": 1000}
    )
    sender.start()
    time.sleep(0.8)
    t.kill("b")
    sender.join()
    spool = t.wait(
        "all spooled",
        lambda: (s := t.status().get("spool") or {}).get("appended_records") == 60_000 and s,
    )
    truth = {"flows": 60_000, "bytes": total_bytes, "keys": 60_000}
    # A takes everything while B is down
    assert t.wait("A complete", lambda: t.totals("a")["flows"] == 60_000)
    time.sleep(0.5)
    assert t.totals("a") == truth

    # B's share stays on disk: pending for B only, and the segments held are exactly
    # B's unacknowledged batches (+1 when the newest one is already acknowledged)
    def held() -> dict[str, Any] | None:
        status = t.status()
        managers = {m["url"]: m for m in status.get("managers", [])}
        a, b = managers.get(t.urls["a"]), managers.get(t.urls["b"])
        if not a or not b or a["pending_batches"] != 0:
            return None
        return {"status": status, "b": b}

    first = t.wait("A acknowledged all", held)
    b = first["b"]
    assert b["pending_records"] > 0 and not b["connected"] and b["failures"] >= 1
    assert b["pending_batches"] == first["status"]["spool"]["destinations"][b_dest]["batches"]
    assert t.segments() == b["pending_batches"]
    assert first["status"]["spool"]["depth_batches"] == b["pending_batches"]
    bytes_while_down = first["status"]["spool"]["bytes"]
    assert bytes_while_down > 0 and spool["appended_batches"] >= b["pending_batches"]

    # more flows while B is still down: the spool grows, nothing is deleted
    more, more_bytes = keyed_v5_flows(60_000, 15_000)
    peers.send_datagrams(more, t.udp_port, per_second=1500)
    t.wait(
        "second part spooled",
        lambda: (t.status().get("spool") or {}).get("appended_records") == 75_000,
    )
    second = t.wait("A acknowledged all again", held)
    assert second["b"]["pending_records"] > b["pending_records"]
    assert second["status"]["spool"]["bytes"] > bytes_while_down
    assert t.segments() == second["b"]["pending_batches"]
    truth = {"flows": 75_000, "bytes": total_bytes + more_bytes, "keys": 75_000}

    # B returns on the same data directory and catches up; the spool empties
    t.start_manager("b")
    t.wait("B complete", lambda: t.totals("b")["flows"] >= 75_000)

    def drained() -> dict[str, Any] | None:
        status = t.status()
        managers = status.get("managers", [])
        if len(managers) == 2 and all(m["pending_batches"] == 0 for m in managers):
            return status
        return None

    final = t.wait("both caught up", drained)
    time.sleep(0.5)  # a duplicate would show now
    assert t.totals("a") == truth
    assert t.totals("b") == truth
    assert t.segments() == 1  # only the newest, still open, segment
    assert final["spool"]["depth_batches"] == 0
    for source in final.get("sources", []):
        assert source["dropped"] == {}, source
