"""Commands on the data: ``query``, ``import``, ``replay`` and ``fields``. Each works
through a running manager's API when one holds the store, else on the store file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from netdistill.cli.common import DEFAULT_DATA_DIR, DataDir, app, err, errors, fail, out

fields_app = typer.Typer(
    help="List and change the fields of the records table (also while running).",
    no_args_is_help=True,
)
app.add_typer(fields_app, name="fields")


# --- query ----------------------------------------------------------------------------------


def _read_store(data_dir: Path) -> Any:
    """The running manager's client, or the store file opened read-only (each imported
    only when used: the client needs no DuckDB, the store no HTTP client)."""
    from netdistill.manager.discovery import read_manager_info

    info = read_manager_info(data_dir)
    if info is not None:
        from netdistill.manager.client import ManagerClient

        return ManagerClient(info)
    from netdistill.store.duckdb import DuckDBStore

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
    """Run one SELECT on the store, in the query sandbox (through the manager while it
    runs): records, quarantine and the report tables; see docs/security.md."""
    from netdistill import output

    if format not in ("table", "csv", "json"):
        raise fail(f"unknown format {format!r}: expected table, csv or json", 2)
    params: dict[str, object] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise fail(f"--param {item!r}: expected NAME=VALUE", 2)
        params[name] = value
    with errors():
        store = _read_store(data_dir)
        try:
            table = store.query_user(sql, params or None)
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
    from netdistill.manager.discovery import read_manager_info

    info = read_manager_info(data_dir)
    if info is not None:
        from netdistill.manager.client import ManagerClient

        return ManagerClient(info)
    from netdistill.store.duckdb import DuckDBStore

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
            help="Scheme whose first netflow (sflow) source gives sampling defaults, or "
            "whose file source named by --source gives the log format.",
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
    """Decode NetFlow/IPFIX or sFlow captures, or log files, through the same pipeline as
    live data."""
    from netdistill.importer import import_files

    options: dict[str, object] = {}
    for item in format_option or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise fail(f"--format-option {item!r}: expected KEY=VALUE", 2)
        options[key] = value
    with errors():
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

    with errors():
        try:
            host, port = parse_listen_address(to, default_port=2055)
        except ValueError as exc:
            raise fail(f"--to {exc}", 2) from None
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

    with errors():
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
    with errors():
        store = _write_store(data_dir)
        try:
            getattr(store, method)(*args)
        finally:
            store.close()
