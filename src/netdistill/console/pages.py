"""The console's HTML pages, its static files and the offline API docs.

Pages are Jinja2 templates filled with the caller and the CSRF token only; every figure
and list on them is fetched by our JavaScript from the same HTTP API that scripts use.
A page without a session redirects to ``/login``; a page above the user's role answers
403; every page but ``/password`` sends a user who must change a generated password
there first (``/password?next=…``). ``/docs`` is Swagger UI served from the vendored
files in ``static/vendor`` (no CDN: the manager may be offline); ``/openapi.json`` is
FastAPI's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from netdistill import __version__
from netdistill.console.access import Access, Principal
from netdistill.console.roles import Role

HERE = Path(__file__).parent

#: navigation: (path, label, least role), in order. Another part of the console adds its
#: pages here (``NAV.insert``/``append``) before ``mount_pages`` runs; the bar wraps, so
#: more entries never widen the page. A page is "active" for its path and the paths below.
NAV = [
    ("/", "Dashboard", Role.viewer),
    ("/explore", "Explore", Role.viewer),
    ("/reports", "Reports", Role.viewer),
    ("/procedures", "Procedures", Role.viewer),
    ("/fields", "Fields", Role.viewer),
    ("/invoices", "Invoices", Role.viewer),
    ("/scheme", "Scheme", Role.viewer),
    ("/users", "Users", Role.admin),
    ("/audit", "Audit log", Role.admin),
    ("/licences", "Licences", Role.admin),
    ("/docs", "API", Role.viewer),
]
PASSWORD_PAGE = "/password"


def nav_for(principal: Principal | None) -> list[tuple[str, str]]:
    return [(p, label) for p, label, role in NAV if principal and principal.role >= role]


def guard_page(access: Access, request: Request) -> Principal | Response:
    """The caller, or the answer instead of the page: ``/login`` without a session,
    ``/password`` while a generated password is not changed."""
    principal = access.principal(request)
    if principal is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    if principal.must_change_password and request.url.path != PASSWORD_PAGE:
        return RedirectResponse(f"{PASSWORD_PAGE}?next={quote(request.url.path)}", status_code=303)
    return principal


def mount_pages(app: FastAPI, access: Access) -> None:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="console-static")

    def render(name: str, principal: Principal | None, status: int = 200, **context: Any) -> Any:
        nav = nav_for(principal)
        html = env.get_template(name).render(me=principal, nav=nav, version=__version__, **context)
        return HTMLResponse(html, status_code=status)

    def page(request: Request, role: Role = Role.viewer) -> Principal | Response:
        principal = guard_page(access, request)
        if isinstance(principal, Response):
            return principal
        if principal.role < role:
            return render(
                "denied.html", principal, status=403, need=role.name, path=request.url.path
            )
        return principal

    def simple(template: str, role: Role = Role.viewer) -> Any:
        def handler(request: Request) -> Any:
            principal = page(request, role)
            if isinstance(principal, Response):
                return principal
            return render(template, principal, path=request.url.path)

        return handler

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> Any:
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        return render("login.html", None, next=target)

    for path, template, role in [
        ("/", "dashboard.html", Role.viewer),
        ("/explore", "explore.html", Role.viewer),
        ("/procedures", "procedures.html", Role.viewer),
        ("/fields", "fields.html", Role.viewer),
        ("/reports", "reports.html", Role.viewer),
        ("/users", "users.html", Role.admin),
        ("/audit", "audit.html", Role.admin),
        ("/licences", "licences.html", Role.admin),
    ]:
        app.add_api_route(path, simple(template, role), include_in_schema=False)

    @app.get(PASSWORD_PAGE, include_in_schema=False)
    def password_page(request: Request, next: str = "/") -> Any:
        principal = page(request)
        if isinstance(principal, Response):
            return principal
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        return render("password.html", principal, path=PASSWORD_PAGE, next=target)

    @app.get("/procedures/{name}/builder", include_in_schema=False)
    def builder_page(request: Request, name: str, field: str = "") -> Any:
        principal = page(request)
        if isinstance(principal, Response):
            return principal
        return render("builder.html", principal, procedure=name, field=field, path="/procedures")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="netdistill API",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )
