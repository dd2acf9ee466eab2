"""How far in time each gatherer has delivered everything to this manager, and whether a
report window may close on it (issue 13: windows close on completeness, not on a clock).

Gatherers send watermark marks with their batches (``delivery/wire.py``): "every record
of my sources received before W is committed here". The manager's own pipeline (sources
on gatherer ``local``) reports the same directly. ``Watermarks`` keeps the latest per
gatherer (monotone: a smaller W, e.g. after a gatherer restart, never moves it back).

``Watermarks.verdict`` decides for one window ``[start, end)`` over the gatherers that
feed this manager (``feeders``: those the scheme gives sources, and every gatherer that
sent a mark):

* **complete** — every feeder's watermark is at or past ``end + grace_s``, and none
  lost entries for this manager (``lost_until``) after ``start``;
* **incomplete** — some feeder is not past it and is *silent* (no heartbeat and no
  mark for its silence limit, ``manager/monitor.py``; a feeder never heard of since the
  manager started counts from the start), or the window has waited ``max_wait_s`` past
  its end + grace for it (*lagging*), or a feeder lost entries for this manager: the
  window closes, naming each such gatherer and why;
* **wait** — otherwise.

With no feeder at all (records come only through ``POST /api/commit``), the manager's
own clock is the watermark: the window closes at end + grace, as before issue 13.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

LOCAL = "local"


@dataclass
class Mark:
    watermark: float
    received_at: float
    seq: int = 0
    per_source: dict[str, float] = field(default_factory=dict)
    lost_until: float = 0.0


@dataclass(frozen=True)
class Verdict:
    state: Literal["complete", "incomplete", "wait"]
    #: for ``incomplete``: one entry per gatherer (gatherer, reason, watermark)
    missing: tuple[dict[str, Any], ...] = ()


class Watermarks:
    """Thread-safe: ingest threads and the local pipeline write, the window job reads."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._marks: dict[str, Mark] = {}
        self.started_at = clock()

    def mark(self, gatherer: str, header: dict[str, Any]) -> None:
        """A mark from ``gatherer`` (the header of a kind-4 entry (``entry.MARK``))."""
        try:
            watermark = float(header["watermark"])
        except (KeyError, TypeError, ValueError):
            return
        per_source = {str(k): float(v) for k, v in (header.get("watermarks") or {}).items()}
        lost = float(header.get("lost_until") or 0.0)
        seq = int(header.get("seq") or 0)
        self._update(gatherer, watermark, per_source, lost, seq)

    def local(self, source: str, began: float) -> None:
        """The manager's own pipeline committed everything ``source`` received before
        ``began`` (``Pipeline.on_watermark``; called from each source's thread)."""
        now = self._clock()
        with self._lock:
            current = self._marks.get(LOCAL)
            if current is None:
                current = self._marks[LOCAL] = Mark(began, now, 0, {})
            current.per_source[source] = max(current.per_source.get(source, 0.0), began)
            current.watermark = max(current.watermark, min(current.per_source.values()))
            current.received_at = now

    def forget_local(self, names: Iterable[str]) -> None:
        """Local sources that stopped (a scheme change) no longer hold the mark back."""
        with self._lock:
            current = self._marks.get(LOCAL)
            if current is None:
                return
            for name in names:
                current.per_source.pop(name, None)
            if current.per_source:
                current.watermark = max(current.watermark, min(current.per_source.values()))

    def _update(
        self, name: str, watermark: float, per_source: dict[str, float], lost: float, seq: int
    ) -> None:
        now = self._clock()
        with self._lock:
            current = self._marks.get(name)
            if current is None:
                self._marks[name] = Mark(watermark, now, seq, per_source, lost)
                return
            current.watermark = max(current.watermark, watermark)
            current.received_at = now
            current.seq = max(current.seq, seq)
            current.per_source.update(per_source)
            current.lost_until = max(current.lost_until, lost)

    def get(self, gatherer: str) -> Mark | None:
        with self._lock:
            mark = self._marks.get(gatherer)
            return None if mark is None else Mark(**mark.__dict__)

    def names(self) -> set[str]:
        with self._lock:
            return set(self._marks)

    def status(self) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            return {
                name: {
                    "watermark": m.watermark,
                    "behind_s": round(now - m.watermark, 3),
                    "last_mark_age_s": round(now - m.received_at, 3),
                    "sources": dict(m.per_source),
                    "lost_until": m.lost_until,
                }
                for name, m in sorted(self._marks.items())
            }

    def verdict(
        self,
        start: int,
        end: int,
        *,
        grace_s: float,
        max_wait_s: float,
        feeders: set[str],
        silent: Callable[[str, float], bool],
        now: float,
    ) -> Verdict:
        """See the module docstring. ``silent(name, since)`` is the monitor's judgement
        (``since``: when this manager started, for a gatherer it never heard of)."""
        due = end + grace_s
        missing: list[dict[str, Any]] = []
        waiting = False
        for name in sorted(feeders | self.names()):
            mark = self.get(name)
            watermark = mark.watermark if mark is not None else -math.inf
            if mark is not None and mark.lost_until > start:
                missing.append(
                    {
                        "gatherer": name,
                        "reason": "lost: entries skipped or evicted for this manager "
                        f"(up to {mark.lost_until:.3f})",
                        "watermark": watermark,
                    }
                )
                continue
            if watermark >= due:
                continue
            shown = None if math.isinf(watermark) else watermark
            if silent(name, self.started_at):
                missing.append({"gatherer": name, "reason": "silent", "watermark": shown})
            elif now >= due + max_wait_s:
                missing.append({"gatherer": name, "reason": "lagging", "watermark": shown})
            else:
                waiting = True
        if waiting:
            return Verdict("wait")
        if missing:
            return Verdict("incomplete", tuple(missing))
        return Verdict("complete")
