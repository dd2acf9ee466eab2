"""What travels with a batch of records from a source to the sink, whoever the sink is.

These types belong to no process: sources produce them, the gatherer pipeline and the
spool carry them, the manager's ingest and the store write them, enhancement and stages
read ``FieldSpec``. They live here, beside the record schema, so that the store never
imports a source package.

Guarantees: ``Quarantined`` and ``FieldSpec`` are immutable values; a ``DecodeResult``'s
``after_commit`` callbacks run once, in order, only after its records are durably
accepted by the sink, and before its quarantine is written (an answer never waits
behind bad input).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(frozen=True, slots=True)
class Quarantined:
    """Input that could not be used, kept with the reason and the place of the problem."""

    source: str
    exporter: str
    received_at: float
    reason: str
    detail: str
    payload: bytes
    #: byte offset of the problem inside ``payload`` (packets)
    offset: int | None = None
    #: where the input came from, for people: ``/var/log/squid/access.log:1234`` for a
    #: line of a file, ``192.0.2.7:514`` for a syslog peer
    location: str = ""
    #: the length ``payload`` had when it arrived; set when the quarantine gate cut it
    #: to its ``payload_bytes`` (``sources/quarantine.py``), None before the gate
    payload_length: int | None = None


@dataclass(slots=True)
class DecodeResult:
    """What one ``decode`` call produced: records, and the inputs that were set aside."""

    records: pa.Table
    quarantined: list[Quarantined] = field(default_factory=list)
    #: called once, in order, after ``records`` are durably accepted by the sink (store
    #: or spool), before ``quarantined`` is written: e.g. RADIUS Accounting-Responses,
    #: tailer offsets (so an answer never waits behind bad input)
    after_commit: list[Callable[[], None]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field a source produces beyond the standard ones (``bytes_in``, ``mail_from`` …).

    The manager adds it to ``records`` before the source starts when it is missing; a
    field of that name with another type is a start-up error naming both."""

    name: str
    type: str
    description: str = ""


@dataclass(slots=True)
class SourceCounters:
    """Running counters of one source instance, shown in status and heartbeats."""

    datagrams: int = 0
    bytes_received: int = 0
    records: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    #: export sequence gaps, per exporter (flows or datagrams never received upstream)
    sequence_lost: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "datagrams": self.datagrams,
            "bytes_received": self.bytes_received,
            "records": self.records,
            "dropped": dict(self.dropped),
            "sequence_lost": dict(self.sequence_lost),
        }
