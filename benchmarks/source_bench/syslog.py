"""Syslog header parsing and the netfilter, ASA and CEF formats: lines/s on one core."""

from __future__ import annotations

import time

import pyarrow as pa

from source_bench import Figure

TARGET = 500_000.0
NETFILTER = (
    "fw: IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 SRC=10.0.{a}.{b} "
    "DST=10.1.0.2 LEN={n} TOS=0x00 PREC=0x00 TTL=64 ID=54321 DF PROTO=TCP SPT={p} DPT=443 "
    "WINDOW=29200 RES=0x00 ACK SYN URGP=0"
)
ASA = (
    "%ASA-6-302014: Teardown TCP connection {n} for outside:198.51.{a}.{b}/443 to "
    "inside:10.1.1.5/{p} duration 0:01:05 bytes {n} TCP FINs"
)
CEF = (
    "CEF:0|Vendor|Firewall|1.0|100|Connection closed|3|src=10.0.{a}.{b} dst=198.51.100.7 "
    "spt={p} dpt=443 proto=TCP in={n} out=2000 suser=user{b} act=allowed rt=1709294400123"
)


def _lines(template: str, n: int) -> list[str]:
    return [template.format(a=i % 250, b=i % 199, n=40 + i % 1400, p=1024 + i % 60000)
            for i in range(n)]  # fmt: skip


def _table(lines: list[str]) -> pa.Table:
    n = len(lines)
    return pa.table(
        {
            "line": pa.array(lines, pa.string()),
            "exporter": pa.array(["192.0.2.1"] * n, pa.string()),
            "time": pa.array([1_709_294_400_000_000] * n, pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
        }
    )


def _cpu_note(n: int, cpu_seconds: float) -> str:
    """CPU time of this process (the machine is shared: wall time includes waiting)."""
    rate = n / cpu_seconds if cpu_seconds else 0.0
    return f"CPU {cpu_seconds:.2f} s = {rate:,.0f}/s"


def run(smoke: bool) -> list[Figure]:
    from netdistill.sources.lines import make_format
    from netdistill.sources.syslog.header import parse_headers

    n = 5_000 if smoke else 500_000
    batch = 50_000
    figures: list[Figure] = []
    payloads = [
        f"<132>Mar  1 12:00:00 fw1 kernel: {line}".encode() for line in _lines(NETFILTER, n)
    ]
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, n, batch):
        part = payloads[i : i + batch]
        parse_headers(part, exporter=["192.0.2.1"] * len(part), received_at=[1.7e9] * len(part))
    figures.append(
        Figure(
            "syslog header (3164)",
            "lines",
            n,
            time.perf_counter() - started,
            TARGET,
            _cpu_note(n, time.process_time() - cpu),
        )
    )
    payloads = [
        f"<132>1 2024-03-01T12:00:00.123Z fw1 kernel - - - {line}".encode()
        for line in _lines(NETFILTER, n)
    ]
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, n, batch):
        part = payloads[i : i + batch]
        parse_headers(part, exporter=["192.0.2.1"] * len(part), received_at=[1.7e9] * len(part))
    figures.append(
        Figure(
            "syslog header (5424)",
            "lines",
            n,
            time.perf_counter() - started,
            TARGET,
            _cpu_note(n, time.process_time() - cpu),
        )
    )
    for name, template in (("netfilter", NETFILTER), ("asa", ASA), ("cef", CEF)):
        tables = [_table(_lines(template, min(batch, n - i))) for i in range(0, n, batch)]
        line_format = make_format(name)
        started, cpu = time.perf_counter(), time.process_time()
        made = 0
        for table in tables:
            made += line_format.parse(table).records.num_rows
        seconds = time.perf_counter() - started
        note = _cpu_note(n, time.process_time() - cpu)
        assert made == n, (name, made)
        figures.append(Figure(f"syslog {name}", "lines", n, seconds, TARGET, note))
    return figures
