"""The billing API for a BSS and the console (mounted with the stages API, behind the
manager's guard: ``GET`` needs viewer, ``POST`` operator — ``console/roles.py``).

* ``GET /api/invoices?since=N&account=A&period=2026-11&limit=1000`` — documents with
  sequence number above ``since`` (an integer, or a document number), oldest first, each
  with its lines, ``idempotency_key``, ``sha256`` and ``intact``; ``next`` is the
  ``since`` of the following page (null at the end).
* ``GET /api/invoices/{number}`` — one document (404 if unknown).
* ``PUT``/``PATCH``/``DELETE /api/invoices/{number}`` — refused with 405: an issued
  document is immutable; corrections are credit and debit notes.
* ``POST /api/billing/run`` — one round of the stages now (the rollups close what is
  due, then rating, invoicing, files); answers the rating's counts (500 with the reason
  when the round failed and was rolled back).
* ``GET /api/billing/periods`` — per billing period: documents, invoices, notes, total.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query

from netdistill.billing.documents import load
from netdistill.billing.money import from_minor

IMMUTABLE = "issued invoices are immutable; a correction is issued as a credit or debit note"


def since_seq(store: Any, since: str | None) -> int:
    if since is None or since == "":
        return 0
    if since.isdigit():
        return int(since)
    found = store.query("SELECT seq FROM invoices WHERE number = $n", {"n": since}).to_pylist()
    if not found:
        raise KeyError(since)
    return int(found[0]["seq"])


def list_documents(
    store: Any,
    *,
    since: str | None = None,
    account: str | None = None,
    period: str | None = None,
    limit: int = 1000,
) -> dict[str, Any]:
    where = ["seq > $since"]
    params: dict[str, object] = {"since": since_seq(store, since)}
    if account is not None:
        where.append("account_id = $account")
        params["account"] = account
    if period is not None:
        where.append("bill_period = $period")
        params["period"] = period
    docs = load(store, " AND ".join(where), params, limit=limit)
    return {"invoices": docs, "next": str(docs[-1]["number"]) if len(docs) == limit else None}


def billing_periods(store: Any) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT bill_period, min(period_start) AS period_start, min(period_end) AS period_end,"
        " count(*) AS documents, count(*) FILTER (WHERE kind = 'invoice') AS invoices,"
        " count(*) FILTER (WHERE kind <> 'invoice') AS notes, sum(total_minor) AS total_minor,"
        " any_value(currency) AS currency, any_value(minor_units) AS minor_units"
        " FROM invoices GROUP BY bill_period ORDER BY bill_period"
    ).to_pylist()
    return [
        {
            "bill_period": r["bill_period"],
            "documents": r["documents"],
            "invoices": r["invoices"],
            "notes": r["notes"],
            "currency": r["currency"],
            "total": str(from_minor(int(r["total_minor"]), int(r["minor_units"]))),
        }
        for r in rows
    ]


def billing_router(store: Any, stage: Any) -> APIRouter:
    router = APIRouter()

    @router.get("/api/invoices")
    def get_invoices(
        since: str | None = None,
        account: str | None = None,
        period: str | None = None,
        limit: int = Query(1000, ge=1, le=10000),
    ) -> dict[str, Any]:
        try:
            return list_documents(store, since=since, account=account, period=period, limit=limit)
        except KeyError:
            raise HTTPException(404, f"no invoice numbered {since!r}") from None

    @router.get("/api/invoices/{number}")
    def get_invoice(number: str) -> dict[str, Any]:
        docs = load(store, "number = $n", {"n": number}, limit=1)
        if not docs:
            raise HTTPException(404, f"no invoice numbered {number!r}")
        return docs[0]

    @router.api_route("/api/invoices/{number}", methods=["PUT", "PATCH", "DELETE"])
    def change_invoice(number: str) -> None:
        raise HTTPException(405, IMMUTABLE)

    @router.get("/api/billing/periods")
    def get_periods() -> list[dict[str, Any]]:
        return billing_periods(store)

    @router.post("/api/billing/run")
    def run_billing() -> dict[str, Any]:
        try:
            return {"counts": stage.run_billing()}
        except Exception as exc:  # the round rolled back; say why
            raise HTTPException(500, f"{type(exc).__name__}: {exc}") from None

    return router
