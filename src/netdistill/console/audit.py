"""The audit log: every change made through the HTTP API, with who, when and what.

``AuditMiddleware`` wraps the whole manager app, so routers written before the console
(fields, procedures, stages, scheme reload, windows …) are audited without knowing it.
It records each request that may change something (any method but GET/HEAD/OPTIONS)
under ``/api/`` and succeeded (status < 400), plus failed logins. Data delivery is not
an operator's change and is left out (``/api/ingest``, ``/api/heartbeat``,
``/api/commit``, ``/api/quarantine``).

SQL a person wrote is audited whatever its outcome, as action ``query``: every
``POST /api/query`` (the route calls ``record_query`` after running or refusing it; a
request the guard refuses, 401/403, is recorded here), every run of a saved report and
every saved report refused at save time. ``detail``: ``via`` (``api``,
``report NAME``, ``report save NAME``), ``sql``, ``params``, ``rows``, ``ms``,
``refused`` (the sandbox or the role said no), ``rule`` and ``error``.

Table ``audit_log`` (id, logged_at, user_name, action, detail): ``action`` is the
method and path (``POST /api/procedures/web/disable``), ``detail`` a JSON object with the
status, the query string and the request's JSON body with every secret replaced by
``"***"`` (``scheme/redact.py``: passwords, tokens, the scheme's secret keys and the
inline secrets of a scheme text sent as ``yaml``), so the log never holds a secret, even
for its admin readers. ``user_name`` is the console user, or ``token`` for the manager's
bearer token.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from netdistill.console.roles import SAFE_METHODS
from netdistill.errors import QueryRefusedError
from netdistill.manager.tables import execute
from netdistill.scheme.redact import redact_value
from netdistill.store import Store
from netdistill.store.sandbox import QueryRun

_DDL = """
CREATE TABLE IF NOT EXISTS audit_log (
    id BIGINT PRIMARY KEY, logged_at TIMESTAMPTZ NOT NULL, user_name VARCHAR NOT NULL,
    action VARCHAR NOT NULL, detail VARCHAR)
"""

NOT_AUDITED = frozenset({"/api/ingest", "/api/heartbeat", "/api/commit", "/api/quarantine"})
#: routes that audit themselves (``record_query``); the middleware adds only their refusals
QUERY_PATH = "/api/query"
QUERY_ACTION = "query"
LOGIN_PATH = "/api/auth/login"


class AuditLog:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        execute(store, _DDL)
        last = store.query("SELECT max(id) AS m FROM audit_log").to_pylist()[0]["m"]
        self._next_id = (last or 0) + 1

    def record(self, user: str, action: str, detail: dict[str, Any] | None = None) -> None:
        with self._lock:
            entry_id = self._next_id
            self._next_id += 1
            execute(
                self.store,
                "INSERT INTO audit_log VALUES (?, to_timestamp(?), ?, ?, ?)",
                (entry_id, self._clock(), user, action, json.dumps(detail or {}, default=str)),
            )

    def entries(self, *, user: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        where = "WHERE user_name = $user" if user is not None else ""
        params: dict[str, object] = {"user": user} if user is not None else {}
        rows = self.store.query(
            f"SELECT id, logged_at, user_name, action, detail FROM audit_log {where} "
            f"ORDER BY id DESC LIMIT {max(1, min(int(limit), 10_000))}",
            params,
        ).to_pylist()
        for row in rows:
            row["logged_at"] = row["logged_at"].isoformat().replace("+00:00", "Z")
            row["detail"] = json.loads(row["detail"] or "{}")
        return rows


def record_query(
    request: Any,
    *,
    via: str,
    sql: str,
    params: Any,
    measured: QueryRun,
    error: BaseException | None = None,
) -> None:
    """Audit one run (or refusal) of a person's SQL; the caller is the guard's principal
    (``token`` without a console). A no-op when no console is mounted."""
    audit = getattr(request.app.state, "audit", None)
    if audit is None:
        return
    principal = getattr(request.state, "principal", None)
    detail = {
        "via": via,
        "sql": sql,
        "params": redact(params or {}),
        "rows": measured.rows,
        "ms": measured.elapsed_ms,
        "refused": isinstance(error, QueryRefusedError),
        "rule": getattr(error, "rule", None),
        "error": str(error) if error is not None else None,
    }
    audit.record(principal.user if principal is not None else "token", QUERY_ACTION, detail)


def redact(value: Any) -> Any:
    """``value`` with every secret replaced by ``***`` (recursively)."""
    return redact_value(value)


def _body_detail(body: bytes) -> Any:
    if not body:
        return None
    try:
        return redact(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        return {"bytes": len(body)}


class AuditMiddleware:
    """Pure ASGI middleware (keeps the body stream intact for the route). The route's
    guard leaves the caller in ``scope["state"]["principal"]``; login routes leave the
    name given in ``scope["state"]["audit_user"]``."""

    def __init__(self, app: ASGIApp, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or not path.startswith("/api/")
            or path in NOT_AUDITED
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        status = 0

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        state = scope.setdefault("state", {})
        await self.app(scope, receiving, sending)
        principal = state.get("principal")
        user = principal.user if principal is not None else state.get("audit_user")
        body = _body_detail(b"".join(chunks))
        if path == QUERY_PATH:
            if status in (401, 403):  # the guard refused it: the route never ran
                sql = body.get("sql") if isinstance(body, dict) else None
                detail = {"via": "api", "sql": sql, "status": status, "refused": True}
                detail["rule"] = "role"
                await run_in_threadpool(self.audit.record, str(user or "?"), QUERY_ACTION, detail)
            return
        if status >= 400:
            if path != LOGIN_PATH:
                return
            action = "login_failed"
            user = user or (body.get("user") if isinstance(body, dict) else None)
        else:
            action = f"{scope['method']} {path}"
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        detail = {"status": status, "query": redact(query), "body": body}
        await run_in_threadpool(self.audit.record, str(user or "?"), action, detail)
