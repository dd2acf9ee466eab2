"""The postfix format on hand-written logs: messages interleaved by queue id, several
recipients, bounces, deferrals, lines split across batches, syslog columns, the horizon."""

# ruff: noqa: E501  (verbatim log lines are longer than code lines)
from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from netdistill.sources.lines import make_format
from netdistill.sources.mail.postfix import PostfixFormat, PostfixOptions

NOW = datetime(2024, 11, 30, tzinfo=UTC)

LOG = """\
Nov 23 10:00:00 mx postfix/smtpd[100]: connect from mail.x.org[192.0.2.7]
Nov 23 10:00:01 mx postfix/smtpd[100]: AAAA000001: client=mail.x.org[192.0.2.7], sasl_method=PLAIN, sasl_username=ann
Nov 23 10:00:01 mx postfix/cleanup[101]: AAAA000001: message-id=<m1@x.org>
Nov 23 10:00:02 mx postfix/smtpd[104]: BBBB000002: client=unknown[2001:DB8::9]
Nov 23 10:00:02 mx postfix/qmgr[102]: AAAA000001: from=<ann@x.org>, size=1234, nrcpt=2 (queue active)
Nov 23 10:00:02 mx postfix/cleanup[101]: BBBB000002: message-id=<m2@z.org>
Nov 23 10:00:03 mx postfix/qmgr[102]: BBBB000002: from=<zed@z.org>, size=500, nrcpt=1 (queue active)
Nov 23 10:00:04 mx postfix/smtp[103]: AAAA000001: to=<b@y.org>, relay=mx.y.org[192.0.2.5]:25, delay=2.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 ok)
Nov 23 10:00:05 mx postfix/smtp[105]: BBBB000002: to=<c@w.org>, relay=none, delay=3, delays=3/0/0/0, dsn=4.4.1, status=deferred (connect to w.org: Connection refused)
Nov 23 10:00:06 mx postfix/smtp[103]: AAAA000001: to=<c@y.org>, orig_to=<cc@y.org>, relay=mx.y.org[192.0.2.5]:25, delay=4, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 ok)
Nov 23 10:00:06 mx postfix/qmgr[102]: AAAA000001: removed
NOQUEUE: not a syslog line at all
Nov 23 10:00:07 mx kernel: [1.0] eth0 up
Nov 23 10:00:08 mx postfix/smtpd[100]: CCCC000003: client=mail.x.org[192.0.2.7]
Nov 23 10:00:08 mx postfix/cleanup[101]: CCCC000003: message-id=<m3@x.org>
Nov 23 10:00:08 mx postfix/qmgr[102]: CCCC000003: from=<ann@x.org>, size=90, nrcpt=1 (queue active)
Nov 23 10:00:09 mx postfix/smtp[103]: CCCC000003: to=<nobody@y.org>, relay=mx.y.org[192.0.2.5]:25, delay=1, delays=0.1/0/0.2/0.2, dsn=5.1.1, status=bounced (550 no such user)
Nov 23 10:00:09 mx postfix/bounce[106]: CCCC000003: sender non-delivery notification: DDDD000004
Nov 23 10:00:09 mx postfix/qmgr[102]: CCCC000003: removed
"""

LATER = """\
Nov 23 10:30:05 mx postfix/smtp[107]: BBBB000002: to=<c@w.org>, relay=mx.w.org[198.51.100.1]:25, delay=1802, delays=1800/0/1/1, dsn=2.0.0, status=sent (250 queued)
Nov 23 10:30:05 mx postfix/qmgr[102]: BBBB000002: removed
Nov 23 10:30:06 mx postfix/local[108]: EEEE000005: to=<root@mx.test>, relay=local, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)
"""


def batch(text: str) -> pa.Table:
    return pa.table({"line": text.splitlines()})


def utc(h: int, m: int, s: int) -> datetime:
    return datetime(2024, 11, 23, h, m, s, tzinfo=UTC)


def fresh() -> PostfixFormat:
    return PostfixFormat(PostfixOptions(), now=lambda: NOW)


