"""Console sessions, kept in the store (table ``sessions``) so they survive a restart of
the manager and expire on the server, whatever the browser does with its cookie.

The cookie holds a random 256-bit session id; the table keeps only its SHA-256, so
reading the store does not give a usable session. Each session has its own CSRF token
(returned at login and put in every page): a cookie-authenticated request that changes
something must echo it in the ``X-CSRF-Token`` header. A session ends at its absolute
expiry (``ttl_s`` after login) or after ``idle_s`` without a request, whichever is first.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from netdistill.manager.tables import execute
from netdistill.store import Store

_DDL = """
CREATE TABLE IF NOT EXISTS sessions (
    id_sha256 VARCHAR PRIMARY KEY, user_name VARCHAR NOT NULL, csrf_token VARCHAR NOT NULL,
    created_at DOUBLE NOT NULL, last_seen DOUBLE NOT NULL, expires_at DOUBLE NOT NULL)
"""

COOKIE = "netdistill_session"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    user: str
    csrf_token: str
    expires_at: float


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionBook:
    """Creates, checks and ends sessions. ``touch_every_s`` limits how often a request
    writes its ``last_seen`` (one write per session per period, not per request)."""

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = 8 * 3600,
        idle_s: float = 3600,
        touch_every_s: float = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        self.touch_every_s = touch_every_s
        self._clock = clock
        execute(store, _DDL)

    def create(self, user: str) -> tuple[str, Session]:
        """A new session for ``user``: (cookie value, session)."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = self._clock()
        expires = now + self.ttl_s
        execute(self.store, "DELETE FROM sessions WHERE expires_at < ?", (now,))
        execute(
            self.store,
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
            (_digest(session_id), user, csrf, now, now, expires),
        )
        return session_id, Session(user, csrf, expires)

    def check(self, session_id: str) -> Session | None:
        """The live session with this id, or None (unknown, expired or idle)."""
        if not session_id:
            return None
        rows = self.store.query(
            "SELECT user_name, csrf_token, last_seen, expires_at FROM sessions "
            "WHERE id_sha256 = $id",
            {"id": _digest(session_id)},
        ).to_pylist()
        if not rows:
            return None
        row = rows[0]
        now = self._clock()
        if now >= row["expires_at"] or now - row["last_seen"] >= self.idle_s:
            self.end(session_id)
            return None
        if now - row["last_seen"] >= self.touch_every_s:
            execute(
                self.store,
                "UPDATE sessions SET last_seen = ? WHERE id_sha256 = ?",
                (now, _digest(session_id)),
            )
        return Session(row["user_name"], row["csrf_token"], row["expires_at"])

    def end(self, session_id: str) -> None:
        execute(self.store, "DELETE FROM sessions WHERE id_sha256 = ?", (_digest(session_id),))

    def end_all(self, user: str) -> None:
        """End every session of ``user`` (password changed, role changed, removed)."""
        execute(self.store, "DELETE FROM sessions WHERE user_name = ?", (user,))
