"""The spool against an in-memory model (Hypothesis stateful test).

The model is a list of (seq, payload) plus one cursor per destination. Operations:
append, acknowledge a prefix per destination, reopen (clean restart), crash in the
middle of an append (a torn frame at the tail), garbage at the tail. After every step
the spool must hand each destination exactly the model's unacknowledged entries, in
order, and keep on disk no segment that every destination has acknowledged (except the
newest, which carries the sequence across restarts).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from netdistill.gatherer.spool import RECORDS, Spool

DESTINATIONS = ["a", "b"]


class SpoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.spool = self._open()
        self.entries: list[tuple[int, bytes]] = []
        self.cursors = {d: 0 for d in DESTINATIONS}
        self.origin_seq = 0

    def _open(self) -> Spool:
        # small segments, so appends roll segments and acks delete them
        return Spool(self.dir, DESTINATIONS, segment_bytes=200, fsync=False, clock=lambda: 1.0)

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(payload=st.binary(max_size=120))
    def append(self, payload: bytes) -> None:
        self.origin_seq += 1
        seq = self.spool.append(RECORDS, "g/s", self.origin_seq, len(payload), payload)
        if self.entries:
            assert seq == self.entries[-1][0] + 1
        self.entries.append((seq, payload))

    @rule()
    def append_twice(self) -> None:
        """A retried commit (same origin sequence) is not spooled again."""
        if self.origin_seq:
            assert self.spool.append(RECORDS, "g/s", self.origin_seq, 1, b"x") == 0

    @precondition(lambda self: bool(self.entries))
    @rule(destination=st.sampled_from(DESTINATIONS), data=st.data())
    def ack(self, destination: str, data: st.DataObject) -> None:
        pending = [s for s, _ in self.entries if s > self.cursors[destination]]
        if not pending:
            return
        upto = data.draw(st.sampled_from(pending))
        self.spool.ack(destination, upto)
        self.cursors[destination] = upto

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = self._open()

    @rule(cut=st.integers(min_value=1, max_value=40), junk=st.booleans())
    def crash_during_append(self, cut: int, junk: bool) -> None:
        """The process died while writing a frame: its caller never heard 'spooled'."""
        self.spool.close()
        segments = sorted(self.dir.glob("*.seg"))
        if segments:
            with open(segments[-1], "ab") as handle:
                tail = os.urandom(cut) if junk else (b"\x50\x00\x00\x00" + b"\x00" * cut)
                handle.write(tail)
        self.spool = self._open()

    @invariant()
    def hands_out_exactly_the_unacknowledged(self) -> None:
        for destination in DESTINATIONS:
            expected = [(s, p) for s, p in self.entries if s > self.cursors[destination]]
            got = self.spool.read(destination, max_entries=10_000)
            assert [(e.seq, e.payload) for e in got] == expected
            assert self.spool.pending(destination) == (
                len(expected),
                sum(len(p) for _, p in expected),
            )

    @invariant()
    def deletes_only_what_everyone_acknowledged(self) -> None:
        done = min(self.cursors.values())
        segments = sorted(int(p.stem) for p in self.dir.glob("*.seg"))
        # every entry not acknowledged by all is in a kept segment
        for seq, _ in self.entries:
            if seq > done:
                assert any(first <= seq for first in segments)
        # fully acknowledged old segments are gone: all but the newest start after
        # the first entry someone still needs, or hold it
        if len(segments) > 1:
            needed = [s for s, _ in self.entries if s > done]
            if needed:
                assert segments[1] > needed[0]


TestSpoolModel = SpoolMachine.TestCase
TestSpoolModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
