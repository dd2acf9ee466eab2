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
            "dropped": {"malformed": 3, "kernel_socket_overflow": 11},
        },
        {"name": "radius", "records": 345, "datagrams": 345, "dropped": {}},
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
    # the counters did not move between heartbeats: the rate is exactly zero
    assert (
        metrics[
            (
                "netdistill_gatherer_source_records_per_second",
                (("gatherer", "edge-1"), ("source", "nf")),
            )
        ]
        == 0
    )
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
