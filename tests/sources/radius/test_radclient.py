"""The RADIUS source against the real radclient (freeradius-utils): answers, totals."""

from __future__ import annotations

import time

import peers
from radius_support import SECRET, Collector, radclient

GIGA = 1 << 32


def session_requests(
    session_id: str,
    user: str,
    framed_ip: str,
    updates: list[tuple[int, int, int, int, int]],
    *,
    gigawords: tuple[int, int] = (0, 0),
    cause: str = "User-Request",
) -> list[dict[str, object]]:
    """Start, one Interim-Update per running total but the last, and a Stop with the last.
    ``updates``: (in-octets, out-octets, in-packets, out-packets, session time); the
    Gigawords, when given, are added to the in/out octets of the interims from the
    second on and of the Stop."""
    common = {
        "User-Name": user,
        "Acct-Session-Id": session_id,
        "NAS-IP-Address": "192.0.2.10",
        "NAS-Identifier": "bras-1",
        "NAS-Port": 7,
        "Framed-IP-Address": framed_ip,
        "Calling-Station-Id": "00-11-22-33-44-55",
    }
    requests: list[dict[str, object]] = [{**common, "Acct-Status-Type": "Start"}]
    for n, (i, o, pi, po, t) in enumerate(updates):
        last = n == len(updates) - 1
        attributes = {
            **common,
            "Acct-Status-Type": "Stop" if last else "Interim-Update",
            "Acct-Input-Octets": i,
            "Acct-Output-Octets": o,
            "Acct-Input-Packets": pi,
            "Acct-Output-Packets": po,
            "Acct-Session-Time": t,
        }
        if n >= 1 and any(gigawords):
            attributes["Acct-Input-Gigawords"] = gigawords[0]
            attributes["Acct-Output-Gigawords"] = gigawords[1]
        if last:
            attributes["Acct-Terminate-Cause"] = cause
        requests.append(attributes)
    return requests


SESSIONS = {
    "s-alice": (
        "alice",
        "10.1.0.1",
        [(100, 2_000, 3, 5, 60), (1_500, 90_000, 20, 80, 120), (4_000, 250_000, 50, 210, 300)],
        (0, 0),
        "User-Request",
    ),
    # Gigawords from the second interim on: the octets pass 4 GiB and 8 GiB
    "s-bob": (
        "bob",
        "10.1.0.2",
        [(7, 9, 1, 1, 30), (12, 400, 2, 4, 90), (5_000, 70_000, 9, 99, 600)],
        (1, 2),
        "Idle-Timeout",
    ),
    "s-carol": (
        "carol",
        "10.1.0.3",
        [(0, 0, 0, 0, 10), (64, 128, 1, 2, 20)],
        (0, 0),
        "Session-Timeout",
    ),
}


def stop_totals(updates, gigawords):
    i, o, pi, po, t = updates[-1]
    return (i + gigawords[0] * GIGA, o + gigawords[1] * GIGA, pi, po, t)


def test_every_request_answered_and_sessions_sum_to_stop_totals(collector: Collector, tmp_path):
    requests = []
    for session_id, (user, ip, updates, giga, cause) in SESSIONS.items():
        requests += session_requests(session_id, user, ip, updates, gigawords=giga, cause=cause)
    done = radclient(collector.port, requests, tmp_path, args=["-p", "1"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Received Accounting-Response") == len(requests)
    rows = collector.rows(
        "select session_id, user_name, src_ip, exporter, count(*) n, sum(bytes_in) i,"
        " sum(bytes_out) o, sum(packets_in) pi, sum(packets_out) po, sum(duration_s) t,"
        " sum(bytes) b, sum(packets) p, max(terminate_cause) cause, min(nas_port) port,"
        " min(nas_identifier) nas, count(distinct start_time) starts"
        " from records group by all order by session_id"
    )
    expected = []
    for session_id, (user, ip, updates, giga, cause) in sorted(SESSIONS.items()):
        i, o, pi, po, t = stop_totals(updates, giga)
        expected.append(
            {
                "session_id": session_id,
                "user_name": user,
                "src_ip": ip,
                "exporter": "192.0.2.10",
                "n": len(updates) + 1,
                "i": i,
                "o": o,
                "pi": pi,
                "po": po,
                "t": float(t),
                "b": i + o,
                "p": pi + po,
                "cause": cause,
                "port": 7,
                "nas": "bras-1",
                "starts": 1,
            }
        )
    assert rows == expected
    statuses = collector.rows(
        "select acct_status_type s, count(*) n from records group by 1 order by 1"
    )
    assert statuses == [
        {"s": "Interim-Update", "n": 5},
        {"s": "Start", "n": 3},
        {"s": "Stop", "n": 3},
    ]
    assert collector.source.responses_sent == len(requests)
    assert collector.rows("select count(*) n from quarantine") == [{"n": 0}]


def test_wrong_secret_is_not_answered_nor_stored(collector: Collector, tmp_path):
    requests = session_requests("s-x", "mallory", "10.9.9.9", [(1, 2, 3, 4, 5)])
    done = radclient(
        collector.port,
        requests,
        tmp_path,
        secret="not-" + SECRET,
        args=["-r", "1", "-t", "1", "-p", "1"],
    )
    assert done.returncode != 0
    assert "Received Accounting-Response" not in done.stdout
    time.sleep(0.2)  # the pipeline polls every 20 ms
    counters = collector.source.counters
    assert counters.datagrams >= 1  # radclient gives up after the first unanswered one
    assert dict(counters.dropped) == {"bad_authenticator": counters.datagrams}
    assert collector.source.responses_sent == 0
    assert collector.rows("select count(*) n from records") == [{"n": 0}]


def test_unknown_client_is_dropped(tmp_path):
    peers.require("radclient")
    c = Collector(tmp_path, clients={"10.0.0.0/8": SECRET})
    try:
        requests = session_requests("s-y", "eve", "10.9.9.8", [(1, 2, 3, 4, 5)])
        done = radclient(c.port, requests, tmp_path, args=["-r", "1", "-t", "1", "-p", "1"])
        assert done.returncode != 0
        time.sleep(0.2)
        assert c.source.counters.datagrams >= 1
        assert dict(c.source.counters.dropped) == {"unknown_client": c.source.counters.datagrams}
        assert c.rows("select count(*) n from records") == [{"n": 0}]
    finally:
        c.stop()
