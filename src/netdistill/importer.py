"""``netdistill import``: captures and log files through the same decoders and commit path
as live data.

Log files (``--format squid``, or ``--config F --source NAME`` naming a ``type: file``
source) are cut into lines and parsed by the same ``FileSource`` code as a live tail;
bad lines go to the quarantine as ``path:line`` (payloads cut as live, no rate cap unless
the scheme entry of the source sets one).

Files are read in the order given (template files before data files), in batches of
datagrams; each datagram goes to the NetFlow/IPFIX or the sFlow v5 decoder by its first
word; the decoder holds data that arrives before its template exactly as it does
live, with the capture's own packet times driving the hold timer. When a manager is
running on the data directory, batches go to it over its API; otherwise they are
committed to the store file directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from netdistill.delivery.pipeline import Pipeline
from netdistill.sources.base import SourceContext, build_source
from netdistill.sources.netflow.config import NetflowSourceConfig
from netdistill.sources.netflow.listener import NetflowSource
from netdistill.sources.pcap import PcapReader, datagram_protocol
from netdistill.sources.quarantine import UNLIMITED
from netdistill.sources.sflow.config import SflowSourceConfig
from netdistill.sources.sflow.listener import SflowSource

BATCH_DATAGRAMS = 20_000


def _source_config(config: Path | None, source_name: str) -> NetflowSourceConfig:
    if config is not None:
        from netdistill.scheme import load_scheme

        for source in load_scheme(config).sources:
            if isinstance(source, NetflowSourceConfig):
                return source.model_copy(update={"name": source_name})
    return NetflowSourceConfig(type="netflow", name=source_name, listen=["127.0.0.1:0"])


def import_files(
    files: list[Path],
    *,
    data_dir: Path,
    config: Path | None,
    source_name: str | None,
    store: Any,
    console: Console | None = None,
    format: str | None = None,
    format_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Decode and commit every NetFlow/IPFIX/sFlow datagram of ``files`` — or every line, when a
    line format is given or the scheme's source ``source_name`` is a ``type: file``
    source; returns a summary."""
    for path in files:
        if not path.is_file():
            from netdistill.errors import NetdistillError

            raise NetdistillError(f"{path}: no such file")
    log_source = _log_source_config(config, source_name, format, format_options or {})
    if log_source is not None:
        try:
            return _import_log_files(files, log_source, store, console)
        finally:
            store.close()
    try:
        return _import_captures(files, config, source_name, store, console)
    finally:
        store.close()


def _import_captures(
    files: list[Path],
    config: Path | None,
    source_name: str | None,
    store: Any,
    console: Console | None,
) -> dict[str, Any]:
    """Each datagram goes to the NetFlow or the sFlow decoder by its first word
    (``pcap.datagram_protocol``); a decoder is made on its first datagram, so an
    sFlow-only capture adds no NetFlow counters and a NetFlow one no sFlow fields."""
    sources: dict[str, Any] = {}
    pipelines: dict[str, Pipeline] = {}

    def source_for(protocol: str) -> tuple[Any, Pipeline]:
        source = sources.get(protocol)
        if source is None:
            if protocol == "sflow":
                source = build_source(_sflow_config(config, source_name), SourceContext())
                assert isinstance(source, SflowSource)  # an sflow entry builds one
                _ensure_fields(store, source)
            else:
                source = build_source(
                    _source_config(config, source_name or "netflow"), SourceContext()
                )
                assert isinstance(source, NetflowSource)  # a netflow entry builds one
                _ensure_fields(store, source)  # biflow_reverse, mapped elements, NAT
            sources[protocol] = source
            pipelines[protocol] = Pipeline([source], store, gatherer="import", quarantine=UNLIMITED)
        return source, pipelines[protocol]

    quarantined = 0
    total_bytes = sum(p.stat().st_size for p in files)
    done_bytes = 0
    with _progress(console) as progress:
        task = progress.add_task("importing", total=total_bytes)
        for path in files:
            with PcapReader(path) as reader:
                progress.update(task, description=f"importing {path.name}")
                for batch in reader.batches(BATCH_DATAGRAMS):
                    by_protocol: dict[str, list[Any]] = {}
                    for datagram in batch:
                        by_protocol.setdefault(datagram_protocol(datagram.payload), []).append(
                            datagram
                        )
                    for protocol, datagrams in by_protocol.items():
                        source, pipeline = source_for(protocol)
                        result = source.decode_datagrams(datagrams)
                        quarantined += len(result.quarantined)
                        pipeline.handle(source, result)
                    progress.update(task, completed=done_bytes + reader.bytes_read)
            done_bytes += path.stat().st_size
        for protocol, source in sources.items():
            result = source.flush()
            quarantined += len(result.quarantined)
            pipelines[protocol].handle(source, result)
    summary: dict[str, Any] = {
        "files": len(files),
        "datagrams": 0,
        "records": sum(p.committed_records for p in pipelines.values()),
        "quarantined": quarantined,
        "dropped": {},
        "sequence_lost": {},
    }
    for source in sources.values():
        counters = source.counters
        summary["datagrams"] += counters.datagrams
        for reason, n in counters.dropped.items():
            summary["dropped"][reason] = summary["dropped"].get(reason, 0) + n
        summary["sequence_lost"].update(counters.sequence_lost)
    return summary


