"""The UDP shell around datagram decoders: sockets, receive threads, kernel drop counters.

The receive loop does nothing but receive and hand off: one blocking ``recvfrom`` per
datagram, appended with its sender and arrival time to a bounded deque that the decode
side drains in batches. A full deque is counted (``internal_queue_full``), never waited
on, so the kernel buffer keeps draining; with an ``AllowList`` a datagram from another
sender is counted and dropped before it reaches the deque. Datagrams the kernel itself
dropped because the socket buffer overflowed are read from the kernel's own per-socket
counter (the ``drops`` column of ``/proc/net/udp`` and ``udp6``, matched by the socket's
inode).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable

from netdistill.sources.allow import AllowList
from netdistill.sources.base import QUEUE_FULL

log = logging.getLogger(__name__)

Received = tuple[bytes, str, float, int]


def _socket_inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def read_kernel_drops(inodes: set[int]) -> int:
    """Sum of the kernel's drop counters of the UDP sockets with these inodes."""
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table, encoding="ascii") as handle:
                next(handle, None)
                for line in handle:
                    parts = line.split()
                    if len(parts) >= 13 and int(parts[9]) in inodes:
                        total += int(parts[12])
        except OSError:
            continue
    return total


#: with ``answering``, a datagram's port slot is its socket's index times this plus the
#: peer's port: what ``send_all`` needs to answer from the socket that received it
REPLY_SLOT_STRIDE = 1 << 16


class UdpReceiver:
    """Receives datagrams on one or more addresses into a bounded queue.

    ``start`` binds (raising ``OSError`` naming the address) and starts one thread per
    socket; ``drain`` may be called from one other thread at a time; ``stop`` returns once
    every receive thread has ended. Nothing received before ``stop`` is lost: it stays in
    the queue for the last ``drain``.

    Each item is (payload, peer address, receive time, port slot). The slot is the local
    port, or, for a protocol that answers (``answering=True``, RADIUS), the reply slot
    (``REPLY_SLOT_STRIDE``); then ``stop`` leaves the sockets open, so answers to what
    was received can still go out once it is committed, until ``close``.
    """

    def __init__(
        self,
        addresses: list[tuple[str, int]],
        *,
        receive_buffer_bytes: int = 64 * 1024 * 1024,
        queue_limit: int = 500_000,
        on_drop: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.time,
        answering: bool = False,
        allow: AllowList | None = None,
    ) -> None:
        self.addresses = addresses
        #: senders outside it are refused here, before the queue (``sources/allow.py``)
        self.allow = allow
        self.answering = answering
        self.receive_buffer_bytes = receive_buffer_bytes
        self.queue_limit = queue_limit
        self._on_drop = on_drop or (lambda reason, n: None)
        self._clock = clock
        self._queue: collections.deque[Received] = collections.deque()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.queue_full_drops = 0
        self.bound: list[tuple[str, int]] = []
        self._inodes: set[int] = set()

    def start(self) -> None:
        for host, port in self.addresses:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            self._set_buffer(sock)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                self.stop()
                raise OSError(
                    exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}"
                ) from None
            self._sockets.append(sock)
            self._inodes.add(_socket_inode(sock))
            self.bound.append(sock.getsockname()[:2])
        for sock in self._sockets:
            thread = threading.Thread(
                target=self._receive_loop,
                args=(sock,),
                name=f"udp-{sock.getsockname()[1]}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _set_buffer(self, sock: socket.socket) -> None:
        # SO_RCVBUFFORCE passes net.core.rmem_max when we have CAP_NET_ADMIN (root);
        # otherwise the kernel caps SO_RCVBUF at rmem_max and we log what we got.
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, self.receive_buffer_bytes)  # SO_RCVBUFFORCE
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer_bytes)
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        if got < self.receive_buffer_bytes:
            log.warning(
                "socket receive buffer is %d bytes, not the %d asked for: raise "
                "net.core.rmem_max to avoid kernel drops at high rates",
                got,
                self.receive_buffer_bytes,
            )

    def _receive_loop(self, sock: socket.socket) -> None:
        queue = self._queue
        append = queue.append
        clock = self._clock
        limit = self.queue_limit
        stopping = self._stopping.is_set
        # slot = base + peer port × keep_peer: the local port, or the reply slot
        keep_peer = int(self.answering)
        index = self._sockets.index(sock)
        base = index * REPLY_SLOT_STRIDE if keep_peer else sock.getsockname()[1]
        recvfrom = sock.recvfrom
        allow = self.allow
        allows = allow.allows if allow is not None else None
        while True:
            try:
                data, address = recvfrom(65535)
            except OSError:
                if stopping():
                    return
                continue
            if stopping() and not data:
                return
            if allows is not None and not allows(address[0]):
                allow.refuse(address[0])  # type: ignore[union-attr]
                continue
            if len(queue) >= limit:
                self.queue_full_drops += 1
                self._on_drop(QUEUE_FULL, 1)
                continue
            append((data, address[0], clock(), base + keep_peer * address[1]))

    def drain(self, max_items: int) -> list[Received]:
        queue = self._queue
        n = min(len(queue), max_items)
        popleft = queue.popleft
        return [popleft() for _ in range(n)]

    def pending(self) -> int:
        return len(self._queue)

    def kernel_drops(self) -> int:
        return read_kernel_drops(self._inodes)

    def stop(self) -> None:
        self._stopping.set()
        for sock in self._sockets:
            # An empty datagram to ourselves wakes the blocking recvfrom.
            with contextlib.suppress(OSError):
                host, port = sock.getsockname()[:2]
                wake_host = "::1" if ":" in host else "127.0.0.1"
                if host not in ("0.0.0.0", "::"):
                    wake_host = host
                waker = socket.socket(sock.family, socket.SOCK_DGRAM)
                waker.sendto(b"", (wake_host, port))
                waker.close()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()
        if not self.answering:
            self.close()

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()

    def send_all(self, answers: Iterable[tuple[str, int, bytes]]) -> int:
        """Send (peer address, reply slot, payload) answers in one tight loop (only with
        ``answering``); returns how many went out. A failed one is logged and skipped:
        the peer retransmits and is answered again."""
        sockets = self._sockets
        stride = REPLY_SLOT_STRIDE
        sent = 0
        for host, slot, payload in answers:
            try:
                sockets[slot // stride].sendto(payload, (host, slot % stride))
                sent += 1
            except OSError as exc:
                log.warning("cannot answer %s: %s", host, exc)
        return sent