RECORD_A = {
    "start_time": utc(10, 0, 1),
    "end_time": utc(10, 0, 6),
    "duration_s": 4.0,
    "bytes": 1234,
    "service": "smtp",
    "src_host": "mail.x.org",
    "session_id": "AAAA000001",
    "user_name": "ann",
    "exporter": "mx",
    "mail_from": "ann@x.org",
    "mail_to": "b@y.org,c@y.org",
    "recipients": 2,
    "mail_relay": "mx.y.org[192.0.2.5]:25",
    "mail_status": "sent",
    "message_id": "m1@x.org",
    "src_ip": "192.0.2.7",
    "dst_ip": "192.0.2.5",
    "dst_host": "mx.y.org",
}
RECORD_C = RECORD_A | {
    "start_time": utc(10, 0, 8),
    "end_time": utc(10, 0, 9),
    "duration_s": 1.0,
    "bytes": 90,
    "session_id": "CCCC000003",
    "user_name": None,
    "mail_to": "nobody@y.org",
    "recipients": 1,
    "mail_status": "bounced",
    "message_id": "m3@x.org",
}
RECORD_B = RECORD_A | {
    "start_time": utc(10, 0, 2),
    "end_time": utc(10, 30, 5),
    "duration_s": 1802.0,
    "bytes": 500,
    "src_host": None,
    "session_id": "BBBB000002",
    "user_name": None,
    "mail_from": "zed@z.org",
    "mail_to": "c@w.org",
    "recipients": 1,
    "mail_relay": "mx.w.org[198.51.100.1]:25",
    "message_id": "m2@z.org",
    "src_ip": "2001:db8::9",
    "dst_ip": "198.51.100.1",
    "dst_host": "mx.w.org",
}


def test_messages_joined_by_queue_id_across_batches() -> None:
    fmt = make_format("postfix")
    assert isinstance(fmt, PostfixFormat)
    fmt._now = lambda: NOW
    first = fmt.parse(batch(LOG))
    assert first.records.to_pylist() == [RECORD_A, RECORD_C]
    assert first.bad == [(11, "not a syslog line ('Mmm dd hh:mm:ss host program[pid]: message')")]
    # B is held (deferred, not removed); connect, kernel and bounce lines are ignored
    assert fmt.held == 1
    assert (fmt.used, fmt.ignored) == (15, 3)
    second = fmt.parse(batch(LATER))
    # the deferral made no record; the final delivery completes B with its first lines
    assert second.records.to_pylist() == [RECORD_B]
    assert fmt.held == 1  # EEEE000005: a local delivery whose removal has not come yet
    flushed = fmt.flush()
    assert [r["session_id"] for r in flushed.records.to_pylist()] == ["EEEE000005"]
    assert flushed.records.column("dst_host").to_pylist() == [None]
    assert flushed.records.column("mail_relay").to_pylist() == ["local"]
    assert fmt.held == 0


def test_every_split_point_gives_the_same_records() -> None:
    lines = (LOG + LATER).splitlines()
    expected = None
    for cut in range(0, len(lines) + 1, 3):
        fmt = fresh()
        parts = [
            fmt.parse(pa.table({"line": lines[:cut]})),
            fmt.parse(pa.table({"line": lines[cut:]})),
            fmt.flush(),
        ]
        ids = sorted(r["session_id"] for p in parts for r in p.records.to_pylist())
        if expected is None:
            expected = ids
        assert ids == expected == ["AAAA000001", "BBBB000002", "CCCC000003", "EEEE000005"]


