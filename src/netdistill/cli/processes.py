"""Commands that run netdistill's processes: ``check-config``, ``run`` (everything in one
process, the demo by default), ``manager``, ``gatherer`` and ``accounting``."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from netdistill import __version__
from netdistill.cli.common import DEFAULT_DATA_DIR, DataDir, app, err, errors, fail, out

# --- check-config ---------------------------------------------------------------------------


@app.command("check-config")
def check_config(file: Annotated[Path, typer.Argument(help="Scheme YAML file.")]) -> None:
    """Validate a scheme; print every problem as file:line:column and exit 1 if any."""
    with errors():  # a plugin that fails to load fails the import: inside, it is one line
        from netdistill.scheme import load_scheme

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
        if config is None:  # a bare collector, as ``nfcapd -p``: no demo devices or stages
            from netdistill.scheme.models import Scheme

            return Scheme(manager=scheme.manager, store=scheme.store, sources=[source])
        scheme = scheme.model_copy(update={"sources": [source, *scheme.sources]})
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
    demo: Annotated[
        bool,
        typer.Option(help="Start the synthetic devices of the scheme's demo section."),
    ] = True,
    ui_port: Annotated[
        int | None, typer.Option("--ui-port", help="API/console port (default 8080).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop by itself after this many seconds.")
    ] = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(
            "--metrics-listen",
            metavar="HOST:PORT",
            help="Also serve /metrics here, with no token, for Prometheus "
            "(manager.metrics_listen).",
        ),
    ] = None,
) -> None:
    """Manager + embedded store + local gatherer in one process. Ctrl-C stops cleanly."""
    from netdistill.manager.local import LocalSystem

    with errors():
        scheme = _scheme_for_run(config, netflow)
        changes: dict[str, Any] = {}
        if ui_port is not None:
            changes["api_port"] = ui_port
        if metrics_listen is not None:
            changes["metrics_listen"] = metrics_listen
        if changes:  # validated as the scheme's own settings are
            manager = type(scheme.manager).model_validate(
                {**scheme.manager.model_dump(), **changes}
            )
            scheme = scheme.model_copy(update={"manager": manager})
        system = LocalSystem(scheme, data_dir, demo=demo, scheme_path=config)
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
    the files it follows; nothing for a source with neither (a plugin's push source)."""
    addresses = [
        ":".join(str(part) for part in address).replace(":", "://", len(address) - 2)
        for address in getattr(source, "bound", ())  # sockets are no part of ``Source``
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
    if system.manager.metrics is not None:
        err.print(f"  metrics     {system.manager.metrics.url} (no token)", highlight=False)
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

    with errors():
        serve_manager(config, data_dir)


gatherer_app = typer.Typer(
    help="Collect this gatherer's sources, spool and forward them to the manager(s).",
    invoke_without_command=True,
)
app.add_typer(gatherer_app, name="gatherer")
dead_letter_app = typer.Typer(
    help="Batches a manager refused for good (docs/delivery.md, dead letters).",
    no_args_is_help=True,
)
gatherer_app.add_typer(dead_letter_app, name="dead-letter")


def _token(token: str | None, token_file: Path | None) -> str:
    if (token is None) == (token_file is None):
        raise fail("give exactly one of --token and --token-file", 2)
    return token if token is not None else token_file.read_text().strip()  # type: ignore[union-attr]


@gatherer_app.callback()
def gatherer(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Option("--name", help="This gatherer's name in the scheme.")
    ] = None,
    manager: Annotated[
        list[str] | None,
        typer.Option("--manager", help="Manager URL (give two for two managers)."),
    ] = None,
    token: Annotated[str | None, typer.Option("--token", help="This gatherer's token.")] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="File holding the token.")
    ] = None,
    ca: Annotated[
        Path | None, typer.Option("--ca", help="CA certificate to verify an HTTPS manager.")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Collect this gatherer's sources, spool and forward them to the manager(s).

    Exits with status 3 when every manager refuses this gatherer for good (no room in
    the licence, older than the managers' minimum version): restarting will not help."""
    if ctx.invoked_subcommand is not None:
        return
    from netdistill.errors import GathererRefused
    from netdistill.gatherer.main import Gatherer, serve_gatherer

    with errors():
        if name is None or not manager:
            raise fail("give --name and at least one --manager", 2)
        secret = _token(token, token_file)
        try:
            serve_gatherer(
                Gatherer(name, manager, token=secret, data_dir=data_dir, ca=str(ca) if ca else None)
            )
        except GathererRefused as exc:
            raise fail(str(exc), 3) from None


@dead_letter_app.command("list")
def dead_letter_list(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """The batches set aside, with the manager that refused each and why."""
    from netdistill.gatherer.deadletter import DeadLetters

    letters = DeadLetters(data_dir / "dead-letter").list()
    if not letters:
        out.print("no dead letters", highlight=False)
        return
    for letter in letters:
        m = letter.meta
        out.print(
            f"{m['seq']}  {m['origin']}  {m['rows']} records  refused by {m['url']}"
            f"  ({m.get('attempts', 0)} re-sends): {m['reason']}",
            highlight=False,
            markup=False,
        )


@dead_letter_app.command("resend")
def dead_letter_resend(
    seq: Annotated[
        list[int] | None, typer.Argument(help="Spool sequences to re-send (default: all).")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="This gatherer's name.")] = "",
    token: Annotated[str | None, typer.Option("--token", help="This gatherer's token.")] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="File holding the token.")
    ] = None,
    manager: Annotated[
        str | None, typer.Option("--manager", help="Send here instead of the refusing URL.")
    ] = None,
    ca: Annotated[Path | None, typer.Option("--ca", help="CA certificate (HTTPS).")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Send dead letters again (after fixing the cause on the manager); exit 1 if any is
    refused again (it stays in the dead-letter area)."""
    import ssl

    from netdistill.gatherer.deadletter import DeadLetters, resend

    with errors():
        secret = _token(token, token_file)
        letters = DeadLetters(data_dir / "dead-letter")
        chosen = [d for d in letters.list() if not seq or int(d.meta["seq"]) in set(seq)]
        if not chosen:
            raise fail("no such dead letter (netdistill gatherer dead-letter list)")
        verify: Any = ssl.create_default_context(cafile=str(ca)) if ca else True
        failed = 0
        for letter in chosen:
            gatherer_name = name or str(letter.meta["origin"]).split("/", 1)[0]
            taken, message = resend(
                letters, letter, gatherer=gatherer_name, token=secret, url=manager, verify=verify
            )
            failed += not taken
            out.print(
                f"{letter.meta['seq']}: {'re-sent' if taken else 'REFUSED again'} — {message}",
                highlight=False,
                markup=False,
            )
        if failed:
            raise typer.Exit(1)


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

    with errors():
        serve_accounting(
            primary={"url": primary, "token": token, "token_file": primary_token_file},
            secondary={"url": secondary, "token": token, "token_file": secondary_token_file},
            out_dir=out,
            poll_s=poll_s,
            failures=failures,
            stall_s=stall_s,
            start_after=start_after,
        )
