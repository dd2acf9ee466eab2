"""The ``netdistill`` command: run, import, query, replay, check-config, fields.

Each command is thin: it parses options, calls the component that does the work and
prints. Errors that netdistill raises on purpose are shown as one clear message and a
non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from netdistill import __version__
from netdistill.cli_export import export_app
from netdistill.errors import NetdistillError, SchemeError

app = typer.Typer(
    help="netdistill: network usage accounting and billing mediation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
fields_app = typer.Typer(
    help="List and change the fields of the records table (also while running).",
    no_args_is_help=True,
)
app.add_typer(fields_app, name="fields")
app.add_typer(export_app, name="export")

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


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except SchemeError as exc:
        for problem in exc.problems:
            err.print(problem, highlight=False, markup=False)
        raise typer.Exit(1) from None
    except (NetdistillError, OSError) as exc:
        raise _fail(str(exc)) from None


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


# --- check-config ---------------------------------------------------------------------------


@app.command("check-config")
def check_config(file: Annotated[Path, typer.Argument(help="Scheme YAML file.")]) -> None:
    """Validate a scheme; print every problem as file:line:column and exit 1 if any."""
    from netdistill.scheme import load_scheme

    with _errors():
        scheme = load_scheme(file)
    parts = {
        "source(s)": len(scheme.sources),
        "lookup(s)": len(scheme.lookups),
        "procedure(s)": len(scheme.procedures),
        "stage(s)": len(scheme.stages),
    }
    counts = ", ".join(f"{n} {what}" for what, n in parts.items() if n or what == "source(s)")
    out.print(f"{file}: ok ({counts})", highlight=False)


# --- run ------------------------------------------------------------------------------------


def _scheme_for_run(config: Path | None, netflow: str | None) -> Any:
    from netdistill.scheme import demo_scheme_path, load_scheme
    from netdistill.sources.netflow.config import NetflowSourceConfig

    scheme = load_scheme(config or demo_scheme_path())
    if netflow is not None:
        source = NetflowSourceConfig(type="netflow", name="netflow", listen=[netflow])
        others = (
            [s for s in scheme.sources if s.type != "netflow"]
            if config is None
            else list(scheme.sources)
        )
        if config is None:
            scheme = scheme.model_copy(update={"sources": [source]})
        else:
            scheme = scheme.model_copy(update={"sources": [source, *others]})
    return scheme


@app.command()
def run(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Scheme YAML (default: the demo).")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    netflow: Annotated[
        str | None,
        typer.Option(
            "--netflow",
            metavar="[HOST:]PORT",
            help="Collect NetFlow/IPFIX here with no scheme to write (as nfcapd -p).",
        ),
    ] = None,
    no_demo: Annotated[
        bool, typer.Option("--no-demo", help="Leave the synthetic exporters out.")
    ] = False,
    ui_port: Annotated[
        int | None, typer.Option("--ui-port", help="API/console port (default 8080).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop by itself after this many seconds.")
    ] = None,
) -> None:
    """Manager + embedded store + local gatherer in one process. Ctrl-C stops cleanly."""
    from netdistill.manager.local import LocalSystem

    with _errors():
        scheme = _scheme_for_run(config, netflow)
        if ui_port is not None:
            scheme = scheme.model_copy(
                update={"manager": scheme.manager.model_copy(update={"api_port": ui_port})}
            )
        system = LocalSystem(scheme, data_dir, demo=not no_demo, scheme_path=config)
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            system.start()
            _print_started(system)
            _watch(system, stop, duration)
        except KeyboardInterrupt:
            pass
        finally:
            err.print("stopping: committing what was received …", highlight=False)
            system.stop()
            signal.signal(signal.SIGTERM, previous)
        summary = system.summary()
        err.print(
            f"stopped: {summary['records']:,} records committed from "
            f"{summary['datagrams']:,} datagrams; dropped {summary['dropped'] or 'nothing'}",
            highlight=False,
        )


def _where(source: Any) -> str:
    """Where a source collects: its sockets (``udp://h:p`` for multi-protocol ones) or
    the files it follows."""
    addresses = [
        ":".join(str(part) for part in address).replace(":", "://", len(address) - 2)
        for address in source.bound
    ]
    paths = getattr(source.config, "paths", None) or []
    return ", ".join(addresses + list(paths))


def _device_label(device: Any) -> str:
    protocol = getattr(device, "protocol", None)
    if protocol is not None:
        return f"router ({'IPFIX' if protocol == 'ipfix' else protocol})"
    return {"DemoNas": "NAS", "DemoFirewall": "firewall", "DemoProxy": "proxy"}.get(
        type(device).__name__, type(device).__name__
    )


def _print_started(system: Any) -> None:
    err.print(f"[bold]netdistill {__version__}[/bold] running", highlight=False)
    err.print(f"  store       {system.store.path}", highlight=False)
    for source in system.pipeline.sources:
        err.print(
            f"  collecting  {source.config.type:<8} {source.name:<16} {_where(source)}",
            highlight=False,
        )
    err.print(
        f"  API         {system.manager.api_url}/api/status "
        f"(token in {system.data_dir / 'manager.json'})",
        highlight=False,
    )
    err.print(f"  console     {system.manager.api_url}/ (API described at /docs)", highlight=False)
    if system.exporters:
        kinds = ", ".join(_device_label(device) for device in system.exporters)
        err.print(f"  demo        synthetic devices: {kinds}", highlight=False)
    err.print(
        "  query       netdistill query "
        f'--data-dir {system.data_dir} "select count(*) from records"',
        highlight=False,
    )
    err.print("  stop        Ctrl-C", highlight=False)


def _status_line(system: Any, previous: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    now = system.summary()
    rate = 0.0
    if previous is not None and now["time"] > previous["time"]:
        rate = (now["records"] - previous["records"]) / (now["time"] - previous["time"])
    dropped = sum(now["dropped"].values())
    line = (
        f"records {now['records']:,}  ({rate:,.0f}/s)  datagrams {now['datagrams']:,}  "
        f"dropped {dropped:,}  errors {now['errors']}"
    )
    return line, now


def _watch(system: Any, stop: threading.Event, duration: float | None) -> None:
    deadline = time.monotonic() + duration if duration else None
    previous = None
    interactive = sys.stderr.isatty()
    last_print = 0.0
    if interactive:
        from rich.live import Live

        with Live(console=err, refresh_per_second=2, transient=True) as live:
            while not stop.wait(1.0):
                line, previous = _status_line(system, previous)
                live.update(line)
                if deadline and time.monotonic() >= deadline:
                    break
        return
    while not stop.wait(1.0):
        if deadline and time.monotonic() >= deadline:
            break
        if time.monotonic() - last_print >= 10:
            line, previous = _status_line(system, previous)
            err.print(line, highlight=False)
            last_print = time.monotonic()


# --- manager and gatherer (separate processes) ---------------------------------------------


@app.command()
def manager(
    config: Annotated[Path, typer.Option("--config", "-c", help="Scheme YAML.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """The manager with its store and API; remote gatherers deliver to it. SIGHUP reloads."""
    from netdistill.manager.serve import serve_manager

    with _errors():
        serve_manager(config, data_dir)


@app.command()
def gatherer(
    name: Annotated[str, typer.Option("--name", help="This gatherer's name in the scheme.")],
    manager: Annotated[
        list[str], typer.Option("--manager", help="Manager URL (give two for two managers).")
    ],
    token: Annotated[str | None, typer.Option("--token", help="This gatherer's token.")] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="File holding the token.")
    ] = None,
    ca: Annotated[
        Path | None, typer.Option("--ca", help="CA certificate to verify an HTTPS manager.")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Collect this gatherer's sources, spool and forward them to the manager(s)."""
    from netdistill.gatherer.main import Gatherer, serve_gatherer

    with _errors():
        if (token is None) == (token_file is None):
            raise _fail("give exactly one of --token and --token-file", 2)
        secret = token if token is not None else token_file.read_text().strip()  # type: ignore[union-attr]
        serve_gatherer(
            Gatherer(name, manager, token=secret, data_dir=data_dir, ca=str(ca) if ca else None)
        )


@app.command()
def accounting(
    primary: Annotated[str, typer.Option("--primary", help="Primary manager's API URL.")],
    secondary: Annotated[str, typer.Option("--secondary", help="Secondary manager's API URL.")],
    out: Annotated[Path, typer.Option("--out", help="Where window reports are delivered.")],
    token: Annotated[str | None, typer.Option("--token", help="Bearer token (both).")] = None,
    primary_token_file: Annotated[
        Path | None, typer.Option(help="Token file or manager.json of the primary.")
    ] = None,
    secondary_token_file: Annotated[
        Path | None, typer.Option(help="Token file or manager.json of the secondary.")
    ] = None,
    poll_s: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    failures: Annotated[int, typer.Option(help="Failed health checks before failover.")] = 3,
    stall_s: Annotated[float, typer.Option(help="Window late past end+grace: failover.")] = 10.0,
    start_after: Annotated[int | None, typer.Option(help="Deliver windows after this.")] = None,
) -> None:
    """Deliver each window's report once, in order, from the primary or the secondary."""
    from netdistill.accounting.consumer import serve_accounting

    with _errors():
        serve_accounting(
            primary={"url": primary, "token": token, "token_file": primary_token_file},
            secondary={"url": secondary, "token": token, "token_file": secondary_token_file},
            out_dir=out,
            poll_s=poll_s,
            failures=failures,
            stall_s=stall_s,
            start_after=start_after,
        )


# --- query ----------------------------------------------------------------------------------


def _read_store(data_dir: Path) -> Any:
    """The running manager's client, or the store file opened read-only."""
    from netdistill.manager.client import ManagerClient
    from netdistill.manager.discovery import read_manager_info
    from netdistill.store.duckdb import DuckDBStore

    info = read_manager_info(data_dir)
    if info is not None:
        return ManagerClient(info)
    return DuckDBStore(data_dir / "records.duckdb", read_only=True)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="A SELECT statement (read-only).")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="NAME=VALUE bound to $NAME in the query."),
    ] = None,
) -> None:
    """Run a read-only SQL query on the store (through the manager while it runs)."""
    from netdistill import output

    if format not in ("table", "csv", "json"):
        raise _fail(f"unknown format {format!r}: expected table, csv or json", 2)
    params: dict[str, object] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise _fail(f"--param {item!r}: expected NAME=VALUE", 2)
        params[name] = value
    with _errors():
        store = _read_store(data_dir)
        try:
            table = store.query(sql, params or None)
        finally:
            store.close()
    if format == "json":
        sys.stdout.write(output.to_json(table) + "\n")
    elif format == "csv":
        sys.stdout.write(output.to_csv(table))
    else:
        out.print(output.to_rich_table(table))
        if table.num_rows > 1000:
            err.print(f"({table.num_rows:,} rows; first 1,000 shown: use --format csv)")


