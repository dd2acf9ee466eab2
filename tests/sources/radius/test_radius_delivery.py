"""Exactly-once accounting: duplicates, answers only after commit, state across restarts."""

from __future__ import annotations

import hashlib
import socket
import time

import pyarrow as pa
import pytest
from pyrad import packet
from radius_support import SECRET, Collector, exchange, request

from netdistill.sources.radius.accounting import DICTIONARY
from netdistill.store.duckdb import DuckDBStore


def interim(session_id: str, octets_in: int, octets_out: int, seconds: int, **extra) -> dict:
    return {
        "Acct-Status-Type": "Interim-Update",
        "Acct-Session-Id": session_id,
        "User-Name": "dave",
        "Framed-IP-Address": "10.2.0.4",
        "Acct-Input-Octets": octets_in,
        "Acct-Output-Octets": octets_out,
        "Acct-Input-Packets": octets_in // 100,
        "Acct-Output-Packets": octets_out // 100,
        "Acct-Session-Time": seconds,
        **extra,
    }


def check_response(answer: bytes, sent: bytes) -> None:
    """The answer is an Accounting-Response to ``sent``, verified by pyrad."""
    req = packet.AcctPacket(packet=sent, secret=SECRET.encode(), dict=DICTIONARY)
    reply = req.CreateReply(packet=answer)
    assert req.VerifyReply(reply, answer)
    assert answer[0] == packet.AccountingResponse and answer[1] == sent[1]


def test_retransmission_is_answered_again_and_recorded_once(collector: Collector):
    sent = request(interim("dup-1", 1_000, 2_000, 60), identifier=42)
    first = exchange(collector.port, [sent])
    second = exchange(collector.port, [sent])
    assert len(first) == 1 and second == first
    check_response(first[0], sent)
    assert collector.rows("select count(*) n, sum(bytes) b from records") == [{"n": 1, "b": 3_000}]
    assert collector.source.decoder.duplicates == 1


def test_retransmission_before_commit_is_not_recorded_twice(tmp_path):
    c = Collector(tmp_path, run=False)
    try:
        sent = request(interim("dup-2", 500, 700, 30), identifier=9)
        with_proxy = request({**interim("dup-3", 1, 1, 1), "Proxy-State": b"hop-1"})
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            # both copies in one batch: the second repeats a request not yet committed
            for payload in (sent, sent, with_proxy):
                sock.sendto(payload, ("127.0.0.1", c.port))
            deadline = time.monotonic() + 5
            while c.source.pending() < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            result = c.source.poll(100)
            assert result.records.num_rows == 2
            assert c.source.decoder.duplicates == 1
            with pytest.raises(TimeoutError):
                sock.recv(4096)  # nothing is answered before the commit
            c.pipeline.handle(c.source, result)
            answers = [sock.recv(4096) for _ in range(3)]
        assert answers[0] == answers[1]
        check_response(answers[0], sent)
        check_response(answers[2], with_proxy)
        assert answers[2].endswith(bytes((33, 7)) + b"hop-1")  # Proxy-State copied back
        assert c.rows("select count(*) n, sum(bytes) b from records") == [{"n": 2, "b": 1_202}]
    finally:
        c.stop()


