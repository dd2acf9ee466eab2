"""An over-quota alert that disconnects the account's RADIUS session through a real
RFC 5176 listener, holds without a storm, and restores the service with a CoA-Request
after a top-up made through the manager's API; NAK and timeout recorded as failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from alert_support import NOW, SECRET, CoaListener, make_runner, radius_records, rows
from fastapi.testclient import TestClient
from pyrad import packet

from netdistill.manager.api import create_app
from netdistill.stages.runner import StageRunner, stages_router

# alice: 400 + 700 access bytes this month (1100 > quota 1000) and a 5000-byte VoIP call
# that the rule's ``where`` leaves out; bob: 300 this month, 5000 last month (another
# period); carol: far over, but she has no balance (no limit).
RECORDS = [
    {"user": "alice", "session": "S-a1", "ip": "10.0.0.5", "nas": "127.0.0.1",
     "start": "2026-11-02 08:00", "end": "2026-11-02 09:00", "bytes": 400},
    {"user": "alice", "session": "S-a2", "ip": "10.0.0.6", "nas": "127.0.0.1",
     "start": "2026-11-20 08:00", "end": "2026-11-20 10:00", "bytes": 700},
    {"user": "alice", "session": "V-1", "ip": "10.0.0.6", "nas": "127.0.0.9",
     "start": "2026-11-21 08:00", "end": "2026-11-21 08:05", "bytes": 5000,
     "service": "voip", "source": "sip"},
    {"user": "bob", "session": "S-b1", "ip": "10.0.1.5", "nas": "127.0.0.1",
     "start": "2026-11-03 08:00", "end": "2026-11-03 09:00", "bytes": 300},
    {"user": "bob", "session": "S-b0", "ip": "10.0.1.5", "nas": "127.0.0.1",
     "start": "2026-10-30 08:00", "end": "2026-10-30 09:00", "bytes": 5000},
    {"user": "carol", "session": "S-c1", "ip": "10.0.2.5", "nas": "127.0.0.1",
     "start": "2026-11-04 08:00", "end": "2026-11-04 09:00", "bytes": 99999},
]  # fmt: skip


def over_quota_stage(port: int, **radius: object) -> dict[str, object]:
    action = {"secret": SECRET, "port": port, "timeout_s": 1.0, "tries": 3, **radius}
    return {
        "name": "over-quota",
        "type": "alert",
        "rule": "usage_over_balance",
        "measure": "sum(bytes)",
        "where": "service != 'voip'",
        "balance": "quota_bytes",
        "period": "month",
        "per": "account_id",
        "balances": {"alice": {"quota_bytes": 1000}, "bob": {"quota_bytes": 1000}},
        "max_attempts": 2,
        "retry_s": 30,
        "actions": [{"radius": {"request": "disconnect", **action}}],
        "restore": [
            {"radius": {"request": "coa", "attributes": {"Filter-Id": "standard"}, **action}}
        ],
    }


@pytest.fixture
def listener():
    nas = CoaListener()
    yield nas
    nas.close()


def session_attributes(session: str, ip: str) -> dict[str, list[str]]:
    return {
        "User-Name": ["alice"],
        "Acct-Session-Id": [session],
        "Framed-IP-Address": [ip],
        "NAS-IP-Address": ["127.0.0.1"],
    }


def test_disconnect_hold_and_restore_after_top_up(tmp_path: Path, listener: CoaListener) -> None:
    runner, clock = make_runner(tmp_path, [over_quota_stage(listener.port)])
    store = runner.context.store
    store.commit(radius_records(RECORDS), origin="test", sequence=1)
    # who is over, by a plain GROUP BY independent of the stage
    expected = rows(
        store,
        "SELECT r.account_id, sum(r.bytes) AS used, b.quota_bytes FROM records r"
        " JOIN balances b USING (account_id) WHERE r.service <> 'voip'"
        " AND r.end_time >= TIMESTAMPTZ '2026-11-01 00:00:00+00'"
        " GROUP BY ALL HAVING sum(r.bytes) > b.quota_bytes",
    )
    assert expected == [{"account_id": "alice", "used": 1100, "quota_bytes": 1000}]

    assert runner.run_once() == {
        "over-quota": {"raised": 1, "cleared": 0, "actions_ok": 1, "actions_failed": 0}
    }
    assert listener.requests == [
        {"code": packet.DisconnectRequest, "attributes": session_attributes("S-a2", "10.0.0.6")}
    ]
    assert listener.rejected == 0

    # the condition holds: more rounds, and a restarted runner, send nothing more
    for _ in range(3):
        clock.now += 60
        assert runner.run_once()["over-quota"] == {
            "raised": 0, "cleared": 0, "actions_ok": 0, "actions_failed": 0
        }  # fmt: skip
    restarted = StageRunner(runner.context)
    clock.now += 60
    assert restarted.run_once()["over-quota"]["raised"] == 0
    assert len(listener.requests) == 1
    open_alerts = rows(
        store, "SELECT id, kind, subject, detail FROM alerts WHERE cleared_at IS NULL"
    )
    assert open_alerts == [
        {
            "id": 1,
            "kind": "over-quota",
            "subject": "alice",
            "detail": "sum(bytes) = 1100 over quota_bytes 1000 since 2026-11-01T00:00:00+00:00",
        }
    ]

    # a top-up through the API, then a round through the API: cleared, one CoA-Request
    app = create_app(store, token="t0k", status=dict, guarded=[stages_router(restarted)])
    client = TestClient(app)
    auth = {"authorization": "Bearer t0k"}
    assert client.post("/api/balances/alice/topup", json={"bytes": 500}).status_code == 401
    answer = client.post("/api/balances/alice/topup", json={"bytes": 500}, headers=auth)
    assert answer.status_code == 200
    assert answer.json() == {
        "account_id": "alice", "quota_bytes": 1500, "prepaid_seconds": None, "prepaid_money": None
    }
    clock.now += 60
    answer = client.post("/api/stages/run", headers=auth)
    assert answer.json() == {
        "counts": {"over-quota": {"raised": 0, "cleared": 1, "actions_ok": 1, "actions_failed": 0}}
    }
    assert listener.requests[1:] == [
        {
            "code": packet.CoARequest,
            "attributes": {**session_attributes("S-a2", "10.0.0.6"), "Filter-Id": ["standard"]},
        }
    ]
    alert = rows(store, "SELECT epoch(cleared_at) AS cleared FROM alerts WHERE id = 1")
    assert alert == [{"cleared": clock.now}]
    changes = rows(
        store,
        "SELECT account_id, who, change, quota_bytes FROM balance_changes ORDER BY changed_at,"
        " account_id",
    )
    assert changes == [
        {"account_id": "alice", "who": "scheme:over-quota",
         "change": '{"seed": {"quota_bytes": 1000}}',
         "quota_bytes": 1000},
        {"account_id": "bob", "who": "scheme:over-quota",
         "change": '{"seed": {"quota_bytes": 1000}}',
         "quota_bytes": 1000},
        {"account_id": "alice", "who": "api:testclient",
         "change": '{"topup": {"bytes": 500, "seconds": 0.0}}', "quota_bytes": 1500},
    ]  # fmt: skip
    port = listener.port
    sent = (
        "User-Name=alice, Acct-Session-Id=S-a2, Framed-IP-Address=10.0.0.6,"
        " NAS-IP-Address=127.0.0.1"
    )
    assert rows(
        store,
        "SELECT alert_id, action, transition, attempt, outcome, detail FROM alert_actions"
        " ORDER BY id",
    ) == [
        {"alert_id": 1, "action": "radius", "transition": "raised", "attempt": 1,
         "outcome": "ok", "detail": f"Disconnect-ACK from 127.0.0.1:{port} ({sent})"},
        {"alert_id": 1, "action": "radius", "transition": "cleared", "attempt": 1,
         "outcome": "ok",
         "detail": f"CoA-ACK from 127.0.0.1:{port} ({sent}, Filter-Id=standard)"},
    ]  # fmt: skip
    clock.now += 60
    assert restarted.run_once()["over-quota"]["actions_ok"] == 0
    assert len(listener.requests) == 2


def test_nak_is_retried_with_back_off_then_given_up(tmp_path: Path, listener: CoaListener) -> None:
    listener.mode = "nak"
    runner, clock = make_runner(tmp_path, [over_quota_stage(listener.port)])
    runner.context.store.commit(radius_records(RECORDS), origin="test", sequence=1)
    assert runner.run_once()["over-quota"]["actions_failed"] == 1
    clock.now = NOW + 29  # the retry is due 30 s after the first attempt
    assert runner.run_once()["over-quota"]["actions_failed"] == 0
    assert len(listener.requests) == 1
    clock.now = NOW + 30
    assert runner.run_once()["over-quota"]["actions_failed"] == 1
    clock.now = NOW + 10_000  # max_attempts 2: given up, no storm
    assert runner.run_once()["over-quota"]["actions_failed"] == 0
    assert [r["code"] for r in listener.requests] == [packet.DisconnectRequest] * 2
    store = runner.context.store
    port = listener.port
    assert rows(
        store, "SELECT attempt, outcome, detail FROM alert_actions ORDER BY id"
    ) == [
        {"attempt": n, "outcome": "failed",
         "detail": f"Disconnect-NAK from 127.0.0.1:{port} Error-Cause=Session-Context-Not-Found"
         " (User-Name=alice, Acct-Session-Id=S-a2, Framed-IP-Address=10.0.0.6,"
         " NAS-IP-Address=127.0.0.1)"}
        for n in (1, 2)
    ]  # fmt: skip
    assert rows(store, "SELECT attempts, state FROM alert_tasks") == [
        {"attempts": 2, "state": "failed"}
    ]


def test_no_answer_is_a_timeout_failure(tmp_path: Path, listener: CoaListener) -> None:
    listener.mode = "silent"
    stage = over_quota_stage(listener.port, timeout_s=0.3, tries=2)
    runner, _clock = make_runner(tmp_path, [stage])
    runner.context.store.commit(radius_records(RECORDS), origin="test", sequence=1)
    assert runner.run_once()["over-quota"]["actions_failed"] == 1
    # pyrad resends the same request: two datagrams, both authenticated
    assert len(listener.requests) == 2 and listener.rejected == 0
    assert rows(runner.context.store, "SELECT outcome, detail FROM alert_actions") == [
        {
            "outcome": "failed",
            "detail": f"Disconnect-Request to 127.0.0.1:{listener.port} (User-Name=alice,"
            " Acct-Session-Id=S-a2, Framed-IP-Address=10.0.0.6, NAS-IP-Address=127.0.0.1):"
            " no answer after 2 tries of 0.3 s",
        }
    ]


def test_wrong_secret_is_not_answered(tmp_path: Path) -> None:
    nas = CoaListener(secret="another-secret")
    try:
        stage = over_quota_stage(nas.port, timeout_s=0.3, tries=1)
        runner, _clock = make_runner(tmp_path, [stage])
        runner.context.store.commit(radius_records(RECORDS), origin="test", sequence=1)
        assert runner.run_once()["over-quota"]["actions_failed"] == 1
        assert nas.requests == [] and nas.rejected == 1
    finally:
        nas.close()
