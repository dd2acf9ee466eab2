"""The source of a third-party plugin package, as docs/plugins.md describes one: a push
source ``ticker`` that emits ``count`` known records in batches of ``per_batch``, then
nothing. ``test_plugin_package.py`` copies this file into a package of its own and
pip-installs it; netdistill never imports it from here."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import Field

from netdistill.records.batch import DecodeResult, FieldSpec, SourceCounters
from netdistill.records.schema import SOURCE_SCHEMA, empty_batch
from netdistill.sources.base import Emit
from netdistill.sources.config import SourceConfigBase


class TickerConfig(SourceConfigBase):
    type: Literal["ticker"]
    count: int = Field(gt=0, description="records to emit, then stay silent")
    per_batch: int = Field(100, gt=0)
    bytes_each: int = Field(1000, ge=0)


class TickerSource:
    kind: ClassVar[str] = "push"
    config_model = TickerConfig
    fields = (FieldSpec("tick", "int64", "the ticker's record number, from 0"),)

    def __init__(
        self, config: TickerConfig, *, state_dir: Path | None = None, queue_limit: int = 0
    ) -> None:
        self.config = config
        self.name = config.name
        self.counters = SourceCounters()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, emit: Emit) -> None:
        self._thread = threading.Thread(target=self._run, args=(emit,), daemon=True)
        self._thread.start()

    def _run(self, emit: Emit) -> None:
        sent, count = 0, self.config.count
        while sent < count and not self._stop.is_set():
            n = min(self.config.per_batch, count - sent)
            now = datetime.now(UTC)
            table = pa.table(
                {
                    "tick": pa.array(range(sent, sent + n), pa.int64()),
                    "bytes": pa.array([self.config.bytes_each] * n, pa.uint64()),
                    "packets": pa.array([1] * n, pa.uint64()),
                    "start_time": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
                    "end_time": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
                    "source": pa.array([self.name] * n),
                    "exporter": pa.array(["ticker"] * n),
                }
            )
            emit(DecodeResult(table))
            sent += n
            self.counters.records += n
            self.counters.datagrams += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def flush(self) -> DecodeResult:
        return DecodeResult(pa.Table.from_batches([empty_batch(SOURCE_SCHEMA)]))

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "type": "ticker", **self.counters.as_dict()}
