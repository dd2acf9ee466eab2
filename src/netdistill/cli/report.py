"""``netdistill report``: run a report of the catalogue, or list them.

::

    netdistill report list
    netdistill report resource_consumption --from 2026-11-01 --to 2026-12-01 \\
        --param top=10 --format csv -o november.csv
    netdistill report audit_gaps --param source=edge-netflow --param bucket_minutes=15

While a manager runs on the data directory the report runs there (through its API, with
the token from ``manager.json``); otherwise on the store file, opened read-only. Both
give the same bytes, since both render with ``netdistill.reports.render``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from netdistill.cli.common import DEFAULT_DATA_DIR, DataDir, app, err, errors, fail, out


class _ManagerReports:
    """The report routes of a running manager."""

    def __init__(self, info: Any) -> None:
        from netdistill.manager.client import ManagerClient

        self.client = ManagerClient(info)

    def list(self) -> list[dict[str, Any]]:
        return list(self.client.request("GET", "/api/reports").json())

    def run(self, name: str, values: dict[str, str], format: str) -> tuple[str, str]:
        params = [("param", f"{k}={v}") for k, v in values.items()] + [("format", format)]
        response = self.client.request("GET", f"/api/reports/{name}/run", params=params)
        return response.text, response.headers.get("x-netdistill-note", "")

    def close(self) -> None:
        self.client.close()


def _open(data_dir: Path) -> Any:
    from netdistill.manager.discovery import read_manager_info
    from netdistill.store.duckdb import DuckDBStore

    info = read_manager_info(data_dir)
    if info is not None:
        return _ManagerReports(info)
    return DuckDBStore(data_dir / "records.duckdb", read_only=True)


def _list(where: Any) -> None:
    from rich.table import Table

    from netdistill.reports import list_reports

    reports = (
        where.list()
        if isinstance(where, _ManagerReports)
        else [r.as_dict() for r in list_reports(where)]
    )
    view = Table("name", "title", "parameters", "kind", header_style="bold")
    for report in reports:
        params = ", ".join(
            f"{p['name']}={p['default']}" if p["default"] is not None else p["name"]
            for p in report["params"]
        )
        view.add_row(report["name"], report["title"], params, "saved" if report["saved"] else "")
    out.print(view)


def _run(where: Any, name: str, values: dict[str, str], format: str) -> tuple[str, str]:
    from netdistill.reports import find_report, run_report
    from netdistill.reports.render import render

    wanted = "json" if format == "table" else format
    if isinstance(where, _ManagerReports):
        return where.run(name, values, wanted)
    result = run_report(where, find_report(where, name), values)
    return render(result, wanted), result.note


def _print_table(text: str) -> None:
    from rich.table import Table

    data = json.loads(text)
    view = Table(*data["columns"], header_style="bold", title=data["title"])
    for row in data["rows"][:1000]:
        view.add_row(*("" if v is None else str(v) for v in row))
    out.print(view)
    if len(data["rows"]) > 1000:
        err.print(f"({len(data['rows']):,} rows; first 1,000 shown: use --format csv)")


@app.command("report")
def report(
    name: Annotated[str, typer.Argument(help="Report name, or 'list' to list them.")],
    from_: Annotated[
        str | None, typer.Option("--from", help="Start: ISO-8601, a date, now-24h …")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="End, exclusive (default now).")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeat).")
    ] = None,
    format: Annotated[
        str, typer.Option("--format", "-f", help="table, html, csv or json.")
    ] = "table",
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Run a report (network activity, consumption, audit, billing, charge-back …)."""
    from netdistill.reports.api import parse_params

    if format not in ("table", "html", "csv", "json"):
        raise fail(f"unknown format {format!r}: expected table, html, csv or json", 2)
    if format == "table" and output_file is not None:  # a file gets a file format
        suffix = output_file.suffix.lstrip(".").lower()
        format = suffix if suffix in ("html", "csv", "json") else "csv"
    with errors():
        values = parse_params(param or [])
        if from_ is not None:
            values["from"] = from_
        if to is not None:
            values["to"] = to
        where = _open(data_dir)
        try:
            if name == "list":
                _list(where)
                return
            text, note = _run(where, name, values, format)
        finally:
            where.close()
    if note:
        err.print(note, highlight=False, markup=False)
    if format == "table" and output_file is None:
        _print_table(text)
    elif output_file is not None:
        output_file.write_text(text, encoding="utf-8")
        err.print(f"wrote {output_file}", highlight=False)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
