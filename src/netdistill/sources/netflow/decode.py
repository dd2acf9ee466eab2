"""The NetFlow v5 / v9 / IPFIX decoder: datagrams in, usage records out, no I/O.

Implements NetFlow v5 (Cisco export format), NetFlow v9 (RFC 3954) and IPFIX (RFC 7011,
elements of RFC 7012). The UDP shell (another module) calls ``decode`` with batches of
datagrams; the decoder is not thread-safe — one caller at a time.

How a batch goes through:

1. Per datagram (Python, cheap): read the header, walk the sets. Templates and options
   templates are registered at once (a later set of the same batch may use them);
   options data is folded into the sampling / init-time state at once; each data set
   is only *noted* — a slice of the datagram — under its template. Data whose template
   is unknown is held (``hold_s``, ``hold_max_datagrams``) and retried on every call.
2. Per template (numpy, vectorized): the noted slices are joined and decoded with one
   ``np.frombuffer``; header values are broadcast with ``np.repeat``; ``flows`` turns
   element columns into record columns; the per-template tables are concatenated.

Nothing raises out of ``decode``: a bad datagram, or the bad rest of one, becomes a
``Quarantined`` item with its reason, detail and byte offset, counted in
``counters.dropped``; every other datagram of the batch is kept (STYLE.md habit 7).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from netdistill.errors import DecodeError
from netdistill.records.batch import DecodeResult, FieldSpec, Quarantined, SourceCounters
from netdistill.records.schema import empty_batch
from netdistill.sources.base import MALFORMED, NO_TEMPLATE, Datagram
from netdistill.sources.netflow import v5
from netdistill.sources.netflow.extract import (
    check_layout,
    decode_fixed,
    gather_variable,
    walk_variable,
)
from netdistill.sources.netflow.fields import netflow_schema
from netdistill.sources.netflow.flows import RecordContext, build_records
from netdistill.sources.netflow.hold import Held, HoldQueue
from netdistill.sources.netflow.mapping import ElementMapping
from netdistill.sources.netflow.sampling import learn_options, record_rates
from netdistill.sources.netflow.sequence import SequenceTracker
from netdistill.sources.netflow.templates import (
    TRUNCATED,
    DomainKey,
    Template,
    TemplateCache,
    Withdrawal,
    parse_ipfix_templates,
    parse_v9_templates,
)

UNKNOWN_VERSION = "unknown_version"
V9_HEADER = struct.Struct(">HHIIII")  # version, count, sysUpTime, unix_secs, sequence, source id
IPFIX_HEADER = struct.Struct(">HHIII")  # version, length, export time, sequence, domain
_SET_HEADER = struct.Struct(">HH")


class MessageHeader(NamedTuple):
    """What a data record needs from its v9 / IPFIX message header (a tuple: one is
    made per datagram on the hot path)."""

    version: int
    domain: DomainKey
    export_us: int
    uptime_ms: int  # v9 only; 0 for IPFIX


class _NotedSet(NamedTuple):
    body: memoryview
    records: int
    header: MessageHeader
    exporter_index: int
    datagram: Datagram
    #: variable-length templates: segment starts of the records, set-relative
    starts: np.ndarray | None


@dataclass(slots=True)
class _Group:
    """The data sets of one template noted during one call."""

    template: Template
    sets: list[_NotedSet] = field(default_factory=list)


class _Batch:
    """Per-call working state: exporter names, template groups, the v5 batch."""

    def __init__(self) -> None:
        self.exporters: dict[str, int] = {}
        self.groups: dict[int, _Group] = {}
        self.v5 = v5.V5Batch()
        self.v5_datagrams: list[Datagram] = []
        self.quarantined: list[Quarantined] = []

    def exporter_index(self, exporter: str) -> int:
        return self.exporters.setdefault(exporter, len(self.exporters))


class NetflowDecoder:
    """Decoder state of one source instance: templates, options state, held data,
    sequence expectations and counters. See the module docstring for the guarantees."""

    def __init__(
        self,
        *,
        source: str = "netflow",
        default_sampling_rate: int = 1,
        exporter_sampling_rates: Mapping[str, int] | None = None,
        template_timeout_s: float = 1800.0,
        hold_s: float = 10.0,
        hold_max_datagrams: int = 10_000,
        element_mappings: Sequence[ElementMapping] = (),
    ) -> None:
        self.source = source
        self.mappings = tuple(element_mappings)
        self._mapped_keys = frozenset(m.key for m in self.mappings)
        #: the schema of every table ``decode`` returns (``fields.netflow_schema``)
        self.schema = netflow_schema(self.field_specs)
        self.default_sampling_rate = max(1, int(default_sampling_rate))
        self.exporter_sampling_rates = dict(exporter_sampling_rates or {})
        self.template_timeout_s = template_timeout_s
        self.hold_s = hold_s
        self.counters = SourceCounters()
        self._cache = TemplateCache()
        self._held = HoldQueue(hold_max_datagrams)
        self._sequences = SequenceTracker(self.counters.sequence_lost)

    # -- public API ------------------------------------------------------------------

    @property
    def field_specs(self) -> list[FieldSpec]:
        """The fields the scheme's element mappings fill."""
        return [FieldSpec(m.field, m.type, f"element {m.enterprise}/{m.element_id}")
                for m in self.mappings]  # fmt: skip

    @property
    def template_version(self) -> int:
        return self._cache.version

    def decode(self, datagrams: Sequence[Datagram], now: float | None = None) -> DecodeResult:
        if now is None:
            now = max((d.received_at for d in datagrams), default=0.0)
        batch = _Batch()
        for datagram in datagrams:
            self.counters.datagrams += 1
            self.counters.bytes_received += len(datagram.payload)
            try:
                self._walk_datagram(datagram, batch)
            except Exception as exc:  # a decoder bug must not cost the batch
                self._quarantine(batch, datagram, MALFORMED, f"unexpected {exc!r}", 0)
        self._release_held(batch)
        self._expire(batch, now)
        return self._finish(batch)

    def expire(self, now: float) -> DecodeResult:
        batch = _Batch()
        self._expire(batch, now)
        return self._finish(batch)

    def flush(self) -> DecodeResult:
        batch = _Batch()
        self._release_held(batch)
        for held in self._held.drain():
            self._quarantine_held(batch, held, "still held at shutdown")
        return self._finish(batch)

    def template_state(self) -> bytes:
        return self._cache.to_bytes()

    def load_template_state(self, state: bytes) -> None:
        self._cache.load_bytes(state, mapped=self._mapped_keys)

    # -- walking ---------------------------------------------------------------------

    def _quarantine(
        self, batch: _Batch, datagram: Datagram, reason: str, detail: str, offset: int | None
    ) -> None:
        self.counters.dropped[reason] += 1
        batch.quarantined.append(
            Quarantined(
                self.source,
                datagram.exporter,
                datagram.received_at,
                reason,
                detail,
                datagram.payload,
                offset,
            )
        )

    def _walk_datagram(self, datagram: Datagram, batch: _Batch) -> None:
        payload = datagram.payload
        if len(payload) < 2:
            self._quarantine(batch, datagram, TRUNCATED, "no version field", len(payload))
            return
        version = int.from_bytes(payload[:2], "big")
        try:
            if version == 5:
                self._note_v5(datagram, batch)
            elif version in (9, 10):
                self._walk_message(datagram, version, batch)
            else:
                self._quarantine(batch, datagram, UNKNOWN_VERSION, f"version field is {version}", 0)
        except DecodeError as exc:
            self._quarantine(batch, datagram, exc.reason, exc.detail, exc.offset)

    def _note_v5(self, datagram: Datagram, batch: _Batch) -> None:
        header = v5.parse_header(datagram.payload)
        exporter = datagram.exporter
        rate = header.sampling_interval or self.exporter_sampling_rates.get(
            exporter, self.default_sampling_rate
        )
        key = (exporter, 5, header.engine_type, header.engine_id)
        self._sequences.observe(key, exporter, header.flow_sequence, header.count)
        batch.v5.add(datagram.payload, header, batch.exporter_index(exporter), max(1, rate))
        batch.v5_datagrams.append(datagram)

    def _walk_message(self, datagram: Datagram, version: int, batch: _Batch) -> None:
        payload = datagram.payload
        exporter = datagram.exporter
        if version == 9:
            if len(payload) < V9_HEADER.size:
                raise DecodeError(TRUNCATED, offset=len(payload), detail="v9 header needs 20 bytes")
            _, _, uptime, secs, sequence, domain_id = V9_HEADER.unpack_from(payload)
            header = MessageHeader(9, (exporter, 9, domain_id), secs * 1_000_000, uptime)
            offset, end, length = V9_HEADER.size, len(payload), len(payload)
        else:
            if len(payload) < IPFIX_HEADER.size:
                raise DecodeError(
                    TRUNCATED, offset=len(payload), detail="IPFIX header needs 16 bytes"
                )
            _, length, export_s, sequence, domain_id = IPFIX_HEADER.unpack_from(payload)
            if length < IPFIX_HEADER.size:
                raise DecodeError(MALFORMED, offset=2, detail=f"IPFIX message length {length}")
            header = MessageHeader(10, (exporter, 10, domain_id), export_s * 1_000_000, 0)
            offset, end = IPFIX_HEADER.size, min(length, len(payload))
        held: list[tuple[int, int, int]] = []
        records: int | None = 0
        try:
            while end - offset >= 4:
                set_id, set_length = _SET_HEADER.unpack_from(payload, offset)
                if set_length < 4:
                    raise DecodeError(
                        MALFORMED, offset=offset + 2, detail=f"set {set_id} length {set_length}"
                    )
                if offset + set_length > end:
                    raise DecodeError(
                        TRUNCATED,
                        offset=offset,
                        detail=f"set {set_id} of length {set_length} runs past the end ({end})",
                    )
                body, body_end = offset + 4, offset + set_length
                if set_id >= 256:
                    template = self._cache.get((*header.domain, set_id))
                    if template is None:
                        held.append((body, body_end, set_id))
                        records = None
                    else:
                        n = self._note_data(datagram, header, template, body, body_end, batch)
                        records = None if records is None else records + n
                elif set_id <= 3:
                    self._register_templates(datagram, header, set_id, body, body_end)
                # set ids 4-255 are reserved (RFC 7011 §3.3.2): skipped by length
                offset = body_end
            if version == 10 and length > len(payload):
                raise DecodeError(
                    TRUNCATED,
                    offset=len(payload),
                    detail=f"IPFIX message length {length} exceeds the "
                    f"{len(payload)}-byte datagram",
                )
        except DecodeError as exc:
            # the sets before the bad one stay decoded; the rest is quarantined
            self._quarantine(batch, datagram, exc.reason, exc.detail, exc.offset)
            records = None
        self._sequences.observe(header.domain, exporter, sequence, 1 if version == 9 else records)
        if held:
            for dropped in self._held.add(Held(datagram, header, held)):
                self._quarantine_held(batch, dropped, "hold queue full")

    def _register_templates(
        self, datagram: Datagram, header: MessageHeader, set_id: int, body: int, end: int
    ) -> None:
        options = set_id in (1, 3)
        parsed = (
            parse_v9_templates(
                datagram.payload, body, end, options=options, mapped=self._mapped_keys
            )
            if header.version == 9
            else parse_ipfix_templates(
                datagram.payload, body, end, options=options, mapped=self._mapped_keys
            )
        )
        for item in parsed:
            if isinstance(item, Withdrawal):
                self._cache.withdraw(header.domain, item.template_id, options=options)
            else:
                check_layout(item)
                self._cache.add((*header.domain, item.template_id), item, datagram.received_at)

    def _note_data(
        self,
        datagram: Datagram,
        header: MessageHeader,
        template: Template,
        body: int,
        end: int,
        batch: _Batch,
    ) -> int:
        """Note (or, for options data, apply) one data set; returns its record count."""
        payload = datagram.payload
        starts: np.ndarray | None = None
        if template.record_length is not None:
            count = (end - body) // template.record_length
            end = body + count * template.record_length  # the rest is padding
        else:
            starts = walk_variable(template, payload, body, end) - body
            count = len(starts)
        if template.is_options:
            view = payload[body:end]
            columns = (
                decode_fixed(template, view, count)
                if starts is None
                else gather_variable(template, view, starts)
            )
            learn_options(columns, count, header.domain, self._cache)
            return count
        if count == 0:
            return 0
        group = batch.groups.get(id(template))
        if group is None:
            group = batch.groups[id(template)] = _Group(template)
        group.sets.append(
            _NotedSet(
                memoryview(payload)[body:end],
                count,
                header,
                batch.exporter_index(datagram.exporter),
                datagram,
                starts,
            )
        )
        return count

    # -- held data -------------------------------------------------------------------

    def _release_held(self, batch: _Batch) -> None:
        """Note the held sets whose template has arrived since."""
        for held in self._held.entries():
            waiting = []
            for body, end, set_id in held.sets:
                template = self._cache.get((*held.header.domain, set_id))
                if template is None:
                    waiting.append((body, end, set_id))
                    continue
                try:
                    self._note_data(held.datagram, held.header, template, body, end, batch)
                except DecodeError as exc:
                    self._quarantine(batch, held.datagram, exc.reason, exc.detail, exc.offset)
            held.sets = waiting
        self._held.prune()

    def _quarantine_held(self, batch: _Batch, held: Held, why: str) -> None:
        ids = ", ".join(str(s[2]) for s in held.sets)
        self._quarantine(
            batch,
            held.datagram,
            NO_TEMPLATE,
            f"no template {ids} for domain {held.header.domain[2]}: {why}",
            held.sets[0][0] - 4,
        )

    def _expire(self, batch: _Batch, now: float) -> None:
        for held in self._held.pop_older_than(now - self.hold_s):
            self._quarantine_held(batch, held, f"held longer than {self.hold_s:g} s")
        self._cache.expire(now, self.template_timeout_s)

    # -- vectorized decoding ---------------------------------------------------------

    def _finish(self, batch: _Batch) -> DecodeResult:
        exporters = list(batch.exporters)
        tables: list[pa.Table] = []
        if batch.v5.headers:
            try:
                tables.append(self._decode_v5(batch.v5, exporters))
            except Exception as exc:  # defensive: never lose the rest of the batch
                for datagram in batch.v5_datagrams:
                    self._quarantine(batch, datagram, MALFORMED, f"unexpected {exc!r}", 0)
        for group in batch.groups.values():
            try:
                tables.append(self._decode_group(group, exporters))
            except Exception as exc:
                for datagram in {id(s.datagram): s.datagram for s in group.sets}.values():
                    self._quarantine(batch, datagram, MALFORMED, f"unexpected {exc!r}", None)
        if tables:
            records = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        else:
            records = pa.Table.from_batches([empty_batch(self.schema)])
        self.counters.records += records.num_rows
        return DecodeResult(records, batch.quarantined)

    def _decode_v5(self, batch: v5.V5Batch, exporters: list[str]) -> pa.Table:
        columns, counts = batch.columns()
        ctx = RecordContext(
            export_us=np.repeat(np.array([h.export_us for h in batch.headers], np.int64), counts),
            exporter_index=np.repeat(np.array(batch.exporter_index, np.int32), counts),
            exporters=exporters,
            sampling_rate=np.repeat(np.array(batch.rates, np.uint32), counts),
            uptime_ms=np.repeat(
                np.array([h.sys_uptime_ms for h in batch.headers], np.int64), counts
            ),
        )
        return build_records(columns, ctx, self.source, mappings=self.mappings, schema=self.schema)

    def _decode_group(self, group: _Group, exporters: list[str]) -> pa.Table:
        template, sets = group.template, group.sets
        counts = np.fromiter((s.records for s in sets), np.int64, len(sets))
        joined = b"".join([s.body for s in sets])
        if template.record_length is not None:
            columns = decode_fixed(template, joined, int(counts.sum()))
        else:
            bases = np.cumsum([0] + [len(s.body) for s in sets[:-1]])
            starts = np.concatenate(
                [
                    s.starts + base
                    for s, base in zip(sets, bases, strict=True)
                    if s.starts is not None
                ]
            )
            columns = gather_variable(template, joined, starts)
        code_of: dict[DomainKey, int] = {}
        set_domain = np.fromiter(
            (code_of.setdefault(s.header.domain, len(code_of)) for s in sets), np.int64, len(sets)
        )
        domains = list(code_of)

        def per_record(values: Iterable[int], dtype: type) -> np.ndarray:
            return np.repeat(np.fromiter(values, dtype, len(sets)), counts)

        ctx = RecordContext(
            export_us=per_record((s.header.export_us for s in sets), np.int64),
            exporter_index=per_record((s.exporter_index for s in sets), np.int32),
            exporters=exporters,
            sampling_rate=record_rates(
                columns,
                counts,
                set_domain,
                domains,
                self._cache,
                self.exporter_sampling_rates,
                self.default_sampling_rate,
            ),
        )
        if sets[0].header.version == 9:
            ctx.uptime_ms = per_record((s.header.uptime_ms for s in sets), np.int64)
        else:
            init = np.array([self._cache.init_times_ms.get(d, -1) for d in domains], np.int64)
            ctx.init_ms = init[np.repeat(set_domain, counts)]
        return build_records(columns, ctx, self.source, mappings=self.mappings, schema=self.schema)
