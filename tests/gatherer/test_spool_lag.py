"""Independent destinations in the spool (issue 13, item 2): a destination that cannot
keep up is skipped past its lag limit, counted as not delivered to it, while the other
keeps receiving everything; ``block`` applies only when every destination is behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from netdistill.delivery.entry import RECORDS
from netdistill.errors import SpoolFull
from netdistill.gatherer.spool import Spool

PAYLOAD = b"x" * 1000


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _spool(path: Path, limits: dict[str, tuple[int | None, float | None]] | None) -> Spool:
    return Spool(
        path, ["a", "b"], max_bytes=20_000, segment_bytes=2_000, fsync=False,
        lag_limits=limits, clock=Clock(),
    )  # fmt: skip


def _drain(spool: Spool, destination: str) -> int:
    entries = spool.read(destination, max_entries=1000)
    if entries:
        spool.ack(destination, entries[-1].seq)
    return sum(e.rows for e in entries)


def test_without_limits_a_dead_destination_blocks_everyone(tmp_path: Path) -> None:
    """The finding: one spool for both cursors, ``b`` never up, the spool fills and
    ``block`` stops ``a`` from receiving anything new."""
    spool = _spool(tmp_path / "s", None)
    with pytest.raises(SpoolFull):
        for i in range(1, 100):
            spool.append(RECORDS, "g/nf", i, 10, PAYLOAD)
            _drain(spool, "a")


def test_a_dead_destination_is_skipped_past_its_limit_and_the_other_gets_all(
    tmp_path: Path,
) -> None:
    spool = _spool(tmp_path / "s", {"a": (8_000, None), "b": (8_000, None)})
    delivered_a = 0
    for i in range(1, 201):  # 200 kB through a 20 kB spool
        spool.append(RECORDS, "g/nf", i, 10, PAYLOAD)
        delivered_a += _drain(spool, "a")
    assert delivered_a == 2000
    b = spool.lag_status("b")
    assert b["behind"] and not spool.lag_status("a")["behind"]
    assert int(b["pending_bytes"]) <= 8_000  # type: ignore[call-overload]
    pending_batches, pending_records = spool.pending("b")
    # every entry is either still pending for b or counted as not delivered to it
    assert b["not_delivered_records"] + pending_records == 2000
    assert b["not_delivered_batches"] + pending_batches == 200
    assert spool.status()["bytes"] <= 20_000 and spool.counters.blocked == 0
    # b comes back: it gets its backlog, then catches up and is no longer behind
    assert _drain(spool, "b") == pending_records
    spool.append(RECORDS, "g/nf", 201, 10, PAYLOAD)
    _drain(spool, "a")
    _drain(spool, "b")
    spool.trim_behind()
    assert not spool.lag_status("b")["behind"]


def test_block_applies_only_when_every_destination_is_behind(tmp_path: Path) -> None:
    spool = _spool(tmp_path / "s", {"a": (8_000, None), "b": (8_000, None)})
    with pytest.raises(SpoolFull):
        for i in range(1, 100):  # neither acknowledges: both behind, nothing skipped
            spool.append(RECORDS, "g/nf", i, 10, PAYLOAD)
    assert spool.lag_status("a")["not_delivered_batches"] == 0
    assert spool.lag_status("b")["not_delivered_batches"] == 0


def test_an_age_limit_skips_old_entries_while_the_other_keeps_up(tmp_path: Path) -> None:
    spool = _spool(tmp_path / "s", {"a": (None, 60.0), "b": (None, 60.0)})
    clock = spool._clock
    assert isinstance(clock, Clock)
    for i in range(1, 6):
        spool.append(RECORDS, "g/nf", i, 10, PAYLOAD)
        _drain(spool, "a")
        clock.now += 20
    spool.trim_behind()  # now +100: entries 1 and 2 are older than 60 s for b
    b = spool.lag_status("b")
    assert b["behind"] and b["not_delivered_batches"] == 2
    assert spool.pending("b") == (3, 30)
    assert b["lost_until"] == pytest.approx(1_700_000_000.0 + 20)
