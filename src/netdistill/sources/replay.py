"""Replay captured export datagrams to a collector over UDP, paced or flat out.

Behind ``netdistill replay FILE --to HOST:PORT [--rate PPS] [--loops N]`` and the
benchmarks. Payloads go out unchanged — sequence numbers included, also when a file is
looped, so a collector sees the repeats as what they are — from one socket, so a
collector sees one exporter (the replaying host) whatever the capture's source addresses.

Pacing is a token bucket drained in bursts: the sender is allowed ``rate × elapsed``
datagrams at any moment, sends what it is owed in one tight burst, then sleeps about a
millisecond. The rate is therefore exact over any window longer than a few milliseconds,
and the sleep granularity of the OS does not cap it. Unpaced, the loop is a bound
``socket.send`` on a connected socket per datagram (no address resolution per call).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from netdistill.sources.base import Datagram

__all__ = ["ReplayStats", "replay", "replay_file"]

#: Datagrams handed to the sending loop at a time: large enough that per-chunk Python
#: overhead vanishes, small enough to pace in ~1 ms steps up to ~1M datagrams/s.
CHUNK = 1024


@dataclass(slots=True)
class ReplayStats:
    """What one replay did: datagrams attempted (``errors`` of them refused by the
    kernel), payload bytes sent, seconds."""

    datagrams: int = 0
    bytes: int = 0
    errors: int = 0
    elapsed_s: float = 0.0

    @property
    def rate_pps(self) -> float:
        return self.datagrams / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _payload_chunks(items: Iterable[Datagram | bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for item in items:
        chunk.append(item.payload if isinstance(item, Datagram) else item)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _open_socket(to: tuple[str, int], source: tuple[str, int] | None) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(*to, type=socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, kind, proto)
    # A big send buffer absorbs bursts; the kernel caps it at wmem_max.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
    if source is not None:
        sock.bind(source)
    sock.connect(address)
    return sock


def _send_all(send: Callable[[bytes], int], payloads: list[bytes], stats: ReplayStats) -> None:
    done = 0
    failed_bytes = 0
    while done < len(payloads):
        try:
            for payload in islice(payloads, done, None):
                send(payload)
                done += 1
        except OSError:
            # Rare (an ICMP port-unreachable reported on the connected socket): that
            # datagram is not sent; count it and carry on with the next.
            failed_bytes += len(payloads[done])
            stats.errors += 1
            done += 1
    stats.datagrams += len(payloads)
    stats.bytes += sum(map(len, payloads)) - failed_bytes


def replay(
    datagrams: Iterable[Datagram | bytes],
    to: tuple[str, int],
    rate_pps: float | None = None,
    *,
    loops: int = 1,
    source: tuple[str, int] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayStats:
    """Send the payloads of ``datagrams`` to ``to`` at ``rate_pps`` (None: unpaced),
    ``loops`` times over. Returns once the last datagram was handed to the kernel."""
    if rate_pps is not None and rate_pps <= 0:
        raise ValueError("rate_pps must be positive")
    if loops > 1 and not isinstance(datagrams, list | tuple):
        datagrams = list(datagrams)
    stats = ReplayStats()
    sock = _open_socket(to, source)
    send = sock.send
    started = clock()
    try:
        for _ in range(loops):
            for chunk in _payload_chunks(datagrams):
                if rate_pps is None:
                    _send_all(send, chunk, stats)
                    continue
                _send_paced(send, chunk, stats, rate_pps, started, clock, sleep)
    finally:
        sock.close()
    stats.elapsed_s = clock() - started
    return stats


def _send_paced(
    send: Callable[[bytes], int],
    chunk: list[bytes],
    stats: ReplayStats,
    rate_pps: float,
    started: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    position = 0
    while position < len(chunk):
        sent_so_far = stats.datagrams
        owed = int((clock() - started) * rate_pps) + 1 - sent_so_far
        if owed <= 0:
            # Sleep until the next datagram is due, at most 1 ms past it.
            due = started + (sent_so_far + 1) / rate_pps
            sleep(max(0.0, min(due - clock(), 0.05)) + 0.0005)
            continue
        burst = chunk[position : position + owed]
        _send_all(send, burst, stats)
        position += len(burst)


def replay_file(
    path: str | os.PathLike[str],
    to: tuple[str, int],
    rate_pps: float | None = None,
    *,
    loops: int = 1,
    source: tuple[str, int] | None = None,
) -> ReplayStats:
    """Replay every UDP datagram of a pcap/pcapng capture; the file is read again on each
    loop rather than held in memory."""
    from netdistill.sources.pcap import PcapReader

    total = ReplayStats()
    started = time.perf_counter()
    for _ in range(loops):
        with PcapReader(path) as reader:
            # Pace each loop against its own start; loops run back to back.
            stats = replay(reader, to, rate_pps, source=source)
        total.datagrams += stats.datagrams
        total.bytes += stats.bytes
        total.errors += stats.errors
    total.elapsed_s = time.perf_counter() - started
    return total
