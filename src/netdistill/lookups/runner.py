"""Driving a lookup for a batch: cache, single-flight, concurrency and a per-call timeout.

``LookupRunner`` wraps a runtime lookup and has the same ``call`` contract (distinct keys
in, one output row per key out). For a cached lookup it answers what it can from the
``AnswerCache`` (negative answers too), waits for keys that another batch is already
asking (single-flight: identical concurrent keys cost one backend call), and sends only
the rest to the backend, split into calls of ``keys_per_call`` keys run on a thread pool
of ``concurrency`` workers (one worker when the lookup says calls may not overlap).

Timeouts: the batch waits for the backend at most ``timeout_s`` per wave of calls
(``ceil(calls / workers)`` waves). Keys still unanswered then get null outputs, are counted
in ``timeouts`` and are not cached (the next batch asks again), so a dead server delays
only its own fields, by at most the timeout. A lookup that bounds its own calls (DNS,
LDAP) says which of its nulls are not answers in an ``_answered`` column (False: its own
timeout or error); those rows are not cached either, while a real miss (NXDOMAIN, no
entry) is cached with ``negative_ttl_s``. A worker stuck in a dead call stays busy
until the backend library gives up; meanwhile later calls of that lookup queue behind it
and time out the same way.

Every backend call's duration goes into ``call_seconds`` (a histogram of plain data,
``netdistill/timing.py``), shown in the status as ``latency`` and on ``/metrics``.

The per-key work here (a dict probe per distinct key) is a Python loop by necessity: the
cache is keyed by value. It runs on distinct keys of remote lookups only; local lookups
(``cached = False``) pass the whole key table to one vectorized call.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, is_dataclass
from typing import Any

import pyarrow as pa

from netdistill.lookups.base import CacheConfig, Function, LookupConfigBase, LookupCounters
from netdistill.records.fields import FIELD_TYPES
from netdistill.timing import DurationHistogram

Row = tuple[Any, ...]

#: optional boolean column of a lookup's answer: False where the null is a timeout or an
#: error of the backend rather than its answer (not cached, asked again next batch)
ANSWERED = "_answered"

_COUNTED = ("calls", "keys", "misses", "timeouts", "errors", "cache_hits", "last_error")


class AnswerCache:
    """LRU of answers with a TTL, a shorter TTL for misses (all outputs null)."""

    def __init__(self, config: CacheConfig, *, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[Row, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Row | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, row: Row) -> None:
        if self.config.size == 0:
            return
        negative = all(v is None for v in row)
        ttl = self.config.negative_ttl_s if negative else self.config.ttl_s
        if ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (row, self._clock() + ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.config.size:
                self._entries.popitem(last=False)


class LookupRunner:
    """A lookup with its cache, in-flight table, worker pool and counters."""

    def __init__(
        self,
        lookup: Any,
        config: LookupConfigBase,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup = lookup
        self.config = config
        self.name = config.name
        self.counters = LookupCounters()
        self.call_seconds = DurationHistogram()
        self.cache = AnswerCache(config.cache, clock=clock)
        self.cached: bool = bool(getattr(lookup, "cached", True)) and config.cache.size > 0
        self.keys_per_call: int | None = getattr(lookup, "keys_per_call", None)
        workers = config.concurrency if getattr(lookup, "concurrent_calls", True) else 1
        self.workers = workers
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"lookup-{self.name}"
        )
        self._inflight: dict[Hashable, Future[Row | None]] = {}
        self._lock = threading.Lock()
        self._functions = {f.name: f for f in lookup.functions()}

    def functions(self) -> list[Function]:
        return list(self._functions.values())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.lookup.close()

    def status(self) -> dict[str, Any]:
        """The runner's counters (what the procedures saw: keys, cache hits, misses, the
        runner's own timeouts), then the lookup's own: ``backend`` (its ``counters``: calls,
        timeouts, errors by reason …, as the backend saw them) and ``stats`` (lookup
        specific figures, e.g. DNS queries sent and the in-flight maximum)."""
        c = self.counters
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.config.type,
            "cache_entries": len(self.cache),
            **{k: getattr(c, k) for k in _COUNTED},
            "latency": self.call_seconds.snapshot(),
        }
        for key, attribute in (("backend", "counters"), ("stats", "stats")):
            figures = getattr(self.lookup, attribute, None)
            if is_dataclass(figures) and not isinstance(figures, type):
                out[key] = _snapshot(figures)
        return out

    # --- the call ------------------------------------------------------------------------

    def call(self, function: str, keys: pa.Table) -> pa.Table:
        signature = self._functions[function]
        schema = pa.schema([(p.name, FIELD_TYPES[p.type][0]) for p in signature.outputs])
        self.counters.keys += keys.num_rows
        if keys.num_rows == 0:
            return schema.empty_table()
        if not self.cached:
            return self._backend(function, keys, schema)[0]
        return self._call_cached(function, keys, schema)

    def _call_cached(self, function: str, keys: pa.Table, schema: pa.Schema) -> pa.Table:
        rows: list[Row | None] = [None] * keys.num_rows
        key_rows = list(zip(*(c.to_pylist() for c in keys.columns), strict=True))
        mine: list[int] = []
        waiting: list[tuple[int, Future[Row | None]]] = []
        with self._lock:
            for i, key in enumerate(key_rows):
                if None in key:  # a null input has a null answer; nothing to ask
                    continue
                cache_key = (function, key)
                hit = self.cache.get(cache_key)
                if hit is not None:
                    rows[i] = hit
                    self.counters.cache_hits += 1
                elif cache_key in self._inflight:
                    waiting.append((i, self._inflight[cache_key]))
                else:
                    self._inflight[cache_key] = Future()
                    mine.append(i)
        started = time.monotonic()
        if mine:
            asked = keys.take(pa.array(mine, pa.int64()))
            answers, answered = self._backend(function, asked, schema)
            answer_rows = list(zip(*(c.to_pylist() for c in answers.columns), strict=True))
            with self._lock:
                for j, i in enumerate(mine):
                    cache_key = (function, key_rows[i])
                    row = answer_rows[j] if answered[j] else None
                    if row is not None:
                        self.cache.put(cache_key, row)
                        rows[i] = row
                    self._inflight.pop(cache_key).set_result(row)
        for i, future in waiting:
            left = max(0.0, started + self.config.timeout_s - time.monotonic())
            try:
                rows[i] = future.result(timeout=left)
            except TimeoutError:
                self.counters.timeouts += 1
        width = len(schema)
        filled = [r if r is not None else (None,) * width for r in rows]
        self.counters.misses += sum(1 for r in rows if r is not None and all(v is None for v in r))
        columns = list(zip(*filled, strict=True)) if filled else [()] * width
        return pa.Table.from_arrays(
            [pa.array(list(col), f.type) for col, f in zip(columns, schema, strict=True)],
            schema=schema,
        )

    def _backend(
        self, function: str, keys: pa.Table, schema: pa.Schema
    ) -> tuple[pa.Table, list[bool]]:
        """Ask the backend for ``keys``; a chunk that times out or fails becomes nulls
        (counted). Returns the answers and, per key, whether the backend answered."""
        n = keys.num_rows
        step = self.keys_per_call or n
        chunks = [(start, min(n, start + step)) for start in range(0, n, step)]
        waves = math.ceil(len(chunks) / self.workers)
        deadline = time.monotonic() + self.config.timeout_s * waves
        futures = [
            self._pool.submit(self._timed_call, function, keys.slice(a, b - a)) for a, b in chunks
        ]
        self.counters.calls += len(futures)
        wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        parts: list[pa.Table] = []
        answered: list[bool] = []
        for (a, b), future in zip(chunks, futures, strict=True):
            if not future.done():
                future.cancel()
                self.counters.timeouts += b - a
                parts.append(_nulls(schema, b - a))
                answered += [False] * (b - a)
                continue
            error = future.exception()
            if error is not None:
                self.counters.errors += 1
                self.counters.last_error = f"{type(error).__name__}: {error}"
                parts.append(_nulls(schema, b - a))
                answered += [False] * (b - a)
                continue
            result = future.result()
            if ANSWERED in result.column_names:  # the lookup's own timeouts and errors
                answered += [bool(v) for v in result.column(ANSWERED).to_pylist()]
            else:
                answered += [True] * (b - a)
            part = _conform(result, schema)
            if not self.cached:
                self.counters.misses += _all_null_rows(part)
            parts.append(part)
        return pa.concat_tables(parts), answered

    def _timed_call(self, function: str, keys: pa.Table) -> pa.Table:
        """One backend call, its duration observed (also when it fails)."""
        started = time.perf_counter()
        try:
            return self.lookup.call(function, keys)
        finally:
            self.call_seconds.observe(time.perf_counter() - started)


def _snapshot(figures: Any) -> dict[str, Any]:
    """``asdict`` of counters another thread may be updating (a dict that changes size
    while copied raises; the next try sees it settled)."""
    for _ in range(5):
        try:
            return asdict(figures)
        except RuntimeError:
            continue
    return {}


def _nulls(schema: pa.Schema, n: int) -> pa.Table:
    return pa.Table.from_arrays([pa.nulls(n, f.type) for f in schema], schema=schema)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = [table.column(f.name).cast(f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _all_null_rows(table: pa.Table) -> int:
    import pyarrow.compute as pc

    if table.num_columns == 0:
        return 0
    mask = pc.is_null(table.column(0))
    for column in table.columns[1:]:
        mask = pc.and_(mask, pc.is_null(column))
    return int(pc.sum(mask).as_py() or 0)