# --- import ---------------------------------------------------------------------------------


def _write_store(data_dir: Path) -> Any:
    from netdistill.manager.client import ManagerClient
    from netdistill.manager.discovery import read_manager_info
    from netdistill.store.duckdb import DuckDBStore

    info = read_manager_info(data_dir)
    if info is not None:
        return ManagerClient(info)
    return DuckDBStore(data_dir / "records.duckdb")


@app.command("import")
def import_(
    files: Annotated[
        list[Path], typer.Argument(help="pcap or pcapng files, or log files, in order.")
    ],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Scheme whose first netflow source gives sampling defaults, or whose "
            "file source named by --source gives the log format.",
        ),
    ] = None,
    source_name: Annotated[
        str | None,
        typer.Option("--source", help="Source name on the records (default: netflow)."),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option("--format", help="Read log files with this line format (squid, clf …)."),
    ] = None,
    format_option: Annotated[
        list[str] | None,
        typer.Option("--format-option", help="KEY=VALUE option of the line format."),
    ] = None,
) -> None:
    """Decode NetFlow/IPFIX captures, or log files, through the same pipeline as live data."""
    from netdistill.importer import import_files

    options: dict[str, object] = {}
    for item in format_option or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise _fail(f"--format-option {item!r}: expected KEY=VALUE", 2)
        options[key] = value
    with _errors():
        summary = import_files(
            files,
            data_dir=data_dir,
            config=config,
            source_name=source_name,
            store=_write_store(data_dir),
            console=err,
            format=format,
            format_options=options,
        )
    unit = "lines" if "lines" in summary else "datagrams"
    err.print(
        f"imported {summary['records']:,} records from {summary[unit]:,} {unit} "
        f"in {summary['files']} file(s); quarantined {summary['quarantined']:,}"
        + (f" ({summary['dropped']})" if summary["dropped"] else ""),
        highlight=False,
    )


