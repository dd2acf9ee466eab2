"""The Grafana dashboard (docs/grafana/netdistill.json) is built on metrics that exist:
every metric name in its PromQL expressions has samples in a real scrape of a running
``netdistill run`` (the demo scheme, on free ports, scraped on its metrics listener with
no token)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from netdistill.scheme import demo_scheme_path

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "netdistill.json"
METRIC = re.compile(r"\b((?:netdistill|process|python)_[a-zA-Z0-9_]+)\b")


def _free_port() -> int:
    """A port free for both UDP and TCP (the demo's syslog source listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return int(port)
    raise AssertionError("no free port")


def dashboard_metrics() -> dict[str, list[str]]:
    """Metric name → the panels whose expressions use it."""
    found: dict[str, list[str]] = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            for name in METRIC.findall(target["expr"]):
                found.setdefault(name, []).append(panel["title"])
    return found


def test_dashboard_expressions_are_parsed():
    names = dashboard_metrics()
    # the parse finds what the panels are about (a regression here means the regex broke)
    assert {
        "netdistill_gatherer_up",
        "netdistill_gatherer_sequence_lost_total",
        "netdistill_lookup_call_duration_seconds_bucket",
        "netdistill_stage_lag_records",
        "process_cpu_seconds_total",
    } <= set(names)
    assert not [n for n in names if n.endswith("_per_second")]


def test_every_dashboard_metric_is_in_a_scrape_of_a_running_run(tmp_path):
    scheme = demo_scheme_path().read_text()
    for old in ("127.0.0.1:2055", "127.0.0.1:1813", "127.0.0.1:5514"):
        assert old in scheme
        scheme = scheme.replace(old, f"127.0.0.1:{_free_port()}")
    scheme = scheme.replace("api_port: 8080", "api_port: 0")
    config = tmp_path / "demo.yaml"
    config.write_text(scheme)
    data = tmp_path / "data"
    command = [sys.executable, "-m", "netdistill", "run", "-c", str(config)]
    command += ["--data-dir", str(data), "--metrics-listen", "127.0.0.1:0", "--ui-port", "0"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wanted = dashboard_metrics()
    try:
        url = ""
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline:
            line = process.stderr.readline() if process.stderr else ""
            if not line and process.poll() is not None:
                raise AssertionError("run stopped before it started")
            if line.strip().startswith("metrics"):
                url = line.split()[1]
        assert url, "run printed no metrics address"
        # until the demo devices' traffic went through lookups and stages
        samples: set[str] = set()
        while time.monotonic() < deadline:
            scrape = httpx.get(url, timeout=10)  # no authorization: the listener's point
            assert scrape.status_code == 200
            samples = {
                sample.name
                for family in text_string_to_metric_families(scrape.text)
                for sample in family.samples
            }
            if set(wanted) <= samples:
                break
            time.sleep(1.0)
    finally:
        process.terminate()
        process.communicate(timeout=60)
    missing = {name: panels for name, panels in wanted.items() if name not in samples}
    assert not missing, f"dashboard metrics with no sample in the scrape: {missing}"
