"""Squid, Common and Combined formats: exact field values of hand-written lines (Apache
and nginx styles), reasons for bad lines, and hostile input (Hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netdistill.sources.lines import check_format, make_format


def parse(name: str, lines: list[str], **options: object):
    return make_format(name, options).parse(pa.table({"line": pa.array(lines, pa.string())}))


def ts(*args: int, us: int = 0) -> datetime:
    return datetime(*args, microsecond=us, tzinfo=UTC)  # type: ignore[misc]


SQUID = [
    "1700000000.123    456 192.0.2.7 TCP_MISS/200 1234 GET http://a.example/x?y=1 alice "
    "HIER_DIRECT/198.51.100.1 text/html",
    "1700000100.000      0 2001:DB8::7 TCP_TUNNEL/200 5000 CONNECT a.example:443 - "
    "HIER_DIRECT/a.example -",
    "1700000200.5 10 client.example TCP_DENIED/403 3900 GET https://b.example/ - HIER_NONE/- "
    "text/html",
]


def test_squid_fields_exact():
    parsed = parse("squid", SQUID)
    assert parsed.bad == []
    rows = parsed.records.to_pylist()
    assert rows[0] == {
        "start_time": ts(2023, 11, 14, 22, 13, 19, us=667_000),
        "end_time": ts(2023, 11, 14, 22, 13, 20, us=123_000),
        "duration_s": 0.456,
        "src_ip": "192.0.2.7",
        "src_host": None,
        "dst_ip": "198.51.100.1",
        "dst_host": None,
        "user_name": "alice",
        "url": "http://a.example/x?y=1",
        "bytes": 1234,
        "service": "http",
        "http_method": "GET",
        "http_status": 200,
        "cache_result": "TCP_MISS",
        "content_type": "text/html",
        "squid_error": None,
    }
    assert (rows[1]["src_ip"], rows[1]["dst_ip"], rows[1]["dst_host"]) == (
        "2001:db8::7",
        None,
        "a.example",
    )
    assert (rows[1]["service"], rows[1]["user_name"], rows[1]["content_type"]) == (
        "https",
        None,
        None,
    )
    assert rows[1]["start_time"] == rows[1]["end_time"] == ts(2023, 11, 14, 22, 15)
    assert (rows[2]["src_ip"], rows[2]["src_host"], rows[2]["dst_ip"]) == (
        None,
        "client.example",
        None,
    )
    assert (rows[2]["service"], rows[2]["http_status"], rows[2]["duration_s"]) == (
        "https",
        403,
        0.01,
    )
    assert rows[2]["end_time"] == ts(2023, 11, 14, 22, 16, 40, us=500_000)
    schema = parsed.records.schema
    assert schema.field("bytes").type == pa.uint64()
    assert schema.field("http_status").type == pa.uint16()
    assert schema.field("start_time").type == pa.timestamp("us", tz="UTC")


#: lines Squid 5.7 wrote (tests/sources/logs/test_squid_peer.py makes it write them):
#: a connection closed before a request, a request Squid could not parse, a health check
#: (Squid 3's ``NONE`` method), a CONNECT aborted before any reply, and a real request
SQUID_INTERNAL = [
    "1796326936.668      0 127.0.0.1 NONE_NONE/000 0 - error:transaction-end-before-headers - "
    "HIER_NONE/- -",
    "1796326936.672      4 127.0.0.1 NONE_NONE/400 3376 GARBAGE error:invalid-request - "
    "HIER_NONE/- text/html",
    "1700000000.000      0 192.0.2.9 NONE/400 3885 NONE error:invalid-request - HIER_NONE/- "
    "text/html",
    "1700000001.000     12 192.0.2.9 NONE_NONE/000 0 CONNECT b.example:443 - HIER_NONE/- -",
    "1796326936.673      0 127.0.0.1 TCP_MISS/503 3426 GET http://127.0.0.1:1/ - "
    "HIER_DIRECT/127.0.0.1 text/html",
]


def test_squid_lines_without_a_request_are_squid_internal_not_http():
    parsed = parse("squid", SQUID_INTERNAL)
    assert parsed.bad == []
    rows = parsed.records.select(
        ["http_method", "http_status", "url", "squid_error", "service", "bytes", "dst_ip"]
    ).to_pylist()
    assert rows == [
        {
            "http_method": None,
            "http_status": None,
            "url": None,
            "squid_error": "transaction-end-before-headers",
            "service": "squid-internal",
            "bytes": 0,
            "dst_ip": None,
        },
        {
            "http_method": "GARBAGE",
            "http_status": 400,
            "url": None,
            "squid_error": "invalid-request",
            "service": "squid-internal",
            "bytes": 3376,
            "dst_ip": None,
        },
        {
            "http_method": None,
            "http_status": 400,
            "url": None,
            "squid_error": "invalid-request",
            "service": "squid-internal",
            "bytes": 3885,
            "dst_ip": None,
        },
        {
            "http_method": "CONNECT",
            "http_status": None,
            "url": "b.example:443",
            "squid_error": None,
            "service": "https",
            "bytes": 0,
            "dst_ip": None,
        },
        {
            "http_method": "GET",
            "http_status": 503,
            "url": "http://127.0.0.1:1/",
            "squid_error": None,
            "service": "http",
            "bytes": 3426,
            "dst_ip": "127.0.0.1",
        },
    ]


def test_squid_bad_lines_have_reasons_and_the_rest_is_kept():
    good = SQUID[0]
    lines = [
        good,
        "not a squid line",
        good.replace("1700000000.123", "yesterday"),
        good.replace("    456", " -3"),
        good.replace("TCP_MISS/200", "TCP_MISS"),
        good.replace(" 1234 ", " 12x4 "),
        good + " extra",
        good,
    ]
    parsed = parse("squid", lines)
    assert parsed.records.num_rows == 2
    assert parsed.bad == [
        (1, "expected 10 space-separated fields"),
        (2, "time is not unix seconds"),
        (3, "elapsed time is not a number of milliseconds"),
        (4, "result code is not RESULT/STATUS"),
        (5, "size is not a number of bytes"),
        (6, "expected 10 space-separated fields"),
    ]


APACHE_COMMON = (
    '192.0.2.7 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
)
APACHE_COMBINED = (
    '198.51.100.4 - - [01/Feb/2024:00:00:01 +0100] "POST /login?next=%2F HTTP/1.1" 302 - '
    '"https://example.com/\\"quoted\\"" "Mozilla/5.0 (X11; Linux x86_64) \\"x\\\\y\\""'
)
NGINX = '2001:db8::1 - - [29/Feb/2024:23:59:59 +0000] "\\x16\\x03\\x01" 400 157 "-" "-"'


def test_clf_and_combined_fields_exact():
    parsed = parse("clf", [APACHE_COMMON, APACHE_COMBINED, NGINX])
    assert parsed.bad == []
    rows = parsed.records.to_pylist()
    assert rows[0] == {
        "start_time": ts(2000, 10, 10, 20, 55, 36),
        "end_time": ts(2000, 10, 10, 20, 55, 36),
        "duration_s": None,
        "src_ip": "192.0.2.7",
        "src_host": None,
        "user_name": "frank",
        "url": "/apache_pb.gif",
        "bytes": 2326,
        "service": "http",
        "http_method": "GET",
        "http_status": 200,
        "http_referer": None,
        "http_user_agent": None,
    }
    assert rows[1]["start_time"] == ts(2024, 1, 31, 23, 0, 1)
    assert (rows[1]["http_method"], rows[1]["url"], rows[1]["bytes"]) == (
        "POST",
        "/login?next=%2F",
        0,
    )
    assert rows[1]["http_referer"] == 'https://example.com/"quoted"'
    assert rows[1]["http_user_agent"] == 'Mozilla/5.0 (X11; Linux x86_64) "x\\y"'
    # a TLS probe on a plain-HTTP port: a record without method or URL
    assert (rows[2]["src_ip"], rows[2]["http_method"], rows[2]["url"]) == (
        "2001:db8::1",
        None,
        None,
    )
    assert (rows[2]["http_status"], rows[2]["bytes"]) == (400, 157)
    combined = parse("combined", [APACHE_COMMON, APACHE_COMBINED, NGINX])
    assert combined.records.num_rows == 2
    assert combined.bad == [(0, 'expected 6 quotes (Combined: "request" "referer" "user-agent")')]


def test_elapsed_time_options():
    apache = APACHE_COMMON + " 1500"  # %D: microseconds, %t is the start
    nginx = NGINX.replace('"-" "-"', '"-" "curl/8.5"') + " 0.250"  # $request_time, logged at end
    start = parse("clf", [apache], elapsed="microseconds").records.to_pylist()[0]
    assert (start["start_time"], start["end_time"], start["duration_s"]) == (
        ts(2000, 10, 10, 20, 55, 36),
        ts(2000, 10, 10, 20, 55, 36, us=1500),
        0.0015,
    )
    end = parse("combined", [nginx], elapsed="seconds", time_marks="end").records.to_pylist()[0]
    assert (end["start_time"], end["end_time"], end["duration_s"]) == (
        ts(2024, 2, 29, 23, 59, 59).replace(second=58, microsecond=750_000),
        ts(2024, 2, 29, 23, 59, 59),
        0.25,
    )
    missing = parse("clf", [APACHE_COMMON], elapsed="microseconds")
    assert missing.bad == [(0, "expected status and bytes after the request")]
    assert parse("clf", [apache]).bad == [(0, "expected status and bytes after the request")]


def test_clf_bad_lines_have_reasons():
    lines = [
        "garbage",
        APACHE_COMMON.replace("[10/Oct/2000:13:55:36 -0700]", "[10/Foo/2000:13:55:36 -0700]"),
        APACHE_COMMON.replace(" 200 ", " OK "),
        APACHE_COMMON.replace(" 2326", " many"),
        APACHE_COMMON.replace("frank ", ""),
        APACHE_COMMON,
    ]
    assert parse("clf", lines).bad == [
        (0, 'expected "request" (and "referer" "user-agent")'),
        (1, "date is not [dd/Mon/yyyy:hh:mm:ss +zzzz]"),
        (2, "status is not a number"),
        (3, "bytes is not a number or -"),
        (4, "expected host ident user [date] before the request"),
    ]


def test_format_options_are_checked():
    with pytest.raises(ValueError, match="unknown format 'apache'"):
        check_format("apache", {})
    with pytest.raises(ValueError, match="takes no format_options"):
        check_format("squid", {"elapsed": "seconds"})
    with pytest.raises(ValueError, match="elapsed"):
        check_format("clf", {"elapsed": "hours"})


# --- hostile input ----------------------------------------------------------------------------

_VALID = [*SQUID, APACHE_COMMON, APACHE_COMBINED, NGINX]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    line = draw(st.sampled_from(_VALID))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(line)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        text = draw(st.text(alphabet=' "[]/-\\0123456789.:aZ\t\x00é', max_size=3))
        if action == "insert":
            line = line[:at] + text + line[at:]
        elif action == "delete":
            line = line[:at] + line[at + len(text) :]
        else:
            line = line[:at] + text + line[at + len(text) :]
    return line


@pytest.mark.parametrize("name", ["squid", "clf", "combined"])
@settings(max_examples=150, deadline=None)
@given(lines=st.lists(st.one_of(mutated(), st.text(max_size=80)), max_size=12))
def test_every_line_is_a_record_or_bad(name, lines):
    lines = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    parsed = parse(name, lines)
    assert parsed.records.num_rows + len(parsed.bad) == len(lines)
    assert len({index for index, _ in parsed.bad}) == len(parsed.bad)
    assert all(0 <= index < len(lines) and reason for index, reason in parsed.bad)
