"""Fixtures for tests against real peers (softflowd, nfcapd, nfacctd) on loopback.

Each fixture starts its own peer on a free 127.0.0.1 port and stops it afterwards; a
test is skipped only when a peer binary is not installed. Expensive things every test
shares — the traffic capture and what softflowd exports from it — are made once per
session.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import peers
import pytest
from peers import require
from traffic import Export, GroundTruth, build_traffic_pcap

#: softflowd's ``-v`` argument per export format
VERSIONS = {"v5": 5, "v9": 9, "ipfix": 10}


@dataclass(frozen=True)
class Traffic:
    pcap: Path
    truth: GroundTruth


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
