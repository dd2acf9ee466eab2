"""Hand-written lines through the netfilter, ASA and CEF formats and the syslog header
parser: exact field values, the reasons for bad lines, and hostile input."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netdistill.sources.lines import FORMATS, make_format
from netdistill.sources.syslog.header import parse_headers
from netdistill.sources.syslog.listener import records_table, run_formats

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def lines_table(lines: list[str]) -> pa.Table:
    n = len(lines)
    return pa.table(
        {
            "line": pa.array(lines, pa.string()),
            "exporter": pa.array(["192.0.2.9"] * n, pa.string()),
            "time": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
        }
    )


def rows(name: str, lines: list[str]) -> tuple[list[dict[str, object]], list[tuple[int, str]]]:
    parsed = make_format(name).parse(lines_table(lines))
    return parsed.records.to_pylist(), parsed.bad


NETFILTER = [
    "fw-drop: IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 SRC=10.0.0.1 "
    "DST=10.0.0.2 LEN=60 TOS=0x10 PREC=0x00 TTL=64 ID=54321 DF PROTO=TCP SPT=51515 DPT=80 "
    "WINDOW=29200 RES=0x00 ACK SYN URGP=0",
    "[ 1234.567890] IN= OUT=eth1 SRC=10.0.0.3 DST=192.0.2.53 LEN=73 TOS=0x00 PREC=0x00 TTL=64 "
    "ID=7 PROTO=UDP SPT=5353 DPT=53 LEN=53",
    "IN=eth0 OUT= SRC=10.0.0.3 DST=10.0.0.4 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF "
    "PROTO=ICMP TYPE=8 CODE=0 ID=12 SEQ=1",
    "v6 in IN=eth0 OUT=eth1 MAC=aa:bb SRC=2001:0db8:0000::1 DST=2001:db8::2 LEN=80 TC=0 "
    "HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=443 DPT=40000 WINDOW=1 RES=0x00 ACK FIN URGP=0",
    "IN=eth0 OUT= SRC=10.9.9.9 DST=10.9.9.8 LEN=40 TOS=0x00 PREC=0x00 TTL=1 ID=0 PROTO=47",
]


def test_netfilter_fields() -> None:
    records, bad = rows("netfilter", NETFILTER)
    assert bad == []
    keys = ("src_ip", "dst_ip", "src_port", "dst_port", "protocol", "bytes", "packets")
    assert [tuple(r[k] for k in keys) for r in records] == [
        ("10.0.0.1", "10.0.0.2", 51515, 80, 6, 60, 1),
        ("10.0.0.3", "192.0.2.53", 5353, 53, 17, 73, 1),
        ("10.0.0.3", "10.0.0.4", None, None, 1, 84, 1),
        ("2001:db8::1", "2001:db8::2", 443, 40000, 6, 80, 1),
        ("10.9.9.9", "10.9.9.8", None, None, 47, 40, 1),
    ]
    assert [r["tcp_flags"] for r in records] == [0x12, None, None, 0x11, None]
    assert [r["tos"] for r in records] == [0x10, 0, 0, 0, 0]
    assert [r["log_prefix"] for r in records] == ["fw-drop:", None, None, "v6 in", None]
    assert [(r["in_interface"], r["out_interface"]) for r in records] == [
        ("eth0", None),
        (None, "eth1"),
        ("eth0", None),
        ("eth0", "eth1"),
        ("eth0", None),
    ]
    assert [(r["icmp_type"], r["icmp_code"]) for r in records][2] == (8, 0)
    assert all(r["start_time"] == r["end_time"] == T0 for r in records)
    assert all(r["exporter"] == "192.0.2.9" for r in records)


def test_netfilter_bad_lines() -> None:
    records, bad = rows(
        "netfilter",
        [
            "hello world",
            "IN=eth0 OUT= SRC=10.0.0.300 DST=10.0.0.1 LEN=5 TOS=0x00",
            "IN=eth0 OUT= PROTO=TCP",
            NETFILTER[0],
        ],
    )
    assert len(records) == 1
    assert bad == [
        (0, "netfilter: no IN= field"),
        (1, "netfilter: SRC or DST is not an IP address"),
        (2, "netfilter: no SRC=/DST=/LEN= after IN= and OUT="),
    ]


ASA = [
    "%ASA-6-302014: Teardown TCP connection 4711 for outside:198.51.100.7/443 to "
    "inside:10.1.1.5/51234 duration 0:01:05 bytes 123456 TCP FINs",
    "%ASA-6-302014: Teardown TCP connection 8 for inside:10.1.1.2/12523 to NP Identity "
    "Ifc:10.1.1.1/22 duration 0:00:53 bytes 2436 TCP Reset-O from outside (LOCAL\\bob)",
    "%ASA-6-302016: Teardown UDP connection 77 for outside:2001:db8::53/53 to "
    "inside:10.1.1.5/5353 duration 25:00:01 bytes 300",
    "%ASA-6-302021: Teardown ICMP connection for faddr 198.51.100.8/0 gaddr 203.0.113.5/1 "
    "laddr 10.1.1.5/1 type 8 code 0",
    "%ASA-6-302013: Built outbound TCP connection 9 for outside:10.1.2.1/22 (10.1.2.1/22) "
    "to inside:10.1.1.2/53496 (10.1.1.2/53496)",
]


def test_asa_fields() -> None:
    records, bad = rows("asa", ASA)
    assert bad == []
    assert len(records) == 4  # the 302013 Built message is recognised and skipped
    keys = ("src_ip", "src_port", "dst_ip", "dst_port", "protocol", "bytes", "duration_s")
    assert [tuple(r[k] for k in keys) for r in records] == [
        ("198.51.100.7", 443, "10.1.1.5", 51234, 6, 123456, 65.0),
        ("10.1.1.2", 12523, "10.1.1.1", 22, 6, 2436, 53.0),
        ("2001:db8::53", 53, "10.1.1.5", 5353, 17, 300, 90001.0),
        ("198.51.100.8", None, "10.1.1.5", None, 1, None, None),
    ]
    assert [r["session_id"] for r in records] == ["4711", "8", "77", None]
    assert [r["teardown_reason"] for r in records] == [
        "TCP FINs",
        "TCP Reset-O from outside",
        None,
        None,
    ]
    assert [r["asa_message_id"] for r in records] == ["302014", "302014", "302016", "302021"]
    assert [(r["in_interface"], r["out_interface"]) for r in records][:2] == [
        ("outside", "inside"),
        ("inside", "NP Identity Ifc"),
    ]
    assert records[0]["end_time"] == T0
    assert records[0]["start_time"] == datetime(2024, 3, 1, 11, 58, 55, tzinfo=UTC)
    assert records[2]["start_time"] == datetime(2024, 2, 29, 10, 59, 59, tzinfo=UTC)
    assert records[3]["start_time"] == records[3]["end_time"] == T0
    assert (records[3]["icmp_type"], records[3]["icmp_code"]) == (8, 0)


def test_asa_bad_lines() -> None:
    records, bad = rows(
        "asa",
        ["no tag here", "%ASA-6-302014: Teardown TCP connection 8 for nowhere", ASA[0]],
    )
    assert len(records) == 1
    assert bad == [
        (0, "asa: no %ASA-n-NNNNNN: message tag"),
        (1, "asa: teardown message not in the documented form"),
    ]


CEF = [
    "CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|src=10.0.0.1 "
    "dst=2.1.2.2 spt=1232",
    r"CEF:0|Vend\|or|Prod\\uct|1.0|sig\|1|Name with \\ backslash|Low|src=10.0.0.2 "
    r"dst=10.0.0.3 spt=1 dpt=443 proto=TCP in=100 out=2000 suser=bob smith duser=alice "
    r"request=https://x.example/a?b\=c act=blocked now rt=1709294400123 msg=a\nb cs1=a\\b",
    "fw1 CEF:0|V|P|1|2|N|5|start=Mar 01 2024 11:00:00 end=Mar 01 2024 11:30:00.500 UTC "
    "src=2001:DB8::7 out=5",
]


def test_cef_fields() -> None:
    records, bad = rows("cef", CEF)
    assert bad == []
    keys = ("src_ip", "dst_ip", "src_port", "dst_port", "protocol", "bytes")
    assert [tuple(r[k] for k in keys) for r in records] == [
        ("10.0.0.1", "2.1.2.2", 1232, None, None, None),
        ("10.0.0.2", "10.0.0.3", 1, 443, 6, 2100),
        ("2001:db8::7", None, None, None, None, 5),
    ]
    second = records[1]
    assert (second["bytes_in"], second["bytes_out"]) == (100, 2000)
    assert (second["user_name"], second["dst_user"]) == ("bob smith", "alice")
    assert second["url"] == "https://x.example/a?b=c"
    assert second["action"] == "blocked now"
    assert (second["cef_vendor"], second["cef_product"], second["cef_signature"]) == (
        "Vend|or",
        "Prod\\uct",
        "sig|1",
    )
    assert (second["cef_name"], second["cef_severity"]) == ("Name with \\ backslash", "Low")
    rt = datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert second["start_time"] == second["end_time"] == rt
    assert records[0]["start_time"] == T0  # no times in the event: the line's time
    assert records[2]["start_time"] == datetime(2024, 3, 1, 11, 0, 0, tzinfo=UTC)
    assert records[2]["end_time"] == datetime(2024, 3, 1, 11, 30, 0, 500000, tzinfo=UTC)


def test_cef_bad_lines() -> None:
    records, bad = rows("cef", ["CEF:0|too|few|fields", "CEF:0|V|P|1|2|N|5|src=10.1.1.999"])
    assert records == []
    assert bad == [
        (0, "cef: no CEF:Version|Vendor|Product|Version|ID|Name|Severity| header"),
        (1, "cef: src is not an IP address"),
    ]


def test_format_chain_passes_bad_lines_on() -> None:
    formats = [(n, make_format(n)) for n in ("netfilter", "asa", "cef")]
    lines = lines_table([ASA[0], NETFILTER[0], "junk", CEF[0], ASA[4]])
    tables, bad, ignored = run_formats(formats, lines)
    assert [t.num_rows for t in tables] == [1, 1, 1]
    assert ignored == 1
    assert bad == [
        (
            2,
            "netfilter: no IN= field; asa: no %ASA-n-NNNNNN: message tag; "
            "cef: no CEF:Version|Vendor|Product|Version|ID|Name|Severity| header",
        )
    ]
    fields = [f for _, fmt in formats for f in fmt.fields]
    unique = list({f.name: f for f in fields}.values())
    table = records_table(tables, unique, "fw")
    assert table.num_rows == 3
    assert table.column("source").to_pylist() == ["fw"] * 3
    assert table.schema.field("in_interface").type == pa.string()
    assert sorted(table.column("src_ip").to_pylist()) == ["10.0.0.1", "10.0.0.1", "198.51.100.7"]


def test_header_fields() -> None:
    messages = [
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbfsu failed",
        b'<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - [ex@32473 a="x\\]"] '
        b"An application event",
        b"<13>1 - - - - - -",
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed\n",
        b"<166>Jan 01 2024 12:00:00: %ASA-6-302014: Teardown",
        b"<166>Feb 29 2024 12:00:00 fw01 : %ASA-6-302016: Teardown",
        b"<134>Feb 12 10:00:00 host CEF:0|Vendor|Prod",
        b"<13>Dec 31 23:59:59 host app[12]: late",
        b"no header at all",
    ]
    received = datetime(2024, 1, 1, 0, 1, tzinfo=UTC).timestamp()
    table = parse_headers(
        messages, exporter=["127.0.0.1"] * 9, received_at=[received] * 9, timezone="UTC"
    )
    got = table.to_pylist()
    assert [r["line"] for r in got] == [
        "su failed",
        "An application event",
        "",
        "'su root' failed",
        "%ASA-6-302014: Teardown",
        "%ASA-6-302016: Teardown",
        "CEF:0|Vendor|Prod",
        "late",
        "no header at all",
    ]
    assert [r["host"] for r in got] == [
        "mymachine.example.com",
        "192.0.2.1",
        None,
        "mymachine",
        None,
        "fw01",
        "host",
        "host",
        None,
    ]
    assert [r["app"] for r in got] == ["su", "myproc", None, "su", None, None, None, "app", None]
    assert [r["time"] for r in got] == [
        datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC),
        datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC),
        None,
        datetime(2023, 10, 11, 22, 14, 15, tzinfo=UTC),  # would be in the future in 2024
        datetime(2024, 1, 1, 12, 0, tzinfo=UTC),  # year in the message: kept
        datetime(2024, 2, 29, 12, 0, tzinfo=UTC),
        datetime(2023, 2, 12, 10, 0, tzinfo=UTC),
        datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC),
        None,
    ]
    assert [r["severity"] for r in got] == [2, 5, 5, 2, 6, 6, 6, 5, None]


def test_header_timezone() -> None:
    received = datetime(2024, 7, 1, 12, 0, tzinfo=UTC).timestamp()
    table = parse_headers(
        [b"<13>Jul  1 13:30:00 h a: x"],
        exporter=["127.0.0.1"],
        received_at=[received],
        timezone="Europe/Berlin",
    )
    assert table.column("time").to_pylist() == [datetime(2024, 7, 1, 11, 30, tzinfo=UTC)]


@pytest.mark.parametrize("name", ["netfilter", "asa", "cef"])
def test_formats_registered(name: str) -> None:
    assert name in FORMATS


VALID = [*NETFILTER, *ASA, *CEF]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.builds(
                lambda line, cut, junk: line.encode()[:cut] + junk + line.encode()[cut:],
                st.sampled_from(VALID),
                st.integers(0, 300),
                st.binary(max_size=8),
            ),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_hostile_input_never_raises(messages: list[bytes]) -> None:
    n = len(messages)
    framed = [b"<13>Jan  1 00:00:00 h k: " + m for m in messages[: n // 2]] + messages[n // 2 :]
    table = parse_headers(framed, exporter=["127.0.0.1"] * n, received_at=[0.0] * n)
    assert table.num_rows == n
    formats = [(f, make_format(f)) for f in ("netfilter", "asa", "cef")]
    tables, bad, ignored = run_formats(formats, table)
    assert sum(t.num_rows for t in tables) + len(bad) + ignored == n
    assert all(reason for _, reason in bad)
