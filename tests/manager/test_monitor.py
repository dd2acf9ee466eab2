"""Monitoring: heartbeats from a real HeartbeatSender to a running manager's API, one
silence alert per silence (not one per check), cleared on return, and /metrics carrying
exactly the figures sent."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from netdistill.gatherer.heartbeat import HeartbeatSender
from netdistill.manager.main import Manager
from netdistill.manager.monitor import MonitorConfig
from netdistill.scheme.models import ManagerConfig
from netdistill.store.duckdb import DuckDBStore

STATUS = {
    "committed_records": 12345,
    "errors": 2,
    "spool": {
        "depth_batches": 7,
        "depth_bytes": 70_000,
        "oldest_age_s": 3.5,
        "dropped": {"spool_full": 4},
    },
    "sources": [
        {
            "name": "nf",
            "records": 12000,
            "datagrams": 400,
            "bytes_received": 560_000,
            "dropped": {"malformed": 3, "kernel_socket_overflow": 11},
            "sequence_lost": {"192.0.2.1": 5, "192.0.2.2": 0},
        },
        {"name": "radius", "records": 345, "datagrams": 345, "dropped": {}},
    ],
    "lookups": [
        {
            "name": "DNS",
            "keys": 100,
            "cache_hits": 60,
            "misses": 5,
            "timeouts": 1,
            "errors": 0,
            # a DurationHistogram snapshot (netdistill/timing.py): cumulative counts
            "latency": {"buckets": [[0.001, 2], [0.01, 3], ["+Inf", 4]], "sum": 0.5, "count": 4},
        }
    ],
}


def wait_for(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def manager(tmp_path):
    store = DuckDBStore(tmp_path / "records.duckdb")
    config = ManagerConfig(
        api_port=0, monitor=MonitorConfig(silence_intervals=2, check_interval_s=0.1)
    )
    manager = Manager(store, config, data_dir=tmp_path)
    manager.start()
    yield manager
    manager.stop()
    store.close()


def client(manager: Manager, token: str | None = None) -> httpx.Client:
    token = token or manager.token
    return httpx.Client(base_url=manager.api_url, headers={"authorization": f"Bearer {token}"})


def test_heartbeats_silence_alert_once_cleared_on_return(manager):
    api = client(manager)
    sender = HeartbeatSender([manager.api_url], "edge-1", manager.token, lambda: STATUS, 0.2)
    sender.start()
    shown = wait_for(lambda: [g for g in api.get("/api/gatherers").json() if g["heartbeats"] >= 3])
    assert shown[0]["name"] == "edge-1" and shown[0]["up"] is True
    beat = shown[0]["last_heartbeat"]
    assert beat["status"] == STATUS and beat["interval_s"] == 0.2 and beat["version"]

    metrics = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(api.get("/metrics").text)
        for s in family.samples
    }
    g = (("gatherer", "edge-1"),)
    assert metrics[("netdistill_gatherer_up", g)] == 1
    assert metrics[("netdistill_gatherer_records_total", g)] == 12345
    assert metrics[("netdistill_gatherer_errors_total", g)] == 2
    assert metrics[("netdistill_gatherer_spool_depth_batches", g)] == 7
    assert metrics[("netdistill_gatherer_spool_depth_bytes", g)] == 70_000
    assert metrics[("netdistill_gatherer_spool_oldest_age_seconds", g)] == 3.5
    drop = "netdistill_gatherer_dropped_total"
    assert metrics[(drop, (("gatherer", "edge-1"), ("reason", "malformed"), ("source", "nf")))] == 3
    assert (
        metrics[
            (drop, (("gatherer", "edge-1"), ("reason", "kernel_socket_overflow"), ("source", "nf")))
        ]
        == 11
    )
    assert (
        metrics[(drop, (("gatherer", "edge-1"), ("reason", "spool_full"), ("source", "spool")))]
        == 4
    )
    src = "netdistill_gatherer_source_records_total"
    assert metrics[(src, (("gatherer", "edge-1"), ("source", "radius")))] == 345
    # rates are PromQL's job: counters only
    assert not [name for name, _ in metrics if name.endswith("_per_second")]
    nf = (("gatherer", "edge-1"), ("source", "nf"))
    assert metrics[("netdistill_gatherer_source_datagrams_total", nf)] == 400
    assert metrics[("netdistill_gatherer_source_received_bytes_total", nf)] == 560_000
    lost = "netdistill_gatherer_sequence_lost_total"
    assert metrics[(lost, (("exporter", "192.0.2.1"), *nf))] == 5
    assert metrics[(lost, (("exporter", "192.0.2.2"), *nf))] == 0
    dns = (("gatherer", "edge-1"), ("lookup", "DNS"))
    assert metrics[("netdistill_lookup_keys_total", dns)] == 100
    assert metrics[("netdistill_lookup_cache_hits_total", dns)] == 60
    assert metrics[("netdistill_lookup_misses_total", dns)] == 5
    assert metrics[("netdistill_lookup_timeouts_total", dns)] == 1
    bucket = "netdistill_lookup_call_duration_seconds_bucket"
    assert metrics[(bucket, (*dns[:1], ("le", "0.001"), dns[1]))] == 2
    assert metrics[(bucket, (*dns[:1], ("le", "+Inf"), dns[1]))] == 4
    assert metrics[("netdistill_lookup_call_duration_seconds_count", dns)] == 4
    assert metrics[("netdistill_lookup_call_duration_seconds_sum", dns)] == 0.5
    # the manager itself: build, process and Python, as every Prometheus target has
    from netdistill import __version__

    [build] = [labels for name, labels in metrics if name == "netdistill_build_info"]
    assert dict(build)["version"] == __version__
    assert metrics[("process_cpu_seconds_total", ())] > 0
    assert metrics[("process_resident_memory_bytes", ())] > 0
    assert any(name == "python_info" for name, _ in metrics)
    assert metrics[("netdistill_manager_commits_total", ())] == 0
    assert metrics[("netdistill_alerts_open", ())] == 0

    sender.stop()
    (raised,) = wait_for(lambda: api.get("/api/alerts", params={"open": True}).json())
    last_seen = api.get("/api/gatherers").json()[0]["last_seen"]
    # raised 2 intervals of 0.2 s after the last heartbeat at the earliest, not before
    assert raised["raised_at"] - last_seen >= 0.4 - 0.05
    time.sleep(1.0)  # ten more checks while silent: still one alert
    alerts = api.get("/api/alerts").json()
    assert len(alerts) == 1
    assert alerts[0]["kind"] == "gatherer_silent" and alerts[0]["subject"] == "edge-1"
    assert alerts[0]["cleared_at"] is None
    assert api.get("/api/gatherers").json()[0]["up"] is False
    assert 'netdistill_gatherer_up{gatherer="edge-1"} 0.0' in api.get("/metrics").text

    again = HeartbeatSender([manager.api_url], "edge-1", manager.token, lambda: STATUS, 0.2)
    again.start()
    wait_for(lambda: api.get("/api/alerts").json()[0]["cleared_at"] is not None)
    assert api.get("/api/alerts", params={"open": True}).json() == []
    assert api.get("/api/gatherers").json()[0]["up"] is True
    again.stop()
    wait_for(lambda: len(api.get("/api/alerts").json()) == 2)  # a new silence, a new alert
    time.sleep(0.5)
    assert len(api.get("/api/alerts").json()) == 2


def test_heartbeat_and_metrics_need_a_credential(manager):
    wrong = client(manager, "not-the-token")
    assert wrong.post("/api/heartbeat", json={"gatherer": "x"}).status_code == 401
    assert wrong.get("/metrics").status_code == 401
    assert wrong.get("/api/gatherers").status_code == 401
    sender = HeartbeatSender([manager.api_url], "x", "not-the-token", lambda: STATUS, 1)
    assert sender.send_once() == 0
    assert "401" in sender.errors[manager.api_url]
    assert client(manager).get("/api/gatherers").json() == []
    down = HeartbeatSender(["http://127.0.0.1:9"], "x", manager.token, lambda: STATUS, 1)
    assert down.send_once() == 0  # a manager that is down is noted, never raised


def test_an_open_alert_survives_a_restart_without_a_second_one(tmp_path):
    from netdistill.manager.monitor import Monitor

    now = [1000.0]
    store = DuckDBStore(tmp_path / "records.duckdb")
    monitor = Monitor(store, MonitorConfig(silence_intervals=3), clock=lambda: now[0])
    monitor.receive({"gatherer": "g", "interval_s": 10})
    now[0] += 30
    assert monitor.check() == []  # exactly 3 intervals: not yet
    now[0] += 0.1
    assert monitor.check() == ["g"]
    assert monitor.check() == []
    monitor = Monitor(store, MonitorConfig(silence_intervals=3), clock=lambda: now[0])
    monitor.receive({"gatherer": "g", "interval_s": 10})  # back: clears the stored alert
    alerts = monitor.alerts()
    assert [(a["subject"], a["cleared_at"]) for a in alerts] == [("g", now[0])]
    store.close()


def test_metrics_listener_serves_metrics_without_a_credential_and_nothing_else(tmp_path):
    store = DuckDBStore(tmp_path / "records.duckdb")
    manager = Manager(
        store, ManagerConfig(api_port=0, metrics_listen="127.0.0.1:0"), data_dir=tmp_path
    )
    manager.start()
    try:
        assert manager.metrics is not None
        url = manager.metrics.url
        scrape = httpx.get(url)  # no authorization header
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        names = {f.name for f in text_string_to_metric_families(scrape.text)}
        assert {"netdistill_build_info", "netdistill_manager_commits", "process_cpu_seconds"} <= (
            names
        )
        base = url.removesuffix("/metrics")
        assert httpx.get(f"{base}/api/status").status_code == 404
        assert httpx.get(f"{base}/").status_code == 404
        # the API port keeps its guard
        assert httpx.get(f"{manager.api_url}/metrics").status_code == 401
    finally:
        manager.stop()
        store.close()
    with pytest.raises(httpx.ConnectError):  # stopped with the manager
        httpx.get(url, timeout=2)


def test_metrics_listen_is_validated_and_off_by_default():
    assert ManagerConfig().metrics_listen is None
    with pytest.raises(ValueError, match="'metrics:x': 'metrics' is not an IP address"):
        ManagerConfig(metrics_listen="metrics:x")
