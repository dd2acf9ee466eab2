"""MaxMind DB files (``.mmdb``) behind a lookup: the file, its reloads and a warm cache.

What the ``geoip`` and ``asn`` lookups share. The file is read with MaxMind's own
``maxminddb`` reader (its C extension over a memory map, libmaxminddb's format; the
format is at https://maxmind.github.io/MaxMind-DB/). IPv4 and IPv6 addresses are looked
up in the same file; an IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) is looked up as
the IPv4 address it carries. An address the file has no network for, an IPv6 address
in an IPv4-only file and text that is no address are misses: null outputs, counted,
never an error.

Batches. ``MmdbFile.answer`` gets an address column (the plan gives a batch's distinct
addresses; duplicates are folded again here by Arrow dictionary encoding, so each
distinct address is asked once in any case) and returns one row per address. Answers are
kept in a bounded warm cache per function: a dict from address text to a row of a
columnar pool, so a warm batch costs one dict probe per *distinct* address and one Arrow
``take``, and only addresses not seen before reach the reader. The reader answers one
address per call (``Reader.get`` has no batch form), so that part is a Python loop by
necessity; it runs on cache misses only. When the pool would pass ``size`` rows it is
replaced by the current call's addresses (what the traffic asks now stays warm).

Reloads. At most every ``reload_check_s`` a call looks at the file (``os.stat``: device,
inode, size, mtime). When it changed, the new file is opened first and then swapped in
with one assignment (reader and empty caches together), so a call sees either the old
file with its answers or the new one with its own, never a mix, and no call fails or
waits during a reload. A new file that cannot be opened (missing for a moment, half
written) is counted (``reload failed``) and the old one stays in use; the next check
tries again. Replace the file by renaming a complete one over it (as ``geoipupdate``
does): the old reader keeps its memory map of the old inode until the calls using it
end. Rewriting the file in place under a live memory map is not safe for any mmap
reader, libmaxminddb's included.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import maxminddb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from netdistill.errors import LookupDataError
from netdistill.lookups.base import Function, LookupConfigBase, LookupCounters
from netdistill.records.fields import FIELD_TYPES

#: a reader record (decoded MMDB map) and the matched network → one output row
Extract = Callable[[dict[str, Any], str], tuple[Any, ...]]

_MAPPED_V4 = "::ffff:"


@dataclass(slots=True)
class MmdbStats:
    """Per lookup instance, shown under ``stats`` in the status."""

    database_type: str = ""
    build_epoch: int = 0
    loads: int = 0
    reloads_failed: int = 0
    addresses_read: int = 0  # distinct addresses asked of the reader (cache misses)
    cache_hits: int = 0


class WarmCache:
    """Address text → answer row, bounded; rows live in one columnar pool."""

    def __init__(self, schema: pa.Schema, size: int) -> None:
        self.schema = schema
        self.size = size
        self.slots: dict[str | None, int] = {}
        self.pool: pa.Table = schema.empty_table()
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.slots)


@dataclass(slots=True)
class _Generation:
    """One opened file and the answers read from it (swapped together)."""

    reader: Any
    signature: tuple[int, int, int, int]
    caches: dict[str, WarmCache] = field(default_factory=dict)


def _signature(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _open(path: str) -> _Generation:
    """The file opened, with the signature it had just before (a change while opening is
    seen at the next check)."""
    signature = _signature(path)
    try:
        reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise LookupDataError(f"{path}: not a readable MaxMind DB file: {exc}") from None
    return _Generation(reader, signature)


class MmdbFile:
    """A MaxMind DB file, reloaded when it changes, answering address columns."""

    def __init__(
        self,
        path: str,
        *,
        cache_size: int,
        reload_check_s: float,
        counters: LookupCounters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.cache_size = cache_size
        self.reload_check_s = reload_check_s
        self.counters = counters
        self.stats = MmdbStats()
        self._clock = clock
        try:
            self._generation = _open(path)
        except OSError as exc:
            raise LookupDataError(f"{path}: {exc.strerror or exc}") from None
        self._note_loaded(self._generation)
        self._checked_at = clock()
        self._reload_lock = threading.Lock()
        self._failed: tuple[int, int, int, int] | None = None  # a file that did not open

    def _note_loaded(self, generation: _Generation) -> None:
        metadata = generation.reader.metadata()
        self.stats.loads += 1
        self.stats.database_type = str(metadata.database_type)
        self.stats.build_epoch = int(metadata.build_epoch)

    def metadata(self) -> Any:
        return self._generation.reader.metadata()

    def _current(self) -> _Generation:
        """The generation to answer from, after a reload check when one is due."""
        generation = self._generation
        now = self._clock()
        if now - self._checked_at < self.reload_check_s:
            return generation
        if not self._reload_lock.acquire(blocking=False):
            return generation  # another call is checking or loading: answer from the old
        try:
            self._checked_at = now
            try:
                signature: tuple[int, int, int, int] | None = _signature(self.path)
            except OSError:
                signature = None  # gone for a moment (being replaced): look again next time
            if signature is not None and signature not in (generation.signature, self._failed):
                try:
                    fresh = _open(self.path)
                except (OSError, LookupDataError) as exc:
                    self._failed = signature  # not tried again until the file changes
                    self.stats.reloads_failed += 1
                    self._count_error("reload failed", str(exc))
                    return generation
                self._note_loaded(fresh)
                self._generation = generation = fresh  # the swap: one assignment
            return generation
        finally:
            self._reload_lock.release()

    def _count_error(self, reason: str, message: str) -> None:
        self.counters.errors += 1
        self.counters.last_error = message
        self.counters.by_reason[reason] = self.counters.by_reason.get(reason, 0) + 1

    def _count(self, reason: str, n: int = 1) -> None:
        self.counters.by_reason[reason] = self.counters.by_reason.get(reason, 0) + n

    def answer(
        self, function: str, column: pa.Array | pa.ChunkedArray, schema: pa.Schema, extract: Extract
    ) -> pa.Table:
        """One row of ``schema`` per address of ``column`` (ip text), same order."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        self.counters.calls += 1
        if len(column) == 0:
            return schema.empty_table()
        encoded = pc.dictionary_encode(column)
        texts: list[str | None] = encoded.dictionary.to_pylist()
        if column.null_count:
            texts.append(None)
        indices = encoded.indices.fill_null(len(encoded.dictionary))
        self.counters.keys += len(texts)
        generation = self._current()
        cache = generation.caches.get(function)
        if cache is None:
            cache = generation.caches.setdefault(function, WarmCache(schema, self.cache_size))
        with cache.lock:
            distinct = self._distinct_answers(generation.reader, cache, texts, extract)
        return distinct.take(indices)

    def _distinct_answers(
        self, reader: Any, cache: WarmCache, texts: list[str | None], extract: Extract
    ) -> pa.Table:
        slots_of = cache.slots
        slots = np.fromiter((slots_of.get(t, -1) for t in texts), np.int64, len(texts))
        missing = np.flatnonzero(slots < 0)
        self.stats.cache_hits += len(texts) - len(missing)
        if len(missing) == 0:
            return cache.pool.take(slots)
        empty = (None,) * len(cache.schema)
        rows = [self._read(reader, texts[i], extract, empty) for i in missing]
        self.stats.addresses_read += len(missing)
        self.counters.misses += sum(1 for r in rows if r is empty)
        columns = list(zip(*rows, strict=True))
        fresh = pa.Table.from_arrays(
            [pa.array(list(c), f.type) for c, f in zip(columns, cache.schema, strict=True)],
            schema=cache.schema,
        )
        base = len(cache.pool)
        slots[missing] = np.arange(base, base + len(missing))
        pool = pa.concat_tables([cache.pool, fresh]) if base else fresh
        result = pool.take(slots)
        if base + len(missing) <= cache.size:
            if pool.num_columns and pool.column(0).num_chunks > 16:
                pool = pool.combine_chunks()
            cache.pool = pool
            for j, i in enumerate(missing):
                slots_of[texts[i]] = base + j
        else:  # full: keep this call's addresses (the working set now), up to size
            keep = min(len(texts), cache.size)
            cache.pool = result.slice(0, keep).combine_chunks()
            cache.slots = {texts[i]: i for i in range(keep)}
        return result

    def _read(
        self, reader: Any, text: str | None, extract: Extract, empty: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        """The output row of one address; ``empty`` itself for a miss."""
        if text is None:
            return empty
        address = _unmapped(text) if text[:7].lower() == _MAPPED_V4 else text
        try:
            record, prefix_len = reader.get_with_prefix_len(address)
        except ValueError as exc:  # not an address, or IPv6 in an IPv4-only file
            reason = "ipv6 in ipv4 file" if "IPv4-only" in str(exc) else "not an address"
            self._count(reason)
            return empty
        if not isinstance(record, dict):
            return empty
        row = extract(record, _network(address, prefix_len))
        return empty if all(v is None for v in row) else row

    def close(self) -> None:
        self._generation.reader.close()


def _unmapped(text: str) -> str:
    """The IPv4 address an IPv4-mapped IPv6 address carries (else the text as it is)."""
    try:
        mapped = ipaddress.IPv6Address(text).ipv4_mapped
    except ValueError:
        return text
    return text if mapped is None else str(mapped)


def _network(address: str, prefix_len: int) -> str:
    """``address/prefix_len`` as a network (host bits cleared)."""
    return str(ipaddress.ip_network(f"{address}/{prefix_len}", strict=False))


class MmdbLookupConfig(LookupConfigBase):
    """What the lookups over a MaxMind DB file share; ``cache.size`` bounds the warm cache
    of each function (answers stay valid until the file changes, so ``ttl_s`` is not
    used)."""

    database: str = Field(description="path of the .mmdb file")
    reload_check_s: float = Field(
        1.0, ge=0, description="how often a call looks whether the file changed; 0: every call"
    )
    timeout_s: float = Field(10.0, gt=0, description="longest wait for one batch (cold)")


class MmdbLookup:
    """Runtime of a lookup over one MaxMind DB file; ``call`` is thread-safe.

    Subclasses say which functions there are and how a record becomes each one's output
    row (``extracts``); the answer schema comes from the signature."""

    concurrent_calls = True
    keys_per_call = None
    cached = False  # the warm cache here is columnar; the runner's per-key cache is not used

    extracts: dict[str, Extract]

    def __init__(self, config: MmdbLookupConfig, *, store: Any = None) -> None:
        self.config = config
        self.name = config.name
        self.counters = LookupCounters()
        self.file = MmdbFile(
            config.database,
            cache_size=config.cache.size,
            reload_check_s=config.reload_check_s,
            counters=self.counters,
        )
        self.stats = self.file.stats
        self._schemas = {
            f.name: pa.schema([(p.name, FIELD_TYPES[p.type][0]) for p in f.outputs])
            for f in config.functions()
        }

    def functions(self) -> list[Function]:
        return self.config.functions()

    def call(self, function: str, keys: pa.Table) -> pa.Table:
        return self.file.answer(
            function, keys.column(0), self._schemas[function], self.extracts[function]
        )

    def close(self) -> None:
        self.file.close()
