"""Login rate limits: failed logins counted per (user name, client address) and per
client address in a sliding window; past the limit the login route answers 429 with
``Retry-After`` before it looks at the password (no argon2 work, no timing oracle).

Rule, for each key (``name@address`` with ``login_max_failures``, the address alone with
``login_max_failures_per_address``): let ``n`` be its failures in the last
``login_window_s``. With ``n >= limit`` the key is locked until its last failure plus
``login_lockout_s * 2 ** (n - limit)``, at most ``login_lockout_max_s``; so each further
failure, once a lockout has run out, doubles the next one. A refused attempt is not a
failure (it neither counts nor extends the lockout). A successful login clears the
name+address key; the address key only ages out.

The counts live in memory: a restart of the manager forgets them. Settings are in
``ConsoleConfig`` (``console/app.py``)::

    manager:
      console: {login_max_failures: 5, login_window_s: 900, login_lockout_s: 60}
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

#: past this many keys, a login sweeps out the keys with no failure left in the window
_SWEEP_AT = 10_000


class LoginLimiter:
    """Thread-safe; the settings (with their defaults) come from ``ConsoleConfig``."""

    def __init__(
        self,
        *,
        window_s: float,
        max_failures: int,
        max_failures_per_address: int,
        lockout_s: float,
        lockout_max_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_s = window_s
        self.max_failures = max_failures
        self.max_failures_per_address = max_failures_per_address
        self.lockout_s = lockout_s
        self.lockout_max_s = lockout_max_s
        self._clock = clock
        self._lock = threading.Lock()
        # (name, address) and (address,): the shapes differ, so the keys never collide
        self._failures: dict[tuple[str, ...], deque[float]] = {}
        # enough failures to reach the longest lockout; older ones add nothing
        self._doublings = math.ceil(math.log2(max(lockout_max_s / lockout_s, 1)))

    def _keys(self, user: str, address: str) -> list[tuple[tuple[str, ...], int]]:
        return [((user, address), self.max_failures), ((address,), self.max_failures_per_address)]

    def _recent(self, key: tuple[str, ...], now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, user: str, address: str) -> int:
        """Seconds (rounded up) until a login of ``user`` from ``address`` is heard
        again; 0 when it may be tried now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key, limit in self._keys(user, address):
                times = self._recent(key, now)
                if times is None or len(times) < limit:
                    continue
                lockout = min(self.lockout_s * 2.0 ** (len(times) - limit), self.lockout_max_s)
                wait = max(wait, times[-1] + lockout - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, user: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > _SWEEP_AT:
                for key in list(self._failures):
                    self._recent(key, now)
            for key, limit in self._keys(user, address):
                times = self._recent(key, now)
                if times is None:
                    times = self._failures[key] = deque(maxlen=limit + self._doublings + 1)
                times.append(now)

    def succeeded(self, user: str, address: str) -> None:
        with self._lock:
            self._failures.pop((user, address), None)
