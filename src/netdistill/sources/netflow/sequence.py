"""Export sequence numbers → datagrams or flows lost upstream, per exporter (SYSTEM.md §3).

What the number counts differs by version: v5 ``flow_sequence`` counts flows (RFC-less
Cisco format), v9's counts export packets per source id (RFC 3954 §5.1), IPFIX's counts
data records per observation domain (RFC 7011 §3.1). The tracker only sees "number and
increment", so all three share it.

A number ahead of the expected one is a gap and counts as lost. A number a little
behind is a late (reordered or duplicated) datagram: ignored, and it does not move the
expectation. A number far behind means the exporter restarted: start again from it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

_MODULO = 1 << 32
#: how far behind (in units of the increment) a number may be and still count as late
_LATE_WINDOW = 64


class SequenceTracker:
    def __init__(self, lost: Counter[str]) -> None:
        self._lost = lost
        self._expected: dict[Hashable, int] = {}

    def observe(self, key: Hashable, exporter: str, number: int, increment: int | None) -> None:
        """Record a message numbered ``number`` carrying ``increment`` units; ``None``
        when the count is unknown (data held for a template), which drops the
        expectation rather than guess."""
        expected = self._expected.get(key)
        if expected is not None:
            ahead = (number - expected) % _MODULO
            if 0 < ahead < _MODULO // 2:
                self._lost[exporter] += ahead
            elif ahead >= _MODULO // 2 and _MODULO - ahead <= _LATE_WINDOW * max(increment or 1, 1):
                return  # late: reordered or duplicated, already accounted for
        if increment is None:
            self._expected.pop(key, None)
        else:
            self._expected[key] = (number + increment) % _MODULO
