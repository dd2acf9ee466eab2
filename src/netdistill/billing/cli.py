"""``netdistill invoices``: issued invoices and notes, read-only (issuing is the rating
round's, ``POST /api/billing/run``; an issued document never changes).

While a manager runs on the data directory the commands go through its API (the store
file is its alone); otherwise they open the store read-only.

    netdistill invoices list [--account A] [--period 2026-11] [--since N] [-f table|json]
    netdistill invoices show INV-00000001 [-f text|json]
    netdistill invoices export -o DIR [--period P] [--since N] [--format csv|json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from netdistill.cli.common import DEFAULT_DATA_DIR, DataDir, app, fail, out
from netdistill.errors import NetdistillError

invoices_app = typer.Typer(
    help="Issued invoices and credit/debit notes: list, show, export.", no_args_is_help=True
)
app.add_typer(invoices_app, name="invoices")


def _documents(
    data_dir: Path, *, since: str | None, account: str | None, period: str | None, limit: int
) -> list[dict[str, Any]]:
    from netdistill.manager.discovery import read_manager_info

    info = read_manager_info(data_dir)
    docs: list[dict[str, Any]] = []
    if info is not None:
        from netdistill.manager.client import ManagerClient

        client = ManagerClient(info)
        try:
            cursor = since
            while True:
                params = {"since": cursor, "account": account, "period": period}
                page = client.request(
                    "GET",
                    "/api/invoices",
                    params={k: v for k, v in params.items() if v is not None}
                    | {"limit": min(limit - len(docs), 10000)},
                ).json()
                docs += page["invoices"]
                cursor = page["next"]
                if cursor is None or len(docs) >= limit:
                    return docs
        finally:
            client.close()
    from netdistill.billing.api import list_documents
    from netdistill.store.duckdb import DuckDBStore

    store = DuckDBStore(data_dir / "records.duckdb", read_only=True)
    try:
        return list(
            list_documents(store, since=since, account=account, period=period, limit=limit)[
                "invoices"
            ]
        )
    except KeyError:
        raise NetdistillError(f"no invoice numbered {since!r}") from None
    except NetdistillError as exc:
        if "invoices" in str(exc):
            raise NetdistillError("no invoices in this store (no rating: section ran)") from None
        raise
    finally:
        store.close()


def _one(data_dir: Path, number: str) -> dict[str, Any]:
    from netdistill.manager.discovery import read_manager_info

    info = read_manager_info(data_dir)
    if info is not None:
        from netdistill.manager.client import ManagerClient

        client = ManagerClient(info)
        try:
            return dict(client.request("GET", f"/api/invoices/{number}").json())
        finally:
            client.close()
    from netdistill.billing.documents import load
    from netdistill.store.duckdb import DuckDBStore

    store = DuckDBStore(data_dir / "records.duckdb", read_only=True)
    try:
        docs = load(store, "number = $n", {"n": number}, limit=1)
    finally:
        store.close()
    if not docs:
        raise NetdistillError(f"no invoice numbered {number!r}")
    return docs[0]


@invoices_app.command("list")
def list_invoices(
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    period: Annotated[str | None, typer.Option(help="Only this billing period, 2026-11.")] = None,
    since: Annotated[str | None, typer.Option(help="After this number or sequence.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 1000,
    format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """List issued documents, oldest first."""
    if format not in ("table", "json"):
        raise fail(f"unknown format {format!r}: expected table or json")
    try:
        docs = _documents(data_dir, since=since, account=account, period=period, limit=limit)
    except (NetdistillError, OSError) as exc:
        raise fail(str(exc)) from None
    if format == "json":
        sys.stdout.write(json.dumps(docs, indent=1) + "\n")
        return
    view = Table("number", "kind", "account", "period", "total", "refers to", "issued at",
                 header_style="bold")  # fmt: skip
    for doc in docs:
        view.add_row(
            doc["number"],
            doc["kind"],
            doc["account_id"],
            doc["bill_period"],
            f"{doc['total']} {doc['currency']}",
            doc["refers_to"] or "",
            doc["issued_at"],
        )
    out.print(view)


@invoices_app.command("show")
def show(
    number: Annotated[str, typer.Argument(help="The document's number.")],
    format: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """One document with its lines."""
    try:
        doc = _one(data_dir, number)
    except (NetdistillError, OSError) as exc:
        raise fail(str(exc)) from None
    if format == "json":
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
        return
    title = (
        f"{doc['kind']} {doc['number']}  account {doc['account_id']}  period {doc['bill_period']}"
    )
    if doc["refers_to"]:
        title += f"  refers to {doc['refers_to']}"
    view = Table("#", "kind", "plan", "price", "tier", "quantity", "unit", "rate", "amount",
                 title=title, header_style="bold")  # fmt: skip
    for line in doc["lines"]:
        view.add_row(
            str(line["line"]), line["kind"], line["plan"], line["price"], line["tier"],
            line["quantity"], line["unit"], line["rate"], line["amount"],
        )  # fmt: skip
    out.print(view)
    out.print(f"total {doc['total']} {doc['currency']}   sha256 {doc['sha256']}"
              + ("" if doc["intact"] else "   [red]CHANGED SINCE ISSUE[/red]"))  # fmt: skip


@invoices_app.command("export")
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write to.")],
    period: Annotated[str | None, typer.Option(help="Only this billing period.")] = None,
    since: Annotated[str | None, typer.Option(help="After this number or sequence.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="csv or json.")] = "csv",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Write documents as invoices.csv + lines.csv, or invoices.jsonl (with each one's
    idempotency_key and sha256)."""
    from netdistill.billing.documents import to_csv, to_jsonl
    from netdistill.files import write_atomic

    if format not in ("csv", "json"):
        raise fail(f"unknown format {format!r}: expected csv or json")
    try:
        docs = _documents(data_dir, since=since, account=None, period=period, limit=10**9)
        if format == "csv":
            heads, lines = to_csv(docs)
            write_atomic(output / "invoices.csv", heads)
            write_atomic(output / "lines.csv", lines)
        else:
            write_atomic(output / "invoices.jsonl", to_jsonl(docs))
    except (NetdistillError, OSError) as exc:
        raise fail(str(exc)) from None
    out.print(f"{len(docs)} documents written to {output}", markup=False)
