"""HTTP routes of the enhancement catalogue and of procedures, for the console.

``ProcedureBook`` holds the scheme's lookups and procedures while the manager runs
(thread-safe); ``procedures_router`` exposes it::

    GET   /api/lookups                              lookups and their function notations
    GET   /api/procedures                           every procedure
    GET   /api/procedures/{name}
    GET   /api/procedures/{name}/options?field=…&chain=…   End / Continue lists
    POST  /api/procedures/{name}/enable | /disable
    PUT   /api/procedures/{name}                    a new definition; 409 while enabled

An update is validated exactly as at scheme load (unknown lookup, function, output, type
mismatch → 400 with the column) and refused with 409 while the procedure is enabled
(``check_procedure_change``). ``on_change`` is called with the new procedure list after
every accepted change (the local system rebuilds its enhancer from it).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import ValidationError

from netdistill.enhance.catalogue import options
from netdistill.enhance.config import (
    ProcedureConfig,
    catalogue_of,
    check_procedure_change,
    field_types,
    validate_procedure,
)
from netdistill.errors import NotationError, ProcedureChangeError
from netdistill.lookups.base import LookupConfigBase


class ProcedureBook:
    def __init__(
        self,
        lookups: Sequence[LookupConfigBase],
        procedures: Sequence[ProcedureConfig],
        *,
        sources: Sequence[str],
        on_change: Callable[[list[ProcedureConfig]], None] | None = None,
    ) -> None:
        self.lookups = list(lookups)
        self.sources = list(sources)
        self.catalogue = catalogue_of(self.lookups)
        self._procedures = {p.name: p for p in procedures}
        self._lock = threading.Lock()
        self._on_change = on_change

    @classmethod
    def from_scheme(cls, scheme: Any, **kwargs: Any) -> ProcedureBook:
        return cls(
            scheme.lookups, scheme.procedures, sources=[s.name for s in scheme.sources], **kwargs
        )

    def procedures(self) -> list[ProcedureConfig]:
        with self._lock:
            return list(self._procedures.values())

    def get(self, name: str) -> ProcedureConfig:
        procedure = self._procedures.get(name)
        if procedure is None:
            raise KeyError(name)
        return procedure

    def replace(self, name: str, new: ProcedureConfig) -> ProcedureConfig:
        with self._lock:
            old = self.get(name)
            if new.name != name:
                raise ProcedureChangeError("a procedure's name cannot change")
            check_procedure_change(old, new)
            self._procedures[name] = new
            current = list(self._procedures.values())
        if self._on_change is not None:
            self._on_change(current)
        return new

    def set_enabled(self, name: str, enabled: bool) -> ProcedureConfig:
        old = self.get(name)
        return self.replace(name, old.model_copy(update={"enabled": enabled}))

    def update(self, name: str, data: dict[str, Any]) -> ProcedureConfig:
        new = validate_procedure({"name": name, **data}, sources=self.sources, lookups=self.lookups)
        return self.replace(name, new)


def bearer_guard(token: str) -> Callable[[Request], None]:
    """The manager's bearer-token check, for routers mounted beside the guarded app."""

    def authorized(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    return authorized


def procedures_router(book: ProcedureBook, *, token: str | None = None) -> APIRouter:
    """The routes above; ``token`` adds the bearer check (else the includer guards it)."""
    dependencies = [Depends(bearer_guard(token))] if token is not None else []
    router = APIRouter(prefix="/api", dependencies=dependencies)

    def found(name: str) -> ProcedureConfig:
        try:
            return book.get(name)
        except KeyError:
            raise HTTPException(404, detail=f"no procedure named {name!r}") from None

    @router.get("/lookups")
    def get_lookups() -> list[dict[str, Any]]:
        return [
            {
                "name": c.name,
                "type": c.type,
                "description": c.description,
                "functions": [f.notation() for f in c.functions()],
            }
            for c in book.lookups
        ]

    @router.get("/procedures")
    def get_procedures() -> list[dict[str, Any]]:
        return [p.model_dump() for p in book.procedures()]

    @router.get("/procedures/{name}")
    def get_procedure(name: str) -> dict[str, Any]:
        return found(name).model_dump()

    @router.get("/procedures/{name}/options")
    def get_options(name: str, field: str, chain: str = "") -> dict[str, Any]:
        procedure = found(name)
        try:
            return options(field, chain, field_types(procedure.add_fields), book.catalogue)
        except NotationError as exc:
            raise HTTPException(400, detail=str(exc)) from None

    def change(action: Callable[[], ProcedureConfig]) -> dict[str, Any]:
        try:
            return action().model_dump()
        except ProcedureChangeError as exc:
            raise HTTPException(409, detail=str(exc)) from None
        except ValidationError as exc:
            details = [
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            ]
            raise HTTPException(400, detail=details) from None

    @router.post("/procedures/{name}/enable")
    def enable(name: str) -> dict[str, Any]:
        found(name)
        return change(lambda: book.set_enabled(name, True))

    @router.post("/procedures/{name}/disable")
    def disable(name: str) -> dict[str, Any]:
        found(name)
        return change(lambda: book.set_enabled(name, False))

    @router.put("/procedures/{name}")
    def update(name: str, body: dict[str, Any]) -> dict[str, Any]:
        found(name)
        return change(lambda: book.update(name, body))

    return router


def local_procedures_router(scheme: Any, store: Any, pipeline: Any, token: str | None) -> APIRouter:
    """The router for ``netdistill run``: an accepted change rebuilds the pipeline's
    enhancer (the old one's lookups are left to finish the batch in flight). ``token``
    None: the includer guards it (the manager's guard, which accepts console sessions)."""
    from netdistill.enhance.plan import build_enhancer

    def rebuild(procedures: list[ProcedureConfig]) -> None:
        changed = scheme.model_copy(update={"procedures": procedures})
        pipeline.process = build_enhancer(changed, store)

    book = ProcedureBook.from_scheme(scheme, on_change=rebuild)
    return procedures_router(book, token=token)
