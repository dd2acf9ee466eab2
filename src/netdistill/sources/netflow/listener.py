"""The live NetFlow/IPFIX source: UDP receiver + decoder + persisted templates.

``poll`` is the one place where received datagrams become record batches; ``import``
feeds pcap datagrams through ``decode_datagrams``, the same decoder, so a capture gives
the same records live or imported. Templates (and sampling rates learnt from options
data) are written to ``<state_dir>/<source>.templates`` whenever they change and read
back at start, so a restart does not discard data until the exporters resend them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import pyarrow as pa

from netdistill.records.batch import DecodeResult, FieldSpec, SourceCounters
from netdistill.sources.allow import AllowList
from netdistill.sources.base import UNKNOWN_EXPORTER, Datagram, SourceKind
from netdistill.sources.listen import parse_listen_address
from netdistill.sources.netflow.config import NetflowSourceConfig
from netdistill.sources.netflow.decode import NetflowDecoder
from netdistill.sources.netflow.fields import NETFLOW_FIELDS
from netdistill.sources.udp import UdpReceiver

log = logging.getLogger(__name__)


class NetflowSource:
    """One ``type: netflow`` scheme entry at run time.

    Lifecycle: ``start`` → repeated ``poll`` from one thread → ``stop`` → ``flush``.
    """

    kind: ClassVar[SourceKind] = "polled"

    #: the NAT fields (standard, declared for stores older than them) and biflow_reverse;
    #: an instance adds the fields its ``elements:`` mappings fill
    fields: tuple[FieldSpec, ...] = NETFLOW_FIELDS

    def __init__(
        self,
        config: NetflowSourceConfig,
        *,
        state_dir: Path | None = None,
        queue_limit: int = 500_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.name = config.name
        self._clock = clock
        self._state_path = state_dir / f"{config.name}.templates" if state_dir else None
        self.decoder = NetflowDecoder(
            source=config.name,
            default_sampling_rate=config.default_sampling_rate,
            exporter_sampling_rates={k: v.sampling_rate for k, v in config.exporters.items()},
            template_timeout_s=config.template_timeout_s,
            hold_s=config.hold_before_template_s,
            element_mappings=config.element_mappings(),
        )
        self.fields = (*NETFLOW_FIELDS, *self.decoder.field_specs)
        self._load_templates()
        self._saved_version = self.decoder.template_version
        networks = config.allow_list()
        #: who may send (None: everyone); refused in the receive thread, counted per address
        self.allow = AllowList(networks) if networks is not None else None
        self.receiver = UdpReceiver(
            [parse_listen_address(a, default_port=2055) for a in config.listen],
            receive_buffer_bytes=config.receive_buffer_bytes,
            queue_limit=queue_limit,
            on_drop=self._count_drop,
            clock=clock,
            allow=self.allow,
        )
        self._kernel_drops_at_start = 0

    @property
    def counters(self) -> SourceCounters:
        """The decoder's counters, with the datagrams the allow list refused."""
        counters = self.decoder.counters
        refused = self.allow.refused_total if self.allow is not None else 0
        if not refused:
            return counters
        dropped = Counter(counters.dropped)
        dropped[UNKNOWN_EXPORTER] += refused
        return dataclasses.replace(counters, dropped=dropped)

    def _count_drop(self, reason: str, n: int) -> None:
        self.decoder.counters.dropped[reason] += n

    # --- templates across restarts ---------------------------------------------------------

    def _load_templates(self) -> None:
        if self._state_path is None or not self._state_path.exists():
            return
        try:
            self.decoder.load_template_state(self._state_path.read_bytes())
        except Exception as exc:  # a damaged state file costs templates, never the start
            log.warning("ignoring unreadable template state %s: %s", self._state_path, exc)

    def save_templates(self) -> None:
        if self._state_path is None or self.decoder.template_version == self._saved_version:
            return
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_bytes(self.decoder.template_state())
        os.replace(tmp, self._state_path)
        self._saved_version = self.decoder.template_version

    # --- live --------------------------------------------------------------------------------

    def start(self) -> None:
        self.receiver.start()
        self._kernel_drops_at_start = self.receiver.kernel_drops()

    @property
    def bound(self) -> list[tuple[str, int]]:
        return self.receiver.bound

    def poll(self, max_datagrams: int) -> DecodeResult:
        """Decode what has been received since the last poll (at most ``max_datagrams``),
        and release data that waited too long for its template."""
        received = self.receiver.drain(max_datagrams)
        datagrams = [Datagram(exp, payload, at, port) for payload, exp, at, port in received]
        now = self._clock()
        result = self.decoder.decode(datagrams, now=now) if datagrams else None
        expired = self.decoder.expire(now)
        self.save_templates()
        return _merge(result, expired, schema=self.decoder.schema)

    def pending(self) -> int:
        return self.receiver.pending()

    def kernel_drops(self) -> int:
        return max(0, self.receiver.kernel_drops() - self._kernel_drops_at_start)

    def stop(self) -> None:
        self.receiver.stop()

    def flush(self) -> DecodeResult:
        result = self.decoder.flush()
        self.save_templates()
        return result

    # --- files -------------------------------------------------------------------------------

    def decode_datagrams(self, datagrams: Sequence[Datagram]) -> DecodeResult:
        """Decode datagrams read from a file; data waiting for a template is held by the
        decoder, exactly as for live traffic (packet times drive the hold timer)."""
        allow = self.allow
        kept = list(datagrams)
        if allow is not None:
            kept = [d for d in datagrams if allow.allows(d.exporter)]
            for refused in (d for d in datagrams if not allow.allows(d.exporter)):
                allow.refuse(refused.exporter)
        if not kept:
            return _merge(None, None, schema=self.decoder.schema)
        now = max(d.received_at for d in kept)
        return _merge(
            self.decoder.decode(kept, now=now),
            self.decoder.expire(now),
            schema=self.decoder.schema,
        )

    def status(self) -> dict[str, object]:
        counters = self.counters.as_dict()
        dropped = dict(counters["dropped"])  # type: ignore[call-overload]
        kernel = self.kernel_drops()
        if kernel:
            dropped["kernel_socket_overflow"] = kernel
        counters["dropped"] = dropped
        counters["listening"] = [f"{h}:{p}" for h, p in self.bound]
        counters["queued"] = self.pending()
        if self.allow is not None:
            counters["unknown_exporters"] = self.allow.status()
        return {"name": self.name, "type": "netflow", **counters}


def _merge(*results: DecodeResult | None, schema: pa.Schema) -> DecodeResult:
    from netdistill.records.schema import empty_batch

    present = [r for r in results if r is not None]
    tables = [r.records for r in present if r.records.num_rows]
    records = (
        pa.concat_tables(tables)
        if tables
        else pa.Table.from_batches([empty_batch(schema)], schema=schema)
    )
    quarantined = [q for r in present for q in r.quarantined]
    return DecodeResult(records, quarantined)
