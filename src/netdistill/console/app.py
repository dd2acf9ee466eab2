"""``Console``: users, sessions, audit log, dashboard and pages of one manager, mounted
on the manager's FastAPI app.

Wiring (``manager/main.py``)::

    console = Console(store, token=manager_token)          # creates the first admin
    app = create_app(store, token=..., access=console.access.authorize, ...)
    console.mount(app)

The first start with no user creates ``admin`` with a random password and prints it
once on stderr; later starts print nothing. Settings (all optional) come from
``ConsoleConfig``; a scheme snippet, once the scheme carries it::

    manager:
      console: {session_ttl_s: 28800, session_idle_s: 3600, login_max_failures: 5}
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from argon2 import PasswordHasher
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from netdistill.console.access import Access
from netdistill.console.audit import AuditLog, AuditMiddleware
from netdistill.console.auth import auth_router
from netdistill.console.dashboard import Dashboard, dashboard_router
from netdistill.console.explore import Explorer, explore_router
from netdistill.console.login_limits import LoginLimiter
from netdistill.console.pages import mount_pages
from netdistill.console.procedures import procedures_console_router
from netdistill.console.sessions import SessionBook
from netdistill.console.users import UserBook
from netdistill.store import Store
from netdistill.store.sandbox import QueryLimits


class ConsoleConfig(BaseModel):
    """Console settings; the defaults suit one operator team on a LAN."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    session_ttl_s: float = Field(8 * 3600, gt=0, description="a session ends this long after login")
    session_idle_s: float = Field(3600, gt=0, description="… or after this long without a request")
    # login rate limits (console/login_limits.py)
    login_window_s: float = Field(900, gt=0, description="failed logins counted this far back")
    login_max_failures: int = Field(5, ge=1, description="per user name and client address")
    login_max_failures_per_address: int = Field(50, ge=1, description="per client address")
    login_lockout_s: float = Field(60, gt=0, description="first lockout; doubles per failure")
    login_lockout_max_s: float = Field(900, gt=0, description="the longest lockout")


def announce_password(password: str) -> None:
    print(
        f"console: created user admin with password {password} ; change it (this is shown once)",
        file=sys.stderr,
        flush=True,
    )


class Console:
    def __init__(
        self,
        store: Store,
        *,
        token: str,
        config: ConsoleConfig | None = None,
        clock: Callable[[], float] = time.time,
        announce: Callable[[str], None] = announce_password,
        hasher: PasswordHasher | None = None,
        query_limits: Callable[[], QueryLimits] = QueryLimits,
    ) -> None:
        config = config or ConsoleConfig()
        self.store = store
        self.users = UserBook(store, clock=clock, hasher=hasher)
        self.sessions = SessionBook(
            store, ttl_s=config.session_ttl_s, idle_s=config.session_idle_s, clock=clock
        )
        self.audit = AuditLog(store, clock=clock)
        self.access = Access(token, self.users, self.sessions)
        self.login_limits = LoginLimiter(
            window_s=config.login_window_s,
            max_failures=config.login_max_failures,
            max_failures_per_address=config.login_max_failures_per_address,
            lockout_s=config.login_lockout_s,
            lockout_max_s=config.login_lockout_max_s,
            clock=clock,
        )
        self.dashboard = Dashboard(store, clock=clock)
        self.explorer = Explorer(store, clock=clock, limits=query_limits)
        password = self.users.ensure_first_admin()
        if password is not None:
            self.audit.record("console", "create_first_admin", {"user": "admin"})
            announce(password)

    def mount(self, app: FastAPI) -> None:
        """Add the console's routes, pages and the audit middleware to ``app``."""
        app.include_router(auth_router(self.access, self.audit, self.login_limits))
        app.include_router(dashboard_router(self.dashboard, self.access))
        app.include_router(explore_router(self.explorer, self.access))
        app.include_router(procedures_console_router(self.access))
        mount_pages(app, self.access)
        from netdistill.billing.pages import mount_invoice_pages

        mount_invoice_pages(app, self.access, self.store)
        app.add_middleware(AuditMiddleware, audit=self.audit)
        app.state.audit = self.audit  # routes that audit themselves (audit.record_query)
