"""Licences and gatherer versions across real processes: a manager process (trusting this
test's licence key, ``manager_with_test_key.py``, or plain ``netdistill manager``) and
``netdistill gatherer`` processes fed with keyed NetFlow v5 (every flow its own
(src_ip, src_port), so totals are exact).

* A licence for 2 gatherers, installed with ``netdistill licence add`` through the running
  manager: a third gatherer is refused — it exits with status 3 and the manager's
  message, its status file says why, the manager counts and alerts it — while the first
  two deliver exactly what they were sent.
* 27 exporters of one kind under the community edition (25 per kind): the 25 seen first
  are stored exactly, the records of the other two are counted as refused (exactly) and
  not stored.
* ``manager.min_gatherer_version`` above this version: the gatherer is refused for good
  (status 3, the message names both versions) and the manager counts it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peers
import pytest
from cryptography.hazmat.primitives import serialization
from licence_kit import TestVendor
from traffic import keyed_v5_flows

from netdistill import __version__
from netdistill.manager.client import ManagerClient
from netdistill.manager.discovery import read_manager_info

HERE = Path(__file__).parent


def token(name: str) -> str:
    return f"token-of-{name}"


class Site:
    """One manager and its gatherers, each gatherer with a NetFlow source of its own."""

    def __init__(self, root: Path, gatherers: list[str], *, manager_extra: str = "") -> None:
        self.root = root
        self.port = peers.free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.udp = {g: peers.free_udp_port() for g in gatherers}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []
        entries = "".join(
            f"  - name: {g}\n    token_sha256: {hashlib.sha256(token(g).encode()).hexdigest()}\n"
            "    commit_interval_s: 0.1\n"
            "    forward: {plan_poll_s: 0.5, backoff_max_s: 0.5, refused_retry_s: 0.5}\n"
            for g in gatherers
        )
        sources = "".join(
            f"  - {{type: netflow, name: nf-{g}, gatherer: {g}, listen: ['127.0.0.1:{p}']}}\n"
            for g, p in self.udp.items()
        )
        self.scheme = root / "scheme.yaml"
        self.scheme.write_text(
            f"manager: {{api_port: {self.port}{manager_extra}}}\n"
            f"gatherers:\n{entries}sources:\n{sources}"
        )
        self.data = root / "manager"

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        return self.procs[name]

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-4000:]

    def start_manager(self, vendor: TestVendor | None = None) -> None:
        if vendor is None:
            command = [*peers.netdistill_command(), "manager", "--config", str(self.scheme)]
            command += ["--data-dir", str(self.data)]
        else:
            raw = vendor.public.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            key = base64.b64encode(raw).decode()
            script = str(HERE / "manager_with_test_key.py")
            command = [sys.executable, script, str(self.scheme), str(self.data), key]
        proc = self._spawn("manager", command)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, self.log("manager")
            info = read_manager_info(self.data)
            if info is not None and info.pid == proc.pid:
                self.client = ManagerClient(info)
                return
            time.sleep(0.1)
        raise TimeoutError(self.log("manager"))

    def start_gatherer(self, name: str) -> subprocess.Popen[bytes]:
        command = [*peers.netdistill_command(), "gatherer", "--name", name, "--manager", self.url]
        command += ["--token", token(name), "--data-dir", str(self.root / name)]
        return self._spawn(name, command)

    def status(self, name: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.root / name / "gatherer-status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def query(self, sql: str) -> list[dict[str, Any]]:
        return list(self.client.query(sql).to_pylist())

    def manager_status(self) -> dict[str, Any]:
        return self.client.status()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                peers.stop_process(proc)
        for log in self._logs:
            log.close()
        if hasattr(self, "client"):
            self.client.close()


def wait(what: str, predicate: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(what)


def send_from(address: str, port: int, datagrams: list[bytes]) -> None:
    """Send ``datagrams`` to 127.0.0.1:``port`` from ``address`` (a loopback address of
    its own, so the collector sees a device of its own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        for n, datagram in enumerate(datagrams, 1):
            s.sendto(datagram, ("127.0.0.1", port))
            if n % 50 == 0:
                time.sleep(0.005)


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Site] = []

    def make(gatherers: list[str], **kw: Any) -> Site:
        site = Site(tmp_path, gatherers, **kw)
        made.append(site)
        return site

    yield make
    for site in made:
        site.close()