def test_message_bodies_with_syslog_columns() -> None:
    body = [line.split(": ", 1)[1] for line in LOG.splitlines()[1:11]]
    apps = [line.split(" ")[4].split("[")[0] for line in LOG.splitlines()[1:11]]
    times = [utc(10, 0, int(line[13:15])) for line in LOG.splitlines()[1:11]]
    table = pa.table(
        {
            "line": body,
            "app": apps,
            "host": ["mx2"] * len(body),
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )
    parsed = fresh().parse(table)
    assert parsed.bad == []
    assert parsed.records.to_pylist() == [RECORD_A | {"exporter": "mx2"}]


def test_rfc3339_time_and_timezone() -> None:
    fmt = PostfixFormat(PostfixOptions(timezone="Europe/Berlin"), now=lambda: NOW)
    text = LOG.replace("Nov 23 10:00:01", "2024-11-23T08:00:01.250+00:00")
    records = fmt.parse(batch(text)).records.to_pylist()
    assert records[0]["start_time"] == datetime(2024, 11, 23, 8, 0, 1, 250000, tzinfo=UTC)
    assert records[0]["end_time"] == utc(9, 0, 6)  # 10:00:06 Berlin is 09:00:06 UTC


def test_year_is_inferred_back_over_new_year() -> None:
    fmt = PostfixFormat(now=lambda: datetime(2025, 1, 2, tzinfo=UTC))
    records = fmt.parse(batch(LOG)).records.to_pylist()
    assert records[0]["start_time"] == utc(10, 0, 1)  # Nov 23 is last year's


def test_horizon_releases_stale_messages() -> None:
    fmt = PostfixFormat(PostfixOptions(horizon_s=600), now=lambda: NOW)
    fmt.parse(batch(LOG))
    assert fmt.held == 1
    # an hour later: B (deferred only, no final recipient) is released without a record
    later = "Nov 23 11:00:00 mx postfix/smtpd[100]: FFFF000006: client=a[192.0.2.1]\n"
    parsed = fmt.parse(batch(later))
    assert parsed.records.num_rows == 0
    assert fmt.released_incomplete == 1
    assert fmt.held == 1  # FFFF000006


def test_max_held_releases_the_oldest() -> None:
    fmt = PostfixFormat(PostfixOptions(max_held=2), now=lambda: NOW)
    lines = [
        f"Nov 23 10:00:0{i} mx postfix/smtp[1]: Q{i}AAAAAA: to=<u{i}@y.org>, relay=r[192.0.2.1]:25,"
        f" delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (ok)"
        for i in range(4)
    ]
    parsed = fmt.parse(batch("\n".join(lines)))
    assert [r["session_id"] for r in parsed.records.to_pylist()] == ["Q0AAAAAA", "Q1AAAAAA"]
    assert fmt.held == 2


def test_expired_message() -> None:
    text = (
        "Nov 23 10:00:01 mx postfix/qmgr[1]: ABCDE12345: from=<a@x.org>, size=10, nrcpt=1 "
        "(queue active)\n"
        "Nov 28 10:00:01 mx postfix/qmgr[1]: ABCDE12345: from=<a@x.org>, status=expired, "
        "returned to sender\n"
        "Nov 28 10:00:01 mx postfix/qmgr[1]: ABCDE12345: removed\n"
    )
    (record,) = fresh().parse(batch(text)).records.to_pylist()
    assert (record["mail_status"], record["recipients"], record["bytes"]) == ("expired", 0, 10)


LINE_PARTS = LOG.splitlines() + LATER.splitlines()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=120),
            st.sampled_from(LINE_PARTS),
            st.builds(
                lambda line, cut, junk: line[:cut] + junk + line[cut:],
                st.sampled_from(LINE_PARTS),
                st.integers(0, 150),
                st.text(max_size=8),
            ),
        ),
        max_size=40,
    ),
    st.integers(0, 40),
)
def test_random_lines_never_raise_and_every_line_is_accounted(lines: list[str], cut: int) -> None:
    fmt = fresh()
    clean = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    bad = 0
    for part in (clean[:cut], clean[cut:]):
        parsed = fmt.parse(pa.table({"line": pa.array(part, pa.string())}))
        bad += len(parsed.bad)
        assert all(0 <= i < len(part) for i, _ in parsed.bad)
    fmt.flush()
    assert fmt.used + fmt.ignored + bad == len(clean)
