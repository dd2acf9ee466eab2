"""Durations as histograms of plain data, for status pages, heartbeats and ``/metrics``.

A ``DurationHistogram`` counts observations into fixed buckets (cumulative, as
Prometheus wants them) and keeps their sum. ``snapshot()`` is a JSON-friendly dict, so a
remote gatherer's lookup latencies travel in its heartbeat like its other counters, and
the manager turns any snapshot into a Prometheus histogram at scrape time
(``manager/metrics.py``). Counts only grow (a restart starts them again from zero, which
Prometheus' ``rate()`` reads as a counter reset).

prometheus-client's own ``Histogram`` lives in one process's registry; these figures
cross processes as data, which is why this small class exists. ``observe`` is safe to
call from several threads.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

#: seconds: 0.5 ms to 60 s, covering a cache-missing lookup call and a stage round
DEFAULT_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip


class DurationHistogram:
    def __init__(self, buckets_s: tuple[float, ...] = DEFAULT_BUCKETS_S) -> None:
        self.bounds = tuple(sorted(buckets_s))
        self._counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(self.bounds, seconds)
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def snapshot(self) -> dict[str, Any]:
        """``{"buckets": [[le, cumulative count], …, ["+Inf", n]], "sum": s, "count": n}``."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, n in zip([*self.bounds, "+Inf"], counts, strict=True):
            running += n
            cumulative.append([bound, running])
        return {"buckets": cumulative, "sum": round(total, 6), "count": running}
