"""Per-source received counters that survive restarts (``<data-dir>/state/received.json``).

A source's ``SourceCounters`` start at zero with every new source instance (a restart, a
changed plan). ``ReceivedTotals`` keeps, per source name, the totals of the instances
before (``base``) and adds the running instance's counters to it:

* when a source stops (a plan change, the gatherer's stop) its last counters are folded
  into ``base``;
* ``save`` writes base + running counters atomically (write, fsync, rename) — the
  gatherer calls it every second with the status and at its stop;
* at start the file is the ``base``.

Guarantees: a clean stop and start loses no count; a crash loses at most what was
counted since the last ``save`` (one second). Counted: ``datagrams``, ``bytes_received``,
``records`` and ``dropped`` per reason, as the sources count them. A damaged file is
logged and counting starts again from zero (it is status, not billing data).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from netdistill.sources.base import SourceCounters

log = logging.getLogger(__name__)

Totals = dict[str, object]

_SCALARS = ("datagrams", "bytes_received", "records")


def _empty() -> Totals:
    return {"datagrams": 0, "bytes_received": 0, "records": 0, "dropped": {}}


def _add(total: Totals, counters: SourceCounters) -> Totals:
    out: Totals = {key: int(total[key]) + int(getattr(counters, key)) for key in _SCALARS}  # type: ignore[call-overload]
    dropped = dict(total["dropped"])  # type: ignore[call-overload]
    for reason, n in counters.dropped.items():
        if n:
            dropped[reason] = int(dropped.get(reason, 0)) + int(n)
    out["dropped"] = dropped
    return out


class ReceivedTotals:
    """Not thread-safe: the gatherer calls it under its own lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base: dict[str, Totals] = self._load()

    def _load(self) -> dict[str, Totals]:
        try:
            data = json.loads(self.path.read_text())
            return {str(k): {**_empty(), **v} for k, v in data["sources"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable received totals %s: %s", self.path, exc)
            return {}

    def stopped(self, name: str, counters: SourceCounters) -> None:
        """``name``'s instance stopped with ``counters``: they become part of the base."""
        self.base[name] = _add(self.base.get(name, _empty()), counters)

    def current(self, running: Mapping[str, SourceCounters]) -> dict[str, Totals]:
        """Totals per source: earlier instances plus the running ones' counters."""
        out = {name: dict(total) for name, total in self.base.items()}
        for name, counters in running.items():
            out[name] = _add(out.get(name, _empty()), counters)
        return out

    def save(self, running: Mapping[str, SourceCounters]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"sources": self.current(running)}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
