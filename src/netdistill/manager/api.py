"""The manager's HTTP API (used by the CLI while ``run`` holds the store, and later by
the console and remote gatherers).

Every route needs the bearer token written to ``<data-dir>/manager.json`` (mode 0600),
so only users who can read the data directory can talk to a running manager — or, when
the manager passes ``access`` (the console's guard, ``console/access.py``), that token or
a console session with the role the route needs. FastAPI's own /docs and /redoc load
their scripts from a CDN, so they are off here; the console serves /docs offline. Query
results travel as Arrow IPC streams: types (timestamps, unsigned ints) survive the trip.

``POST /api/query`` runs a person's SQL in the query sandbox (``Store.query_user``,
``store/sandbox.py``) within ``query_limits()`` (the scheme's ``manager.query``); a
refusal is HTTP 400 naming the rule, and every query, run or refused, is written to the
audit log when a console is mounted (``console/audit.py::record_query``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from netdistill import __version__
from netdistill.console.audit import record_query
from netdistill.delivery.arrow import (
    ARROW_STREAM,
    ipc_to_table,
    quarantine_from_table,
    quarantine_to_table,
    table_to_ipc,
)
from netdistill.errors import NetdistillError
from netdistill.records.quarantine import conform_quarantine
from netdistill.store import Store
from netdistill.store.sandbox import QueryLimits, QueryRun

__all__ = [
    "ARROW_STREAM",
    "body_table",
    "create_app",
    "ipc_to_table",
    "quarantine_from_table",
    "quarantine_to_table",
    "table_to_ipc",
]


class QueryRequest(BaseModel):
    sql: str
    params: dict[str, Any] | None = None


class FieldRequest(BaseModel):
    name: str
    type: str
    description: str = ""


class AlterRequest(BaseModel):
    type: str


def body_table(data: bytes) -> pa.Table:
    """A request body as a table; 400 (not 500) when it is not an Arrow IPC stream."""
    try:
        return ipc_to_table(data)
    except pa.ArrowInvalid as exc:
        raise HTTPException(400, detail=f"the body is not an Arrow IPC stream: {exc}") from None


def create_app(
    store: Store,
    *,
    token: str,
    status: Callable[[], dict[str, Any]],
    routers: Sequence[APIRouter] = (),
    guarded: Sequence[APIRouter] = (),
    access: Callable[[Request], Any] | None = None,
    query_limits: Callable[[], QueryLimits] = QueryLimits,
    quarantine_payload_bytes: Callable[[], int] = lambda: 2048,
) -> FastAPI:
    app = FastAPI(title="netdistill manager", version=__version__, docs_url=None, redoc_url=None)
    app.state.audit = None  # the console's audit log, once mounted
    for router in routers:  # parts with their own auth (gatherer delivery, plan)
        app.include_router(router)

    def authorized(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    @app.exception_handler(NetdistillError)
    async def _netdistill_error(request: Request, exc: NetdistillError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"error": str(exc)})

    guard = [Depends(access if access is not None else authorized)]
    for router in guarded:  # parts behind the manager's token (windows, monitor)
        app.include_router(router, dependencies=guard)

    @app.get("/api/status", dependencies=guard)
    def get_status() -> dict[str, Any]:
        return status()

    @app.post("/api/query", dependencies=guard)
    def post_query(request: Request, body: QueryRequest) -> Response:
        """A person's SQL, in the query sandbox; audited whether it runs or not."""
        measured = QueryRun()
        try:
            table = store.query_user(
                body.sql, body.params, limits=query_limits(), measured=measured
            )
        except NetdistillError as exc:
            record_query(
                request,
                via="api",
                sql=body.sql,
                params=body.params,
                measured=measured,
                error=exc,
            )
            raise
        record_query(request, via="api", sql=body.sql, params=body.params, measured=measured)
        return Response(table_to_ipc(table), media_type=ARROW_STREAM)

    @app.post("/api/commit", dependencies=guard)
    async def post_commit(request: Request, origin: str, sequence: int) -> dict[str, int]:
        table = body_table(await request.body())
        return {"rows": store.commit(table, origin=origin, sequence=sequence)}

    @app.post("/api/quarantine", dependencies=guard)
    async def post_quarantine(request: Request) -> dict[str, int]:
        table = body_table(await request.body())  # payloads cut as the gate cuts them
        cut = conform_quarantine(table, quarantine_payload_bytes())
        return {"rows": store.commit_quarantine(cut)}

    @app.get("/api/quarantine", dependencies=guard)
    def get_quarantine(source: str | None = None, limit: int = 100) -> dict[str, Any]:
        """Input set aside: counts per source and reason, and the newest items with their
        place (``file:line``, ``peer``, byte offset) and the first bytes of the input."""
        where = "WHERE source = $source" if source is not None else ""
        params: dict[str, object] = {"source": source} if source is not None else {}
        counts = store.query(
            f"SELECT source, reason, count(*) AS n FROM quarantine {where} "
            "GROUP BY ALL ORDER BY source, reason",
            params,
        ).to_pylist()
        items = store.query(
            'SELECT received_at, source, exporter, reason, detail, location, "offset", '
            "octet_length(payload) AS payload_bytes, payload_length, payload "
            f"FROM quarantine {where} "
            f"ORDER BY received_at DESC LIMIT {max(0, min(int(limit), 10_000))}",
            params,
        ).to_pylist()
        for item in items:
            payload = item.pop("payload") or b""
            item["received_at"] = item["received_at"].isoformat().replace("+00:00", "Z")
            item["payload_preview"] = payload[:200].decode("utf-8", "backslashreplace")
        return {"counts": counts, "items": items}

    @app.get("/api/commit/last", dependencies=guard)
    def get_last(origin: str) -> dict[str, int]:
        return {"sequence": store.last_sequence(origin)}

    @app.get("/api/fields", dependencies=guard)
    def get_fields() -> list[dict[str, Any]]:
        return [f.as_dict() for f in store.fields]

    @app.post("/api/fields", dependencies=guard)
    def add_field(body: FieldRequest) -> dict[str, str]:
        store.add_field(body.name, body.type, body.description)
        return {"added": body.name}

    @app.delete("/api/fields/{name}", dependencies=guard)
    def drop_field(name: str) -> dict[str, str]:
        store.drop_field(name)
        return {"dropped": name}

    @app.patch("/api/fields/{name}", dependencies=guard)
    def alter_field(name: str, body: AlterRequest) -> dict[str, str]:
        store.alter_field(name, body.type)
        return {"altered": name}

    return app
