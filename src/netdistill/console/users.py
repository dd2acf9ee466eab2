"""Console users: name, role and an argon2id password hash (argon2-cffi's defaults, the
parameters are stored in the hash itself, so a later change of defaults rehashes at the
next login).

Table ``users`` (name, role, password_hash, created_at, updated_at) lives in the store
beside ``records``. On first start, when the table is empty, ``ensure_first_admin``
creates ``admin`` with a random password and returns it so the caller prints it once;
it is never shown again (only its hash is kept). That generated password must be
changed: ``admin`` is created with ``must_change_password`` set, and until the user sets
a password of their own (``set_password``, which clears the flag) the API refuses their
session everything but changing it (``access.py``) and every page sends them to
``/password``. A database made before the flag existed gets the column, false.

Times (``created_at``, ``updated_at``) are answered in UTC to the second, ISO-8601 with
``Z`` (``2026-11-23T09:00:00Z``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from netdistill.console.roles import Role
from netdistill.errors import UserError
from netdistill.manager.tables import execute
from netdistill.store import Store

_DDL = """
CREATE TABLE IF NOT EXISTS users (
    name VARCHAR PRIMARY KEY, role VARCHAR NOT NULL, password_hash VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)
"""
_MIGRATE = "ALTER TABLE users ADD COLUMN IF NOT EXISTS must_change_password BOOLEAN DEFAULT false"

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8


class UserBook:
    """Reads and writes ``users``. Thread-safe: every write goes through the store lock."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        # argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile); tests pass
        # a cheaper one
        self._hasher = hasher or PasswordHasher()
        execute(store, _DDL)
        execute(store, _MIGRATE)
        # a hash to verify against when the user does not exist, so that a wrong name
        # takes as long as a wrong password
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def list(self) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT name, role, created_at, updated_at, "
            "coalesce(must_change_password, false) AS must_change_password "
            "FROM users ORDER BY name"
        ).to_pylist()
        for row in rows:
            for key in ("created_at", "updated_at"):
                row[key] = utc_seconds(row[key])
        return rows

    def get(self, name: str) -> dict[str, Any] | None:
        rows = self.store.query(
            "SELECT name, role, password_hash, "
            "coalesce(must_change_password, false) AS must_change_password "
            "FROM users WHERE name = $name",
            {"name": name},
        ).to_pylist()
        return rows[0] if rows else None

    def role_of(self, name: str) -> Role | None:
        user = self.get(name)
        return Role.parse(user["role"]) if user is not None else None

    def count(self) -> int:
        return int(self.store.query("SELECT count(*) AS n FROM users").to_pylist()[0]["n"])

    def _admins(self) -> int:
        rows = self.store.query("SELECT count(*) AS n FROM users WHERE role = 'admin'")
        return int(rows.to_pylist()[0]["n"])

    def add(self, name: str, password: str, role: Role | str) -> None:
        role = role if isinstance(role, Role) else Role.parse(role)
        if not _NAME.match(name):
            raise UserError(f"user name {name!r}: 1-64 letters, digits, '_', '.', '@', '-'")
        _check_password(password)
        if self.get(name) is not None:
            raise UserError(f"user {name!r} exists")
        now = self._clock()
        execute(
            self.store,
            "INSERT INTO users (name, role, password_hash, created_at, updated_at, "
            "must_change_password) VALUES (?, ?, ?, to_timestamp(?), to_timestamp(?), false)",
            (name, role.name, self._hasher.hash(password), now, now),
        )

    def must_change_password(self, name: str) -> bool:
        user = self.get(name)
        return bool(user and user["must_change_password"])

    def set_password(self, name: str, password: str) -> None:
        """Set ``name``'s password (and clear ``must_change_password``)."""
        user = self._existing(name)
        _check_password(password)
        if user["must_change_password"] and self._verifies(user["password_hash"], password):
            raise UserError("choose a new password, not the generated one")
        execute(
            self.store,
            "UPDATE users SET password_hash = ?, updated_at = to_timestamp(?), "
            "must_change_password = false WHERE name = ?",
            (self._hasher.hash(password), self._clock(), name),
        )

    def _verifies(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    def set_role(self, name: str, role: Role | str) -> None:
        role = role if isinstance(role, Role) else Role.parse(role)
        user = self._existing(name)
        if user["role"] == "admin" and role != Role.admin and self._admins() == 1:
            raise UserError(f"{name!r} is the last admin; make another admin first")
        execute(
            self.store,
            "UPDATE users SET role = ?, updated_at = to_timestamp(?) WHERE name = ?",
            (role.name, self._clock(), name),
        )

    def remove(self, name: str) -> None:
        user = self._existing(name)
        if user["role"] == "admin" and self._admins() == 1:
            raise UserError(f"{name!r} is the last admin; make another admin first")
        execute(self.store, "DELETE FROM users WHERE name = ?", (name,))

    def authenticate(self, name: str, password: str) -> Role | None:
        """The user's role if ``password`` is theirs, else None."""
        user = self.get(name)
        try:
            self._hasher.verify(user["password_hash"] if user else self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if self._hasher.check_needs_rehash(user["password_hash"]):
            execute(
                self.store,
                "UPDATE users SET password_hash = ? WHERE name = ?",
                (self._hasher.hash(password), name),
            )
        return Role.parse(user["role"])

    def ensure_first_admin(self) -> str | None:
        """Create ``admin`` with a random password when there is no user; return the
        password (to print once) or None when users exist."""
        if self.count():
            return None
        password = secrets.token_urlsafe(12)
        self.add("admin", password, Role.admin)
        execute(self.store, "UPDATE users SET must_change_password = true WHERE name = 'admin'")
        return password

    def _existing(self, name: str) -> dict[str, Any]:
        user = self.get(name)
        if user is None:
            raise UserError(f"no user named {name!r}")
        return user


def utc_seconds(value: datetime) -> str:
    """``value`` in UTC to the second: ``2026-11-23T09:00:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
