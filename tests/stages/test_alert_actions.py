"""Alert rules other than the RADIUS one and the webhook, command and log actions:
quarantine growth to a local webhook (exact JSON), the monitor's gatherer_silent alerts
to a command (environment and stdin written to a file), VoIP prepaid seconds with a
top-up, and a new month clearing an over-quota alert."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from alert_support import NOW, WebhookReceiver, make_runner, radius_records, rows

from netdistill.manager.monitor import Monitor, MonitorConfig
from netdistill.records.batch import Quarantined
from netdistill.stages.balances import TopUp, top_up

#: writes ``<dir>/<state>.json`` with the NETDISTILL_* environment and the stdin JSON;
#: exits 3 on "cleared" when argv[2] says so
SCRIPT = """
import json, os, sys
payload = json.load(sys.stdin)
env = {k: v for k, v in os.environ.items() if k.startswith("NETDISTILL_")}
with open(os.path.join(sys.argv[1], payload["state"] + ".json"), "w") as out:
    json.dump({"env": env, "stdin": payload}, out)
if payload["state"] == "cleared" and sys.argv[2] == "fail-restore":
    print("restore refused", file=sys.stderr)
    sys.exit(3)
"""


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def quarantined(n: int, at: float) -> list[Quarantined]:
    return [
        Quarantined("netflow", "127.0.0.1", at, "malformed", "short header", b"\x00")
        for _ in range(n)
    ]


def test_quarantine_growing_posts_exact_json(tmp_path: Path, webhook: WebhookReceiver) -> None:
    hook = {"webhook": {"url": webhook.url, "timeout_s": 5}}
    stage = {"name": "quarantine", "type": "alert", "rule": "quarantine_growing",
             "threshold": 3, "window_s": 60, "actions": [hook, {"log": {}}],
             "restore": [hook]}  # fmt: skip
    runner, clock = make_runner(tmp_path, [stage])
    store = runner.context.store
    store.commit_quarantine(quarantined(2, NOW - 5))
    assert runner.run_once()["quarantine"]["raised"] == 0  # 2 < 3
    store.commit_quarantine(quarantined(1, NOW - 1))
    assert runner.run_once()["quarantine"] == {
        "raised": 1, "cleared": 0, "actions_ok": 2, "actions_failed": 0
    }  # fmt: skip
    clock.now = NOW + 30  # still 3 in the window: no second alert, no second post
    assert runner.run_once()["quarantine"]["raised"] == 0
    clock.now = NOW + 70  # all three left the window
    assert runner.run_once()["quarantine"]["cleared"] == 1
    assert webhook.bodies == [
        {"alert": "quarantine", "id": 1, "subject": "quarantine", "state": "raised",
         "detail": "3 inputs quarantined in the last 60 s (threshold 3)",
         "at": "2026-11-23T12:00:00+00:00"},
        {"alert": "quarantine", "id": 1, "subject": "quarantine", "state": "cleared",
         "detail": "condition no longer holds", "at": "2026-11-23T12:01:10+00:00"},
    ]  # fmt: skip
    outcomes = "SELECT action, transition, outcome, detail FROM alert_actions ORDER BY id"
    assert rows(store, outcomes) == [
        {"action": "webhook", "transition": "raised", "outcome": "ok",
         "detail": f"POST {webhook.url}: HTTP 200"},
        {"action": "log", "transition": "raised", "outcome": "ok", "detail": "logged at warning"},
        {"action": "webhook", "transition": "cleared", "outcome": "ok",
         "detail": f"POST {webhook.url}: HTTP 200"},
    ]  # fmt: skip


def test_webhook_error_status_is_a_failure(tmp_path: Path, webhook: WebhookReceiver) -> None:
    webhook.status = 503
    stage = {"name": "quarantine", "type": "alert", "rule": "quarantine_growing",
             "threshold": 1, "max_attempts": 1,
             "actions": [{"webhook": {"url": webhook.url}}]}  # fmt: skip
    runner, _clock = make_runner(tmp_path, [stage])
    runner.context.store.commit_quarantine(quarantined(1, NOW))
    assert runner.run_once()["quarantine"]["actions_failed"] == 1
    assert rows(runner.context.store, "SELECT outcome, detail FROM alert_actions") == [
        {"outcome": "failed", "detail": f"POST {webhook.url}: HTTP 503"}
    ]


def test_gatherer_silent_runs_commands(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-c", SCRIPT, str(out)]
    stages = [
        # a quarantine alert first, so the monitor's alert id comes after a stage's one
        {"name": "quarantine", "type": "alert", "rule": "quarantine_growing", "threshold": 1},
        {"name": "silent", "type": "alert", "rule": "gatherer_silent",
         "actions": [{"command": {"argv": [*command, "ok"]}}],
         "restore": [{"command": {"argv": [*command, "fail-restore"]}}], "max_attempts": 1},
    ]  # fmt: skip
    runner, clock = make_runner(tmp_path, stages)
    store = runner.context.store
    monitor = Monitor(store, MonitorConfig(silence_intervals=2), clock=clock)
    store.commit_quarantine(quarantined(1, NOW))
    monitor.receive({"gatherer": "edge-1", "interval_s": 10})
    assert runner.run_once()["silent"]["raised"] == 0
    clock.now = NOW + 21
    assert monitor.check() == ["edge-1"]
    assert runner.run_once()["silent"] == {
        "raised": 1, "cleared": 0, "actions_ok": 1, "actions_failed": 0
    }  # fmt: skip
    clock.now = NOW + 40
    monitor.check()
    assert runner.run_once()["silent"]["actions_ok"] == 0  # the same alert: nothing more
    alerts = rows(store, "SELECT id, kind, subject, detail FROM alerts ORDER BY id")
    assert [(a["id"], a["kind"], a["subject"]) for a in alerts] == [
        (1, "quarantine", "quarantine"),
        (2, "gatherer_silent", "edge-1"),
    ]
    raised = json.loads((out / "raised.json").read_text())
    assert raised == {
        "env": {
            "NETDISTILL_ALERT": "silent",
            "NETDISTILL_ALERT_ID": "2",
            "NETDISTILL_SUBJECT": "edge-1",
            "NETDISTILL_STATE": "raised",
            "NETDISTILL_DETAIL": alerts[1]["detail"],
        },
        "stdin": {"alert": "silent", "id": 2, "subject": "edge-1", "state": "raised",
                  "detail": alerts[1]["detail"], "at": "2026-11-23T12:00:21+00:00"},
    }  # fmt: skip
    monitor.receive({"gatherer": "edge-1", "interval_s": 10})  # back: the monitor clears
    clock.now = NOW + 50
    assert runner.run_once()["silent"] == {
        "raised": 0, "cleared": 1, "actions_ok": 0, "actions_failed": 1
    }  # fmt: skip
    cleared = json.loads((out / "cleared.json").read_text())
    assert cleared["env"]["NETDISTILL_STATE"] == "cleared"
    assert cleared["stdin"]["detail"] == "heartbeats again"
    assert rows(
        store, "SELECT alert_id, transition, outcome, detail FROM alert_actions ORDER BY id"
    ) == [
        {"alert_id": 2, "transition": "raised", "outcome": "ok", "detail": "exit 0"},
        {"alert_id": 2, "transition": "cleared", "outcome": "failed",
         "detail": "exit 3: restore refused"},
    ]  # fmt: skip


def test_voip_prepaid_seconds(tmp_path: Path) -> None:
    call = {"user": "alice", "ip": "10.0.0.6", "nas": "127.0.0.1", "service": "voip"}
    records = [
        {**call, "session": "C1", "start": "2026-09-01 10:00", "end": "2026-09-01 10:05",
         "bytes": 10},  # 300 s, an earlier month: prepaid balance counts every month
        {**call, "session": "C2", "start": "2026-11-20 10:00", "end": "2026-11-20 10:06:40",
         "bytes": 10},  # 400 s
        {**call, "session": "D1", "start": "2026-11-20 08:00", "end": "2026-11-20 18:00",
         "bytes": 10, "service": "access"},  # 10 h of data session: not a call
    ]  # fmt: skip
    stage = {"name": "voip-prepaid", "type": "alert", "rule": "usage_over_balance",
             "measure": "sum(duration_s)", "where": "service = 'voip'", "period": "all",
             "balance": "prepaid_seconds", "balances": {"alice": {"prepaid_seconds": 600}},
             "actions": [{"log": {"level": "error"}}], "restore": [{"log": {}}]}  # fmt: skip
    runner, clock = make_runner(tmp_path, [stage])
    store = runner.context.store
    store.commit(radius_records(records), origin="test", sequence=1)
    spent = rows(store, "SELECT sum(duration_s) AS s FROM records WHERE service = 'voip'")
    assert spent == [{"s": 700.0}]
    assert runner.run_once()["voip-prepaid"]["raised"] == 1
    top_up(store, "alice", TopUp(seconds=200), "test")  # 800 s bought, 700 spent
    clock.now += 1
    assert runner.run_once()["voip-prepaid"]["cleared"] == 1
    more = {**call, "session": "C3", "start": "2026-11-23 09:00", "end": "2026-11-23 09:02:30"}
    store.commit(radius_records([{**more, "bytes": 10}]), origin="test", sequence=2)
    clock.now += 1
    assert runner.run_once()["voip-prepaid"]["raised"] == 1  # 850 s > 800 s: a new alert
    assert rows(
        store,
        "SELECT id, subject, detail, epoch(cleared_at) - epoch(raised_at) AS open_s FROM alerts"
        " ORDER BY id",
    ) == [
        {"id": 1, "subject": "alice", "detail":
         "sum(duration_s) = 700 over prepaid_seconds 600 since ever", "open_s": 1.0},
        {"id": 2, "subject": "alice", "detail":
         "sum(duration_s) = 850 over prepaid_seconds 800 since ever", "open_s": None},
    ]  # fmt: skip


def test_a_new_month_clears_over_quota(tmp_path: Path) -> None:
    record = {"user": "bob", "session": "S1", "ip": "10.0.1.5", "nas": "127.0.0.1",
              "start": "2026-11-30 22:00", "end": "2026-11-30 23:00", "bytes": 2000}  # fmt: skip
    stage = {"name": "over-quota", "type": "alert", "rule": "usage_over_balance",
             "period": "month", "balances": {"bob": {"quota_bytes": 1000}},
             "actions": [{"log": {}}], "restore": [{"log": {}}]}  # fmt: skip
    runner, clock = make_runner(tmp_path, [stage])
    runner.context.store.commit(radius_records([record]), origin="test", sequence=1)
    clock.now = NOW + 7 * 86400 + 11 * 3600  # 2026-11-30 23:00 UTC
    assert runner.run_once()["over-quota"]["raised"] == 1
    clock.now += 3600  # 2026-12-01 00:00 UTC: a new period, nothing used yet
    assert runner.run_once()["over-quota"] == {
        "raised": 0, "cleared": 1, "actions_ok": 1, "actions_failed": 0
    }  # fmt: skip
