"""``netdistill stages``: the manager's stages (merge, aggregate, rollup, alert) as the
running manager sees them, and one round now::

    netdistill stages                 (a table: name, type, rounds, lag, last round, error)
    netdistill stages --format json   (GET /api/stages as it is)
    netdistill stages run             (POST /api/stages/run: one round of every stage)

Stage status lives in the running manager (watermarks and counters of its stage
runner), so these go through its API with the token from ``manager.json`` (the existing
``ManagerClient``); with no manager running on the data directory they say so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from netdistill.cli.common import DEFAULT_DATA_DIR, DataDir, app, errors, fail, out

stages_app = typer.Typer(
    help="The running manager's stages: status table, or 'run' for one round now.",
    invoke_without_command=True,
)
app.add_typer(stages_app, name="stages")

#: per stage type, the counters shown in the table's "figures" column
_FIGURES = {
    "merge": ("read", "merged", "pending", "expired"),
    "aggregate": ("read_records", "emitted_rows", "open_groups"),
    "rollup": ("closed_since_start", "late_records"),
    "alert": ("open", "raised", "cleared", "actions_failed"),
}


def _client(data_dir: Path) -> Any:
    from netdistill.manager.client import ManagerClient
    from netdistill.manager.discovery import read_manager_info

    info = read_manager_info(data_dir)
    if info is None:
        raise fail(
            f"no manager is running on {data_dir}: stage status comes from the running "
            "manager (start it with netdistill run or netdistill manager, or give --data-dir)"
        )
    return ManagerClient(info)


def _call(data_dir: Path, method: str, url: str) -> dict[str, Any]:
    with errors():
        client = _client(data_dir)
        try:
            return dict(client.request(method, url).json())
        finally:
            client.close()


def _figures(stage: dict[str, Any]) -> str:
    keys = _FIGURES.get(str(stage.get("type")), ())
    return "\n".join(f"{k}={stage[k]}" for k in keys if k in stage)


def print_stages(status: dict[str, Any]) -> None:
    from rich.table import Table

    stages = status.get("stages") or []
    columns = ["stage", "type", "watermark", "lag", "last round", "figures"]
    if any(stage.get("error") for stage in stages):  # the column only when it says something
        columns.append("error")
    view = Table(header_style="bold")
    for name in columns:
        right = name in ("watermark", "lag", "last round")
        view.add_column(name, justify="right" if right else "left", overflow="fold")
    for stage in stages:
        last = stage.get("last_round_s")
        cells = (
            str(stage.get("name", "")),
            str(stage.get("type", "")),
            "" if stage.get("watermark") is None else f"{stage['watermark']:,}",
            "" if stage.get("lag_records") is None else f"{stage['lag_records']:,}",
            "" if last is None else f"{last * 1000:.1f} ms",
            _figures(stage),
            str(stage.get("error") or ""),
        )
        view.add_row(*cells[: len(columns)])
    out.print(view)
    out.print(f"{status.get('rounds', 0):,} rounds", highlight=False)


@stages_app.callback()
def stages(
    ctx: typer.Context,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """Status of every manager stage: watermark, lag in records, last round, counters."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = data_dir
        return
    if format not in ("table", "json"):
        raise fail(f"unknown format {format!r}: expected table or json", 2)
    status = _call(data_dir, "GET", "/api/stages")
    if format == "json":
        sys.stdout.write(json.dumps(status, indent=1) + "\n")
    else:
        print_stages(status)


@stages_app.command("run")
def stages_run(ctx: typer.Context, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """One round of every stage now (after a top-up, say); prints its counts."""
    from typer._click.core import ParameterSource

    if ctx.get_parameter_source("data_dir") is ParameterSource.DEFAULT and isinstance(
        ctx.obj, Path
    ):  # netdistill stages --data-dir D run
        data_dir = ctx.obj
    result = _call(data_dir, "POST", "/api/stages/run")
    for name, counts in (result.get("counts") or {}).items():
        figures = "  ".join(f"{k}={v}" for k, v in counts.items())
        out.print(f"{name}: {figures}", highlight=False)