def test_no_answer_before_commit_then_answer_after(tmp_path):
    class FailingOnce:
        def __init__(self, store: DuckDBStore) -> None:
            self.store, self.failures = store, 1

        def commit(self, batch: pa.Table, *, origin: str, sequence: int) -> int:
            if self.failures:
                self.failures -= 1
                raise OSError("disk full")
            return self.store.commit(batch, origin=origin, sequence=sequence)

        def commit_quarantine(self, items):
            return self.store.commit_quarantine(items)

        def last_sequence(self, origin: str) -> int:
            return self.store.last_sequence(origin)

    c = Collector(tmp_path, run=False)
    c.pipeline.sink = FailingOnce(c.store)
    try:
        sent = request(interim("commit-1", 10, 20, 5), identifier=3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            sock.sendto(sent, ("127.0.0.1", c.port))
            deadline = time.monotonic() + 5
            while c.source.pending() < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            c.pipeline.step()  # the commit raises
            assert c.pipeline.errors == 1
            with pytest.raises(TimeoutError):  # not answered before the commit
                sock.recv(4096)
            assert c.rows("select count(*) n from records") == [{"n": 0}]
            c.pipeline.step()  # retried: committed, then answered
            answer = sock.recv(4096)
        check_response(answer, sent)
        assert c.rows("select count(*) n, sum(bytes) b from records") == [{"n": 1, "b": 30}]
    finally:
        c.stop()


def test_state_survives_a_restart(tmp_path):
    port = None
    before = [
        request({**interim("r-1", 0, 0, 0), "Acct-Status-Type": "Start"}, identifier=1),
        request(interim("r-1", 1_000, 5_000, 60), identifier=2),
    ]
    c = Collector(tmp_path)
    port = c.port
    assert len(exchange(port, before)) == 2
    c.stop()
    # a new process: the interim after the restart adds only what is new, the Stop too,
    # and a retransmission of an interim answered before the restart is not recorded
    c = Collector(tmp_path, port=port)
    try:
        after = [
            request(interim("r-1", 1_600, 9_000, 120), identifier=3),
            before[1],
            request(
                {
                    **interim("r-1", 2_000, 9_500, 150),
                    "Acct-Status-Type": "Stop",
                    "Acct-Terminate-Cause": "Lost-Carrier",
                },
                identifier=4,
            ),
        ]
        assert len(exchange(port, after)) == 3
        rows = c.rows(
            "select acct_status_type s, bytes_in i, bytes_out o, duration_s t,"
            " session_time_s st, terminate_cause tc from records order by record_id"
        )
        assert rows == [
            {"s": "Start", "i": 0, "o": 0, "t": 0.0, "st": 0, "tc": None},
            {"s": "Interim-Update", "i": 1_000, "o": 5_000, "t": 60.0, "st": 60, "tc": None},
            {"s": "Interim-Update", "i": 600, "o": 4_000, "t": 60.0, "st": 120, "tc": None},
            {"s": "Stop", "i": 400, "o": 500, "t": 30.0, "st": 150, "tc": "Lost-Carrier"},
        ]
        assert c.source.decoder.duplicates == 1
    finally:
        c.stop()


def test_accounting_on_closes_the_nas_sessions(collector: Collector):
    nas = {"NAS-IP-Address": "192.0.2.20"}
    sent = [
        request({**interim("on-1", 100, 100, 10), **nas}, identifier=1),
        request({**interim("on-2", 100, 100, 10), **nas}, identifier=2),
        request({**interim("other", 100, 100, 10), "NAS-IP-Address": "192.0.2.21"}, identifier=3),
    ]
    assert len(exchange(collector.port, sent)) == 3
    on = request({"Acct-Status-Type": "Accounting-On", **nas, "Acct-Session-Id": "x"}, identifier=4)
    assert len(exchange(collector.port, [on])) == 1
    sessions = collector.source.sessions.sessions
    assert {k[1]: s.closed for k, s in sessions.items()} == {
        "on-1": True,
        "on-2": True,
        "other": False,
    }
    assert collector.source.decoder.sessions_closed_by_nas == 2
    # a Stop arriving late still adds only what is new
    late = request(
        {**interim("on-1", 150, 100, 12), **nas, "Acct-Status-Type": "Stop"}, identifier=5
    )
    assert len(exchange(collector.port, [late])) == 1
    rows = collector.rows(
        "select acct_status_type s, exporter e, bytes b from records order by record_id"
    )
    assert rows[3:] == [
        {"s": "Accounting-On", "e": "192.0.2.20", "b": 0},
        {"s": "Stop", "e": "192.0.2.20", "b": 50},
    ]


def test_response_authenticator_is_rfc_2866(collector: Collector):
    """Independently of pyrad: MD5(Code+ID+Length+RequestAuth+Attributes+Secret)."""
    sent = request(interim("auth-1", 1, 2, 3), identifier=200)
    (answer,) = exchange(collector.port, [sent])
    expected = hashlib.md5(answer[:4] + sent[4:20] + answer[20:] + SECRET.encode()).digest()
    assert answer[4:20] == expected and len(answer) == 20
