"""What the procedure screens need beside the procedures API (``enhance/api.py``): the
seed notation taken apart, so the page can draw each procedure as linked blocks (seed
001, "Additional Embodiments": trigger → lookups → fields) and the builder can show and
extend a chain::

    GET /api/console/notation?expression=…&expression=…   one tree per expression
    GET /api/console/types                                 which type may feed which,
                                                           and the standard fields' types

A tree is ``{"kind": "field", "name"}`` or ``{"kind": "call", "lookup", "function",
"application", "output", "text", "display", "args": [tree …]}``; ``application`` is the
call without its output (``DNS.Name(src_ip)``), the key under which the flow plan shares
one lookup step between fields. The parser is ``enhance/notation.py``'s, so the console
reads expressions exactly as the scheme loader does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from netdistill.console.access import Access
from netdistill.enhance.config import STANDARD_TYPES
from netdistill.enhance.notation import Call, Expr, assignable, parse
from netdistill.errors import NotationError
from netdistill.records.fields import FIELD_TYPES


def tree(expr: Expr) -> dict[str, Any]:
    if isinstance(expr, Call):
        return {
            "kind": "call",
            "lookup": expr.lookup,
            "function": expr.function,
            "application": expr.application,
            "output": expr.output,
            "text": expr.text(),
            "display": expr.display(),
            "args": [tree(a) for a in expr.args],
        }
    return {"kind": "field", "name": expr.name}


def describe(text: str) -> dict[str, Any]:
    """The tree of one expression, or its error with the column."""
    try:
        expr = parse(text)
    except NotationError as exc:
        return {"expression": text, "error": exc.message, "column": exc.column}
    return {"expression": text, "display": expr.display(), "tree": tree(expr)}


def procedures_console_router(access: Access) -> APIRouter:
    router = APIRouter(
        prefix="/api/console", tags=["procedures"], dependencies=[Depends(access.authorize)]
    )

    @router.get("/notation")
    def get_notation(expression: list[str] = Query(default=[])) -> list[dict[str, Any]]:
        return [describe(text) for text in expression]

    @router.get("/types")
    def get_types() -> dict[str, Any]:
        types = sorted(FIELD_TYPES)
        return {
            "types": types,
            "feeds": {t: [u for u in types if assignable(t, u)] for t in types},
            "standard_fields": dict(STANDARD_TYPES),
        }

    return router