def _sflow_config(config: Path | None, source_name: str | None) -> SflowSourceConfig:
    """The scheme's sFlow source named ``source_name`` (else its first one), or the
    defaults; records carry ``source_name`` when given, else that source's name."""
    if config is not None:
        from netdistill.scheme import load_scheme

        found = [s for s in load_scheme(config).sources if isinstance(s, SflowSourceConfig)]
        named = [s for s in found if s.name == source_name] or found
        if named:
            return named[0].model_copy(update={"name": source_name or named[0].name})
    return SflowSourceConfig(type="sflow", name=source_name or "sflow", listen=["127.0.0.1:0"])


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=console is None or not console.is_terminal,
    )


def _log_source_config(
    config: Path | None,
    source_name: str | None,
    format: str | None,
    format_options: dict[str, Any],
) -> Any:
    """The ``type: file`` source config to import with, or None for a capture import."""
    from netdistill.errors import NetdistillError
    from netdistill.sources.logs.config import FileSourceConfig

    if config is not None and format is None:
        from netdistill.scheme import load_scheme

        sources = load_scheme(config).sources
        for source in sources:
            if isinstance(source, FileSourceConfig) and source.name == source_name:
                return source
        if source_name is not None and not any(s.name == source_name for s in sources):
            raise NetdistillError(f"{config}: no source named {source_name!r}")
        return None
    if format is None:
        return None
    try:
        return FileSourceConfig(
            type="file",
            name=source_name or format,
            paths=["-"],
            format=format,
            format_options=format_options,
        )
    except ValueError as exc:
        raise NetdistillError(f"--format {format}: {_first_error(exc)}") from None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(str(e.get("msg", e)).removeprefix("Value error, ") for e in errors())
    return str(exc)


def _import_log_files(
    files: list[Path], config: Any, store: Any, console: Console | None
) -> dict[str, Any]:
    from netdistill.sources.logs.listener import FileSource

    source = build_source(config, SourceContext())
    assert isinstance(source, FileSource)  # a file entry builds one
    _ensure_fields(store, source)
    pipeline = Pipeline([source], store, gatherer="import", quarantine=UNLIMITED)
    quarantined = 0
    done_bytes = 0
    with _progress(console) as progress:
        task = progress.add_task("importing", total=sum(p.stat().st_size for p in files))
        for path in files:
            progress.update(task, description=f"importing {path.name}")
            for result, read in source.read_whole_file(path):
                quarantined += len(result.quarantined)
                pipeline.handle(source, result)
                progress.update(task, completed=done_bytes + read)
            done_bytes += path.stat().st_size
        result = source.flush()
        pipeline.handle(source, result)
    counters = source.counters
    return {
        "files": len(files),
        "lines": counters.datagrams,
        "datagrams": counters.datagrams,
        "records": pipeline.committed_records,
        "quarantined": quarantined,
        "dropped": dict(counters.dropped),
        "sequence_lost": {},
    }


def _ensure_fields(store: Any, source: Any) -> None:
    """Add the fields the format fills to ``records`` (store file or running manager)."""
    from netdistill.errors import NetdistillError
    from netdistill.store import ensure_fields

    if not callable(store.fields):
        ensure_fields(store, source.fields, source=source.name)
        return
    known = {f["name"]: f["type"] for f in store.fields()}
    for spec in source.fields:
        if spec.name not in known:
            store.add_field(spec.name, spec.type, spec.description)
        elif known[spec.name] != spec.type:
            raise NetdistillError(
                f"source {source.name!r} produces field {spec.name!r} as {spec.type}, but "
                f"records has it as {known[spec.name]}"
            )
