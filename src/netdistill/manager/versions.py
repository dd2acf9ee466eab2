"""Central upgrade awareness (seed 001: the CEM "provides centralized system-wide
upgrade"): which version each gatherer runs, with which plugins, against the manager's.

Gatherers send their version in ``X-Netdistill-Version`` on every request (plan,
delivery, heartbeat) and, in each heartbeat, ``plugins`` (``plugins.inventory()``:
each source type with the distribution and version that offer it, and every plugin
distribution with its version). The manager

* compares each heartbeat with itself (``mismatches``): another netdistill version, a
  source type only one side has or that another distribution offers, a plugin
  distribution at another version — shown per gatherer in ``GET /api/gatherers``
  (``mismatches``), in ``/api/status`` (``gatherers.mismatched``) and in the console's
  gatherers table;
* refuses, when ``manager.min_gatherer_version`` is set, a gatherer older than it (or
  one that sends no version: it predates this check) with 403 and
  ``X-Netdistill-Refusal: version``; the gatherer logs the message, shows it in its
  status and does not retry in a loop (``gatherer/main.py``). Refusals are counted
  per gatherer in ``/api/status`` (``gatherers.refused_version``).

Versions are compared as PEP 440 versions (``packaging``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from packaging.version import InvalidVersion, Version

from netdistill import __version__
from netdistill.delivery.ack import REFUSAL_HEADER, VERSION_HEADER

__all__ = ["REFUSAL_HEADER", "VERSION_HEADER", "GathererVersions", "mismatches", "older_than"]


def older_than(version: str | None, minimum: str) -> bool:
    """Whether ``version`` (None or not a version: unknown, so too old) < ``minimum``."""
    if not version:
        return True
    try:
        return Version(version) < Version(minimum)
    except InvalidVersion:
        return True


def mismatches(reported: dict[str, Any], *, version: str, plugins: dict[str, Any]) -> list[str]:
    """What differs between a gatherer's heartbeat and this manager (empty: nothing)."""
    out = []
    theirs = reported.get("version")
    if theirs != version:
        out.append(f"netdistill {theirs or '?'} on the gatherer, {version} on the manager")
    their_plugins = reported.get("plugins")
    if not isinstance(their_plugins, dict):
        return out
    mine_sources = plugins.get("sources", {})
    their_sources = their_plugins.get("sources") or {}
    for name in sorted(set(mine_sources) | set(their_sources)):
        a, b = their_sources.get(name), mine_sources.get(name)
        if a is None or b is None or a.rsplit(" ", 1)[0] != b.rsplit(" ", 1)[0]:
            out.append(
                f"source type {name}: {a or 'missing'} on the gatherer, "
                f"{b or 'missing'} on the manager"
            )
    mine_dists = plugins.get("distributions", {})
    their_dists = their_plugins.get("distributions") or {}
    for name in sorted(set(mine_dists) | set(their_dists)):
        a, b = their_dists.get(name), mine_dists.get(name)
        if a != b:
            out.append(
                f"plugin {name}: {a or 'missing'} on the gatherer, {b or 'missing'} on the manager"
            )
    return out


class GathererVersions:
    """The manager's side: minimum version check and comparisons. ``minimum()`` is the
    scheme's ``manager.min_gatherer_version`` of the moment (a reload applies at once)."""

    def __init__(
        self,
        minimum: Callable[[], str | None],
        *,
        plugins: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.minimum = minimum
        self._plugins = plugins
        self._clock = clock
        self._lock = threading.Lock()
        #: gatherer → {version, message, refusals, last}
        self.refused: dict[str, dict[str, Any]] = {}

    @property
    def plugins(self) -> dict[str, Any]:
        if self._plugins is None:
            from netdistill.plugins import inventory

            self._plugins = inventory()
        return self._plugins

    def check(self, gatherer: str, version: str | None) -> str:
        """The refusal message for ``gatherer`` at ``version`` ("": it may deliver)."""
        minimum = self.minimum()
        if not minimum or not older_than(version, minimum):
            return ""
        message = (
            f"gatherer {gatherer!r} runs netdistill {version or '(no version sent)'}, older "
            f"than manager.min_gatherer_version {minimum}: upgrade it (the manager runs "
            f"{__version__})"
        )
        with self._lock:
            entry = self.refused.setdefault(gatherer, {"refusals": 0})
            entry.update(version=version, message=message, last=self._clock())
            entry["refusals"] += 1
        return message

    def compare(self, heartbeat: dict[str, Any]) -> list[str]:
        return mismatches(heartbeat, version=__version__, plugins=self.plugins)

    def status(self, gatherers: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``gatherers`` part of ``/api/status``, from the monitor's gatherers."""
        with self._lock:
            refused = {name: dict(entry) for name, entry in self.refused.items()}
        return {
            "manager_version": __version__,
            "min_gatherer_version": self.minimum(),
            "reporting": len(gatherers),
            "versions": {g["name"]: g.get("version") for g in gatherers},
            "mismatched": [
                {"name": g["name"], "version": g.get("version"), "mismatches": g["mismatches"]}
                for g in gatherers
                if g.get("mismatches")
            ],
            "refused_version": refused,
        }
