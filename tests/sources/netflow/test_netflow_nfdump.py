"""The same capture datagrams replayed to a real collector, nfcapd (nfdump 1.7), on a
free loopback port: flow, packet and byte totals must agree with netdistill's.

nfdump 1.7 reports counters as received (it applies neither the v9 in-record
SAMPLING_INTERVAL nor the options sampling rate to stored totals — checked by the cases
below), while netdistill multiplies by the sampling rate (SYSTEM.md §2); so the
comparison is on netdistill's bytes / sampling_rate.

Not compared: ``data+templates.pcap``, whose first data set comes before its template in
the same datagram — nfcapd drops it (10 flows), netdistill holds it and decodes it once
the template is read (21 flows, as the ``netflow`` package also finds).
``ipfixprobe-*``: biflows, whose reverse counters (PEN 29305) nfdump adds into its
totals and netdistill does not keep.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from nfbuild import AKVORADO, read_capture

from netdistill.sources.netflow import NetflowDecoder

NFCAPD, NFDUMP = shutil.which("nfcapd"), shutil.which("nfdump")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (NFCAPD and NFDUMP), reason="nfcapd/nfdump not installed"),
    pytest.mark.skipif(not AKVORADO.is_dir(), reason="captures not found"),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def nfdump_totals(files: tuple[str, ...], workdir: Path) -> dict[str, int]:
    port = _free_port()
    assert NFCAPD and NFDUMP
    proc = subprocess.Popen(
        [NFCAPD, "-p", str(port), "-b", "127.0.0.1", "-w", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30  # a loaded machine starts it slowly
        while not _bound(port):
            assert time.monotonic() < deadline, "nfcapd did not bind"
            time.sleep(0.05)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for name in files:
                for datagram in read_capture(name):
                    s.sendto(datagram.payload, ("127.0.0.1", port))
                    time.sleep(0.002)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    info = subprocess.run(
        [NFDUMP, "-R", str(workdir), "-I"], capture_output=True, text=True, check=True
    ).stdout
    totals = {}
    for key in ("Flows", "Packets", "Bytes"):
        match = re.search(rf"^{key}: (\d+)$", info, re.MULTILINE)
        assert match, info
        totals[key.lower()] = int(match.group(1))
    return totals


def netdistill_raw_totals(files: tuple[str, ...]) -> dict[str, int]:
    decoder = NetflowDecoder()
    tables = [decoder.decode(read_capture(name)).records for name in files]
    table = pa.concat_tables(tables)
    rate = table.column("sampling_rate").cast(pa.uint64())
    return {
        "flows": table.num_rows,
        "packets": pc.sum(pc.divide(table.column("packets"), rate)).as_py(),
        "bytes": pc.sum(pc.divide(table.column("bytes"), rate)).as_py(),
    }


@pytest.mark.parametrize(
    "files",
    [
        ("nfv5.pcap",),
        ("samplingrate-template.pcap", "samplingrate-data.pcap"),
        ("icmp-template.pcap", "icmp-data.pcap"),
        ("mpls.pcap",),
        ("physicalinterfaces.pcap",),
    ],
)
def test_totals_agree_with_nfcapd(files: tuple[str, ...], tmp_path: Path) -> None:
    assert netdistill_raw_totals(files) == nfdump_totals(files, tmp_path)
