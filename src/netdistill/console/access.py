"""Who may call the manager's API: the guard every guarded route runs.

A request is allowed with either

* the manager's bearer token (``Authorization: Bearer …`` from ``<data-dir>/manager.json``,
  for scripts and the CLI): it counts as ``admin``; or
* a console session cookie whose user has the role the request needs
  (``roles.required_role``); a session request that changes something must also carry
  the session's CSRF token in ``X-CSRF-Token``, so another site cannot make a logged-in
  browser change the scheme.

No credential → 401, too small a role or a missing/wrong CSRF token → 403. The routes
that deliver data into the store (``roles.token_only``) take the token only: a person
changes the scheme, not the records.

A session whose user still has a generated password (``users.must_change_password``,
the first ``admin``) may only read who it is, change that password and log out
(``PASSWORD_CHANGE_PATHS``); anything else is 403 "… must change the generated
password first", whatever the role.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request

from netdistill.console.roles import SAFE_METHODS, Role, required_role, token_only
from netdistill.console.sessions import COOKIE, CSRF_HEADER, SessionBook
from netdistill.console.users import UserBook

TOKEN_USER = "token"
#: what a session that must change its generated password may still call
PASSWORD_CHANGE_PATHS = frozenset({"/api/auth/me", "/api/auth/password", "/api/auth/logout"})


@dataclass(frozen=True)
class Principal:
    user: str
    role: Role
    via: str  # "token" or "session"
    csrf_token: str = ""
    expires_at: float = 0.0
    must_change_password: bool = False


class Access:
    def __init__(self, token: str, users: UserBook, sessions: SessionBook) -> None:
        self._token = token
        self.users = users
        self.sessions = sessions

    def principal(self, request: Request) -> Principal | None:
        given = request.headers.get("authorization", "")
        if given:
            if hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
                return Principal(TOKEN_USER, Role.admin, "token")
            return None  # a wrong token is not rescued by a cookie
        session = self.sessions.check(request.cookies.get(COOKIE, ""))
        if session is None:
            return None
        user = self.users.get(session.user)
        if user is None:
            return None
        return Principal(
            session.user,
            Role.parse(user["role"]),
            "session",
            session.csrf_token,
            session.expires_at,
            bool(user["must_change_password"]),
        )

    def authorize(self, request: Request) -> Principal:
        """The guard (a FastAPI dependency): leaves the caller in
        ``request.state.principal`` (read by the audit log, which records refused
        queries too), raises 401/403, else returns it."""
        principal = self.principal(request)
        if principal is None:
            raise HTTPException(
                status_code=401, detail="log in, or give the manager's bearer token"
            )
        request.state.principal = principal  # also when refused below: the audit names it
        if principal.via == "session" and token_only(request.method, request.url.path):
            raise HTTPException(
                status_code=403,
                detail="this route delivers data for scripts and gatherers: use the token",
            )
        if principal.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
            raise HTTPException(
                status_code=403,
                detail=f"{principal.user} must change the generated password first "
                "(POST /api/auth/password, or the console's /password page)",
            )
        need = required_role(request.method, request.url.path)
        if principal.role < need:
            raise HTTPException(
                status_code=403,
                detail=f"{principal.user} is {principal.role.name}; this needs {need.name}",
            )
        if principal.via == "session" and request.method.upper() not in SAFE_METHODS:
            given = request.headers.get(CSRF_HEADER, "")
            if not given or not hmac.compare_digest(given.encode(), principal.csrf_token.encode()):
                raise HTTPException(status_code=403, detail="missing or wrong X-CSRF-Token")
        return principal
