"""Licences over HTTP, and the read-only mode of an expired licence.

Routes (behind the API guard; ``console/roles.py`` makes every ``/api/licences`` route
admin-only, reads included)::

    GET    /api/licences                      install id, edition, limits and usage,
                                              the installed licences, refusals
    POST   /api/licences  {"text": "..."}     install a licence file (400 names why not)
    DELETE /api/licences/{licence_id}         uninstall one
    GET    /api/licences/admitted             the gatherers and exporters admitted
    DELETE /api/licences/admitted?item=&subject=   free one's place

``ReadOnlyGuard`` (pure ASGI middleware) answers 403 with ``read_only()``'s message
to a change of configuration — any method but GET/HEAD/OPTIONS under
``CONFIG_PREFIXES`` (the scheme, its reload and rollback, fields, procedures, saved
reports) — while the licence book is read-only.
Checking a scheme (``/api/scheme/validate``, ``/diff``) is not a change. Data delivery,
queries, report runs, users and licences stay open: installing a licence is how one
leaves read-only mode. A request without a credential is passed on, so it gets its 401
and learns nothing about the licence.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from netdistill.console.roles import SAFE_METHODS
from netdistill.errors import LicenceError
from netdistill.licence.book import LicenceBook

CONFIG_PREFIXES = ("/api/scheme", "/api/fields", "/api/procedures", "/api/reports")
#: checks, not changes
NOT_CHANGES = frozenset({"/api/scheme/validate", "/api/scheme/diff"})


class LicenceText(BaseModel):
    text: str


def licences_router(book: LicenceBook) -> APIRouter:
    router = APIRouter(prefix="/api/licences", tags=["licences"])

    @router.get("")
    def get_licences() -> dict[str, Any]:
        return {
            **book.status(),
            "entitlements": book.entitlements().model_dump(),
            "licences": book.licences(),
        }

    @router.post("")
    def post_licence(body: LicenceText) -> dict[str, Any]:
        licence = book.add(body.text, user="api")  # LicenceError → 400 with its message
        return {"installed": licence.licence_id, "edition": book.edition()}

    @router.get("/admitted")
    def get_admitted() -> list[dict[str, Any]]:
        return book.admitted()

    @router.delete("/admitted")
    def delete_admitted(item: str, subject: str) -> dict[str, str]:
        try:
            book.forget(item, subject)
        except LicenceError as exc:
            raise HTTPException(404, detail=str(exc)) from None
        return {"forgotten": subject, "item": item}

    @router.delete("/{licence_id}")
    def delete_licence(licence_id: str) -> dict[str, str]:
        try:
            book.remove(licence_id, user="api")
        except LicenceError as exc:
            raise HTTPException(404, detail=str(exc)) from None
        return {"removed": licence_id, "edition": book.edition()}

    return router


def is_config_change(method: str, path: str) -> bool:
    if method.upper() in SAFE_METHODS or path in NOT_CHANGES:
        return False
    return any(path == p or path.startswith(p + "/") for p in CONFIG_PREFIXES)


class ReadOnlyGuard:
    """Refuses configuration changes while ``book.read_only()`` says why (see above).
    ``authenticated(scope)`` tells whether the request carries a credential."""

    def __init__(
        self, app: ASGIApp, book: LicenceBook, authenticated: Callable[[Scope], bool]
    ) -> None:
        self.app = app
        self.book = book
        self.authenticated = authenticated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_config_change(scope["method"], scope["path"]):
            reason = self.book.read_only()
            if reason and self.authenticated(scope):
                body = json.dumps({"detail": reason}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 403,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
