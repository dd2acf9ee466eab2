"""The unit of delivery: one spooled batch (``Entry``) and its kinds.

A gatherer's spool (``gatherer/spool.py``) stores entries, its forwarders send them
(``wire.pack_entries``) and a manager commits them (``manager/ingest.py``); the kinds
are numbered here, owned by neither side, because both the spool's frames and the wire
header carry them. A kind is never renumbered: spools on disk hold the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

#: usage records: the payload is an Arrow IPC stream of a records batch (``wire.py``)
RECORDS = 1
#: quarantined input: the payload is an Arrow IPC stream of ``arrow.quarantine_to_table``
QUARANTINE = 2
#: a stage's output forwarded by a point-of-presence manager to its parent
#: (``hierarchy/``): an Arrow IPC stream whose schema metadata names the stage
STAGE_OUTPUT = 3

#: a watermark mark (``wire.py``): never spooled, sent by a forwarder after the entries
#: of a request, or alone while idle; no payload
MARK = 4

KINDS = {
    RECORDS: "records",
    QUARANTINE: "quarantine",
    STAGE_OUTPUT: "stage output",
    MARK: "mark",
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One spooled batch.

    ``seq`` is the spool's sequence (increasing, never reused; the manager's commit is
    idempotent on (origin, seq)); ``origin`` is ``gatherer/source``; ``origin_seq`` the
    pipeline's own sequence of the batch (spool-local: not sent); ``rows`` the records
    in it (0 for quarantine); ``payload`` the encoded batch, sent as it is."""

    seq: int
    kind: int
    origin: str
    origin_seq: int
    rows: int
    payload: bytes
