"""Syslog and line streams over TCP: framing (RFC 6587) and the receiving thread.

**Framing** (``Framer``, pure, one per connection). RFC 6587 §3.4 knows two ways to
cut a TCP stream into syslog messages, and a sender uses one per connection:

* octet counting (§3.4.1): ``MSG-LEN SP SYSLOG-MSG``, ``MSG-LEN`` a decimal without
  leading zero; the message may contain newlines;
* non-transparent framing (§3.4.2): each message ends with LF (CR LF accepted; NUL, which
  a few senders use, is not: it is kept in the message and the header parser strips it).

The first byte of a connection decides: a digit means octet counting (a syslog message
itself always starts with ``<``), anything else newline framing. ``type: lines`` allows
only newline framing, since a CSV line may well start with a digit. Empty lines are
keep-alives, not messages. A bad length, a message longer than ``max_message_bytes``,
or a line longer than that without LF is a ``FramingError``: the receiver quarantines
what that connection had buffered and closes it — one sender's garbage never disturbs
another's stream. Bytes left over when the peer disconnects are an incomplete message:
quarantined as ``partial_message``, never guessed at.

Walking octet counts is sequential by nature (each length says where the next one
starts), so it is a Python loop per message over ``bytes.find``; newline framing is one
``bytes.split`` per received chunk.

**Receiver** (``TcpReceiver``). One thread multiplexes every listening socket and every
connection with ``selectors``; up to ``max_connections`` connections are served, more
are accepted and closed at once (counted). Complete messages go to a bounded deque that
the poll side drains; when it is full the thread stops reading, so TCP's own flow
control slows the senders down — nothing is dropped on our side.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from netdistill.errors import FramingError

log = logging.getLogger(__name__)

#: (message, peer address, receive time in unix seconds, peer port)
Message = tuple[bytes, str, float, int]

FRAMING_ERROR = "framing_error"
PARTIAL_MESSAGE = "partial_message"
CONNECTION_REFUSED = "connection_refused"


class Framer:
    """Cuts one connection's byte stream into messages. Not thread-safe (one per peer)."""

    def __init__(self, *, octet_counting: bool = True, max_message_bytes: int = 65536) -> None:
        self.allow_octet_counting = octet_counting
        self.max_message_bytes = max_message_bytes
        #: "octet" or "newline" once the first byte arrived
        self.mode: str | None = None
        self._buffer = b""
        #: stream offset of the start of ``_buffer``
        self._offset = 0

    @property
    def buffered(self) -> bytes:
        return self._buffer

    def feed(self, data: bytes) -> list[bytes]:
        """Messages completed by ``data``; raises ``FramingError`` on a broken stream."""
        buffer = self._buffer + data if self._buffer else data
        if self.mode is None:
            stripped = buffer.lstrip(b"\r\n")
            self._offset += len(buffer) - len(stripped)
            buffer = stripped
            if not buffer:
                self._buffer = b""
                return []
            octet = self.allow_octet_counting and buffer[:1].isdigit()
            self.mode = "octet" if octet else "newline"
        if self.mode == "octet":
            return self._octet(buffer)
        return self._newline(buffer)

    def _newline(self, buffer: bytes) -> list[bytes]:
        parts = buffer.split(b"\n")
        rest = parts.pop()
        self._offset += len(buffer) - len(rest)
        self._buffer = rest
        messages = [p.removesuffix(b"\r") for p in parts if p and p != b"\r"]
        if len(rest) > self.max_message_bytes:
            raise FramingError(
                f"line longer than max_message_bytes ({self.max_message_bytes})",
                self._offset,
                messages,
            )
        return messages

    def _octet(self, buffer: bytes) -> list[bytes]:
        messages: list[bytes] = []
        position = 0
        end = len(buffer)
        limit = self.max_message_bytes
        while position < end:
            space = buffer.find(b" ", position, position + 8)
            if space < 0:
                if end - position >= 8 or not buffer[position:end].isdigit():
                    self._fail(buffer, position, "octet count expected", messages)
                break
            digits = buffer[position:space]
            if not digits.isdigit() or digits[:1] == b"0":
                self._fail(buffer, position, "octet count expected", messages)
            length = int(digits)
            if length > limit:
                self._fail(
                    buffer, position, f"message of {length} bytes > max_message_bytes", messages
                )
            stop = space + 1 + length
            if stop > end:
                break
            messages.append(buffer[space + 1 : stop])
            position = stop
            # tolerate a LF after each counted message (some senders add one)
            while position < end and buffer[position] in (10, 13):
                position += 1
        self._offset += position
        self._buffer = buffer[position:]
        return messages

    def _fail(self, buffer: bytes, position: int, message: str, messages: list[bytes]) -> None:
        self._offset += position
        self._buffer = buffer[position:]
        raise FramingError(message, self._offset, messages)


