"""What every ``netdistill`` command shares: the typer app, the consoles, the
``--data-dir`` option and the error handling (an error netdistill raises on purpose is one
clear message and a non-zero exit status, never a traceback)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from netdistill import __version__
from netdistill.errors import NetdistillError, SchemeError

app = typer.Typer(
    help="netdistill: network usage accounting and billing mediation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="NETDISTILL_DATA_DIR",
        help="Where the store, templates and state live.",
    ),
]
DEFAULT_DATA_DIR = Path("netdistill-data")


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except SchemeError as exc:
        for problem in exc.problems:
            err.print(problem, highlight=False, markup=False)
        raise typer.Exit(1) from None
    except (NetdistillError, OSError) as exc:
        raise fail(str(exc)) from None


def _version(value: bool) -> None:
    if value:
        out.print(f"netdistill {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
