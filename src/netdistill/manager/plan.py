"""The flow plan as the manager hands it out: each gatherer's part, versioned.

``GET /api/plan?gatherer=G`` answers ``{"version", "gatherer", "sources", "filters",
"settings", ...}``: the configs of the sources whose ``gatherer:`` is G (as JSON,
validated again by the gatherer with the same models; their secrets are read here, on
the manager, and handed over as values: ``scheme/secrets.py``), the filters on those
sources with the field types they were checked against, and G's spool and forwarding
settings. The version is a hash of that content, so it changes exactly when G's part
changes and is stable across manager restarts. Gatherers poll it and apply a change
live. The field registry is not in it: batches carry field names and types
(``delivery/wire.py``).

Fields: the fields every source of the scheme produces (on any gatherer, and the
manager's own) are created in ``records`` when the service starts, on each reload and
on each change applied live (``ensure_scheme_fields``) — not when a plan is served, so
a manager that never served a gatherer its plan (the second of two) has them too.

The scheme is reloaded with SIGHUP or ``POST /api/scheme/reload`` (behind the API guard
when the process gives one: the manager's token or an operator's session; else the
token only), through the same loader as ``check-config``; a scheme with errors is
refused and the running one kept. A reload that succeeds hands the text read and who
asked (``token``, the session's user, ``sighup``) to ``on_reload``, which keeps it as a
scheme version when it differs from the latest (``console/scheme_api.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from netdistill.errors import FieldError, SchemeError
from netdistill.manager.auth import GathererAuth
from netdistill.records.batch import FieldSpec
from netdistill.scheme.load import load_scheme, parse_scheme
from netdistill.scheme.models import Scheme
from netdistill.scheme.secrets import SecretError
from netdistill.sources.base import SourceContext, build_source, declared_fields
from netdistill.stages.filter import Filter, FilterConfig
from netdistill.store import Store, ensure_fields

log = logging.getLogger(__name__)


def source_fields(config: Any) -> tuple[FieldSpec, ...]:
    """The fields a scheme source produces beyond the standard ones: those its class
    declares, or, when they depend on its config (the line formats of ``file``,
    ``syslog``, ``lines``), a built source's — building one opens no socket or file
    (that happens in ``start``)."""
    declared = declared_fields(config.type)
    if declared:
        return declared
    return tuple(build_source(config, SourceContext(state_dir=None)).fields)


def ensure_scheme_fields(store: Store, scheme: Scheme) -> list[str]:
    """Create in ``records`` the fields of every source of ``scheme``, whichever gatherer
    runs it; returns the names added. ``FieldError`` names a field that exists with
    another type (nothing is cast)."""
    added: list[str] = []
    for source in scheme.sources:
        added += ensure_fields(store, source_fields(source), source=source.name)
    if added:
        log.warning("fields added for the scheme's sources: %s", ", ".join(added))
    return added


class PlanService:
    """Holds the current scheme and computes each gatherer's part of the plan."""

    def __init__(self, path: Path, store: Store) -> None:
        self.path = Path(path)
        self.store = store
        self._lock = threading.Lock()
        self._scheme = load_scheme(self.path)
        ensure_scheme_fields(store, self._scheme)
        self.reloads = 0
        self.last_reload_error = ""
        #: called with (text, user) after each successful reload
        self.on_reload: Callable[[str, str], None] | None = None

    @property
    def scheme(self) -> Scheme:
        return self._scheme

    def reload(self, *, user: str = "token") -> Scheme:
        """Load the scheme file again; raise ``SchemeError`` (keeping the old one) if bad."""
        try:
            try:
                text = self.path.read_text(encoding="utf-8")
            except OSError as exc:
                raise SchemeError([f"{self.path}: cannot read: {exc.strerror}"]) from None
            scheme = parse_scheme(text, filename=str(self.path))
            try:
                with self._lock:
                    ensure_scheme_fields(self.store, scheme)
            except FieldError as exc:
                raise SchemeError([f"{self.path}: {exc}"]) from None
        except SchemeError as exc:
            self.last_reload_error = "; ".join(exc.problems)
            log.error("scheme reload refused: %s", self.last_reload_error)
            raise
        with self._lock:
            self._scheme = scheme
            self.reloads += 1
            self.last_reload_error = ""
        log.warning("scheme %s reloaded", self.path)
        if self.on_reload is not None:
            self.on_reload(text, user)
        return scheme

    def replace(self, scheme: Scheme) -> None:
        """Hand out ``scheme`` from now on (a change applied through the console); its
        sources' fields are created first (``FieldError`` on a type conflict)."""
        with self._lock:
            ensure_scheme_fields(self.store, scheme)
            self._scheme = scheme

    def plan_for(self, gatherer: str) -> dict[str, Any]:
        scheme = self._scheme
        sources = [s for s in scheme.sources if s.gatherer == gatherer]
        config = next((g for g in scheme.gatherers if g.name == gatherer), None)
        body: dict[str, Any] = {
            "gatherer": gatherer,
            # secrets read here: the gatherer gets values, over its own credential
            "sources": [s.model_dump(mode="json", context={"secrets": "reveal"}) for s in sources],
            # filters on these sources run on the gatherer (stages/filter.py)
            "filters": [
                Filter.from_config(stage, scheme).as_plan()
                for stage in scheme.stages
                if isinstance(stage, FilterConfig)
                and stage.enabled
                and stage.input in {s.name for s in sources}
            ],
            "settings": {
                **(
                    config.model_dump(
                        mode="json",
                        include={
                            "spool",
                            "forward",
                            "commit_interval_s",
                            "max_batch_datagrams",
                            "queue_datagrams",
                        },
                    )
                    if config is not None
                    else {}
                ),
                # the gatherer caps its sources' quarantine before spooling it
                "quarantine": scheme.manager.quarantine.model_dump(mode="json"),
            },
        }
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return {"version": digest[:16], **body}


def plan_router(
    plan: PlanService,
    auth: GathererAuth,
    *,
    admin_token: str,
    access: Callable[[Request], Any] | None = None,
) -> APIRouter:
    """``access``: the API guard (returns the caller, with ``.user``); without it the
    reload takes the admin token only."""
    router = APIRouter()

    @router.get("/api/plan")
    def get_plan(request: Request, gatherer: str) -> dict[str, Any]:
        auth.check(request, gatherer)
        try:
            return plan.plan_for(gatherer)
        except SecretError as exc:  # a secret file went away since the scheme was loaded
            raise HTTPException(status_code=503, detail=f"the plan needs a secret: {exc}") from None

    @router.post("/api/scheme/reload")
    def post_reload(request: Request) -> dict[str, Any]:
        user = "token"
        if access is not None:
            user = access(request).user
        else:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {admin_token}".encode()):
                raise HTTPException(status_code=401, detail="missing or wrong bearer token")
        try:
            scheme = plan.reload(user=user)
        except SchemeError as exc:
            raise HTTPException(status_code=400, detail=exc.problems) from None
        return {"reloaded": str(plan.path), "sources": len(scheme.sources)}

    return router
