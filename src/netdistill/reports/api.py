"""HTTP routes of the report catalogue, mounted behind the manager's token (guarded).

* ``GET /api/reports`` — every report with its parameters, columns and chart spec;
* ``GET /api/reports/{name}/run?from=…&to=…&param=k=v&format=json|csv|html`` — one run
  (``param`` repeats; ``from``/``to`` are shorthands for ``param=from=…``);
* ``POST /api/reports`` — save an operator's report (body: the report definition);
* ``DELETE /api/reports/{name}`` — delete a saved report (built-in ones stay).

Errors: 404 for an unknown report, 400 with ``{"error": …}`` for a bad parameter value,
SQL the query sandbox refuses (``refused (rule: …)``) or a built-in name, 422 for a
malformed definition. A saved report's SQL runs in the sandbox within ``limits()``;
its runs, and saves the sandbox refused, are in the audit log (action ``query``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from netdistill.console.audit import record_query
from netdistill.errors import NetdistillError, QueryRefusedError, ReportError, UnknownReportError
from netdistill.reports.catalogue import Report, is_builtin, run_report
from netdistill.reports.render import FORMATS, MEDIA_TYPES, render
from netdistill.reports.saved import delete_report, find_report, list_reports, save_report
from netdistill.store.sandbox import QueryLimits, QueryRun


def parse_params(items: list[str]) -> dict[str, str]:
    """``["k=v", …]`` → ``{k: v}``; a later value for a name replaces an earlier one."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ReportError(f"param {item!r}: expected NAME=VALUE")
        values[name.strip()] = value
    return values


def reports_router(
    store: Any,
    *,
    clock: Callable[[], float] = time.time,
    limits: Callable[[], QueryLimits] = QueryLimits,
) -> APIRouter:
    router = APIRouter(tags=["reports"])

    def _find(name: str) -> Report:
        try:
            return find_report(store, name)
        except UnknownReportError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None

    @router.get("/api/reports")
    def get_reports() -> list[dict[str, Any]]:
        """The catalogue: built-in reports, then saved ones."""
        return [report.as_dict() for report in list_reports(store)]

    @router.get("/api/reports/{name}")
    def get_report(name: str) -> dict[str, Any]:
        return _find(name).as_dict()

    @router.get("/api/reports/{name}/run")
    def run(
        request: Request,
        name: str,
        from_: str | None = Query(None, alias="from", description="start (now-24h, ISO)"),
        to: str | None = Query(None, description="end, exclusive (now, ISO)"),
        param: list[str] = Query([], description="NAME=VALUE, repeated"),
        format: str = Query("json", description="json, csv or html"),
    ) -> Response:
        if format not in FORMATS:
            raise ReportError(f"unknown format {format!r}: expected {', '.join(FORMATS)}")
        report = _find(name)
        values: dict[str, object] = dict(parse_params(param))
        if from_ is not None:
            values["from"] = from_
        if to is not None:
            values["to"] = to
        if is_builtin(report):
            result = run_report(store, report, values, clock=clock)
        else:  # a person's SQL: in the sandbox, and audited
            measured = QueryRun()
            via = f"report {report.name}"
            try:
                result = run_report(
                    store, report, values, clock=clock, limits=limits(), measured=measured
                )
            except NetdistillError as exc:
                record_query(
                    request, via=via, sql=report.sql, params=values, measured=measured, error=exc
                )
                raise
            record_query(request, via=via, sql=report.sql, params=values, measured=measured)
        note = result.note.encode("ascii", "backslashreplace").decode()  # header: ASCII
        headers = {"x-netdistill-note": note} if note else {}
        if format == "csv":
            headers["content-disposition"] = f'attachment; filename="{report.name}.csv"'
        return Response(render(result, format), media_type=MEDIA_TYPES[format], headers=headers)

    @router.post("/api/reports", status_code=201)
    def post_report(request: Request, body: Report) -> dict[str, Any]:
        """Save an operator's report: SQL the sandbox accepts, every ``$name`` declared."""
        try:
            return save_report(store, body, clock=clock).as_dict()
        except QueryRefusedError as exc:  # the sandbox said no: audited like a query
            record_query(
                request,
                via=f"report save {body.name}",
                sql=body.sql,
                params={},
                measured=QueryRun(),
                error=exc,
            )
            raise

    @router.delete("/api/reports/{name}")
    def remove_report(name: str) -> dict[str, str]:
        _find(name)
        delete_report(store, name)
        return {"deleted": name}

    return router
