"""Delivery under faults: real ``netdistill manager`` and ``netdistill gatherer`` processes.

A paced NetFlow v5 stream (our encoder, sent over loopback UDP) goes to a gatherer that
spools and forwards to a manager. Every flow has its own (src_ip, src_port), so the
ground truth is exact: the number of flows, the sum of their bytes, and that no key
appears twice. Each test breaks something in the middle:

(a) the manager is killed with SIGKILL mid-stream and restarted;
(b) the gatherer is killed with SIGKILL while it is catching up, and restarted;
(c) the manager is away for a while (port closed), the gatherer spools and catches up;
(d) acknowledgements are lost: a TCP proxy forwards the request, lets the manager commit,
    and cuts the connection instead of passing the answer back; the gatherer resends.

The store's totals must equal the ground truth exactly, with no key twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import peers
import pytest
from traffic import keyed_totals, keyed_v5_flows

from netdistill.manager.client import ManagerClient
from netdistill.manager.discovery import read_manager_info

TOKEN = "gatherer-one-token"


class Deployment:
    """A manager and a gatherer (as subprocesses) sharing one scheme."""

    def __init__(self, root: Path, *, proxy_port: int | None = None) -> None:
        self.root = root
        self.api_port = peers.free_tcp_port()
        self.udp_port = peers.free_udp_port()
        self.manager_dir = root / "manager"
        self.gatherer_dir = root / "gatherer"
        self.scheme = root / "scheme.yaml"
        digest = hashlib.sha256(TOKEN.encode()).hexdigest()
        self.scheme.write_text(
            f"manager: {{api_port: {self.api_port}}}\n"
            "gatherers:\n"
            f"  - name: g1\n    token_sha256: {digest}\n"
            "    commit_interval_s: 0.2\n"
            "    forward: {backoff_initial_s: 0.1, backoff_max_s: 0.8, plan_poll_s: 1.0,\n"
            "              max_batches_per_request: 8}\n"
            "sources:\n"
            "  - {type: netflow, name: nf, gatherer: g1,\n"
            f"     listen: ['127.0.0.1:{self.udp_port}']}}\n"
        )
        self.manager_url = f"http://127.0.0.1:{proxy_port or self.api_port}"
        self.manager: subprocess.Popen[bytes] | None = None
        self.gatherer: subprocess.Popen[bytes] | None = None
        self._logs: list[object] = []

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        return subprocess.Popen(
            [*peers.netdistill_command(), *args], stdout=log, stderr=subprocess.STDOUT
        )

    def start_manager(self) -> None:
        self.manager = self._spawn(
            "manager", "manager", "--config", str(self.scheme), "--data-dir", str(self.manager_dir)
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.manager.poll() is None, self.log("manager")
            if read_manager_info(self.manager_dir) is not None:
                return
            time.sleep(0.1)
        raise TimeoutError(self.log("manager"))

    def start_gatherer(self) -> None:
        self.gatherer = self._spawn(
            "gatherer", "gatherer", "--name", "g1", "--manager", self.manager_url,
            "--token", TOKEN, "--data-dir", str(self.gatherer_dir),
        )  # fmt: skip
        peers.wait_udp_bound(self.udp_port, 30)

    def kill(self, which: str) -> None:
        proc = getattr(self, which)
        proc.kill()  # SIGKILL: no clean-up of any kind
        proc.wait(10)

    def stop(self, which: str) -> None:
        proc = getattr(self, which)
        if proc is not None and proc.poll() is None:
            peers.stop_process(proc)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def gatherer_status(self) -> dict[str, object]:
        try:
            return dict(json.loads((self.gatherer_dir / "gatherer-status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def wait_spooled(self, records: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            spool = self.gatherer_status().get("spool") or {}
            if spool.get("appended_records") == records:  # type: ignore[union-attr]
                return
            time.sleep(0.2)
        raise TimeoutError(f"spool never had {records}: {self.gatherer_status()}")

    def totals(self) -> dict[str, int]:
        """The keyed stream's totals, and the manager's status beside them."""
        totals = keyed_totals(self.manager_dir)
        info = read_manager_info(self.manager_dir)
        if info is None:
            raise AssertionError(f"no manager is running on {self.manager_dir}")
        client = ManagerClient(info)
        try:
            return {**totals, "status": client.status()}  # type: ignore[dict-item]
        finally:
            client.close()

    def wait_totals(self, flows: int, timeout_s: float = 60) -> dict[str, int]:
        deadline = time.monotonic() + timeout_s
        totals: dict[str, int] = {}
        while time.monotonic() < deadline:
            totals = self.totals()
            if totals["flows"] >= flows:
                time.sleep(0.5)  # anything more (a duplicate) would show now
                return self.totals()
            time.sleep(0.3)
        return totals

    def close(self) -> None:
        self.stop("gatherer")
        self.stop("manager")
        for log in self._logs:
            log.close()  # type: ignore[attr-defined]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(tmp_path)
    yield d
    d.close()


def _no_local_drops(d: Deployment) -> None:
    for source in d.gatherer_status().get("sources", []):  # type: ignore[union-attr]
        assert source["dropped"] == {}, source


def test_manager_killed_mid_stream(deployment: Deployment) -> None:
    d = deployment
    d.start_manager()
    d.start_gatherer()
    datagrams, total_bytes = keyed_v5_flows(0, 60_000)  # 2,000 datagrams over 2 s
    sender = threading.Thread(
        target=peers.send_datagrams, args=(datagrams, d.udp_port), kwargs={"per_second": 1000}
    )
    sender.start()
    time.sleep(0.8)
    d.kill("manager")
    time.sleep(1.0)
    d.start_manager()
    sender.join()
    totals = d.wait_totals(60_000)
    _no_local_drops(d)
    assert (totals["flows"], totals["bytes"], totals["keys"]) == (60_000, total_bytes, 60_000)


def test_gatherer_killed_while_catching_up(deployment: Deployment) -> None:
    """UDP has no acknowledgement: datagrams that reach a dead gatherer are lost
    upstream. So the sender pauses around the kill, and the ground truth is what the
    gatherer had spooled (its own counter must equal what was sent) plus what is sent
    after the restart. The kill lands while the spool is being forwarded."""
    d = deployment
    d.start_manager()
    d.start_gatherer()
    d.stop("manager")  # the spool fills while the manager is away
    first, first_bytes = keyed_v5_flows(0, 45_000)
    peers.send_datagrams(first, d.udp_port, per_second=3000)
    d.wait_spooled(45_000)
    d.start_manager()
    time.sleep(0.3)  # the gatherer is catching up (back-off ≤ 0.8 s) …
    d.kill("gatherer")  # … and dies between a commit and the cursor write
    d.start_gatherer()
    second, second_bytes = keyed_v5_flows(45_000, 15_000)
    peers.send_datagrams(second, d.udp_port, per_second=3000)
    totals = d.wait_totals(60_000)
    _no_local_drops(d)
    assert (totals["flows"], totals["bytes"], totals["keys"]) == (
        60_000,
        first_bytes + second_bytes,
        60_000,
    )


def test_manager_unreachable_then_catch_up(deployment: Deployment) -> None:
    d = deployment
    d.start_manager()
    d.start_gatherer()
    d.stop("manager")
    datagrams, total_bytes = keyed_v5_flows(0, 90_000)
    peers.send_datagrams(datagrams, d.udp_port, per_second=1500)
    d.wait_spooled(90_000)
    time.sleep(1.2)
    status = d.gatherer_status()
    (manager,) = status["managers"]  # type: ignore[misc]
    assert manager["pending_records"] == 90_000 and manager["failures"] >= 2
    assert not manager["connected"]
    d.start_manager()
    totals = d.wait_totals(90_000)
    assert (totals["flows"], totals["bytes"], totals["keys"]) == (90_000, total_bytes, 90_000)
    time.sleep(1.2)
    (manager,) = d.gatherer_status()["managers"]  # type: ignore[misc]
    assert manager["pending_records"] == 0
    # caught up several batches per request
    assert manager["sent_batches"] >= 8
    assert manager["answered_requests"] <= manager["sent_batches"] / 4


class AnswerDropper:
    """A TCP proxy that passes requests to the manager but, for every second ingest
    answer that stored records, closes the connection instead of passing it on:
    committed, not acknowledged. (Answers to a request holding only a watermark mark,
    ``"rows": 0``, pass: there is nothing to resend.)"""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.answers = 0
        self.dropped = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=self._answers, args=(server, client), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for s in (source, target):
            s.close()

    def _answers(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while data := server.recv(65536):
                if b'"acked"' in data and b'"rows":0}' not in data:
                    with self._lock:
                        self.answers += 1
                        drop = self.answers % 2 == 1
                        self.dropped += drop
                    if drop:  # committed, but the gatherer never hears of it
                        break
                client.sendall(data)
        except OSError:
            pass
        for s in (server, client):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes the other direction's recv
            s.close()

    def close(self) -> None:
        self.listener.close()


def test_lost_acknowledgements_are_resent_without_duplicates(tmp_path: Path) -> None:
    api_port = peers.free_tcp_port()
    proxy = AnswerDropper(api_port)
    d = Deployment(tmp_path, proxy_port=proxy.port)
    d.api_port = api_port
    text = d.scheme.read_text().split("\n", 1)
    d.scheme.write_text(f"manager: {{api_port: {api_port}}}\n{text[1]}")
    try:
        d.start_manager()
        d.start_gatherer()
        datagrams, total_bytes = keyed_v5_flows(0, 30_000)
        peers.send_datagrams(datagrams, d.udp_port, per_second=300)  # ~16 batches
        totals = d.wait_totals(30_000)
        assert (totals["flows"], totals["bytes"], totals["keys"]) == (30_000, total_bytes, 30_000)
        ingest = totals["status"]["ingest"]  # type: ignore[index]
        assert proxy.dropped >= 3
        assert ingest["duplicates_ignored"]["g1"] >= proxy.dropped  # each was resent
    finally:
        d.close()
        proxy.close()
