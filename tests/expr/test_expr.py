"""Each operator of the expression language against DuckDB evaluating the same predicate
over the same random data (Hypothesis), null handling included (filter form: null=false)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netdistill.errors import ExprError
from netdistill.expr import compile_predicate, parse

FIELDS = {
    "bytes": "uint64",
    "dst_port": "uint16",
    "service": "string",
    "src_ip": "ip",
    "start_time": "timestamp",
    "ratio": "float64",
}
BASE = datetime(2024, 5, 1, tzinfo=UTC)

ips = st.one_of(
    st.none(),
    st.builds(
        lambda n: str(ipaddress.IPv4Address(n)),
        st.sampled_from(
            [0x0A000001, 0x0A0100FF, 0xC0A80001, 0xC0A80101, 0x08080808, 0xFFFFFFFF, 0]
        ),
    ),
    st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1)),
    st.sampled_from(["2001:db8::1", "2001:db8:1::5", "fe80::1", "::1"]),
)
rows = st.fixed_dictionaries(
    {
        "bytes": st.one_of(st.none(), st.integers(0, 2000)),
        "dst_port": st.one_of(st.none(), st.sampled_from([22, 53, 80, 443, 8080, 65535])),
        "service": st.one_of(
            st.none(), st.sampled_from(["http", "https", "smtp", "dns", "h_p", "a%b", "O'Brien"])
        ),
        "src_ip": ips,
        "start_time": st.one_of(
            st.none(), st.integers(0, 48).map(lambda h: BASE + timedelta(hours=h))
        ),
        "ratio": st.one_of(st.none(), st.floats(-10, 10, allow_nan=False)),
    }
)

SCHEMA = pa.schema(
    [
        ("bytes", pa.uint64()),
        ("dst_port", pa.uint16()),
        ("service", pa.string()),
        ("src_ip", pa.string()),
        ("start_time", pa.timestamp("us", tz="UTC")),
        ("ratio", pa.float64()),
    ]
)

# (our expression, the same predicate in DuckDB SQL)
CASES = [
    ("bytes = 100", "bytes = 100"),
    ("bytes != 100", "bytes != 100"),
    ("bytes <> 100", "bytes <> 100"),
    ("bytes < 1000", "bytes < 1000"),
    ("bytes <= 1000", "bytes <= 1000"),
    ("bytes > 1000", "bytes > 1000"),
    ("bytes >= 1000", "bytes >= 1000"),
    ("ratio > -2.5", "ratio > -2.5"),
    ("bytes > dst_port", "bytes > dst_port"),
    ("service = 'http'", "service = 'http'"),
    ("service < 'i'", "service < 'i'"),
    ("service = 'O''Brien'", "service = 'O''Brien'"),
    ("dst_port in (80, 443)", "dst_port in (80, 443)"),
    ("dst_port not in (80, 443)", "dst_port not in (80, 443)"),
    ("service in ('http', 'dns')", "service in ('http', 'dns')"),
    ("service like 'h%'", "service like 'h%'"),
    ("service like 'h_p'", "service like 'h_p'"),
    ("service not like '%s'", "service not like '%s'"),
    ("service like 'a%b'", "service like 'a%b'"),
    ("service matches 't+p'", "regexp_matches(service, 't+p')"),
    ("service is null", "service is null"),
    ("bytes is not null", "bytes is not null"),
    ("not bytes > 10", "not bytes > 10"),
    ("bytes > 10 and service = 'http'", "bytes > 10 and service = 'http'"),
    ("bytes > 10 or service = 'http'", "bytes > 10 or service = 'http'"),
    (
        "not (bytes > 10 or dst_port = 22) and service is not null",
        "not (bytes > 10 or dst_port = 22) and service is not null",
    ),
    ("start_time >= '2024-05-02T00:00:00Z'", "start_time >= TIMESTAMPTZ '2024-05-02 00:00:00+00'"),
    (
        "start_time < timestamp '2024-05-01 12:00:00'",
        "start_time < TIMESTAMPTZ '2024-05-01 12:00:00+00'",
    ),
    ("src_ip = 10.0.0.1", "src_ip = '10.0.0.1'"),
    ("src_ip = '2001:db8::1'", "src_ip = '2001:db8::1'"),
    ("src_ip in (10.0.0.1, '::1')", "src_ip in ('10.0.0.1', '::1')"),
]
# networks: DuckDB's inet extension is not installed offline, so the reference is Python's
# ipaddress on each row
NETWORKS = [
    "10.0.0.0/8",
    "192.168.0.0/24",
    "0.0.0.0/0",
    "8.8.8.8/32",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "::/0",
]


def _frame(data):
    return pa.Table.from_pylist(data, schema=SCHEMA)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, min_size=1, max_size=40))
def test_operators_agree_with_duckdb(data):
    table = _frame(data)
    frame = pl.from_arrow(table)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("t", table)
    for ours, sql in CASES:
        got = frame.select(compile_predicate(ours, FIELDS)).to_series().to_list()
        want = [r[0] for r in con.execute(f"SELECT coalesce({sql}, false) FROM t").fetchall()]
        assert got == want, ours
    con.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(ips, min_size=1, max_size=60), st.sampled_from(NETWORKS), st.booleans())
def test_ip_in_network_agrees_with_ipaddress(addresses, network, negated):
    frame = pl.DataFrame({"src_ip": addresses}, schema={"src_ip": pl.Utf8})
    text = f"src_ip {'not ' if negated else ''}in '{network}'"
    got = frame.select(compile_predicate(text, FIELDS)).to_series().to_list()
    net = ipaddress.ip_network(network)
    want = []
    for a in addresses:
        if a is None:
            want.append(False)
            continue
        ip = ipaddress.ip_address(a)
        inside = ip.version == net.version and ip in net
        want.append(not inside if negated else inside)
    assert got == want


def test_bare_ipv4_network_literal():
    frame = pl.DataFrame({"src_ip": ["10.9.8.7", "11.0.0.1", None]})
    assert frame.select(
        compile_predicate("src_ip in 10.0.0.0/8", FIELDS)
    ).to_series().to_list() == [True, False, False]


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("bytes > 'x'", 7, "cannot compare number with string"),
        ("src_ip < 10.0.0.1", 8, "ip values have no order; use = or !="),
        ("colour = 1", 1, "unknown field 'colour'"),
        ("service in 10.0.0.0/8", 9, "'in <network>' needs an ip, found string"),
        ("bytes like 'a%'", 7, "'like'/'matches' need a string, found number"),
        ("bytes > 1 and", 14, "expected a field name or a value, found the end"),
        ("(bytes > 1", 11, "expected ')', found the end"),
        ("service = 'abc", 11, "string is not closed (missing ')"),
        ("bytes # 3", 7, "unexpected character '#'"),
        ("start_time > 'yesterday'", 14, "'yesterday' is not an ISO-8601 time"),
        ("src_ip = 'host'", 10, "'host' is not an IP address"),
        ("dst_port in (80, 'http')", 18, "list item is string, expected number"),
        ("bytes", 1, "the expression is not a condition (true/false)"),
        (
            "service matches '('",
            9,
            "bad regular expression: missing ), unterminated subpattern at position 0",
        ),
    ],
)
def test_errors_name_the_column(text, column, message):
    with pytest.raises(ExprError) as info:
        compile_predicate(text, FIELDS)
    assert (info.value.column, info.value.message) == (column, message)


def test_parser_never_evaluates_python():
    with pytest.raises(ExprError):
        parse("__import__('os').system('true')")
