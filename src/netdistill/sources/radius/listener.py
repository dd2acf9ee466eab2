"""The live RADIUS accounting source: UDP receiver + accounting decoder + durable state.

``poll`` decodes a batch of Accounting-Requests (``accounting.py``) and returns records
whose ``after_commit`` steps, run by the pipeline only once the records are durably
committed, first write the session totals and the answered requests to
``<state_dir>/<source>.radius.sqlite``, then send the Accounting-Responses. So a crash
before the commit means no answer and the NAS retransmits (RFC 2866 §2, SYSTEM.md §3).

Responses leave from the socket that received the request, to the peer's address and
port. The receive loop is ``UdpReceiver``'s in its answering mode: the port slot of each
datagram names the socket that received it and the peer's port.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from netdistill.records.batch import DecodeResult, FieldSpec, SourceCounters
from netdistill.sources.allow import AllowList
from netdistill.sources.base import Datagram, SourceKind
from netdistill.sources.listen import parse_listen_address
from netdistill.sources.radius.accounting import (
    FIELDS,
    UNKNOWN_CLIENT,
    AccountingDecoder,
    ClientTable,
    Decoded,
)
from netdistill.sources.radius.config import DEFAULT_PORT, RadiusSourceConfig
from netdistill.sources.radius.sessions import AnsweredRequests, SessionTable, StateFile
from netdistill.sources.udp import UdpReceiver

log = logging.getLogger(__name__)

#: how often stale sessions and old answered requests are forgotten
_EXPIRE_EVERY_S = 60.0


class RadiusSource:
    """One ``type: radius`` scheme entry at run time.

    Lifecycle: ``start`` → repeated ``poll`` from one thread → ``stop`` → ``flush``; the
    ``after_commit`` steps of a poll's result run (on any one thread) before the next
    ``poll``, which the pipeline guarantees by retrying a failed commit first."""

    kind: ClassVar[SourceKind] = "polled"

    fields: tuple[FieldSpec, ...] = FIELDS

    def __init__(
        self,
        config: RadiusSourceConfig,
        *,
        state_dir: Path | None = None,
        queue_limit: int = 500_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.name = config.name
        self._clock = clock
        self.sessions = SessionTable()
        self.answered = AnsweredRequests(
            window_s=config.duplicate_window_s, limit=config.duplicate_limit
        )
        self._state = StateFile(state_dir / f"{config.name}.radius.sqlite") if state_dir else None
        if self._state is not None:
            sessions, answered = self._state.load(clock(), config.duplicate_window_s)
            self.sessions.load(sessions)
            self.answered.load(answered)
        self.decoder = AccountingDecoder(
            source=config.name,
            clients=ClientTable({k: v.secret.reveal().encode() for k, v in config.clients.items()}),
            sessions=self.sessions,
            answered=self.answered,
        )
        #: only configured clients: others are refused in the receive thread, before the
        #: queue, and counted per address (``unknown_clients`` in the status)
        self.allow = AllowList(config.clients)
        self.receiver = UdpReceiver(
            [parse_listen_address(a, default_port=DEFAULT_PORT) for a in config.listen],
            receive_buffer_bytes=config.receive_buffer_bytes,
            queue_limit=queue_limit,
            on_drop=self._count_drop,
            clock=clock,
            answering=True,
            allow=self.allow,
        )
        self._kernel_drops_at_start = 0
        self._expired_at = clock()
        self.responses_sent = 0
        self.send_errors = 0

    @property
    def counters(self) -> SourceCounters:
        """The decoder's counters, with the datagrams of unknown clients refused before."""
        counters = self.decoder.counters
        refused = self.allow.refused_total
        if not refused:
            return counters
        dropped = Counter(counters.dropped)
        dropped[UNKNOWN_CLIENT] += refused
        return dataclasses.replace(
            counters, datagrams=counters.datagrams + refused, dropped=dropped
        )

    def _count_drop(self, reason: str, n: int) -> None:
        self.decoder.counters.dropped[reason] += n

    def start(self) -> None:
        self.receiver.start()
        self._kernel_drops_at_start = self.receiver.kernel_drops()

    @property
    def bound(self) -> list[tuple[str, int]]:
        return self.receiver.bound

    def poll(self, max_datagrams: int) -> DecodeResult:
        """Decode what was received since the last poll (at most ``max_datagrams``); the
        result's ``after_commit`` persists the state, then answers."""
        received = self.receiver.drain(max_datagrams)
        datagrams = [Datagram(host, payload, at, slot) for payload, host, at, slot in received]
        decoded = self.decoder.decode(datagrams)
        now = self._clock()
        return self._result(decoded, datagrams, now)

    def decode_datagrams(self, datagrams: Sequence[Datagram]) -> DecodeResult:
        """Decode requests read from a capture: the same records, and no answers."""
        decoded = self.decoder.decode(datagrams)
        decoded.answers = []
        return self._result(decoded, datagrams, self._clock())

    def _result(self, decoded: Decoded, datagrams: Sequence[Datagram], now: float) -> DecodeResult:
        forget_before = self.answered.expire(now)
        forget_persisted_before: float | None = None
        if now - self._expired_at >= _EXPIRE_EVERY_S:
            self._expired_at = now
            forget_persisted_before = forget_before
            self.sessions.expire(
                now,
                closed_retention_s=self.config.closed_session_retention_s,
                idle_timeout_s=self.config.idle_session_timeout_s,
            )
        sessions, deleted = self.sessions.take_changes()
        answered = self.answered.take_new()
        answers = [
            (datagrams[i].exporter, datagrams[i].port, response) for i, response in decoded.answers
        ]
        state = self._state

        def persist() -> None:
            if state is not None and (sessions or deleted or answered):
                state.save(sessions, deleted, answered, forget_persisted_before)

        def answer() -> None:
            sent = self.receiver.send_all(answers)
            self.responses_sent += sent
            self.send_errors += len(answers) - sent

        return DecodeResult(decoded.records, decoded.quarantined, [persist, answer])

    def pending(self) -> int:
        return self.receiver.pending()

    def kernel_drops(self) -> int:
        return max(0, self.receiver.kernel_drops() - self._kernel_drops_at_start)

    def stop(self) -> None:
        self.receiver.stop()

    def flush(self) -> DecodeResult:
        result = self.poll(0)
        result.after_commit.append(self.receiver.close)  # the last answers have gone
        return result

    def status(self) -> dict[str, object]:
        counters = self.counters.as_dict()
        dropped = dict(counters["dropped"])  # type: ignore[call-overload]
        kernel = self.kernel_drops()
        if kernel:
            dropped["kernel_socket_overflow"] = kernel
        counters["dropped"] = dropped
        counters["listening"] = [f"{h}:{p}" for h, p in self.bound]
        counters["queued"] = self.pending()
        counters["duplicates_answered"] = self.decoder.duplicates
        counters["responses_sent"] = self.responses_sent
        counters["send_errors"] = self.send_errors
        counters["sessions"] = len(self.sessions.sessions)
        counters["sessions_closed_by_nas"] = self.decoder.sessions_closed_by_nas
        counters["unknown_clients"] = self.allow.status()
        return {"name": self.name, "type": "radius", **counters}
