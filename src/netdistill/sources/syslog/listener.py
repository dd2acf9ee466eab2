"""The live ``type: syslog`` and ``type: lines`` sources: sockets → line table → formats.

Both receive on UDP (``sources/udp.py``: bounded queue, kernel drop counters) and TCP
(``tcp.py``: RFC 6587 framing, back-pressure). ``poll`` drains both, builds one line
table for the batch — through the syslog header parser (``header.py``) for ``syslog``,
as bare lines for ``lines`` — and hands it to the formats. For ``syslog`` a UDP datagram
is one message (RFC 5426 §3.1); for ``lines`` a datagram may hold several lines.

Formats are tried in the configured order: the lines a format reports as bad go to the
next one; a line no format takes is quarantined with every format's reason and its
place (``peer_ip:port``). Lines a format recognises but has no use for (an ASA *Built*
message) are counted as ``ignored``. So for every source: messages received ==
records + quarantined + ignored (+ framing problems, which are quarantined as well).

Per-line Python work happens only for lines that end in the quarantine (to build
their ``Quarantined`` items) — bad input, not the hot path.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from netdistill.records.batch import DecodeResult, FieldSpec, Quarantined, SourceCounters
from netdistill.records.fields import FIELD_TYPES
from netdistill.records.schema import conform, with_constant
from netdistill.sources.base import MALFORMED, SourceKind
from netdistill.sources.lines import LineFormat, Parsed, make_format
from netdistill.sources.syslog.config import (
    SYSLOG_PORT,
    LinesSourceConfig,
    SyslogSourceConfig,
    parse_endpoint,
)
from netdistill.sources.syslog.header import decode_messages, parse_headers
from netdistill.sources.syslog.tcp import TcpReceiver
from netdistill.sources.udp import UdpReceiver

IGNORED = "ignored"

Received = tuple[bytes, str, float, int]


def run_formats(
    formats: Sequence[tuple[str, LineFormat]], lines: pa.Table
) -> tuple[list[pa.Table], list[tuple[int, str]], int]:
    """Offer ``lines`` to each format in turn; returns (record tables, (row, reason) of the
    lines no format took, lines recognised and ignored)."""
    tables: list[pa.Table] = []
    rows = list(range(lines.num_rows))
    reasons: dict[int, list[str]] = {}
    ignored = 0
    remaining = lines
    for _, line_format in formats:
        if not rows:
            break
        parsed: Parsed = line_format.parse(remaining)
        if parsed.records.num_rows:
            tables.append(parsed.records)
        bad_rows = [row for row, _ in parsed.bad]
        ignored += remaining.num_rows - parsed.records.num_rows - len(bad_rows)
        for row, reason in parsed.bad:
            reasons.setdefault(rows[row], []).append(reason)
        rows = [rows[row] for row in bad_rows]
        remaining = remaining.take(pa.array(bad_rows, pa.int64()))
    return tables, [(row, "; ".join(reasons.get(row, []))) for row in rows], ignored


def records_table(tables: list[pa.Table], fields: Sequence[FieldSpec], source: str) -> pa.Table:
    """Record tables of several formats as one table: the standard schema plus ``fields``."""
    if tables:
        combined = pa.concat_tables(
            [t.cast(_plain_strings(t.schema)) for t in tables], promote_options="default"
        )
    else:
        combined = pa.table({})
    table = conform(combined)
    for spec in fields:
        arrow_type = FIELD_TYPES[spec.type][0]
        if spec.name in combined.column_names:
            column = combined.column(spec.name).cast(arrow_type)
        else:
            column = pa.nulls(combined.num_rows, arrow_type)
        table = table.append_column(spec.name, column)
    return with_constant(table, "source", source) if table.num_rows else table


def _plain_strings(schema: pa.Schema) -> pa.Schema:
    """Polars hands out ``string_view``/``large_string``; the record schema uses ``string``."""
    plain = (pa.string_view(), pa.large_string())
    return pa.schema([f.with_type(pa.string()) if f.type in plain else f for f in schema])


class _SocketLineSource(ABC):
    """What ``syslog`` and ``lines`` share. Lifecycle: ``start`` → repeated ``poll`` from
    one thread → ``stop`` → ``flush``."""

    kind: ClassVar[SourceKind] = "polled"

    type_name = ""

    def __init__(
        self,
        config: SyslogSourceConfig | LinesSourceConfig,
        format_options: list[tuple[str, dict[str, Any]]],
        *,
        octet_counting: bool,
        default_port: int | None,
        queue_limit: int,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.name = config.name
        self._clock = clock
        self.formats = [(name, make_format(name, options)) for name, options in format_options]
        seen: dict[str, FieldSpec] = {}
        for _, line_format in self.formats:
            for spec in line_format.fields:
                seen.setdefault(spec.name, spec)
        #: extra fields of all configured formats (same name = same field across formats)
        self.fields: tuple[FieldSpec, ...] = tuple(seen.values())
        self.counters = SourceCounters()
        self.quarantined: Counter[str] = Counter()
        endpoints = [parse_endpoint(a, default_port=default_port) for a in config.listen]
        udp = [(h, p) for t, h, p in endpoints if t == "udp"]
        tcp = [(h, p) for t, h, p in endpoints if t == "tcp"]
        self.udp = (
            UdpReceiver(
                udp,
                receive_buffer_bytes=config.receive_buffer_bytes,
                queue_limit=queue_limit,
                on_drop=self._count_drop,
                clock=clock,
            )
            if udp
            else None
        )
        self.tcp = (
            TcpReceiver(
                tcp,
                octet_counting=octet_counting,
                max_message_bytes=config.max_message_bytes,
                max_connections=config.max_connections,
                queue_limit=queue_limit,
                on_count=self._count_drop,
                clock=clock,
            )
            if tcp
            else None
        )
        self._kernel_drops_at_start = 0

    def _count_drop(self, reason: str, n: int) -> None:
        self.counters.dropped[reason] += n

    @property
    def bound(self) -> list[tuple[str, str, int]]:
        udp = [("udp", h, p) for h, p in self.udp.bound] if self.udp else []
        tcp = [("tcp", h, p) for h, p in self.tcp.bound] if self.tcp else []
        return udp + tcp

    def start(self) -> None:
        if self.udp:
            self.udp.start()
            self._kernel_drops_at_start = self.udp.kernel_drops()
        if self.tcp:
            try:
                self.tcp.start()
            except OSError:
                if self.udp:
                    self.udp.stop()
                raise

    # --- the batch ---------------------------------------------------------------------------

    @abstractmethod
    def _line_table(self, messages: list[Received]) -> tuple[pa.Table, list[Received]]:
        """The batch handed to the formats, and the messages that could not be read."""

    def poll(self, max_datagrams: int) -> DecodeResult:
        """Parse what arrived since the last poll (at most ``max_datagrams`` messages)."""
        received: list[Received] = []
        if self.udp:
            received.extend(self.udp.drain(max_datagrams))
        if self.tcp:
            received.extend(self.tcp.drain(max(0, max_datagrams - len(received))))
        quarantined = self._stream_problems()
        if not received:
            return DecodeResult(records_table([], self.fields, self.name), quarantined)
        self.counters.datagrams += len(received)
        self.counters.bytes_received += sum(len(m[0]) for m in received)
        lines, origin = self._line_table(received)
        tables, bad, ignored = run_formats(self.formats, lines)
        records = records_table(tables, self.fields, self.name)
        self.counters.records += records.num_rows
        if ignored:
            self.counters.dropped[IGNORED] += ignored
        for row, reason in bad:
            payload, peer, at, port = origin[row]
            quarantined.append(self._quarantine(MALFORMED, reason, payload, peer, port, at))
        return DecodeResult(records, quarantined)

    def _stream_problems(self) -> list[Quarantined]:
        if not self.tcp:
            return []
        return [
            self._quarantine(p.reason, p.detail, p.payload, p.peer, p.port, p.received_at, p.offset)
            for p in self.tcp.problems()
        ]

    def _quarantine(
        self,
        reason: str,
        detail: str,
        payload: bytes,
        peer: str,
        port: int,
        at: float,
        offset: int | None = None,
    ) -> Quarantined:
        if reason == MALFORMED:  # stream problems were counted by the receiver already
            self.counters.dropped[MALFORMED] += 1
        self.quarantined[reason] += 1
        location = f"[{peer}]:{port}" if ":" in peer else f"{peer}:{port}"
        return Quarantined(
            self.name, peer, at, reason, detail, payload, offset=offset, location=location
        )

    def pending(self) -> int:
        return (self.udp.pending() if self.udp else 0) + (self.tcp.pending() if self.tcp else 0)

    def kernel_drops(self) -> int:
        if not self.udp:
            return 0
        return max(0, self.udp.kernel_drops() - self._kernel_drops_at_start)

    def stop(self) -> None:
        if self.tcp:
            self.tcp.stop()
        if self.udp:
            self.udp.stop()

    def flush(self) -> DecodeResult:
        tables: list[pa.Table] = []
        for _, line_format in self.formats:
            parsed = line_format.flush()
            if parsed.records.num_rows:
                tables.append(parsed.records)
        records = records_table(tables, self.fields, self.name)
        self.counters.records += records.num_rows
        return DecodeResult(records, self._stream_problems())

    def status(self) -> dict[str, object]:
        counters = self.counters.as_dict()
        dropped = dict(counters["dropped"])  # type: ignore[call-overload]
        kernel = self.kernel_drops()
        if kernel:
            dropped["kernel_socket_overflow"] = kernel
        counters["dropped"] = dropped
        counters["quarantined"] = dict(self.quarantined)
        counters["listening"] = [f"{t}://{h}:{p}" for t, h, p in self.bound]
        counters["connections"] = self.tcp.open_connections if self.tcp else 0
        counters["queued"] = self.pending()
        return {"name": self.name, "type": self.type_name, **counters}


class SyslogSource(_SocketLineSource):
    """One ``type: syslog`` scheme entry at run time."""

    type_name = "syslog"

    def __init__(
        self,
        config: SyslogSourceConfig,
        *,
        state_dir: Path | None = None,
        queue_limit: int = 500_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            config,
            [(name, config.format_options.get(name, {})) for name in config.formats],
            octet_counting=True,
            default_port=SYSLOG_PORT,
            queue_limit=queue_limit,
            clock=clock,
        )
        self.timezone = config.timezone

    def _line_table(self, messages: list[Received]) -> tuple[pa.Table, list[Received]]:
        payloads, peers, times, _ = zip(*messages, strict=True)
        table = parse_headers(
            list(payloads), exporter=list(peers), received_at=list(times), timezone=self.timezone
        )
        return table, messages


class LinesSource(_SocketLineSource):
    """One ``type: lines`` scheme entry at run time: newline-delimited lines, no header."""

    type_name = "lines"

    def __init__(
        self,
        config: LinesSourceConfig,
        *,
        state_dir: Path | None = None,
        queue_limit: int = 500_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            config,
            [(config.format, dict(config.format_options))],
            octet_counting=False,
            default_port=None,
            queue_limit=queue_limit,
            clock=clock,
        )

    def _line_table(self, messages: list[Received]) -> tuple[pa.Table, list[Received]]:
        # A UDP datagram may carry several lines; TCP frames are single lines already.
        lines: list[Received] = [
            (line.removesuffix(b"\r"), peer, at, port)
            for payload, peer, at, port in messages
            for line in payload.split(b"\n")
            if line.strip(b"\r")
        ]
        if not lines:
            return pa.table({"line": pa.array([], pa.string())}), lines
        payloads, peers, times, _ = zip(*lines, strict=True)
        table = pa.table(
            {
                "line": decode_messages(list(payloads)),
                "exporter": pa.array(peers, pa.string()),
                "received_at": pa.array(
                    (np.asarray(times) * 1_000_000).astype(np.int64), pa.int64()
                ).cast(pa.timestamp("us", tz="UTC")),
            }
        )
        return table, lines
