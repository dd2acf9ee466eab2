"""The live sources with a real peer: util-linux ``logger`` sends RFC 3164 and RFC 5424
messages over UDP and TCP (newline and octet-counted framing) to ``type: syslog``;
records + quarantined + ignored add up to what was sent."""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import UTC, datetime

import peers
import pyarrow as pa
import pytest

from netdistill.sources.base import MALFORMED
from netdistill.sources.syslog.config import LinesSourceConfig, SyslogSourceConfig
from netdistill.sources.syslog.listener import LinesSource, SyslogSource

NETFILTER = (
    "IN=eth0 OUT= SRC=10.0.0.{i} DST=10.0.0.2 LEN={n} TOS=0x00 PREC=0x00 TTL=64 ID=1 DF "
    "PROTO=TCP SPT=4000{i} DPT=80 WINDOW=1 RES=0x00 SYN URGP=0"
)
ASA = (
    "%ASA-6-302014: Teardown TCP connection {i} for outside:198.51.100.7/443 to "
    "inside:10.1.1.{i}/51234 duration 0:00:10 bytes {n} TCP FINs"
)


def collect(source: SyslogSource | LinesSource, expected: int, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    tables: list[pa.Table] = []
    quarantined = []
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        result = source.poll(10_000)
        if result.records.num_rows:
            tables.append(result.records)
        quarantined.extend(result.quarantined)
        done = (
            sum(t.num_rows for t in tables)
            + len(quarantined)
            + source.counters.dropped.get("ignored", 0)
        )
        if done >= expected:
            break
        time.sleep(0.05)
    records = pa.concat_tables(tables).to_pylist() if tables else []
    return records, quarantined


def logger(*args: str) -> None:
    done = subprocess.run(["logger", *args], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def source():  # type: ignore[no-untyped-def]
    peers.require("logger")
    udp, tcp = peers.free_udp_port(), peers.free_tcp_port()
    config = SyslogSourceConfig(
        type="syslog",
        name="fw",
        listen=[f"udp://127.0.0.1:{udp}", f"tcp://127.0.0.1:{tcp}"],
        formats=["netfilter", "asa"],
        timezone="UTC",
    )
    src = SyslogSource(config)
    src.start()
    try:
        yield src, udp, tcp
    finally:
        src.stop()


@pytest.mark.parametrize(
    ("transport", "framing"),
    [
        ("-d", "--rfc3164"),
        ("-d", "--rfc5424"),
        ("-T", "--rfc3164"),
        ("-T", "--rfc5424"),
        ("-T", "--octet-count"),
    ],
)
def test_logger_messages_arrive(source, transport: str, framing: str) -> None:  # type: ignore[no-untyped-def]
    src, udp, tcp = source
    port = udp if transport == "-d" else tcp
    options = [framing] if framing != "--octet-count" else ["--rfc5424", "--octet-count"]
    lines = [NETFILTER.format(i=i, n=100 + i) for i in range(1, 4)]
    lines += [ASA.format(i=i, n=1000 * i) for i in range(1, 4)]
    lines += ["not a firewall line at all", "IN=eth9 broken"]
    before = time.time()
    for line in lines:
        logger(
            transport,
            *options,
            "-n",
            "127.0.0.1",
            "-P",
            str(port),
            "-t",
            "fwtest",
            "-p",
            "kern.warning",
            "--",
            line,
        )
    records, quarantined = collect(src, len(lines))
    after = time.time()
    assert len(records) == 6 and len(quarantined) == 2
    assert src.counters.records == 6 and src.counters.datagrams == len(lines)
    assert src.counters.dropped[MALFORMED] == 2
    by_src = {(r["src_ip"], r["dst_ip"]): r for r in records}
    for i in range(1, 4):
        nf = by_src[(f"10.0.0.{i}", "10.0.0.2")]
        assert (nf["bytes"], nf["src_port"], nf["protocol"], nf["tcp_flags"]) == (
            100 + i,
            int(f"4000{i}"),
            6,
            2,
        )
        asa = by_src[("198.51.100.7", f"10.1.1.{i}")]
        assert (asa["bytes"], asa["duration_s"], asa["session_id"]) == (1000 * i, 10.0, str(i))
    for r in records:
        assert r["exporter"] == "127.0.0.1" and r["source"] == "fw"
        # logger stamps its own time: RFC 5424 with microseconds and zone, RFC 3164 to the
        # second in local time (the test machine runs UTC, as the source is configured)
        assert before - 1 <= r["end_time"].timestamp() <= after + 1
    reasons = sorted(q.reason for q in quarantined)
    assert reasons == [MALFORMED, MALFORMED]
    assert all(q.location.startswith("127.0.0.1:") for q in quarantined)
    payloads = [q.payload for q in quarantined]
    assert sorted(p.endswith(b"IN=eth9 broken") for p in payloads) == [False, True]
    assert sorted(p.endswith(b"not a firewall line at all") for p in payloads) == [False, True]
    details = sorted(q.detail for q in quarantined)
    assert details[0] == "netfilter: no IN= field; asa: no %ASA-n-NNNNNN: message tag"
    assert details[1].startswith("netfilter: no SRC=/DST=/LEN=")


def test_logger_header_fields(source) -> None:  # type: ignore[no-untyped-def]
    """The exact header fields logger sends, read back through the header parser."""
    src, udp, _ = source
    logger("-d", "--rfc5424", "-n", "127.0.0.1", "-P", str(udp), "-t", "myapp", "--", "x")
    received = src.udp.drain(10)
    assert len(received) == 1
    payload = received[0][0]
    from netdistill.sources.syslog.header import parse_headers

    row = parse_headers([payload], exporter=["127.0.0.1"], received_at=[time.time()]).to_pylist()[0]
    assert row["line"] == "x" and row["app"] == "myapp"
    assert row["host"] == socket.gethostname()
    assert row["severity"] == 5  # logger's default priority user.notice
    assert abs(row["time"].timestamp() - datetime.now(UTC).timestamp()) < 5


def test_lines_source_tcp_and_udp() -> None:
    tcp, udp = peers.free_tcp_port(), peers.free_udp_port()
    config = LinesSourceConfig(
        type="lines",
        name="feed",
        listen=[f"tcp://127.0.0.1:{tcp}", f"udp://127.0.0.1:{udp}"],
        format="cef",
    )
    src = LinesSource(config)
    src.start()
    try:
        cef = "CEF:0|V|P|1|sig|N|3|src=10.0.0.{i} dst=10.0.0.99 in={i}"
        with socket.create_connection(("127.0.0.1", tcp)) as conn:
            conn.sendall("".join(cef.format(i=i) + "\n" for i in range(1, 6)).encode())
            conn.sendall(b"junk line\n" + cef.format(i=6).encode())  # last one has no LF
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto((cef.format(i=7) + "\n" + cef.format(i=8)).encode(), ("127.0.0.1", udp))
        records, quarantined = collect(src, 5 + 1 + 1 + 2)
        assert sorted(r["bytes"] for r in records) == [1, 2, 3, 4, 5, 7, 8]
        assert sorted((q.reason, q.payload) for q in quarantined) == [
            (MALFORMED, b"junk line"),
            ("partial_message", cef.format(i=6).encode()),
        ]
    finally:
        src.stop()


def test_default_configs_validate() -> None:
    config = SyslogSourceConfig(type="syslog", name="s")
    assert config.listen == ["udp://0.0.0.0:514"] and config.formats == ["netfilter", "asa", "cef"]
    with pytest.raises(ValueError, match="unknown format 'nope'"):
        SyslogSourceConfig(type="syslog", name="s", formats=["nope"])
    with pytest.raises(ValueError, match="unknown time zone"):
        SyslogSourceConfig(type="syslog", name="s", timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="udp://HOST:PORT"):
        SyslogSourceConfig(type="syslog", name="s", listen=["514"])
    with pytest.raises(ValueError, match="a port is needed"):
        LinesSourceConfig(type="lines", name="l", listen=["tcp://127.0.0.1"], format="cef")