def test_a_third_gatherer_is_refused_and_the_first_two_deliver_exactly(site_factory: Any) -> None:
    vendor = TestVendor()
    site: Site = site_factory(["g1", "g2", "g3"])
    site.start_manager(vendor)
    licence = site.root / "acme.lic"
    licence.write_text(vendor.issue("ACME-2", gatherers=2, exporters={"netflow": 100}))
    added = peers.netdistill("licence", "add", str(licence), "--data-dir", str(site.data))
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "installed licence ACME-2"
    assert site.manager_status()["licence"]["edition"] == "licensed"

    for name in ("g1", "g2"):
        site.start_gatherer(name)
        peers.wait_udp_bound(site.udp[name], 30)
    third = site.start_gatherer("g3")
    assert third.wait(60) == 3, site.log("g3")
    refusal = (
        "gatherer 'g3' refused: the licence allows 2 gatherers and 2 are admitted (g1, g2); "
        "install a licence for more (netdistill licence add) or free a place "
        "(netdistill licence forget gatherer NAME)"
    )
    assert refusal in site.log("g3")
    status = site.status("g3")
    assert status["started"] is False
    assert status["refused"] == [{"manager": site.url, "reason": "licence", "message": refusal}]

    sent = {}
    for index, name in enumerate(["g1", "g2"]):
        datagrams, total = keyed_v5_flows(index * 100_000, 6_000)
        peers.send_datagrams(datagrams, site.udp[name], per_second=2_000)
        sent[f"nf-{name}"] = {"flows": 6_000, "bytes": total}

    def stored() -> dict[str, dict[str, int]]:
        rows = site.query(
            "select source, count(*) as flows, sum(bytes) as bytes, "
            "count(distinct (src_ip, src_port)) as keys from records group by source"
        )
        return {r["source"]: {"flows": r["flows"], "bytes": r["bytes"]} for r in rows}

    wait("both gatherers delivered", lambda: stored() == sent)
    keys = site.query("select count(distinct (src_ip, src_port, source)) as k from records")
    assert keys[0]["k"] == 12_000
    manager = site.manager_status()
    assert manager["licence"]["refused_gatherers"]["g3"] >= 1
    assert manager["licence"]["usage"]["gatherer"] == {"admitted": 2, "limit": 2}
    alerts = site.client.request("GET", "/api/alerts").json()
    assert [(a["kind"], a["subject"], a["detail"]) for a in alerts] == [
        ("licence_refused", "gatherer g3", refusal)
    ]
    # gatherers report their version and plugins; both are this version: no mismatch
    part = wait("heartbeats", lambda: (s := site.manager_status()["gatherers"])["reporting"] == 2
                and s)  # fmt: skip
    assert part["versions"] == {"g1": __version__, "g2": __version__}
    assert part["mismatched"] == [] and part["refused_version"] == {}
    listed = peers.netdistill("licence", "list", "--format", "json", "--data-dir", str(site.data))
    assert json.loads(listed.stdout)["licences"][0]["licence_id"] == "ACME-2"


def test_exporters_over_the_limit_are_refused_and_counted(site_factory: Any) -> None:
    site: Site = site_factory(["g1"])
    site.start_manager()  # no licence: the community edition, 25 exporters per kind
    site.start_gatherer("g1")
    port = site.udp["g1"]
    peers.wait_udp_bound(port, 30)
    exporters = [f"127.0.1.{i}" for i in range(1, 28)]
    flows_each = 300
    truth: dict[str, tuple[int, int]] = {}
    # the first 25 send first, so they are the ones admitted
    for index, address in enumerate(exporters[:25]):
        datagrams, total = keyed_v5_flows(index * 1000, flows_each)
        send_from(address, port, datagrams)
        truth[address] = (flows_each, total)

    def stored() -> dict[str, tuple[int, int]]:
        rows = site.query(
            "select exporter, count(*) as f, sum(bytes) as b from records group by exporter"
        )
        return {r["exporter"]: (r["f"], r["b"]) for r in rows}

    wait("25 exporters stored", lambda: stored() == truth)
    refused_truth = {}
    for index, address in enumerate(exporters[25:], start=25):
        datagrams, _ = keyed_v5_flows(index * 1000, flows_each + index)
        send_from(address, port, datagrams)
        refused_truth[address] = flows_each + index
    # and the licensed ones go on
    for index, address in enumerate(exporters[:3]):
        datagrams, total = keyed_v5_flows(100_000 + index * 1000, 90)
        send_from(address, port, datagrams)
        truth[address] = (truth[address][0] + 90, truth[address][1] + total)

    def refused() -> dict[str, int]:
        licence = site.manager_status()["licence"]
        by = licence["refused_exporters"].get("netflow", {})
        return {e: int(c["records"]) for e, c in by.items()}

    wait("refusals counted", lambda: refused() == refused_truth)
    wait("licensed exporters stored", lambda: stored() == truth)
    licence = site.manager_status()["licence"]
    assert licence["refused_records"] == 325 + 326
    assert licence["usage"]["exporter:netflow"] == {"admitted": 25, "limit": 25}
    assert licence["edition"] == "community" and licence["read_only"] == ""
    alerts = site.client.request("GET", "/api/alerts").json()
    assert sorted(a["subject"] for a in alerts if a["kind"] == "licence_refused") == [
        "exporter netflow 127.0.1.26",
        "exporter netflow 127.0.1.27",
    ]
    admitted = site.client.request("GET", "/api/licences/admitted").json()
    assert sorted(a["subject"] for a in admitted if a["item"] == "exporter:netflow") == sorted(
        exporters[:25]
    )
    assert [a["subject"] for a in admitted if a["item"] == "gatherer"] == ["g1"]


def test_a_gatherer_older_than_the_minimum_version_is_refused(site_factory: Any) -> None:
    site: Site = site_factory(["g1"], manager_extra=", min_gatherer_version: '99.0'")
    site.start_manager()
    gatherer = site.start_gatherer("g1")
    assert gatherer.wait(60) == 3, site.log("g1")
    message = (
        f"gatherer 'g1' runs netdistill {__version__}, older than "
        f"manager.min_gatherer_version 99.0: upgrade it (the manager runs {__version__})"
    )
    assert message in site.log("g1")
    assert site.status("g1")["refused"] == [
        {"manager": site.url, "reason": "version", "message": message}
    ]
    part = site.manager_status()["gatherers"]
    assert part["min_gatherer_version"] == "99.0"
    assert part["refused_version"]["g1"]["version"] == __version__
    assert part["refused_version"]["g1"]["message"] == message
    # the version check comes before the licence: a refused gatherer takes no place
    assert site.manager_status()["licence"]["usage"]["gatherer"]["admitted"] == 0
