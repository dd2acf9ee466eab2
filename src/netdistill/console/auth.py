"""Routes for logging in and out, one's own password, users (admin) and the audit log
(admin)::

    POST   /api/auth/login      {user, password} → session cookie + {user, role, csrf_token}
    POST   /api/auth/logout     ends the cookie's session
    GET    /api/auth/me         who the caller is (and the session's CSRF token)
    POST   /api/auth/password   {old_password, new_password}: change one's own password
                                (the only change a session with a generated password may
                                make, ``access.py``; the new one must differ from it)
    GET    /api/users           users and roles                      (admin)
    POST   /api/users           {name, password, role}               (admin)
    PATCH  /api/users/{name}    {role?, password?}                   (admin)
    DELETE /api/users/{name}                                         (admin)
    GET    /api/audit?user=&limit=   newest first                     (admin)

A changed password or role, or a removed user, ends that user's sessions. Failed logins
are limited per user name and client address (``login_limits.py``): past the limit the
login answers 429 with ``Retry-After`` without checking the password.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict

from netdistill.console.access import Access, Principal
from netdistill.console.audit import AuditLog
from netdistill.console.login_limits import LoginLimiter
from netdistill.console.roles import Role
from netdistill.console.sessions import COOKIE
from netdistill.errors import UserError


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str
    password: str


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    old_password: str
    new_password: str


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    password: str
    role: str = "viewer"


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str | None = None
    password: str | None = None


def _me(principal: Principal) -> dict[str, Any]:
    return {
        "user": principal.user,
        "role": principal.role.name,
        "via": principal.via,
        "csrf_token": principal.csrf_token,
        "expires_at": principal.expires_at or None,
        "must_change_password": principal.must_change_password,
    }


def auth_router(access: Access, audit: AuditLog, limits: LoginLimiter) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["console access"])
    guard = Depends(access.authorize)

    @router.post("/auth/login")
    def login(body: LoginRequest, request: Request, response: Response) -> dict[str, Any]:
        request.state.audit_user = body.user
        address = request.client.host if request.client is not None else ""
        wait = limits.retry_after(body.user, address)
        if wait:
            raise HTTPException(
                status_code=429,
                detail=f"too many failed logins; try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        role = access.users.authenticate(body.user, body.password)
        if role is None:
            limits.failed(body.user, address)
            raise HTTPException(status_code=401, detail="wrong user name or password")
        limits.succeeded(body.user, address)
        session_id, session = access.sessions.create(body.user)
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=int(access.sessions.ttl_s),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        must_change = access.users.must_change_password(body.user)
        return _me(
            Principal(
                body.user, role, "session", session.csrf_token, session.expires_at, must_change
            )
        )

    @router.post("/auth/logout")
    def logout(request: Request, response: Response) -> dict[str, bool]:
        principal = access.principal(request)
        if principal is not None:
            request.state.principal = principal
        access.sessions.end(request.cookies.get(COOKIE, ""))
        response.delete_cookie(COOKIE, path="/")
        return {"ok": True}

    @router.get("/auth/me")
    def me(principal: Principal = guard) -> dict[str, Any]:
        return _me(principal)

    @router.post("/auth/password")
    def change_own_password(body: PasswordChange, principal: Principal = guard) -> dict[str, Any]:
        if principal.via != "session":
            raise HTTPException(400, detail="the manager's token has no password to change")
        if access.users.authenticate(principal.user, body.old_password) is None:
            raise HTTPException(403, detail="the old password is wrong")
        _user_change(lambda: access.users.set_password(principal.user, body.new_password))
        return {"changed": principal.user}

    @router.get("/users", dependencies=[guard])
    def list_users() -> list[dict[str, Any]]:
        return access.users.list()

    @router.post("/users", dependencies=[guard])
    def add_user(body: NewUser) -> dict[str, str]:
        _user_change(lambda: access.users.add(body.name, body.password, body.role))
        return {"added": body.name, "role": body.role}

    @router.patch("/users/{name}", dependencies=[guard])
    def change_user(name: str, body: UserChange) -> dict[str, Any]:
        if access.users.get(name) is None:
            raise HTTPException(404, detail=f"no user named {name!r}")
        if body.role is not None:
            role = body.role
            _user_change(lambda: access.users.set_role(name, role))
        if body.password is not None:
            password = body.password
            _user_change(lambda: access.users.set_password(name, password))
        access.sessions.end_all(name)
        return {"changed": name, "role": access.users.role_of(name).name}  # type: ignore[union-attr]

    @router.delete("/users/{name}", dependencies=[guard])
    def remove_user(name: str) -> dict[str, str]:
        if access.users.get(name) is None:
            raise HTTPException(404, detail=f"no user named {name!r}")
        _user_change(lambda: access.users.remove(name))
        access.sessions.end_all(name)
        return {"removed": name}

    @router.get("/audit", dependencies=[guard])
    def get_audit(user: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return audit.entries(user=user, limit=limit)

    return router


def _user_change(action: Any) -> None:
    try:
        action()
    except (UserError, ValueError) as exc:
        raise HTTPException(400, detail=str(exc)) from None


__all__ = ["Role", "auth_router"]
