"""``netdistill export``: the closed periods of the rollups and their exports, and sending
a period again (``accounting/export.py``, ``stages/rollup.py``).

While a manager runs on the data directory, both commands go through its API (the store
file is its alone); otherwise they open the store directly, and ``resend`` uses the
export settings the rollup last ran with (recorded in the store).

    netdistill export list [NAME] [--format json]
    netdistill export resend NAME --period 2026-11 [--target file|http]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from netdistill.cli.common import DEFAULT_DATA_DIR, DataDir, app, fail, out
from netdistill.errors import NetdistillError

export_app = typer.Typer(
    help="Closed rollup periods and their exports to billing; send a period again.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")


class _Manager:
    """The running manager's rollup API."""

    def __init__(self, info: Any) -> None:
        from netdistill.manager.client import ManagerClient

        self.client = ManagerClient(info)

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.client.request(method, url, **kwargs).json()

    def names(self) -> list[str]:
        stages = self._call("GET", "/api/stages")["stages"]
        return [s["name"] for s in stages if s.get("type") == "rollup"]

    def periods(self, name: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/rollups/{name}/periods")["periods"])

    def resend(self, name: str, period: str, target: str | None) -> list[dict[str, Any]]:
        params = {"target": target} if target else None
        url = f"/api/rollups/{name}/periods/{period}/resend"
        return list(self._call("POST", url, params=params)["results"])

    def close(self) -> None:
        self.client.close()


class _Store:
    """The store file, when no manager runs."""

    def __init__(self, data_dir: Path, *, write: bool) -> None:
        from netdistill.store.duckdb import DuckDBStore

        self.data_dir = data_dir
        self.store = DuckDBStore(data_dir / "records.duckdb", read_only=not write)

    def names(self) -> list[str]:
        from netdistill.stages.rollup_store import rollup_names

        return rollup_names(self.store)

    def periods(self, name: str) -> list[dict[str, Any]]:
        from netdistill.stages.rollup_store import closed_periods, load_config

        load_config(self.store, name)  # a clear error for an unknown name
        return closed_periods(self.store, name)

    def resend(self, name: str, period: str, target: str | None) -> list[dict[str, Any]]:
        from netdistill.stages.rollup_store import load_config, make_exporter

        config = load_config(self.store, name)
        exporter = make_exporter(self.store, config, self.data_dir, time.time)
        return exporter.resend(period, target)

    def close(self) -> None:
        self.store.close()


def _open(data_dir: Path, *, write: bool) -> _Manager | _Store:
    from netdistill.manager.discovery import read_manager_info

    info = read_manager_info(data_dir)
    return _Manager(info) if info is not None else _Store(data_dir, write=write)


def _summary(exports: list[dict[str, Any]]) -> str:
    """``file ok, http ok+1 resend`` — the outcome of each target."""
    targets: dict[str, list[str]] = {}
    for item in exports:
        marks = targets.setdefault(item["target"], [])
        if item["kind"] == "resend":
            marks.append("resent" if item["outcome"] == "ok" else "resend failed")
        else:
            marks.append(item["outcome"])
    return ", ".join(f"{t} {'/'.join(dict.fromkeys(m))}" for t, m in targets.items()) or "-"


@export_app.command("list")
def list_periods(
    name: Annotated[str | None, typer.Argument(help="A rollup; default every rollup.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """List each rollup's closed periods and how their exports went."""
    if format not in ("table", "json"):
        raise fail(f"unknown format {format!r}: expected table or json")
    try:
        source = _open(data_dir, write=False)
        try:
            names = [name] if name else source.names()
            if format == "json":
                listing = {rollup: source.periods(rollup) for rollup in names}
                sys.stdout.write(json.dumps(listing, indent=1, default=str) + "\n")
                return
            view = Table(
                "rollup",
                "period",
                "records",
                "bytes",
                "accounts",
                "companies",
                "closed_at",
                "exports",
                header_style="bold",
            )
            for rollup in names:
                for row in source.periods(rollup):
                    view.add_row(
                        rollup,
                        row["period"],
                        str(row["records"]),
                        str(row["bytes"]),
                        str(row["accounts"]),
                        str(row["companies"]),
                        str(row["closed_at"]),
                        _summary(row["exports"]),
                    )
        finally:
            source.close()
    except (NetdistillError, OSError) as exc:
        raise fail(str(exc)) from None
    out.print(view)


@export_app.command("resend")
def resend(
    name: Annotated[str, typer.Argument(help="The rollup.")],
    period: Annotated[str, typer.Option("--period", help="e.g. 2026-11, 2026-11-23.")],
    target: Annotated[
        str | None, typer.Option("--target", help="file or http; default every target.")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Export a closed period again, with the same content."""
    try:
        source = _open(data_dir, write=True)
        try:
            results = source.resend(name, period, target)
        finally:
            source.close()
    except (NetdistillError, OSError) as exc:
        raise fail(str(exc)) from None
    failed = False
    for result in results:
        line = f"{name} {period} {result['target']}: {result['outcome']}, {result['rows']} rows"
        out.print(line + (f" ({result['detail']})" if result["detail"] else ""), markup=False)
        failed = failed or result["outcome"] != "ok"
    if failed:
        raise typer.Exit(1)