# --- replay ---------------------------------------------------------------------------------


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="pcap or pcapng file.")],
    to: Annotated[str, typer.Option("--to", metavar="HOST:PORT", help="Where to send.")],
    rate: Annotated[float | None, typer.Option("--rate", help="Datagrams per second.")] = None,
    loop: Annotated[int, typer.Option("--loop", help="Send the file this many times.")] = 1,
) -> None:
    """Send a capture's UDP payloads to a collector."""
    from netdistill.sources.listen import parse_listen_address
    from netdistill.sources.replay import replay_file

    with _errors():
        try:
            host, port = parse_listen_address(to, default_port=2055)
        except ValueError as exc:
            raise _fail(f"--to {exc}", 2) from None
        stats = replay_file(file, (host, port), rate, loops=loop)
    err.print(
        f"sent {stats.datagrams:,} datagrams ({stats.bytes:,} bytes) to {host}:{port} in "
        f"{stats.elapsed_s:.2f} s ({stats.rate_pps:,.0f}/s)"
        + (f"; {stats.errors:,} refused by the kernel" if stats.errors else ""),
        highlight=False,
    )


# --- fields ---------------------------------------------------------------------------------


@fields_app.command("list")
def fields_list(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """List the fields of records with their ids and types."""
    from rich.table import Table

    with _errors():
        store = _write_store(data_dir)
        try:
            rows = (
                store.fields()  # a running manager's client
                if callable(store.fields)
                else [f.as_dict() for f in store.fields]
            )
        finally:
            store.close()
    view = Table("id", "name", "type", "standard", "description", header_style="bold")
    for row in rows:
        view.add_row(
            str(row["id"]),
            row["name"],
            row["type"],
            "yes" if row["standard"] else "",
            row["description"],
        )
    out.print(view)


@fields_app.command("add")
def fields_add(
    name: str, type: str, description: str = "", data_dir: DataDir = DEFAULT_DATA_DIR
) -> None:
    """Add a field to records (works while running)."""
    _change_field(data_dir, "add_field", name, type, description)
    out.print(f"added {name} ({type})")


@fields_app.command("drop")
def fields_drop(name: str, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Drop a field from records (its values are deleted)."""
    _change_field(data_dir, "drop_field", name)
    out.print(f"dropped {name}")


@fields_app.command("alter")
def fields_alter(name: str, type: str, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Change the type of a field (values are converted, or the change is refused)."""
    _change_field(data_dir, "alter_field", name, type)
    out.print(f"altered {name} to {type}")


def _change_field(data_dir: Path, method: str, *args: str) -> None:
    with _errors():
        store = _write_store(data_dir)
        try:
            getattr(store, method)(*args)
        finally:
            store.close()


import netdistill.cli_report  # noqa: E402,F401  (registers 'netdistill report')
from netdistill.console.cli import user_app as _user_app  # noqa: E402,F401  ('netdistill user')


def main() -> None:
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    app()


if __name__ == "__main__":
    main()
