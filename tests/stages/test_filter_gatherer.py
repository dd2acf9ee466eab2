"""A source's filter runs on its remote gatherer: a manager and a gatherer in one test
process over real sockets; NetFlow v5 datagrams to the gatherer; only what the filter
keeps is spooled, forwarded and stored, and the gatherer's status counts the rest."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import peers

from netdistill.gatherer.main import Gatherer
from netdistill.manager.serve import ManagerProcess
from netdistill.sources.netflow.encode import V5Exporter, encode_v5

TOKEN = "filter-gatherer-token"


def _flows(n: int) -> list[bytes]:
    """``n`` flows, protocol 6 on even and 17 on odd indexes; bytes = 100 + index."""
    index = np.arange(n)
    now = int(time.time() * 1000)
    return encode_v5(
        {
            "start_time": np.full(n, now - 2000),
            "end_time": np.full(n, now - 1000),
            "src_ip": (0x0A000000 + index).astype(np.uint32),
            "dst_ip": np.full(n, 0xC0000201, dtype=np.uint32),
            "src_port": np.full(n, 1234, dtype=np.uint16),
            "dst_port": np.full(n, 80, dtype=np.uint16),
            "protocol": np.where(index % 2 == 0, 6, 17).astype(np.uint8),
            "bytes": (100 + index).astype(np.uint32),
            "packets": np.full(n, 1, dtype=np.uint32),
        },
        V5Exporter(),
    )


def test_the_filter_drops_on_the_gatherer_before_the_spool(tmp_path: Path) -> None:
    api_port, udp_port = peers.free_tcp_port(), peers.free_udp_port()
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    scheme = tmp_path / "scheme.yaml"
    scheme.write_text(
        f"manager:\n  api_port: {api_port}\n"
        f"gatherers:\n  - name: g\n    token_sha256: {digest}\n"
        "    commit_interval_s: 0.1\n    forward: {plan_poll_s: 0.3, backoff_max_s: 0.5}\n"
        "sources:\n  - {type: netflow, name: nf, gatherer: g,\n"
        f"     listen: ['127.0.0.1:{udp_port}']}}\n"
        "stages:\n  - {name: tcp-only, type: filter, input: nf, where: 'protocol = 6'}\n"
    )
    manager = ManagerProcess(scheme, tmp_path / "manager")
    manager.start()
    gatherer = Gatherer("g", [manager.manager.api_url], token=TOKEN, data_dir=tmp_path / "g")
    try:
        gatherer.start()
        peers.wait_udp_bound(udp_port)
        peers.send_datagrams(_flows(600), udp_port, per_second=3000)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (status,) = gatherer.status()["filters"]
            if status["records"] >= 600:
                break
            time.sleep(0.1)
        assert (status["name"], status["records"], status["dropped"]) == ("tcp-only", 600, 300)
        assert gatherer.status()["spool"]["appended_records"] == 300  # never spooled
        while time.monotonic() < deadline:
            stored = manager.store.query(
                "SELECT count(*) AS n, sum(bytes) AS b, count(*) FILTER (WHERE protocol != 6)"
                " AS other FROM records"
            ).to_pylist()[0]
            if stored["n"] >= 300:
                break
            time.sleep(0.1)
        # even indexes 0..598: bytes 100 + i summed
        assert stored == {"n": 300, "b": sum(100 + i for i in range(0, 600, 2)), "other": 0}
    finally:
        gatherer.stop()
        manager.stop()
