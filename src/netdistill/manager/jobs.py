"""The manager's periodic jobs (aging, report windows, silence checks) share one loop.

``Every`` runs an action on a daemon thread every ``interval_s`` until stopped. A failing
round is logged and kept in ``last_error`` and the next round tries again: a job never
dies of one bad round, and the status shows what went wrong.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Every:
    """Calls ``action`` every ``interval_s`` seconds on its own thread."""

    def __init__(self, interval_s: float, action: Callable[[], object], *, name: str) -> None:
        self.interval_s = interval_s
        self.name = name
        self.last_error = ""
        self._action = action
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._action()
                self.last_error = ""
            except Exception as exc:
                self.last_error = str(exc) or repr(exc)
                log.exception("%s failed; will try again", self.name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
