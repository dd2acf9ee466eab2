"""The live sFlow source: UDP receiver + decoder (``type: sflow``).

``poll`` is the one place where received datagrams become record batches; ``netdistill
import`` feeds pcap datagrams through ``decode_datagrams``, the same decoder, so a
capture gives the same records live or imported. sFlow has no templates: nothing is
held between polls and nothing is kept across restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from netdistill.records.batch import DecodeResult, FieldSpec, SourceCounters
from netdistill.sources.base import Datagram, SourceKind
from netdistill.sources.listen import parse_listen_address
from netdistill.sources.sflow.config import SFLOW_PORT, SflowSourceConfig
from netdistill.sources.sflow.decode import SflowDecoder
from netdistill.sources.sflow.fields import SFLOW_FIELDS
from netdistill.sources.udp import UdpReceiver


class SflowSource:
    """One ``type: sflow`` scheme entry at run time.

    Lifecycle: ``start`` → repeated ``poll`` from one thread → ``stop`` → ``flush``.
    """

    kind: ClassVar[SourceKind] = "polled"
    fields: tuple[FieldSpec, ...] = SFLOW_FIELDS

    def __init__(
        self,
        config: SflowSourceConfig,
        *,
        state_dir: Path | None = None,
        queue_limit: int = 500_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.name = config.name
        self.decoder = SflowDecoder(
            source=config.name, default_sampling_rate=config.default_sampling_rate
        )
        self.receiver = UdpReceiver(
            [parse_listen_address(a, default_port=SFLOW_PORT) for a in config.listen],
            receive_buffer_bytes=config.receive_buffer_bytes,
            queue_limit=queue_limit,
            on_drop=self._count_drop,
            clock=clock,
        )
        self._kernel_drops_at_start = 0

    @property
    def counters(self) -> SourceCounters:
        return self.decoder.counters

    def _count_drop(self, reason: str, n: int) -> None:
        self.decoder.counters.dropped[reason] += n

    def start(self) -> None:
        self.receiver.start()
        self._kernel_drops_at_start = self.receiver.kernel_drops()

    @property
    def bound(self) -> list[tuple[str, int]]:
        return self.receiver.bound

    def poll(self, max_datagrams: int) -> DecodeResult:
        """Decode what has been received since the last poll (at most ``max_datagrams``)."""
        received = self.receiver.drain(max_datagrams)
        return self.decoder.decode([Datagram(e, p, at, port) for p, e, at, port in received])

    def pending(self) -> int:
        return self.receiver.pending()

    def kernel_drops(self) -> int:
        return max(0, self.receiver.kernel_drops() - self._kernel_drops_at_start)

    def stop(self) -> None:
        self.receiver.stop()

    def flush(self) -> DecodeResult:
        return self.decoder.flush()

    def decode_datagrams(self, datagrams: Sequence[Datagram]) -> DecodeResult:
        """Decode datagrams read from a file, exactly as live ones."""
        return self.decoder.decode(datagrams)

    def status(self) -> dict[str, object]:
        counters = self.counters.as_dict()
        dropped = dict(counters["dropped"])  # type: ignore[call-overload]
        kernel = self.kernel_drops()
        if kernel:
            dropped["kernel_socket_overflow"] = kernel
        counters["dropped"] = dropped
        counters["listening"] = [f"{h}:{p}" for h, p in self.bound]
        counters["queued"] = self.pending()
        counters["agents"] = self.decoder.agents()
        counters["skipped_samples"] = self.decoder.skipped_samples
        return {"name": self.name, "type": "sflow", **counters}
