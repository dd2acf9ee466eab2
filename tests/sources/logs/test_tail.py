"""Following files through rotation and restarts: every line exactly once, in order.

Each test drives a real ``FileSource`` through a ``Pipeline`` into a DuckDB store, so
offsets are committed only by the pipeline's after-commit step, as in production. The
expected lines are those the test wrote; the store's ``url`` column tells which arrived.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from netdistill.delivery.pipeline import Pipeline
from netdistill.errors import SchemeError
from netdistill.scheme import load_scheme
from netdistill.sources.logs.config import FileSourceConfig
from netdistill.sources.logs.listener import FileSource
from netdistill.store.duckdb import DuckDBStore


@pytest.fixture(params=["auto", "poll"])
def watch(request: pytest.FixtureRequest) -> str:
    """Every test runs with inotify watching and with polling alone."""
    return str(request.param)


def line(i: int) -> str:
    return (
        f"1700000000.{i % 1000:03d}     5 10.0.0.1 TCP_MISS/200 {i} GET http://h/{i} - "
        "HIER_DIRECT/10.0.0.2 -\n"
    )


def write(path: Path, numbers, mode: str = "a") -> None:
    with open(path, mode) as f:
        f.write("".join(line(i) for i in numbers))


class Harness:
    def __init__(self, tmp: Path, pattern: str, **options: object) -> None:
        self.store = DuckDBStore(tmp / "records.duckdb")
        self.state = tmp / "state"
        self.pattern = pattern
        self.options = options
        self.start()

    def start(self) -> None:
        config = FileSourceConfig(
            type="file",
            name="logs",
            paths=[self.pattern],
            format="squid",
            poll_interval_s=0.01,
            device="proxy1",
            **self.options,  # type: ignore[arg-type]
        )
        self.source = FileSource(config, state_dir=self.state)
        self.source.tailer.rotated_grace_s = 0.1
        for spec in self.source.fields:
            if spec.name not in self.store.fields:
                self.store.add_field(spec.name, spec.type)
        self.pipeline = Pipeline([self.source], self.store, gatherer="test")

    def drain(self, expect: int, timeout_s: float = 10) -> None:
        """Step until ``expect`` records are in the store and no file is left open
        half-read (rotated files closed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.pipeline.step()
            rotated = any(f.rotated for f in self.source.tailer._files.values())
            if self.count() >= expect and not rotated:
                return
            time.sleep(0.02)
        raise AssertionError(f"{self.count()} records, expected {expect}")

    def count(self) -> int:
        return int(self.store.query("select count(*) as n from records").column(0)[0].as_py())

    def numbers(self) -> list[int]:
        rows = self.store.query("select bytes from records order by record_id").column(0)
        return [int(v) for v in rows.to_pylist()]


def test_rename_rotation_reads_old_file_to_its_end_then_the_new_one(tmp_path, watch):
    log = tmp_path / "access.log"
    writer = open(log, "a")  # noqa: SIM115 - squid keeps its log open across a rename
    writer.write("".join(line(i) for i in range(100)) + line(100)[:20])  # partial line 100
    writer.flush()
    h = Harness(tmp_path, str(log), watch=watch)
    h.drain(100)
    writer.write(line(100)[20:])
    writer.flush()
    os.rename(log, tmp_path / "access.log.1")
    writer.write("".join(line(i) for i in range(101, 150)))  # still written after the rename
    writer.flush()
    write(log, range(150, 180), "w")
    h.drain(180)
    writer.close()
    assert h.numbers() == list(range(180))
    assert h.source.status()["rotations"] == 1


def test_truncation_restarts_at_zero(tmp_path, watch):
    log = tmp_path / "access.log"
    write(log, range(40), "w")
    h = Harness(tmp_path, str(log), watch=watch)
    h.drain(40)
    shutil.copy(log, tmp_path / "access.log.1")  # logrotate copytruncate
    with open(log, "r+") as f:
        f.truncate(0)
    write(log, range(40, 50))
    h.drain(50)
    # truncated and refilled past the old offset between two polls: the size grew, but
    # the first bytes differ
    size = log.stat().st_size
    with open(log, "w") as f:
        f.write("".join(line(i) for i in range(1000, 1060)))
    assert log.stat().st_size > size
    h.drain(110)
    assert h.numbers() == [*range(50), *range(1000, 1060)]
    assert h.source.status()["truncations"] == 2


def test_restart_neither_loses_nor_repeats(tmp_path, watch):
    log = tmp_path / "access.log"
    write(log, range(30), "w")
    h = Harness(tmp_path, str(log), watch=watch)
    h.drain(30)
    h.pipeline.stop()
    # while stopped: more lines, then a rotation, then the new file
    write(log, range(30, 45))
    os.rename(log, tmp_path / "access.log.1")
    write(log, range(45, 60), "w")
    h.start()
    h.drain(60)
    # read but not committed (a crash before the after-commit step): read again
    write(log, range(60, 70))
    result = h.source.poll(1000)
    assert result.records.num_rows == 10
    h.start()
    h.drain(70)
    assert h.numbers() == list(range(70))


def test_bad_lines_go_to_quarantine_with_path_and_line(tmp_path, watch):
    log = tmp_path / "web.log"
    log.write_text(line(0) + "this is not squid\n\n" + line(1) + "1.5 x\r\n" + line(2))
    h = Harness(tmp_path, str(tmp_path / "*.log"), watch=watch)
    h.drain(3)
    rows = h.store.query(
        "select location, reason, detail, payload, exporter, source from quarantine "
        "order by location"
    ).to_pylist()
    assert rows == [
        {
            "location": f"{log}:2",
            "reason": "malformed",
            "detail": "expected 10 space-separated fields",
            "payload": b"this is not squid",
            "exporter": "proxy1",
            "source": "logs",
        },
        {
            "location": f"{log}:5",
            "reason": "malformed",
            "detail": "expected 10 space-separated fields",
            "payload": b"1.5 x",
            "exporter": "proxy1",
            "source": "logs",
        },
    ]
    status = h.source.status()
    assert (status["datagrams"], status["records"], status["blank_lines"]) == (6, 3, 1)
    assert status["dropped"] == {"malformed": 2}


def test_start_at_end_skips_old_lines_but_counts_them(tmp_path, watch):
    log = tmp_path / "access.log"
    write(log, range(25), "w")
    h = Harness(tmp_path, str(log), watch=watch, start_at="end")
    h.pipeline.step()
    assert h.count() == 0
    with open(log, "a") as f:
        f.write(line(25) + "bad\n")
    h.drain(1)
    assert h.numbers() == [25]
    location = h.store.query("select location from quarantine").column(0).to_pylist()
    assert location == [f"{log}:27"]


def test_scheme_reports_a_bad_format(tmp_path):
    scheme = tmp_path / "scheme.yaml"
    scheme.write_text(
        "sources:\n  - name: web\n    type: file\n    paths: [/var/log/x.log]\n    format: apache\n"
    )
    with pytest.raises(SchemeError) as caught:
        load_scheme(scheme)
    assert "unknown format 'apache'" in "\n".join(caught.value.problems)
