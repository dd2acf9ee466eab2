"""Bad input is kept, capped: what a source sets aside reaches the store only within limits.

Every source's rejects (``Quarantined`` items) pass a ``QuarantineGate`` in the pipeline
that polls the source, before they are committed or spooled, on the gatherer as in
``netdistill run``:

* the payload of each item is cut to ``payload_bytes`` (default 2 KiB); the length it had
  is kept in ``payload_length``, so the store shows what arrived without keeping it all;
* two token buckets per source — rows and (cut) payload bytes, each with a sustained rate
  and a burst — decide which items are stored; the others are only counted, by reason
  (``counted_only``). A flood of junk therefore costs the store at most
  ``burst_rows + rows_per_s × t`` rows, whatever arrives.

Limits are set manager-wide (``manager.quarantine``) and per source (a source's
``quarantine`` block overrides the keys it sets). The token bucket is written here
rather than taken from a library: it is a dozen lines, it must take the gate's
injectable clock, and an item must be charged to two buckets at once or to neither.

The Arrow form of quarantine items, shared by the spool, the wire and the store's
columnar insert, is ``records/quarantine.py``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt

from netdistill.records.batch import Quarantined


class QuarantineLimits(BaseModel):
    """How much of a source's bad input is stored (``manager.quarantine``, or a source's
    ``quarantine`` block). A rate of ``null`` means no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    payload_bytes: NonNegativeInt = Field(
        2048, description="bytes of each bad input kept; its whole length is recorded"
    )
    rows_per_s: PositiveFloat | None = Field(
        100.0, description="items stored per second, sustained; beyond it they are counted"
    )
    burst_rows: PositiveInt = Field(10_000, description="items stored at once after a calm")
    bytes_per_s: PositiveFloat | None = Field(
        256 * 1024, description="payload bytes stored per second, sustained"
    )
    burst_bytes: PositiveInt = Field(
        16 * 1024 * 1024, description="payload bytes stored at once after a calm"
    )

    def merged(self, override: QuarantineLimits | None) -> QuarantineLimits:
        """These limits with the keys ``override`` sets (a source's own block)."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_unset=True))


#: no rate limit, payloads still cut (``netdistill import``: the operator asked for it)
UNLIMITED = QuarantineLimits(rows_per_s=None, bytes_per_s=None)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; starts full. ``rate=None``: unlimited."""

    def __init__(self, rate: float | None, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._at = now

    def refill(self, now: float) -> None:
        if self.rate is not None:
            self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now

    def has(self, n: float) -> bool:
        return self.rate is None or self.tokens >= n

    def take(self, n: float) -> None:
        if self.rate is not None:
            self.tokens -= n


class QuarantineGate:
    """The cap of one source. ``admit`` may be called from one thread at a time;
    ``status`` from any."""

    def __init__(
        self, limits: QuarantineLimits, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self.configure(limits)
        #: items handed to the sink to store, and items only counted, per reason
        self.stored: Counter[str] = Counter()
        self.counted_only: Counter[str] = Counter()
        self.payload_bytes_cut = 0

    def configure(self, limits: QuarantineLimits) -> None:
        """Take ``limits`` (the buckets start full again)."""
        if getattr(self, "limits", None) == limits:
            return
        self.limits = limits
        now = self._clock()
        self._rows = TokenBucket(limits.rows_per_s, limits.burst_rows, now)
        self._bytes = TokenBucket(limits.bytes_per_s, limits.burst_bytes, now)

    def admit(self, items: Sequence[Quarantined]) -> list[Quarantined]:
        """The items to store, payloads cut; the rest counted by reason. Per item (rejects
        are built per item by the decoders anyway): the bucket check and a cut."""
        now = self._clock()
        rows, size = self._rows, self._bytes
        rows.refill(now)
        size.refill(now)
        keep = self.limits.payload_bytes
        admitted: list[Quarantined] = []
        for item in items:
            length = len(item.payload)
            kept = min(length, keep)
            if not (rows.has(1) and size.has(kept)):
                self.counted_only[item.reason] += 1
                continue
            rows.take(1)
            size.take(kept)
            self.stored[item.reason] += 1
            if item.payload_length is None or kept < length:
                self.payload_bytes_cut += length - kept
                item = dataclasses.replace(
                    item,
                    payload=item.payload[:kept],
                    payload_length=length if item.payload_length is None else item.payload_length,
                )
            admitted.append(item)
        return admitted

    def status(self) -> dict[str, Any]:
        return {
            "stored": dict(self.stored),
            "counted_only": dict(self.counted_only),
            "payload_bytes_cut": self.payload_bytes_cut,
        }
