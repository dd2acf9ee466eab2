"""Line formats postfix, asterisk, csv and jsonl: lines/s through ``parse`` on one core.

Synthetic but realistic lines, in batches of 20,000 (what a file source hands over);
time of the whole ``parse`` (and ``flush``) calls, lines built beforehand.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pyarrow as pa

from netdistill.sources.lines import make_format
from source_bench import Figure

BATCH = 20_000
TARGET = 500_000.0


def _postfix_lines(n_messages: int) -> list[str]:
    lines = []
    for i in range(n_messages):
        qid = f"{0x4F3A21C0A2 + i:X}"
        t = f"Nov 23 10:{(i // 60) % 60:02d}:{i % 60:02d}"
        lines += [
            f"{t} mx postfix/smtpd[100]: {qid}: client=mail{i % 97}.x.org[192.0.2.{i % 250}]",
            f"{t} mx postfix/cleanup[101]: {qid}: message-id=<{i}@x.org>",
            f"{t} mx postfix/qmgr[102]: {qid}: from=<u{i % 500}@x.org>, size={1000 + i % 9000},"
            " nrcpt=2 (queue active)",
            f"{t} mx postfix/smtp[103]: {qid}: to=<a{i}@y.org>, relay=mx.y.org[192.0.2.5]:25,"
            " delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)",
            f"{t} mx postfix/smtp[103]: {qid}: to=<b{i}@y.org>, relay=mx.y.org[192.0.2.5]:25,"
            " delay=0.6, delays=0.1/0/0.2/0.3, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)",
            f"{t} mx postfix/qmgr[102]: {qid}: removed",
        ]
    return lines


def _asterisk_lines(n: int) -> list[str]:
    return [
        f'"acc{i % 50}","{1000 + i % 300}","555{i:07d}","from-internal",'
        f'"""Caller, {i % 300}"" <{1000 + i % 300}>","SIP/{1000 + i % 300}-{i:08x}",'
        f'"SIP/trunk-{i:08x}","Dial","SIP/trunk/555{i:07d},60,tT","2024-03-01 10:00:00",'
        f'"2024-03-01 10:00:05","2024-03-01 10:01:{i % 60:02d}",{65 + i % 60},{60 + i % 60},'
        f'"ANSWERED","DOCUMENTATION","1709283600.{i}",""'
        for i in range(n)
    ]


def _csv_lines(n: int) -> list[str]:
    return [
        f"2024-03-01 10:{i % 60:02d}:00,user{i % 1000},{i * 7},10.{i % 256}.{i % 199}.1,vpn"
        for i in range(n)
    ]


def _jsonl_lines(n: int) -> list[str]:
    return [
        f'{{"start": {1709283600 + i}, "client": {{"ip": "10.0.{i % 256}.1"}}, '
        f'"user": "user{i % 1000}", "bytes": {i * 7}}}'
        for i in range(n)
    ]


CSV_OPTIONS = {
    "fields": [
        {"name": "start_time", "type": "timestamp", "from": 0},
        {"name": "user_name", "from": 1},
        {"name": "bytes", "type": "uint64", "from": 2},
        {"name": "src_ip", "type": "ip", "from": 3},
        {"name": "service", "from": 4},
    ]
}
JSONL_OPTIONS = {
    "fields": [
        {"name": "start_time", "type": "timestamp", "from": "start", "format": "epoch_s"},
        {"name": "src_ip", "type": "ip", "from": "client.ip"},
        {"name": "user_name", "from": "user"},
        {"name": "bytes", "type": "uint64", "from": "bytes"},
    ]
}


def _measure(name: str, options: dict[str, object] | None, lines: list[str], note: str) -> Figure:
    fmt = make_format(name, options)
    if hasattr(fmt, "_now"):
        fmt._now = lambda: datetime(2024, 12, 1, tzinfo=UTC)
    batches = [pa.table({"line": lines[i : i + BATCH]}) for i in range(0, len(lines), BATCH)]
    records = 0
    start, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        records += fmt.parse(batch).records.num_rows
    records += fmt.flush().records.num_rows
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    note = f"{note}; {records:,} records; CPU {cpu:.2f} s = {len(lines) / cpu:,.0f}/s"
    return Figure(name, "lines", len(lines), seconds, TARGET, note)


def run(smoke: bool) -> list[Figure]:
    n = 20_000 if smoke else 600_000
    return [
        _measure("postfix", None, _postfix_lines(n // 6), "6 lines per message, joined"),
        _measure("asterisk", None, _asterisk_lines(n), "Master.csv, 18 columns"),
        _measure("csv", CSV_OPTIONS, _csv_lines(n), "5 mapped columns"),
        _measure("jsonl", JSONL_OPTIONS, _jsonl_lines(n), "4 mapped paths"),
    ]
