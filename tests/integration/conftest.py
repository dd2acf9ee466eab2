"""Fixtures for tests against real peers (softflowd, nfcapd, nfacctd) on loopback.

Each fixture starts its own peer on a free 127.0.0.1 port and stops it afterwards; a
test is skipped only when a peer binary is not installed. Expensive things every test
shares — the traffic capture and what softflowd exports from it — are made once per
session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers
from traffic import GroundTruth, build_traffic_pcap

#: softflowd's ``-v`` argument per export format
VERSIONS = {"v5": 5, "v9": 9, "ipfix": 10}


def require(*binaries: str) -> None:
    reason = peers.missing(*binaries)
    if reason:
        # On CI the bootstrap installs every peer: a missing one is a failure there,
        # never a silent skip. On a developer's machine, skip with the reason.
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (scripts/bootstrap.sh should have installed it)")
        pytest.skip(reason)


@dataclass(frozen=True)
class Traffic:
    pcap: Path
    truth: GroundTruth


@dataclass(frozen=True)
class Export:
    """What softflowd sent for one format: the datagrams in order, and the truth."""

    format: str
    version: int
    datagrams: list[peers.Caught]
    truth: GroundTruth
    workdir: Path

    @property
    def ipv6(self) -> bool:
        return self.version != 5  # NetFlow v5 cannot carry IPv6 flows


@pytest.fixture(scope="session")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    path = tmp_path_factory.mktemp("traffic") / "traffic.pcap"
    return Traffic(path, build_traffic_pcap(path))


_exports: dict[str, Export] = {}


@pytest.fixture(params=list(VERSIONS))
def softflowd_export(
    request: pytest.FixtureRequest, traffic: Traffic, tmp_path_factory: pytest.TempPathFactory
) -> Export:
    """softflowd reads the traffic capture and exports it (once per format per session)."""
    require("softflowd")
    name = request.param
    if name not in _exports:
        workdir = tmp_path_factory.mktemp(f"softflowd-{name}")
        with peers.UdpCatcher() as catcher:
            peers.run_softflowd(traffic.pcap, catcher.port, VERSIONS[name], workdir)
            caught = catcher.wait_quiet()
            assert catcher.kernel_drops == 0
        _exports[name] = Export(name, VERSIONS[name], caught, traffic.truth, workdir)
    return _exports[name]


@pytest.fixture
def nfcapd(tmp_path: Path) -> Iterator[peers.Nfcapd]:
    require("nfcapd", "nfdump")
    with peers.Nfcapd(tmp_path / "nfcapd") as collector:
        yield collector
