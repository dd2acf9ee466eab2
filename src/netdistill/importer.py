"""``netdistill import``: captures through the same decoder and commit path as live data.

Files are read in the order given (template files before data files), in batches of
datagrams; the decoder holds data that arrives before its template exactly as it does
live, with the capture's own packet times driving the hold timer. When a manager is
running on the data directory, batches go to it over its API; otherwise they are
committed to the store file directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from netdistill.gatherer.pipeline import Pipeline
from netdistill.sources.netflow.config import NetflowSourceConfig
from netdistill.sources.netflow.listener import NetflowSource
from netdistill.sources.pcap import PcapReader

BATCH_DATAGRAMS = 20_000


def _source_config(config: Path | None, source_name: str) -> NetflowSourceConfig:
    if config is not None:
        from netdistill.scheme import load_scheme

        for source in load_scheme(config).sources:
            if source.type == "netflow":
                return source.model_copy(update={"name": source_name})
    return NetflowSourceConfig(type="netflow", name=source_name, listen=["127.0.0.1:0"])


def import_files(
    files: list[Path],
    *,
    data_dir: Path,
    config: Path | None,
    source_name: str,
    store: Any,
    console: Console | None = None,
) -> dict[str, Any]:
    """Decode and commit every NetFlow/IPFIX datagram of ``files``; returns a summary."""
    for path in files:
        if not path.is_file():
            from netdistill.errors import NetdistillError

            raise NetdistillError(f"{path}: no such file")
    source = NetflowSource(_source_config(config, source_name))
    pipeline = Pipeline([source], store, gatherer="import")
    quarantined = 0
    total_bytes = sum(p.stat().st_size for p in files)
    done_bytes = 0
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=console is None or not console.is_terminal,
    )
    try:
        with progress:
            task = progress.add_task("importing", total=total_bytes)
            for path in files:
                with PcapReader(path) as reader:
                    progress.update(task, description=f"importing {path.name}")
                    for batch in reader.batches(BATCH_DATAGRAMS):
                        result = source.decode_datagrams(batch)
                        quarantined += len(result.quarantined)
                        pipeline.handle(source, result)
                        progress.update(task, completed=done_bytes + reader.bytes_read)
                done_bytes += path.stat().st_size
            result = source.flush()
            quarantined += len(result.quarantined)
            pipeline.handle(source, result)
    finally:
        store.close()
    counters = source.counters
    return {
        "files": len(files),
        "datagrams": counters.datagrams,
        "records": pipeline.committed_records,
        "quarantined": quarantined,
        "dropped": dict(counters.dropped),
        "sequence_lost": dict(counters.sequence_lost),
    }
