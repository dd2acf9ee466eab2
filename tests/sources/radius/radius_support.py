"""Shared helpers of the RADIUS source tests: a collector (RadiusSource + Pipeline + the
real DuckDB store) on a free loopback port, requests built with pyrad, and radclient.

A module of its own rather than ``conftest``: a test importing from ``conftest`` can get
another folder's conftest under that name."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import peers
from pyrad import packet

from netdistill.delivery.pipeline import Pipeline
from netdistill.sources.radius.accounting import DICTIONARY
from netdistill.sources.radius.config import RadiusSourceConfig
from netdistill.sources.radius.listener import RadiusSource
from netdistill.store import ensure_fields
from netdistill.store.duckdb import DuckDBStore

SECRET = "testing123"


def make_config(port: int, clients: Mapping[str, str] | None = None, **extra: object):
    clients = clients or {"127.0.0.1": SECRET}
    return RadiusSourceConfig.model_validate(
        {
            "name": "radius",
            "type": "radius",
            "listen": [f"127.0.0.1:{port}"],
            "clients": {k: {"secret": v} for k, v in clients.items()},
            **extra,
        }
    )


class Collector:
    """A running RADIUS source committing to a DuckDB store through the real pipeline.

    ``sink`` replaces the store as the pipeline's sink (e.g. a failing one); with
    ``run=False`` the pipeline is not started and the test calls ``step``."""

    def __init__(self, tmp: Path, *, port: int | None = None, sink=None, run=True, **cfg):
        self.port = port or peers.free_udp_port()
        self.store = DuckDBStore(tmp / "records.duckdb")
        self.source = RadiusSource(make_config(self.port, **cfg), state_dir=tmp / "state")
        ensure_fields(self.store, self.source.fields, source="radius")
        self.pipeline = Pipeline([self.source], sink or self.store, interval_s=0.02)
        self.run = run
        if run:
            self.pipeline.start()
        else:
            self.source.start()

    def stop(self) -> None:
        self.pipeline.stop()
        self.store.close()

    def rows(self, sql: str) -> list[dict[str, object]]:
        return self.store.query(sql).to_pylist()


def request(
    attributes: Mapping[str, object], *, identifier: int = 1, secret: str = SECRET
) -> bytes:
    """An Accounting-Request encoded by pyrad (authenticator computed over it)."""
    pkt = packet.AcctPacket(id=identifier, secret=secret.encode(), dict=DICTIONARY)
    for name, value in attributes.items():
        pkt[name] = value
    return bytes(pkt.RequestPacket())


def exchange(port: int, payloads: Sequence[bytes], *, timeout_s: float = 2.0) -> list[bytes]:
    """Send ``payloads`` from one socket, return the answers received within the time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for payload in payloads:
            sock.sendto(payload, ("127.0.0.1", port))
        sock.settimeout(timeout_s)
        answers = []
        deadline = time.monotonic() + timeout_s
        while len(answers) < len(payloads) and time.monotonic() < deadline:
            try:
                answers.append(sock.recv(4096))
            except TimeoutError:
                break
        return answers


def radclient_text(requests: Sequence[Mapping[str, object]]) -> str:
    """radclient's request file: attribute lines, requests separated by blank lines."""
    blocks = []
    for attributes in requests:
        lines = []
        for name, value in attributes.items():
            plain = isinstance(value, int) or re.fullmatch(r"[A-Za-z0-9.:-]+", str(value))
            text = value if plain else f'"{value}"'
            lines.append(f"{name} = {text}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def radclient(
    port: int,
    requests: Sequence[Mapping[str, object]],
    tmp: Path,
    *,
    secret: str = SECRET,
    args: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    peers.require("radclient")
    path = tmp / f"requests-{time.monotonic_ns()}.txt"
    path.write_text(radclient_text(requests))
    return subprocess.run(
        ["radclient", "-x", "-f", str(path), *args, f"127.0.0.1:{port}", "acct", secret],
        capture_output=True,
        text=True,
        timeout=60,
    )
