"""Export sequence numbers → datagrams or flows lost upstream, per exporter (SYSTEM.md §3).

What the number counts differs by version: v5 ``flow_sequence`` counts flows (RFC-less
Cisco format), v9's counts export packets per source id (RFC 3954 §5.1), IPFIX's counts
data records per observation domain (RFC 7011 §3.1). The tracker only sees "number and
increment", so all three share it.

The estimate is by span, not by step: per stream we keep the lowest number seen, the
highest number-plus-increment, and the units actually received; what is missing is the
span minus what was received. A datagram that arrives late (reordered) fills its part of
the span and the count goes back down, so reordering never shows as loss, and an
exporter whose numbering is off by one message (softflowd's IPFIX counts the current
message's records too) shows a constant small figure instead of one that grows. A
number far behind the span means the exporter restarted: the stream starts again there,
keeping what was counted lost before. Numbers are unwrapped modulo 2^32.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass

_MODULO = 1 << 32
#: how far behind the span (in units of the increment) a number may be and still count
#: as late rather than as an exporter restart
_LATE_WINDOW = 64


@dataclass(slots=True)
class _Stream:
    base: int
    end: int
    received: int
    reported: int = 0


class SequenceTracker:
    def __init__(self, lost: Counter[str]) -> None:
        self._lost = lost
        self._streams: dict[Hashable, _Stream] = {}

    def observe(self, key: Hashable, exporter: str, number: int, increment: int | None) -> None:
        """Record a message numbered ``number`` carrying ``increment`` units; ``None``
        when the count is unknown (data held for a template), which ends the stream
        rather than guess."""
        stream = self._streams.get(key)
        if increment is None:
            self._streams.pop(key, None)
            return
        if stream is not None:
            diff = (number - stream.end) % _MODULO
            if diff >= _MODULO // 2:
                diff -= _MODULO
            position = stream.end + diff
            if position >= stream.base - _LATE_WINDOW * max(increment, 1):
                stream.base = min(stream.base, position)
                stream.end = max(stream.end, position + increment)
                stream.received += increment
                missing = max(0, stream.end - stream.base - stream.received)
                self._lost[exporter] += missing - stream.reported
                stream.reported = missing
                return
        # First message of the stream, or the exporter restarted its numbering.
        self._streams[key] = _Stream(base=number, end=number + increment, received=increment)
