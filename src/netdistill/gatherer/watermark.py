"""Low watermarks: how far in time a gatherer has spooled — and so, per manager,
forwarded — everything its sources received (issue 13; the manager closes a report
window only when every gatherer feeding it has forwarded past the window's end + grace,
``manager/windows.py``).

A source's pipeline step polls everything its source had received when the step began
(time ``t``, the gatherer's wall clock); once that step's batch is in the spool at
sequences below ``boundary`` (``Spool.next_seq()`` after it), every record the source
received before ``t`` is in an entry below ``boundary``. ``advance(source, boundary,
t)`` records that point. For a destination that acknowledged every entry up to ``S``,
the source's watermark is the largest ``t`` of a point with ``boundary <= S + 1``, and
the gatherer's is the smallest over its sources (``at(S)``). A source that started
after ``S`` holds nothing back; one stopped by a plan change gets a last point with an
infinite ``t`` after its drain, and leaves once every destination passed it.

The watermark is a *receive* time: a record whose own time (``end_time``) is before the
watermark can still arrive later when its device holds it back (a NetFlow exporter's
active timeout); the window's ``grace_s`` is for that, and such a record is *late*
(counted, and the window is corrected). After a gatherer restart the points of entries
spooled before it are gone: ``at`` answers None for them (nothing is claimed) until the
destination passes the first point of the new run.

Thread-safe: pipelines advance, forwarders read.
"""

from __future__ import annotations

import math
import threading


class WatermarkLog:
    """Per source, points (boundary, watermark), both increasing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: dict[str, list[tuple[int, float]]] = {}

    def advance(self, source: str, boundary: int, watermark: float) -> None:
        with self._lock:
            points = self._points.setdefault(source, [])
            if points and points[-1][1] >= watermark:
                return
            if points and points[-1][0] >= boundary:
                points[-1] = (points[-1][0], watermark)  # nothing spooled since: move it on
            else:
                points.append((boundary, watermark))

    def stopped(self, source: str, boundary: int) -> None:
        """``source`` stopped after draining into entries below ``boundary``."""
        self.advance(source, boundary, math.inf)

    def at(self, acked: int) -> tuple[float, dict[str, float]] | None:
        """(the gatherer's watermark, per source) for a destination that has every entry
        up to ``acked``; None when no source has a point there."""
        with self._lock:
            per_source: dict[str, float] = {}
            for source, points in self._points.items():
                known = [w for boundary, w in points if boundary <= acked + 1]
                if known:
                    per_source[source] = known[-1]
        finite = {s: w for s, w in per_source.items() if not math.isinf(w)}
        if not per_source:
            return None
        if not finite:  # every source stopped: nothing more will come from them
            return None
        return min(finite.values()), finite

    def spooled(self) -> dict[str, float]:
        """Per running source, the watermark of everything spooled (for the status)."""
        with self._lock:
            return {s: p[-1][1] for s, p in self._points.items() if p and not math.isinf(p[-1][1])}

    def prune(self, acked_by_all: int) -> None:
        """Forget points every destination has passed (keeping the last one passed)."""
        with self._lock:
            for source in list(self._points):
                points = self._points[source]
                passed = [i for i, (b, _) in enumerate(points) if b <= acked_by_all + 1]
                if len(passed) > 1:
                    del points[: passed[-1]]
                if points and math.isinf(points[-1][1]) and points[-1][0] <= acked_by_all + 1:
                    del self._points[source]
