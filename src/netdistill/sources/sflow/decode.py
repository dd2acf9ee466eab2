"""The sFlow v5 decoder: datagrams in, usage and interface-counter records out, no I/O.

Implements sFlow Version 5 (sflow.org, July 2004): datagram header, flow samples and
expanded flow samples with the records listed in ``samples.py``, counter samples and
expanded counter samples with generic interface counters. The UDP shell
(``listener.py``) and ``netdistill import`` call ``decode`` with batches of datagrams;
the decoder is not thread-safe — one caller at a time.

How a batch goes through (``layout.py`` says why it is a lockstep walk):

1. the datagrams are joined into one buffer; headers, samples and records are located
   for all of them at once;
2. flow and counter samples become columns (``samples.py``), the raw packet headers
   are read with vectorized gathers (``packet.py``);
3. every record gets the agent address as ``exporter`` (not the UDP source: a relay
   or NAT in between does not change which device sampled), the sub-agent id, and the
   datagram's receive time as start and end (sFlow samples are single packets: they
   carry no flow times, and the agent's uptime is no clock).

Loss and counters, per agent (SYSTEM.md §3): the datagram sequence number of each
(agent, sub-agent) feeds the same span-based tracker as NetFlow's, so datagrams lost
upstream show in ``sequence_lost[agent]``; the flow samples' ``sample_pool`` and
``drops`` (the agent's running totals per data source) are kept, latest value per data
source, summed per agent in ``agents()``.

Nothing raises out of ``decode``: a datagram with any problem (wrong version,
truncation, a length past its container, a count that cannot fit, a field too short)
is quarantined whole with its reason, a detail and the byte offset of the problem
inside the datagram, counted in ``counters.dropped``; every other datagram of the
batch is kept (STYLE.md habit 7).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from netdistill.records.batch import DecodeResult, Quarantined, SourceCounters
from netdistill.records.schema import conform, constant_column, with_constant
from netdistill.sources.base import MALFORMED, Datagram
from netdistill.sources.netflow.sequence import SequenceTracker
from netdistill.sources.sflow.fields import SFLOW_SCHEMA
from netdistill.sources.sflow.layout import (
    COUNTER_SAMPLE,
    COUNTER_SAMPLE_EXPANDED,
    ERRORS,
    FLOW_SAMPLE,
    FLOW_SAMPLE_EXPANDED,
    Buffer,
    Headers,
    Problems,
    read_headers,
    walk,
)
from netdistill.sources.sflow.samples import counter_columns, flow_columns, read_sample_headers

_TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(slots=True)
class AgentState:
    """What one agent said about its sampling, for status and heartbeats."""

    flow_samples: int = 0
    counter_samples: int = 0
    #: (sub-agent, source type, source index) → latest sample_pool / drops
    sample_pool: dict[tuple[int, int, int], int] | None = None
    drops: dict[tuple[int, int, int], int] | None = None

    def as_dict(self) -> dict[str, int]:
        return {
            "flow_samples": self.flow_samples,
            "counter_samples": self.counter_samples,
            "sample_pool": sum((self.sample_pool or {}).values()),
            "drops": sum((self.drops or {}).values()),
        }


class SflowDecoder:
    """Decoder state of one source instance: sequence expectations, per-agent sampling
    state and counters. See the module docstring for the guarantees."""

    def __init__(self, *, source: str = "sflow", default_sampling_rate: int = 1) -> None:
        self.source = source
        self.default_sampling_rate = max(1, int(default_sampling_rate))
        self.counters = SourceCounters()
        self._sequences = SequenceTracker(self.counters.sequence_lost)
        self._agents: dict[str, AgentState] = {}
        self.skipped_samples = 0

    def agents(self) -> dict[str, dict[str, int]]:
        return {agent: state.as_dict() for agent, state in self._agents.items()}

    def flush(self) -> DecodeResult:
        """Nothing is ever held: sFlow has no templates."""
        return DecodeResult(empty_table())

    def decode(self, datagrams: Sequence[Datagram], now: float | None = None) -> DecodeResult:
        self.counters.datagrams += len(datagrams)
        if not datagrams:
            return DecodeResult(empty_table())
        try:
            return self._decode(datagrams)
        except Exception as exc:  # a decoder bug must not cost the batch silently
            quarantined = [
                self._quarantine(d, MALFORMED, f"unexpected {exc!r}", None) for d in datagrams
            ]
            return DecodeResult(empty_table(), quarantined)

    def _quarantine(
        self, datagram: Datagram, reason: str, detail: str, offset: int | None
    ) -> Quarantined:
        self.counters.dropped[reason] += 1
        return Quarantined(
            self.source,
            datagram.exporter,
            datagram.received_at,
            reason,
            detail,
            datagram.payload,
            offset,
        )

    def _decode(self, datagrams: Sequence[Datagram]) -> DecodeResult:
        buf = Buffer([d.payload for d in datagrams])
        self.counters.bytes_received += int((buf.end - buf.start).sum())
        n = len(datagrams)
        problems = Problems(n, buf.start)
        headers = read_headers(buf, problems)
        samples = walk(
            buf,
            problems,
            np.arange(n),
            headers.first_sample,
            headers.samples,
            buf.end,
            records=False,
        )
        is_flow = (samples.tag == FLOW_SAMPLE) | (samples.tag == FLOW_SAMPLE_EXPANDED)
        is_counter = (samples.tag == COUNTER_SAMPLE) | (samples.tag == COUNTER_SAMPLE_EXPANDED)
        flow = read_sample_headers(buf, problems, samples.select(is_flow), flow=True)
        counter = read_sample_headers(buf, problems, samples.select(is_counter), flow=False)
        flow_records = walk(
            buf, problems, flow.datagram, flow.first_record, flow.records, flow.end, records=True
        )
        counter_records = walk(
            buf,
            problems,
            counter.datagram,
            counter.first_record,
            counter.records,
            counter.end,
            records=True,
        )
        flow_out = flow_columns(buf, problems, flow, flow_records, self.default_sampling_rate)
        counter_rows, counter_out = counter_columns(buf, problems, counter, counter_records)

        agent_code, agent_texts = _agents(headers)
        self._observe_sequences(headers, agent_code, agent_texts)
        good = problems.code == 0
        self.skipped_samples += int((good[samples.owner] & ~is_flow & ~is_counter).sum())

        received_us = np.round(
            np.array([d.received_at for d in datagrams], np.float64) * 1_000_000
        ).astype(np.int64)
        tables = []
        keep = good[flow.datagram]
        if keep.any():
            self._note_samples(flow, keep, headers, agent_code, agent_texts, counters=False)
            flow_out["sample_kind"] = constant_column("flow", int(keep.sum()))
            tables.append(
                _table(flow_out, keep, flow.datagram, headers, agent_code, agent_texts, received_us)
            )
        keep_counter = good[counter.datagram]
        if keep_counter.any():
            self._note_samples(
                counter, keep_counter, headers, agent_code, agent_texts, counters=True
            )
        counter_keep = good[counter.datagram[counter_rows]]
        if counter_keep.any():
            counter_out["sample_kind"] = constant_column("counters", int(counter_keep.sum()))
            tables.append(
                _table(
                    counter_out,
                    counter_keep,
                    counter.datagram[counter_rows],
                    headers,
                    agent_code,
                    agent_texts,
                    received_us,
                )
            )
        quarantined = [
            self._quarantine(
                datagrams[i],
                ERRORS[code][0],
                ERRORS[code][1].format(value=value),
                offset,
            )
            for i, code, value, offset in zip(
                np.flatnonzero(~good).tolist(),
                problems.code[~good].tolist(),
                problems.value[~good].tolist(),
                problems.offset[~good].tolist(),
                strict=True,
            )
        ]
        records = (
            pa.concat_tables([conform(t, SFLOW_SCHEMA) for t in tables])
            if tables
            else empty_table()
        )
        if records.num_rows:
            records = with_constant(records, "source", self.source)
        self.counters.records += records.num_rows
        return DecodeResult(records, quarantined)

    def _observe_sequences(
        self, headers: Headers, agent_code: np.ndarray, agent_texts: list[str]
    ) -> None:
        """Datagram sequence numbers per (agent, sub-agent), in arrival order. A run of
        consecutive numbers of one stream is one ``observe`` call of that many units,
        the same as observing each: most batches cost one call per stream."""
        parsed = np.flatnonzero(headers.parsed)
        if len(parsed) == 0:
            return
        stream = agent_code[parsed] * (1 << 32) + headers.sub_agent[parsed]
        for key in np.unique(stream).tolist():
            members = parsed[stream == key]
            numbers = headers.sequence[members]
            agent = agent_texts[int(agent_code[members[0]])]
            stream_key = ("sflow", agent, int(headers.sub_agent[members[0]]))
            if len(numbers) == 1 or bool((((np.diff(numbers)) % (1 << 32)) == 1).all()):
                self._sequences.observe(stream_key, agent, int(numbers[0]), len(numbers))
            else:
                for number in numbers.tolist():
                    self._sequences.observe(stream_key, agent, number, 1)

    def _note_samples(
        self,
        samples: object,
        keep: np.ndarray,
        headers: Headers,
        agent_code: np.ndarray,
        agent_texts: list[str],
        *,
        counters: bool,
    ) -> None:
        """Per agent: sample counts; per data source: the latest pool and drops."""
        datagram = samples.datagram[keep]  # type: ignore[attr-defined]
        codes = agent_code[datagram]
        for code, count in zip(*np.unique(codes, return_counts=True), strict=True):
            state = self._agents.setdefault(agent_texts[int(code)], AgentState())
            if counters:
                state.counter_samples += int(count)
            else:
                state.flow_samples += int(count)
        if counters:
            return
        sub = headers.sub_agent[datagram]
        source_type = samples.source_type[keep]  # type: ignore[attr-defined]
        source_index = samples.source_index[keep]  # type: ignore[attr-defined]
        pool = samples.sample_pool[keep]  # type: ignore[attr-defined]
        drops = samples.drops[keep]  # type: ignore[attr-defined]
        keys = np.stack([codes, sub, source_type, source_index], axis=1)
        # the last sample of each data source in the batch holds its latest totals
        _, last_reversed = np.unique(keys[::-1], axis=0, return_index=True)
        last = len(keys) - 1 - last_reversed
        for i in last.tolist():
            state = self._agents[agent_texts[int(codes[i])]]
            key = (int(sub[i]), int(source_type[i]), int(source_index[i]))
            if state.sample_pool is None or state.drops is None:
                state.sample_pool, state.drops = {}, {}
            state.sample_pool[key] = int(pool[i])
            state.drops[key] = int(drops[i])


def _agents(headers: Headers) -> tuple[np.ndarray, list[str]]:
    """(agent code per datagram, agent address text per code)."""
    n = len(headers.parsed)
    code = np.zeros(n, np.int64)
    texts: list[str] = []
    v4 = headers.parsed & ~headers.agent_is_v6
    if v4.any():
        unique, inverse = np.unique(headers.agent_v4[v4], return_inverse=True)
        code[v4] = inverse.reshape(-1)
        texts += [str(ipaddress.IPv4Address(int(a))) for a in unique.tolist()]
    v6 = headers.parsed & headers.agent_is_v6
    if v6.any():
        unique, inverse = np.unique(headers.agent_v6[v6], axis=0, return_inverse=True)
        code[v6] = len(texts) + inverse.reshape(-1)
        texts += [str(ipaddress.IPv6Address(bytes(row))) for row in unique]
    return code, texts


def _table(
    columns: dict[str, pa.Array],
    keep: np.ndarray,
    datagram: np.ndarray,
    headers: Headers,
    agent_code: np.ndarray,
    agent_texts: list[str],
    received_us: np.ndarray,
) -> pa.Table:
    """The kept rows of ``columns`` with the per-datagram columns added."""
    datagram = datagram[keep]
    if keep.all():  # the common case: no datagram of the batch was bad
        out = dict(columns)
    else:
        rows = pa.array(np.flatnonzero(keep))
        out = {
            name: column if name == "sample_kind" else column.take(rows)
            for name, column in columns.items()
        }
    times = pa.array(received_us[datagram], _TIMESTAMP)
    out["start_time"] = times
    out["end_time"] = times
    out["duration_s"] = pa.array(np.zeros(len(datagram)), pa.float64())
    out["exporter"] = pa.array(agent_texts, pa.string()).take(pa.array(agent_code[datagram]))
    out["sub_agent_id"] = pa.array(headers.sub_agent[datagram].astype(np.uint32), pa.uint32())
    return pa.table(out)


def empty_table() -> pa.Table:
    return SFLOW_SCHEMA.empty_table()
