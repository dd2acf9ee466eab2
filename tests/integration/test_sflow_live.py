"""sFlow live: the real captures replayed over UDP (``netdistill replay``) into a running
``netdistill run`` with a ``type: sflow`` source store exactly what ``netdistill import``
stores; pmacct's ``sfacctd`` (a real sFlow collector, Debian package pmacct) is a peer on
the same replayed datagrams.

No real sFlow *agent* is packaged in Debian (bookworm has no hsflowd / host-sflow;
softflowd speaks NetFlow only; pmacct ships collectors), so the datagrams come from
the recorded agents in shared/captures/akvorado-sflow.

Where sfacctd and netdistill differ, the test says so exactly (found by running both):
sfacctd 1.7.7 drops the QinQ sample (two 802.1Q tags), and for a sample carrying both
a raw header and a sampled IPv4 record it counts the IPv4 record's length where
netdistill counts the raw header's frame length. Every other flow agrees on 5-tuple,
packets and bytes scaled by the sampling rate (``sfacctd_renormalize``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from peers import (
    LOOPBACK,
    PeerProcess,
    free_tcp_port,
    free_udp_port,
    netdistill_command,
    require,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sources" / "sflow"))
import sflowref

CAPTURES = sflowref.SFLOW_CAPTURES
pytestmark = pytest.mark.skipif(not CAPTURES.is_dir(), reason=f"no captures at {CAPTURES}")

TOTALS = (
    "select exporter, sample_kind, count(*) n, sum(bytes)::BIGINT b, sum(packets)::BIGINT p, "
    "count(distinct src_ip) s from records group by all order by all"
)


def cli(*args: str) -> str:
    result = subprocess.run(
        [*netdistill_command(), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def query(data_dir: Path, sql: str) -> list[dict[str, object]]:
    return json.loads(cli("query", "--data-dir", str(data_dir), "--format", "json", sql))


class Sfacctd(PeerProcess):
    """pmacct's sFlow collector on 127.0.0.1:``port``, renormalizing by the sampling rate,
    ``print`` plugin to CSV per 5-tuple and agent; ``rows()`` after ``stop()``."""

    stop_signal = signal.SIGINT  # the print plugin writes its cache on SIGINT

    def __init__(self, workdir: Path) -> None:
        self.port = free_udp_port()
        self.output = workdir / "sfacctd-out"
        self.output.mkdir(parents=True)
        config = workdir / "sfacctd.conf"
        config.write_text(
            "daemonize: false\n"
            f"sfacctd_ip: {LOOPBACK}\n"
            f"sfacctd_port: {self.port}\n"
            "sfacctd_renormalize: true\n"
            "plugins: print[out]\n"
            "aggregate[out]: peer_src_ip,src_host,dst_host,src_port,dst_port,proto\n"
            "print_output[out]: csv\n"
            f"print_output_file[out]: {self.output}/%s.csv\n"
            "print_output_file_append[out]: true\n"
            "print_refresh_time[out]: 1\n"
            f"pidfile: {workdir}/sfacctd.pid\n"
            f"logfile: {workdir}/sfacctd.log\n"
        )
        self._spawn(["sfacctd", "-f", str(config)], workdir / "sfacctd.stdout", None)

    def rows(self) -> list[dict[str, str]]:
        import csv

        rows: list[dict[str, str]] = []
        for path in sorted(self.output.glob("*.csv")):
            with open(path, newline="") as f:
                rows.extend(r for r in csv.DictReader(f) if r)
        return rows


def _start_run(data_dir: Path, scheme: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [*netdistill_command(), "run", "--config", str(scheme), "--no-demo",
         "--data-dir", str(data_dir), "--ui-port", str(free_tcp_port())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 30
    while not (data_dir / "manager.json").exists():
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise AssertionError(f"run did not start: {process.communicate()[1]}")
        time.sleep(0.1)
    return process


def test_live_replay_stores_what_import_stores(tmp_path: Path) -> None:
    files = [str(p) for p in sorted(CAPTURES.glob("*.pcap"))]
    imported = tmp_path / "imported"
    cli("import", "--data-dir", str(imported), *files)
    expected = query(imported, TOTALS)
    reference = [
        s for f in files for d in sflowref.read_capture(Path(f)) for s in sflowref.decode(
            d.payload).samples
    ]  # fmt: skip
    assert sum(int(r["n"]) for r in expected) == len(reference) == 16  # type: ignore[call-overload]
    assert sum(int(r["b"]) for r in expected) == sum(s.bytes or 0 for s in reference)  # type: ignore[call-overload]

    port = free_udp_port()
    scheme = tmp_path / "scheme.yaml"
    scheme.write_text(
        f"sources:\n  - {{name: sflow, type: sflow, listen: ['{LOOPBACK}:{port}']}}\n"
    )
    live = tmp_path / "live"
    process = _start_run(live, scheme)
    try:
        for path in files:
            cli("replay", path, "--to", f"{LOOPBACK}:{port}")
        deadline = time.time() + 20
        while query(live, TOTALS) != expected and time.time() < deadline:
            time.sleep(0.3)
        assert query(live, TOTALS) == expected
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert query(live, "select count(*) n from quarantine") == [{"n": 0}]


def test_sfacctd_agrees_on_the_same_datagrams(tmp_path: Path) -> None:
    require("sfacctd")
    files = sorted(CAPTURES.glob("*.pcap"))
    with Sfacctd(tmp_path / "sfacctd") as peer:
        for path in files:
            cli("replay", str(path), "--to", f"{LOOPBACK}:{peer.port}")
        time.sleep(1.5)  # sfacctd reads its socket on its own schedule
    names = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp"}
    theirs: Counter[tuple[object, ...]] = Counter()
    for row in peer.rows():
        key = (row["PEER_SRC_IP"], row["SRC_IP"], row["DST_IP"], int(row["SRC_PORT"]),
               int(row["DST_PORT"]), row["PROTOCOL"])  # fmt: skip
        theirs[(*key, "packets")] += int(row["PACKETS"])
        theirs[(*key, "bytes")] += int(row["BYTES"])

    imported = tmp_path / "imported"
    cli("import", "--data-dir", str(imported), *map(str, files))
    ours: Counter[tuple[object, ...]] = Counter()
    for row in query(imported, "select * from records where sample_kind = 'flow'"):
        key = (row["exporter"], row["src_ip"], row["dst_ip"], row["src_port"] or 0,
               row["dst_port"] or 0, names[int(row["protocol"])])  # type: ignore[call-overload]  # fmt: skip
        ours[(*key, "packets")] += int(row["packets"])  # type: ignore[call-overload]
        ours[(*key, "bytes")] += int(row["bytes"])  # type: ignore[call-overload]

    # the two differences, computed from the bytes by the reference walk
    qinq = sflowref.decode(sflowref.read_capture(CAPTURES / "data-qinq.pcap")[0].payload)
    (sample,) = qinq.samples
    qinq_key = (sample.agent, sample.src_ip, sample.dst_ip, sample.src_port, sample.dst_port,
                "tcp")  # fmt: skip
    assert qinq_key not in {k[:6] for k in theirs}
    ours.pop((*qinq_key, "packets"))
    ours.pop((*qinq_key, "bytes"))
    ipv4 = sflowref.decode(
        sflowref.read_capture(CAPTURES / "data-sflow-ipv4-data.pcap")[0].payload
    ).samples[0]
    ipv4_key = (ipv4.agent, ipv4.src_ip, ipv4.dst_ip, ipv4.src_port, ipv4.dst_port, "udp")
    assert theirs[(*ipv4_key, "bytes")] == ipv4.extra["ipv4_length"] * ipv4.rate  # type: ignore[operator]
    assert ours[(*ipv4_key, "bytes")] == ipv4.bytes
    theirs[(*ipv4_key, "bytes")] = ours[(*ipv4_key, "bytes")]
    assert ours == theirs
