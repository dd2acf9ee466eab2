"""The console's scheme screens: one page per section (sources, lookups, stages —
merges and alerts among them —, retention) and the versions page.

Each page shows the section's entries and a YAML editor for the section; its buttons go
through the scheme API (``console/scheme_api.py``): Validate, Preview diff, Apply. Pages
follow ``console/pages.py``: no session → ``/login``; every figure is fetched by
``static/scheme.js`` from the API. Mounted beside the guarded API (pages answer with a
redirect, not a 401)::

    manager.routers.append(scheme_pages_router(manager.console.access))
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from netdistill import __version__
from netdistill.console.access import Access
from netdistill.console.pages import HERE, guard_page, nav_for

#: screen → (title, scheme section edited, the role that may apply, what it holds)
SCREENS: dict[str, tuple[str, str, str, str]] = {
    "sources": ("Sources", "sources", "operator", "devices the manager collects from"),
    "lookups": ("Lookups", "lookups", "operator", "synchronous devices the procedures ask"),
    "stages": (
        "Stages",
        "stages",
        "operator",
        "filters, aggregates, merges, rollups and alerts, in the order they run",
    ),
    "retention": (
        "Retention",
        "manager",
        "admin",
        "how long records are kept (retention_days) and how often aging runs; the rest of "
        "the manager section",
    ),
}


def scheme_pages_router(access: Access) -> APIRouter:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
    )
    router = APIRouter(include_in_schema=False)

    def render(request: Request, template: str, **context: Any) -> Any:
        principal = guard_page(access, request)
        if isinstance(principal, Response):
            return principal
        nav = nav_for(principal)
        html = env.get_template(template).render(
            me=principal, nav=nav, version=__version__, path=request.url.path, **context
        )
        return HTMLResponse(html)

    @router.get("/scheme")
    def versions_page(request: Request) -> Any:
        return render(request, "scheme.html", screens=SCREENS)

    @router.get("/scheme/{screen}")
    def section_page(request: Request, screen: str) -> Any:
        if screen not in SCREENS:
            return HTMLResponse("no such scheme screen", status_code=404)
        title, section, role, about = SCREENS[screen]
        return render(
            request,
            f"scheme_{screen}.html",
            screens=SCREENS,
            screen=screen,
            title=title,
            section=section,
            apply_role=role,
            about=about,
        )

    return router
