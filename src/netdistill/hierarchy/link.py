"""The POP's upstream component: outbox relay → spool → ``Forwarder`` to the parent.

Built from the scheme's ``upstream:`` section (``config.py``) and wired in one place
(``manager/serve.py``). It owns one thread that relays the outbox (``outbox.py``) into a
spool of its own (``<data-dir>/upstream-spool``, the gatherers' ``Spool`` with the same
size bound and policies) and one ``Forwarder`` (``gatherer/forward.py``, unchanged)
that sends the spool to the parent as gatherer ``upstream.name``: retried with back-off
while the long-distance link is down, for as long as the spool holds, and caught up in
order when it returns. The parent's answers follow ``delivery/ack.py``.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path
from typing import Any

from netdistill.gatherer.deadletter import DeadLetters
from netdistill.gatherer.forward import Forwarder, destination_name
from netdistill.gatherer.spool import Spool
from netdistill.hierarchy.config import UpstreamConfig
from netdistill.hierarchy.outbox import Outbox
from netdistill.store.duckdb import DuckDBStore

log = logging.getLogger(__name__)


class UpstreamLink:
    """``start``/``stop`` own the relay thread and the forwarder."""

    def __init__(
        self,
        store: DuckDBStore,
        config: UpstreamConfig,
        *,
        data_dir: Path,
        base_dir: Path,
        relay_interval_s: float = 0.2,
    ) -> None:
        self.config = config
        self.store = store
        self.outbox = Outbox(store, config.stages, origin=f"{config.name}/stages")
        self.outbox.ensure_table()
        spool = config.spool
        self.spool = Spool(
            Path(data_dir) / "upstream-spool",
            [destination_name(config.url)],
            max_bytes=spool.max_bytes,
            segment_bytes=spool.segment_bytes,
            policy=spool.policy,
            fsync=spool.fsync,
        )
        ca = config.ca if config.ca is None else str(Path(base_dir) / config.ca)
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        self.forwarder = Forwarder(
            self.spool,
            config.url,
            gatherer=config.name,
            token=config.read_token(Path(base_dir)),
            config=config.forward,
            verify=verify,
            # an entry the parent refuses for good is set aside, the later ones go on
            # (``netdistill gatherer dead-letter resend --data-dir`` this manager's)
            dead_letters=DeadLetters(Path(data_dir) / "dead-letter"),
        )
        self.relay_interval_s = relay_interval_s
        self.relay_errors = 0
        self.last_relay_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="upstream-relay", daemon=True)

    def start(self) -> None:
        self.relay_once()  # what an earlier run left in the outbox goes first
        self._thread.start()
        self.forwarder.start()

    def relay_once(self) -> int:
        try:
            return self.outbox.relay(self.spool)
        except Exception as exc:  # the store is busy or failing: try again next tick
            self.relay_errors += 1
            self.last_relay_error = f"{type(exc).__name__}: {exc}"
            log.exception("relaying the upstream outbox failed; will retry")
            return 0

    def _loop(self) -> None:
        while not self._stop.wait(self.relay_interval_s):
            while self.relay_once() and not self._stop.is_set():
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.relay_once()  # what the last stage round wrote is spooled before we stop
        self.forwarder.stop()
        self.spool.close()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "url": self.config.url,
            "stages": list(self.config.stages),
            "outbox_written": self.outbox.written,
            "outbox_pending": self.outbox.pending(),
            "relayed_entries": self.outbox.relayed_entries,
            "relay_errors": self.relay_errors,
            "last_relay_error": self.last_relay_error,
            "spool": self.spool.status(),
            "parent": self.forwarder.status(),
        }
