"""End to end: ``netdistill run --config`` with a RADIUS source, driven by radclient."""

from __future__ import annotations

import peers
from radius_support import SECRET, radclient
from test_radclient import session_requests

from netdistill.sources.radius.config import RadiusSourceConfig


def test_defaults_validate():
    config = RadiusSourceConfig.model_validate(
        {"name": "r", "type": "radius", "clients": {"192.0.2.0/24": {"secret": "x"}}}
    )
    assert config.listen == ["0.0.0.0:1813"] and config.duplicate_window_s == 300.0


def test_netdistill_run_with_a_radius_source(tmp_path):
    peers.require("radclient")
    port = peers.free_udp_port()
    scheme = tmp_path / "scheme.yaml"
    scheme.write_text(
        "version: 1\n"
        "sources:\n"
        "  - name: bras\n"
        "    type: radius\n"
        f'    listen: ["127.0.0.1:{port}"]\n'
        f'    clients: {{"127.0.0.1": {{secret: "{SECRET}"}}}}\n'
    )
    data = tmp_path / "data"
    requests = session_requests(
        "run-1",
        "frank",
        "10.7.0.1",
        [(10, 20, 1, 2, 30), (4_000, 9_000, 40, 90, 95)],
        gigawords=(3, 0),
    )
    with peers.NetdistillRun(data, extra=["--config", str(scheme)]) as run:
        peers.wait_udp_bound(port)
        done = radclient(port, requests, tmp_path, args=["-p", "1"])
        assert done.returncode == 0, done.stdout + done.stderr
        run.stop()
    rows = peers.query(
        data,
        "select source, count(*) n, sum(bytes_in) i, sum(bytes_out) o, sum(duration_s) t,"
        " max(terminate_cause) c from records where source = 'bras' group by source",
    )
    assert rows == [
        {
            "source": "bras",
            "n": 3,
            "i": 4_000 + 3 * 2**32,
            "o": 9_000,
            "t": 95.0,
            "c": "User-Request",
        }
    ]
    assert (data / "state" / "bras.radius.sqlite").exists()
