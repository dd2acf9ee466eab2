"""The spool's ``oldest_age_s``: the age of the oldest entry a destination still awaits.

The append time is kept in each frame (``appended_ms``), so it survives a reopen; a
frame written before that field existed takes its segment file's mtime. The clock is
injected, so every figure is exact.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from netdistill.gatherer.spool import RECORDS, Spool


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_oldest_age_follows_the_slowest_destination_and_survives_reopen(tmp_path: Path) -> None:
    clock = Clock(1_700_000_000.0)
    spool = Spool(tmp_path, ["a", "b"], fsync=False, clock=clock, segment_bytes=1)
    assert spool.status()["oldest_age_s"] == 0.0  # empty
    first = spool.append(RECORDS, "g/nf", 1, 10, b"one")
    clock.now += 5.25
    second = spool.append(RECORDS, "g/nf", 2, 20, b"two")
    clock.now += 7.0
    assert spool.status()["oldest_age_s"] == 12.25
    spool.ack("a", second)  # a has both, b has neither: still the first's age
    assert spool.oldest_age_s() == 12.25
    spool.ack("b", first)
    assert spool.oldest_age_s() == 7.0
    spool.close()

    clock.now += 1.5
    reopened = Spool(tmp_path, ["a", "b"], fsync=False, clock=clock, segment_bytes=1)
    assert reopened.oldest_age_s() == 8.5  # the time came from the frame
    (entry,) = reopened.read("b")
    assert (entry.seq, entry.rows, entry.payload) == (second, 20, b"two")
    reopened.ack("b", second)
    assert reopened.status()["oldest_age_s"] == 0.0
    reopened.close()


def test_a_frame_without_append_time_takes_its_segments_mtime(tmp_path: Path) -> None:
    clock = Clock(1_700_000_000.0)
    spool = Spool(tmp_path, ["a"], fsync=False, clock=clock)
    spool.close()
    seq = int((tmp_path / "spool.id").read_text()) * 1_000_000 + 1
    origin = b"g/nf"
    # the frame as written before appended_ms existed: kind without the 0x80 bit
    body = struct.pack("<BQQIH", RECORDS, seq, 1, 3, len(origin)) + origin + b"old"
    segment = tmp_path / f"{seq:020d}.seg"
    segment.write_bytes(struct.pack("<II", len(body), zlib.crc32(body)) + body)
    os.utime(segment, (clock.now - 40, clock.now - 40))
    reopened = Spool(tmp_path, ["a"], fsync=False, clock=clock)
    assert reopened.oldest_age_s() == 40.0
    (entry,) = reopened.read("a")
    assert (entry.seq, entry.origin, entry.rows, entry.payload) == (seq, "g/nf", 3, b"old")
    assert reopened.counters.truncated_bytes == 0
    reopened.close()
