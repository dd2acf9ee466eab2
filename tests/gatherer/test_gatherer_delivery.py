"""A gatherer and a manager in one test process, over real sockets.

* HTTPS: the manager serves a self-signed certificate made with the ``openssl`` CLI; the
  gatherer verifies it with ``--ca`` (delivery, plan and heartbeats); without the CA it
  refuses to deliver.
* A changed scheme reaches the gatherer live: the source moves to another port, flows
  sent before and after the change are all stored, once.
* The spool's bound: ``block`` refuses and counts; ``drop_oldest`` evicts and counts.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import peers
import pytest

from netdistill.errors import SpoolFull
from netdistill.gatherer.main import Gatherer
from netdistill.gatherer.spool import RECORDS, Spool
from netdistill.manager.client import ManagerClient
from netdistill.manager.discovery import read_manager_info
from netdistill.manager.serve import ManagerProcess
from netdistill.sources.netflow.encode import V5Exporter, encode_v5

TOKEN = "tls-gatherer-token"


def _v5(first: int, n: int) -> list[bytes]:
    import numpy as np

    index = np.arange(first, first + n)
    now = int(time.time() * 1000)
    return encode_v5(
        {
            "start_time": np.full(n, now - 2000),
            "end_time": np.full(n, now - 1000),
            "src_ip": (0x0A000000 + index).astype(np.uint32),
            "dst_ip": np.full(n, 0xC0000201, dtype=np.uint32),
            "src_port": np.full(n, 1234, dtype=np.uint16),
            "dst_port": np.full(n, 80, dtype=np.uint16),
            "protocol": np.full(n, 6, dtype=np.uint8),
            "bytes": np.full(n, 500, dtype=np.uint32),
            "packets": np.full(n, 1, dtype=np.uint32),
        },
        V5Exporter(),
    )


def _scheme(path: Path, api_port: int, udp_port: int, tls: tuple[Path, Path] | None) -> None:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    tls_line = f"  tls: {{cert: {tls[0]}, key: {tls[1]}}}\n" if tls else ""
    path.write_text(
        f"manager:\n  api_port: {api_port}\n{tls_line}"
        f"gatherers:\n  - name: g\n    token_sha256: {digest}\n"
        "    commit_interval_s: 0.1\n    forward: {plan_poll_s: 0.3, backoff_max_s: 0.5}\n"
        "sources:\n  - {type: netflow, name: nf, gatherer: g,\n"
        f"     listen: ['127.0.0.1:{udp_port}']}}\n"
    )


def _count(process: ManagerProcess) -> list[dict[str, object]]:
    return process.store.query(
        "select count(*) as n, sum(bytes) as b, count(distinct src_ip) as k from records"
    ).to_pylist()


def _wait(process: ManagerProcess, n: int, timeout_s: float = 20) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _count(process)[0]["n"] != n:
        time.sleep(0.1)
    time.sleep(0.3)
    return _count(process)


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    peers.require("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_and_a_live_plan_change(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    api_port, first_port, second_port = (
        peers.free_tcp_port(),
        peers.free_udp_port(),
        peers.free_udp_port(),
    )
    scheme = tmp_path / "scheme.yaml"
    _scheme(scheme, api_port, first_port, cert)
    manager = ManagerProcess(scheme, tmp_path / "manager")
    manager.start()
    url = f"https://127.0.0.1:{api_port}"
    assert manager.manager.api_url == url
    untrusting = Gatherer("g", [url], token=TOKEN, data_dir=tmp_path / "nope")
    with pytest.raises(RuntimeError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.start(wait_for_plan_s=0)
    gatherer = Gatherer("g", [url], token=TOKEN, data_dir=tmp_path / "g", ca=str(cert[0]))
    try:
        gatherer.start()
        peers.wait_udp_bound(first_port)
        peers.send_datagrams(_v5(0, 300), first_port, per_second=2000)
        assert _wait(manager, 300) == [{"n": 300, "b": 150_000, "k": 300}]
        # netdistill query finds the HTTPS manager in manager.json and trusts its certificate
        info = read_manager_info(tmp_path / "manager")
        assert info is not None and info.api == url and info.ca == str(cert[0])
        assert ManagerClient(info).query("select count(*) n from records").to_pylist() == [
            {"n": 300}
        ]
        # the heartbeat went over the same HTTPS, verified with the same private CA
        assert gatherer.heartbeat.send_once() == 1 and gatherer.heartbeat.errors == {}
        (seen,) = manager.manager.monitor.gatherers()
        assert seen["name"] == "g" and seen["heartbeats"] >= 2
        assert seen["last_heartbeat"]["status"]["spool"]["appended_records"] == 300
        version = gatherer.plan["version"]
        _scheme(scheme, api_port, second_port, cert)
        manager.reload()
        deadline = time.monotonic() + 10
        while gatherer.plan["version"] == version and time.monotonic() < deadline:
            time.sleep(0.1)
        peers.wait_udp_bound(second_port)
        peers.send_datagrams(_v5(300, 450), second_port, per_second=2000)
        assert _wait(manager, 750) == [{"n": 750, "b": 375_000, "k": 750}]
        assert gatherer.status()["managers"][0]["connected"]
    finally:
        gatherer.stop()
        manager.stop()


def test_spool_bound_block_and_drop_oldest(tmp_path: Path) -> None:
    blocking = Spool(tmp_path / "b", ["m"], max_bytes=1000, segment_bytes=300, fsync=False)
    for n in range(1, 10):
        blocking.append(RECORDS, "g/s", n, 10, b"x" * 62)  # ~100-byte frames (104)
    with pytest.raises(SpoolFull):
        blocking.append(RECORDS, "g/s", 10, 10, b"x" * 62)
    status = blocking.status()
    assert (status["full"], status["blocked"], status["appended_records"]) == (True, 1, 90)
    first = blocking.read("m", max_entries=3)
    blocking.ack("m", first[-1].seq)  # one segment (3 frames) acknowledged and freed
    assert blocking.append(RECORDS, "g/s", 10, 10, b"x" * 62) > 0
    assert blocking.status()["full"] is False

    dropping = Spool(
        tmp_path / "d", ["m"], max_bytes=1000, segment_bytes=300, policy="drop_oldest", fsync=False
    )
    for n in range(1, 14):
        dropping.append(RECORDS, "g/s", n, 10, b"x" * 62)
    status = dropping.status()
    # 13 frames of 100 bytes in segments of 3: the two oldest segments were evicted
    assert (status["dropped_batches"], status["dropped_records"], status["full"]) == (6, 60, True)
    assert [e.origin_seq for e in dropping.read("m", max_entries=100)] == list(range(7, 14))
