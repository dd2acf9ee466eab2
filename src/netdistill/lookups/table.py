"""``table``: any CSV file or SQL query as a keyed lookup (key columns → value columns).

The seeds' "NMS DB" and "QoS policy server" records (seed 001, Fig. 4B): e.g. interface
index → site, or account → QoS class. The whole table is loaded at start and joined to a
batch's distinct keys with polars (a hash join, vectorized); a key that is not in the
table is a miss (null values). When the table holds a key twice, the first row wins.
``refresh_s`` reloads it when a call finds it older than that.

Sample scheme entry::

    lookups:
      - name: NMS
        type: table
        function: Site
        keys: {exporter: ip, input_if: uint32}
        values: {site: string, link_speed_bps: uint64}
        csv: /etc/netdistill/interfaces.csv
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

import polars as pl
import pyarrow as pa
from pydantic import Field, model_validator

from netdistill.lookups.base import CacheConfig, Function, LookupConfigBase, Param
from netdistill.lookups.tabular import RowsSource, load_rows
from netdistill.records.fields import FIELD_TYPES


def _check_types(columns: dict[str, str]) -> None:
    for name, type_ in columns.items():
        if type_ not in FIELD_TYPES:
            raise ValueError(f"column {name!r}: unknown type {type_!r}")


class TableConfig(LookupConfigBase, RowsSource):
    type: Literal["table"]
    function: str = Field("Get", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    keys: dict[str, str] = Field(min_length=1, description="key column → field type")
    values: dict[str, str] = Field(min_length=1, description="value column → field type")
    refresh_s: float | None = Field(None, gt=0, description="reload when older than this")
    cache: CacheConfig = CacheConfig(size=0)

    @model_validator(mode="after")
    def _known_types(self) -> TableConfig:
        _check_types(self.keys)
        _check_types(self.values)
        return self

    def functions(self) -> list[Function]:
        return [
            Function(
                self.name,
                self.function,
                tuple(Param(n, t) for n, t in self.keys.items()),
                tuple(Param(n, t) for n, t in self.values.items()),
                self.description or "table lookup",
            )
        ]


class Table:
    """Runtime of a ``table`` lookup; ``call`` is thread-safe."""

    concurrent_calls = True
    keys_per_call = None
    cached = False

    def __init__(self, config: TableConfig, *, store: Any = None, clock: Any = time.monotonic):
        self.config = config
        self.name = config.name
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        columns = {**self.config.keys, **self.config.values}
        rows = load_rows(self.config, columns, store=self._store)
        frame = pl.from_arrow(rows)
        assert isinstance(frame, pl.DataFrame)
        self._frame = frame.unique(subset=list(self.config.keys), keep="first", maintain_order=True)
        self._loaded_at = self._clock()

    def functions(self) -> list[Function]:
        return self.config.functions()

    def call(self, function: str, keys: pa.Table) -> pa.Table:
        refresh = self.config.refresh_s
        if refresh is not None and self._clock() - self._loaded_at > refresh:
            with self._lock:
                if self._clock() - self._loaded_at > refresh:
                    self._load()
        names = list(self.config.keys)
        asked = pl.from_arrow(keys.rename_columns(names))
        assert isinstance(asked, pl.DataFrame)
        asked = asked.with_columns(pl.col(n).cast(self._frame.schema[n]) for n in names)
        joined = asked.join(self._frame, on=names, how="left", maintain_order="left")
        return joined.select(list(self.config.values)).to_arrow()

    def close(self) -> None:
        pass
