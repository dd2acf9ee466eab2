"""The console's invoice pages: a period view, an account view and one printable page
per document (viewer may read; issuing — the "Run billing now" button, ``POST
/api/billing/run`` — needs operator, as every POST does, ``console/roles.py``).

Unlike the other console pages, which fetch their figures with JavaScript, these render
the document on the server: an invoice is a document to print or save as PDF, and must
look the same without scripts. They read the store directly, so they work whatever the
scheme of the moment (the documents are in the store).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from netdistill import __version__
from netdistill.billing.api import billing_periods
from netdistill.billing.documents import load
from netdistill.console.access import Access
from netdistill.console.roles import Role
from netdistill.errors import StoreError

HERE = Path(__file__).parent
CONSOLE_TEMPLATES = HERE.parent / "console" / "templates"


def mount_invoice_pages(app: FastAPI, access: Access, store: Any) -> None:
    from netdistill.console.pages import guard_page, nav_for

    env = Environment(
        loader=ChoiceLoader(
            [FileSystemLoader(HERE / "templates"), FileSystemLoader(CONSOLE_TEMPLATES)]
        ),
        autoescape=select_autoescape(["html"]),
    )

    def page(request: Request, name: str, **context: Any) -> Response:
        principal = guard_page(access, request)  # /login, or /password while it must change
        if isinstance(principal, Response):
            return principal
        nav = nav_for(principal)
        html = env.get_template(name).render(
            me=principal,
            nav=nav,
            version=__version__,
            path="/invoices",
            can_issue=principal.role >= Role.operator,
            **context,
        )
        return HTMLResponse(html)

    def documents(where: str, params: dict[str, object]) -> list[dict[str, Any]]:
        try:
            return load(store, where, params, limit=10000)
        except StoreError:  # no rating has run on this store: no invoice tables yet
            return []

    @app.get("/invoices", include_in_schema=False)
    def invoices_page(request: Request, period: str = "", account: str = "") -> Response:
        try:
            periods = billing_periods(store)
        except StoreError:
            periods = []
        docs: list[dict[str, Any]] = []
        if account:
            docs = documents("account_id = $a", {"a": account})
        elif period:
            docs = documents("bill_period = $p", {"p": period})
        return page(
            request, "invoices.html", periods=periods, docs=docs, period=period, account=account
        )

    @app.get("/invoices/{number}", include_in_schema=False)
    def invoice_page(request: Request, number: str) -> Response:
        found = documents("number = $n", {"n": number})
        if not found:
            return page(request, "invoice.html", doc=None, number=number)
        return page(request, "invoice.html", doc=found[0], number=number)
