"""Log-file parsers: Squid native, Common and Combined Log Format, lines/s on one core.

Lines are generated (varied clients, URLs, sizes, user agents) and parsed by the format
alone, as the file source calls it on a batch of 100,000 lines — the tail's reading and
line cutting is measured separately (``file source`` row: bytes from a file on disk to
records, the whole ``FileSource`` path without the store).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pyarrow as pa

from netdistill.sources.lines import make_format
from netdistill.sources.logs.config import FileSourceConfig
from netdistill.sources.logs.listener import FileSource
from source_bench import Figure

TARGET = 500_000
BATCH = 100_000


def squid_lines(n: int) -> list[str]:
    return [
        f"{1700000000 + i // 10}.{i % 1000:03d} {i % 9000:>6} 10.{i % 7}.{i % 250}.{i % 199} "
        f"TCP_MISS/200 {(i * 7919) % 100000} GET http://site{i % 300}.example/p/{i}?q={i % 13} "
        f"{'-' if i % 3 else 'user' + str(i % 50)} HIER_DIRECT/192.0.2.{i % 250} text/html"
        for i in range(n)
    ]


def combined_lines(n: int) -> list[str]:
    return [
        f"198.51.{i % 250}.{i % 199} - {'-' if i % 4 else 'bob'} "
        f"[{1 + i % 28:02d}/Feb/2024:{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d} +0100] "
        f'"GET /static/{i}/app.js?v={i % 17} HTTP/1.1" {200 if i % 9 else 404} {(i * 31) % 90000} '
        f'"https://ref{i % 40}.example/" "Mozilla/5.0 (X11; Linux x86_64; rv:{i % 120}.0) Gecko"'
        for i in range(n)
    ]


def _rate(name: str, lines: list[str], repeat: int) -> Figure:
    fmt = make_format(name)
    batches = [
        pa.table({"line": pa.array(lines[i : i + BATCH], pa.string())})
        for i in range(0, len(lines), BATCH)
    ]
    fmt.parse(batches[0])  # warm up
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        rows = sum(fmt.parse(b).records.num_rows for b in batches)
        best = min(best, time.perf_counter() - started)
    assert rows == len(lines), f"{name}: {rows} of {len(lines)} lines parsed"
    return Figure(name, "lines", len(lines), best, TARGET, f"best of {repeat}")


def _file_source(lines: list[str], repeat: int) -> Figure:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "access.log"
        path.write_text("\n".join(lines) + "\n")
        config = FileSourceConfig(type="file", name="b", paths=[str(path)], format="squid")
        best = float("inf")
        for _ in range(repeat):
            source = FileSource(config)
            started = time.perf_counter()
            rows = sum(r.records.num_rows for r, _ in source.read_whole_file(path))
            best = min(best, time.perf_counter() - started)
        assert rows == len(lines)
    return Figure("file source (squid)", "lines", len(lines), best, TARGET, "read+cut+parse")


def run(smoke: bool) -> list[Figure]:
    n = 20_000 if smoke else 1_000_000
    repeat = 1 if smoke else 3
    squid = squid_lines(n)
    combined = combined_lines(n)
    return [
        _rate("squid", squid, repeat),
        _rate("clf", combined, repeat),
        _rate("combined", combined, repeat),
        _file_source(squid, repeat),
    ]