@dataclass(frozen=True, slots=True)
class StreamProblem:
    """Bytes a connection left that are no message: what to quarantine."""

    reason: str
    detail: str
    payload: bytes
    peer: str
    port: int
    received_at: float
    offset: int | None = None


@dataclass(slots=True)
class _Connection:
    sock: socket.socket
    peer: str
    port: int
    framer: Framer


class TcpReceiver:
    """Accepts connections on ``addresses`` and frames their messages into a queue.

    ``start`` binds (``OSError`` naming the address); ``drain``/``problems`` may be called
    from one other thread at a time; ``stop`` closes every connection (their partial
    messages become problems) and returns when the thread has ended.
    """

    def __init__(
        self,
        addresses: list[tuple[str, int]],
        *,
        octet_counting: bool = True,
        max_message_bytes: int = 65536,
        max_connections: int = 512,
        queue_limit: int = 500_000,
        on_count: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.addresses = addresses
        self.octet_counting = octet_counting
        self.max_message_bytes = max_message_bytes
        self.max_connections = max_connections
        self.queue_limit = queue_limit
        self._count = on_count or (lambda reason, n: None)
        self._clock = clock
        self._queue: collections.deque[Message] = collections.deque()
        self._problems: collections.deque[StreamProblem] = collections.deque()
        self._selector = selectors.DefaultSelector()
        self._listeners: list[socket.socket] = []
        self._connections: dict[int, _Connection] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.bound: list[tuple[str, int]] = []
        self.connections_total = 0

    def start(self) -> None:
        for host, port in self.addresses:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((host, port))
                sock.listen(128)
            except OSError as exc:
                sock.close()
                self.stop()
                raise OSError(
                    exc.errno, f"cannot listen on tcp {host}:{port}: {exc.strerror}"
                ) from None
            sock.setblocking(False)
            self._listeners.append(sock)
            self._selector.register(sock, selectors.EVENT_READ, None)
            self.bound.append(sock.getsockname()[:2])
        self._thread = threading.Thread(target=self._loop, name="syslog-tcp", daemon=True)
        self._thread.start()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                if len(self._queue) >= self.queue_limit:
                    time.sleep(0.01)  # back-pressure: unread data waits in the kernel
                    continue
                for key, _ in self._selector.select(timeout=0.1):
                    if key.data is None:
                        self._accept(key.fileobj)  # type: ignore[arg-type]
                    else:
                        self._read(key.data)
        finally:
            for connection in list(self._connections.values()):
                self._close(connection, at_shutdown=True)
            for sock in self._listeners:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
                sock.close()
            self._selector.close()

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, address = listener.accept()
        except OSError:
            return
        if len(self._connections) >= self.max_connections:
            sock.close()
            self._count(CONNECTION_REFUSED, 1)
            return
        sock.setblocking(False)
        connection = _Connection(
            sock,
            address[0],
            address[1],
            Framer(octet_counting=self.octet_counting, max_message_bytes=self.max_message_bytes),
        )
        self._connections[sock.fileno()] = connection
        self.connections_total += 1
        self._selector.register(sock, selectors.EVENT_READ, connection)

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(connection, at_shutdown=False)
            return
        now = self._clock()
        error: FramingError | None = None
        try:
            messages = connection.framer.feed(data)
        except FramingError as exc:
            messages, error = exc.messages, exc
        append = self._queue.append
        peer, port = connection.peer, connection.port
        for message in messages:
            append((message, peer, now, port))
        if error is not None:
            self._problem(connection, FRAMING_ERROR, str(error), error.offset, now)
            self._close(connection, at_shutdown=False, report_rest=False)

    def _problem(
        self, connection: _Connection, reason: str, detail: str, offset: int | None, now: float
    ) -> None:
        payload = connection.framer.buffered[: self.max_message_bytes]
        self._problems.append(
            StreamProblem(reason, detail, payload, connection.peer, connection.port, now, offset)
        )
        self._count(reason, 1)

    def _close(
        self, connection: _Connection, *, at_shutdown: bool, report_rest: bool = True
    ) -> None:
        rest = connection.framer.buffered
        if report_rest and rest.strip(b"\r\n\x00"):
            when = "at shutdown" if at_shutdown else "at disconnect"
            self._problem(
                connection,
                PARTIAL_MESSAGE,
                f"incomplete message of {len(rest)} bytes {when}",
                None,
                self._clock(),
            )
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.sock)
        self._connections.pop(connection.sock.fileno(), None)
        connection.sock.close()

    def drain(self, max_items: int) -> list[Message]:
        queue = self._queue
        popleft = queue.popleft
        return [popleft() for _ in range(min(len(queue), max_items))]

    def problems(self) -> list[StreamProblem]:
        problems = self._problems
        popleft = problems.popleft
        return [popleft() for _ in range(len(problems))]

    def pending(self) -> int:
        return len(self._queue) + len(self._problems)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        else:
            for sock in self._listeners:
                sock.close()
