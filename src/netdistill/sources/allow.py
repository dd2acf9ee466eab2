"""Which devices a UDP source takes data from, decided in the receive thread.

A NetFlow source with ``allow_unknown: false`` and a RADIUS source (only its ``clients``)
refuse every other sender as the datagram arrives — before it is queued, decoded or
quarantined, as pmacct's ``nfacctd_allow_file`` does — so a flood from unknown senders
costs one dictionary lookup per datagram and never fills the queue good data waits in.
Refusals are counted per sender address (at most ``MAX_ADDRESSES`` of them; beyond,
under ``other``) so the status answers "who is sending to us that should not?".
"""

from __future__ import annotations

import ipaddress
import threading
from collections import Counter
from collections.abc import Iterable

#: distinct refused addresses counted by name (spoofed floods must not grow the map)
MAX_ADDRESSES = 1024
OTHER = "other"


class AllowList:
    """Networks allowed to send. ``allows`` and ``refuse`` may be called from several
    receive threads; ``refused`` is read by anyone (copy it)."""

    _CACHE_LIMIT = 65_536

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self._cache: dict[str, bool] = {}
        self._lock = threading.Lock()
        #: datagrams refused, per sender address
        self.refused: Counter[str] = Counter()
        self.refused_total = 0

    def allows(self, address: str) -> bool:
        known = self._cache.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address.partition("%")[0])
            except ValueError:
                return False
            known = any(ip in network for network in self.networks)
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[address] = known
        return known

    def refuse(self, address: str) -> None:
        with self._lock:
            key = address if address in self.refused or len(self.refused) < MAX_ADDRESSES else OTHER
            self.refused[key] += 1
            self.refused_total += 1

    def status(self) -> dict[str, int]:
        with self._lock:
            return dict(self.refused)
