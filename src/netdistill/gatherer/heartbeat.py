"""Heartbeats from a gatherer to each of its managers (SYSTEM.md §3, delivery step 6).

Every ``interval_s`` the sender takes the gatherer's status (``status_fn()``), adds what
a manager needs to judge it — version, uptime, the interval itself (so the manager knows
when a silence starts), per-source record rates since the previous heartbeat — and posts
it as JSON to ``POST /api/heartbeat`` on every manager (over HTTPS verified with the
gatherer's ``--ca`` when given: ``verify`` is the forwarders' SSL context). A manager
that does not answer is noted (``errors`` per URL) and tried again next time: heartbeats
are never queued or spooled, a late one says nothing the next one does not.

``status_fn`` returns a dict; the manager reads these keys when present (all optional):
``committed_records`` (or ``records``), ``errors``, ``last_error``,
``sources: [{name, records, datagrams, dropped: {reason: n}, …}]`` and
``spool: {depth_batches, depth_bytes, oldest_age_s, dropped: {reason: n}}``. Everything
else is kept and shown as sent.

Each heartbeat also carries ``plugins`` (``plugins.inventory()``, read once: the source
types with the distribution and version offering each, and the plugin distributions
with their versions), which the manager compares with its own (``manager/versions.py``).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from netdistill import __version__
from netdistill.delivery.ack import VERSION_HEADER

log = logging.getLogger(__name__)


class HeartbeatSender:
    """A daemon thread posting heartbeats; ``start`` sends the first one at once.

    ``send_once`` may be called directly; it never raises for a manager that is down.
    """

    def __init__(
        self,
        manager_urls: Sequence[str],
        gatherer_name: str,
        token: str | None,
        status_fn: Callable[[], dict[str, Any]],
        interval_s: float = 10.0,
        *,
        timeout_s: float = 5.0,
        verify: ssl.SSLContext | bool | str = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.manager_urls = [u.rstrip("/") for u in manager_urls]
        self.gatherer_name = gatherer_name
        self.status_fn = status_fn
        self.interval_s = interval_s
        self._clock = clock
        self.started_at = clock()
        self.sent = 0
        self.errors: dict[str, str] = {}
        self._previous: tuple[float, dict[str, int]] | None = None
        headers = {"authorization": f"Bearer {token}"} if token else {}
        headers[VERSION_HEADER] = __version__
        self._plugins: dict[str, Any] | None = None
        self._http = httpx.Client(headers=headers, timeout=timeout_s, verify=verify)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def _rates(self, now: float, sources: list[dict[str, Any]]) -> dict[str, float]:
        counts = {str(s.get("name")): int(s.get("records", 0) or 0) for s in sources}
        rates: dict[str, float] = {}
        if self._previous is not None and now > self._previous[0]:
            elapsed = now - self._previous[0]
            for name, n in counts.items():
                before = self._previous[1].get(name, n)
                rates[name] = round(max(n - before, 0) / elapsed, 3)
        self._previous = (now, counts)
        return rates

    def payload(self) -> dict[str, Any]:
        now = self._clock()
        status = dict(self.status_fn())
        sources = list(status.get("sources") or [])
        return {
            "gatherer": self.gatherer_name,
            "version": __version__,
            "sent_at": now,
            "uptime_s": round(now - self.started_at, 3),
            "interval_s": self.interval_s,
            "sequence": self.sent + 1,
            "rates": self._rates(now, sources),
            "plugins": self.plugins(),
            "status": status,
        }

    def plugins(self) -> dict[str, Any]:
        """This process's plugin inventory, read once."""
        if self._plugins is None:
            from netdistill.plugins import inventory

            self._plugins = inventory()
        return self._plugins

    def send_once(self) -> int:
        """Post one heartbeat to every manager; return how many accepted it."""
        try:
            body = self.payload()
        except Exception as exc:  # a broken status must not silence the gatherer
            log.exception("gatherer status failed; sending a heartbeat without it")
            body = {
                "gatherer": self.gatherer_name,
                "version": __version__,
                "sent_at": self._clock(),
                "uptime_s": round(self._clock() - self.started_at, 3),
                "interval_s": self.interval_s,
                "sequence": self.sent + 1,
                "status": {"errors": 1, "last_error": f"status: {exc}"},
            }
        self.sent += 1
        accepted = 0
        for url in self.manager_urls:
            try:
                response = self._http.post(
                    f"{url}/api/heartbeat", params={"gatherer": self.gatherer_name}, json=body
                )
                response.raise_for_status()
            except httpx.HTTPError as exc:
                if self.errors.get(url) is None:
                    log.warning("heartbeat to %s failed: %s", url, exc)
                self.errors[url] = str(exc) or type(exc).__name__
                continue
            self.errors.pop(url, None)
            accepted += 1
        return accepted

    def _loop(self) -> None:
        while True:
            self.send_once()
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._http.close()
