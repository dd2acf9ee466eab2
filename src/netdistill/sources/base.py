"""What every datagram-based source shares: the datagram and the drop reasons.

Decoders are pure (datagrams in, record batch out, no I/O); the socket and file shells
around them build ``Datagram`` values and pass them in batches. What a decode produces
(``DecodeResult``, ``Quarantined``, ``FieldSpec``, ``SourceCounters``) is in
``records/batch.py``, shared with the sinks.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Drop reasons every collector counts (SYSTEM.md §3). Decoders may add finer ones.
KERNEL_OVERFLOW = "kernel_socket_overflow"
QUEUE_FULL = "internal_queue_full"
NO_TEMPLATE = "data_before_template"
MALFORMED = "malformed"
UNKNOWN_EXPORTER = "unknown_exporter"


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP payload as received: who sent it, the bytes, and when (unix seconds)."""

    exporter: str
    payload: bytes
    received_at: float
    port: int = 0
