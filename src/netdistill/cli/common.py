"""What every ``netdistill`` command shares: the typer app, the consoles, the
``--data-dir`` option, logging (``--log-level``, ``--log-format``) and the error handling
(an error netdistill raises on purpose is one clear message and a non-zero exit status,
never a traceback).

Help is click's plain layout (``rich_markup_mode=None``): boolean flags read
``--demo / --no-demo`` with no value placeholder, and ``--help`` loads nothing extra.
Shell completion is typer's (``netdistill --install-completion``, ``--show-completion``).

Logging is set up once, here, by ``setup_logging``: ``--log-level`` and ``--log-format``
are options of the root that every command accepts, before or after its name
(``netdistill run --log-level info`` is moved to ``netdistill --log-level info run`` by
``hoist_global_options``), or ``$NETDISTILL_LOG_LEVEL`` / ``$NETDISTILL_LOG_FORMAT``.
``text`` is one line per event (time, level, logger, message); ``json`` is one JSON
object per line with ``ts`` (ISO-8601 UTC), ``level``, ``logger``, ``msg``, every
``extra=`` field the call passed, and ``exc`` for a traceback. The JSON formatter is
hand-rolled (20 lines of stdlib ``json``) rather than a dependency, since the CLI's
start-up cost is counted.

Module imports here are typer, rich's console and the standard library only; commands
import what they use inside their bodies, so ``netdistill query --help`` stays cheap
(``tests/test_cli_imports.py`` holds the list of what it must not import).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from netdistill import __version__
from netdistill.errors import NetdistillError, SchemeError

app = typer.Typer(
    help="netdistill: network usage accounting and billing mediation.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _resolve_data_dir(ctx: Any, param: Any, value: Path) -> Path:
    """The data directory, first of: ``--data-dir``, ``$NETDISTILL_DATA_DIR``,
    ``$STATE_DIRECTORY`` (set by systemd's ``StateDirectory=``, ``/var/lib/netdistill``
    in packaging/systemd), ``./netdistill-data``."""
    from typer._click.core import ParameterSource

    if ctx.get_parameter_source(param.name) in (ParameterSource.DEFAULT, None):
        state = os.environ.get("STATE_DIRECTORY", "")
        if state:  # systemd may pass several, colon-separated: the first is ours
            return Path(state.split(":")[0])
    return value


#: the default of the last resort (see ``_resolve_data_dir`` for the order)
DEFAULT_DATA_DIR = Path("netdistill-data")

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="NETDISTILL_DATA_DIR",
        callback=_resolve_data_dir,
        help="Where the store, templates and state live [default: $NETDISTILL_DATA_DIR, "
        "else $STATE_DIRECTORY (systemd), else ./netdistill-data].",
        show_default=False,
    ),
]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
LogLevel = enum.Enum("LogLevel", {v: v for v in LOG_LEVELS}, type=str)  # type: ignore[misc]
LogFormat = enum.Enum("LogFormat", {v: v for v in LOG_FORMATS}, type=str)  # type: ignore[misc]


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


# --- logging --------------------------------------------------------------------------------

#: attributes every LogRecord has; anything else on a record came from ``extra=``
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the ``extra=`` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


_logging = {"level": "", "format": ""}


def setup_logging(level: str | None = None, format: str | None = None) -> None:
    """Configure the root logger (stderr); a ``None`` keeps what was set before, then
    the environment, then ``warning`` and ``text``. Safe to call again."""
    chosen_level = (
        level or _logging["level"] or os.environ.get("NETDISTILL_LOG_LEVEL") or "warning"
    ).lower()
    chosen_format = (
        format or _logging["format"] or os.environ.get("NETDISTILL_LOG_FORMAT") or "text"
    ).lower()
    if chosen_level not in LOG_LEVELS:
        raise fail(f"log level {chosen_level!r}: expected one of {', '.join(LOG_LEVELS)}", 2)
    if chosen_format not in LOG_FORMATS:
        raise fail(f"log format {chosen_format!r}: expected text or json", 2)
    _logging.update(level=chosen_level, format=chosen_format)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLinesFormatter()
        if chosen_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(chosen_level.upper())


#: options of the root that may also be written after the command (``netdistill run
#: --log-level info``): ``hoist_global_options`` moves them in front of it
GLOBAL_OPTIONS = ("--log-level", "--log-format")


def hoist_global_options(argv: list[str]) -> list[str]:
    """``argv`` (without the program) with every ``--log-level X`` / ``--log-format=X``
    moved to the front, where the root takes it; nothing after ``--`` is touched."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            rest += argv[i:]
            break
        name = token.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            if "=" in token:
                front.append(token)
            elif i + 1 < len(argv):
                front += [token, argv[i + 1]]
                i += 1
            else:
                rest.append(token)  # no value: let the parser say so
        else:
            rest.append(token)
        i += 1
    return front + rest


# --- the root ------------------------------------------------------------------------------


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
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            envvar="NETDISTILL_LOG_LEVEL",
            help="Log events of this level and above [default: warning]; any command "
            "takes it, before or after its name.",
            case_sensitive=False,
        ),
    ] = None,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(
            envvar="NETDISTILL_LOG_FORMAT",
            help="text, or json: one JSON object per line with ts, level, logger, msg and "
            "extra fields [default: text].",
            case_sensitive=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Same as --log-level info.")
    ] = False,
) -> None:
    level = log_level.value if log_level is not None else ("info" if verbose else None)
    setup_logging(level=level, format=log_format.value if log_format is not None else None)
