"""Data that arrived before its template, held until the template comes (RFC 7011 §8:
"a Collecting Process MAY buffer Data Sets for which it has no template").

Exporters send templates periodically, often after a collector restart has already
received data, so dropping such data at once would lose a whole template interval of
traffic. It is held for ``hold_s`` seconds, at most ``hold_max_datagrams`` datagrams
(the oldest go first when full), then quarantined as ``data_before_template``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netdistill.sources.base import Datagram

if TYPE_CHECKING:
    from netdistill.sources.netflow.decode import MessageHeader


@dataclass(slots=True)
class Held:
    datagram: Datagram
    header: MessageHeader
    #: (body offset, body end, template id) of each data set still waiting
    sets: list[tuple[int, int, int]]


class HoldQueue:
    """Held datagrams, oldest first (arrival order)."""

    def __init__(self, max_datagrams: int) -> None:
        self.max_datagrams = max(0, int(max_datagrams))
        self._queue: deque[Held] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, held: Held) -> list[Held]:
        """Hold ``held``; returns what had to leave to respect the bound."""
        self._queue.append(held)
        dropped = []
        while len(self._queue) > self.max_datagrams:
            dropped.append(self._queue.popleft())
        return dropped

    def entries(self) -> Iterator[Held]:
        return iter(list(self._queue))

    def prune(self) -> None:
        """Forget entries with nothing left waiting."""
        if any(not h.sets for h in self._queue):
            self._queue = deque(h for h in self._queue if h.sets)

    def pop_older_than(self, cutoff: float) -> list[Held]:
        old = [h for h in self._queue if h.datagram.received_at < cutoff]
        if old:
            self._queue = deque(h for h in self._queue if h.datagram.received_at >= cutoff)
        return old

    def drain(self) -> list[Held]:
        out = list(self._queue)
        self._queue.clear()
        return out
