"""RFC 6587 framing: streams cut at any points give back exactly the messages sent; a
garbage connection is counted, quarantined and closed while others carry on."""

from __future__ import annotations

import socket
import time

import peers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netdistill.errors import FramingError
from netdistill.sources.syslog.tcp import FRAMING_ERROR, PARTIAL_MESSAGE, Framer, TcpReceiver

MESSAGES = st.lists(
    st.binary(min_size=1, max_size=60).map(lambda b: b"<13>" + b), min_size=1, max_size=30
)


def feed_in_pieces(framer: Framer, stream: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    for cut in [*sorted(set(c % (len(stream) + 1) for c in cuts)), len(stream)]:
        out.extend(framer.feed(stream[start:cut]))
        start = cut
    return out


@settings(max_examples=200, deadline=None)
@given(MESSAGES, st.lists(st.integers(0, 10_000), max_size=20))
def test_octet_counted_stream_split_anywhere(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(b"%d %s" % (len(m), m) for m in messages)
    framer = Framer()
    assert feed_in_pieces(framer, stream, cuts) == messages
    assert framer.mode == "octet" and framer.buffered == b""


@settings(max_examples=200, deadline=None)
@given(MESSAGES, st.lists(st.integers(0, 10_000), max_size=20), st.booleans())
def test_newline_stream_split_anywhere(messages: list[bytes], cuts: list[int], crlf: bool) -> None:
    messages = [m.replace(b"\n", b" ").replace(b"\r", b" ") for m in messages]
    end = b"\r\n" if crlf else b"\n"
    stream = b"".join(m + end for m in messages)
    framer = Framer()
    assert feed_in_pieces(framer, stream, cuts) == messages
    assert framer.mode == "newline" and framer.buffered == b""


def test_octet_count_errors_name_the_offset() -> None:
    framer = Framer(max_message_bytes=100)
    assert framer.feed(b"5 <13>a") == [b"<13>a"]
    with pytest.raises(FramingError, match="octet count expected at stream byte 7"):
        framer.feed(b"xyz <13>b")
    framer = Framer(max_message_bytes=100)
    with pytest.raises(FramingError, match="message of 500 bytes > max_message_bytes"):
        framer.feed(b"500 <13>")
    framer = Framer(max_message_bytes=10)
    with pytest.raises(FramingError, match="line longer than max_message_bytes"):
        framer.feed(b"<13>" + b"x" * 20)


def test_lines_never_octet_counted() -> None:
    framer = Framer(octet_counting=False)
    assert framer.feed(b"12 apples,3\n4,5\n") == [b"12 apples,3", b"4,5"]


def _send(port: int, data: bytes, *, close: bool = True) -> socket.socket:
    sock = socket.create_connection((peers.LOOPBACK, port))
    sock.sendall(data)
    if close:
        sock.close()
    return sock


def _wait(predicate, timeout: float = 5.0, message=None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out {message() if message else ''}")
        time.sleep(0.01)


def test_garbage_connection_closed_others_unaffected() -> None:
    port = peers.free_tcp_port()
    counted: dict[str, int] = {}
    receiver = TcpReceiver(
        [(peers.LOOPBACK, port)],
        max_message_bytes=1000,
        on_count=lambda reason, n: counted.__setitem__(reason, counted.get(reason, 0) + n),
    )
    receiver.start()
    try:
        good = socket.create_connection((peers.LOOPBACK, port))
        messages = [b"<13>1 - h a - - - message %d" % i for i in range(500)]
        half = b"".join(b"%d %s" % (len(m), m) for m in messages[:250])
        good.sendall(half)
        bad = _send(port, b"12 <13>ok-ok-ok" + b"GARBAGE!" * 10, close=False)
        rest = b"".join(b"%d %s" % (len(m), m) for m in messages[250:])
        good.sendall(rest)
        _send(port, b"<13>one\n<13>two\n<13>partial-no-newline")
        _wait(lambda: counted.get(FRAMING_ERROR) == 1 and counted.get(PARTIAL_MESSAGE) == 1)
        # the server closed the garbage connection: reading gives EOF
        bad.settimeout(5)
        assert bad.recv(10) == b""
        bad.close()
        good.close()
        _wait(lambda: receiver.pending() >= 500 + 3 + 2, message=lambda: receiver.pending())
        got = receiver.drain(10_000)
        by_port: dict[int, list[bytes]] = {}
        for message, peer, _, peer_port in got:
            assert peer == peers.LOOPBACK
            by_port.setdefault(peer_port, []).append(message)
        assert sorted(map(len, by_port.values())) == [1, 2, 500]
        assert messages in by_port.values()
        assert [b"<13>one", b"<13>two"] in by_port.values()
        assert [b"<13>ok-ok-ok"] in by_port.values()
        problems = receiver.problems()
        assert sorted(p.reason for p in problems) == [FRAMING_ERROR, PARTIAL_MESSAGE]
        framing = next(p for p in problems if p.reason == FRAMING_ERROR)
        assert framing.offset == 15 and framing.payload.startswith(b"GARBAGE!")
        partial = next(p for p in problems if p.reason == PARTIAL_MESSAGE)
        assert partial.payload == b"<13>partial-no-newline"
        # the receive thread sees the good connection's close on its next pass
        _wait(lambda: receiver.open_connections == 0, message=lambda: receiver.open_connections)
    finally:
        receiver.stop()


def test_connection_limit_counted() -> None:
    port = peers.free_tcp_port()
    counted: dict[str, int] = {}
    receiver = TcpReceiver(
        [(peers.LOOPBACK, port)],
        max_connections=2,
        on_count=lambda reason, n: counted.__setitem__(reason, counted.get(reason, 0) + n),
    )
    receiver.start()
    try:
        held = [_send(port, b"<13>x\n", close=False) for _ in range(2)]
        _wait(lambda: receiver.open_connections == 2)
        extra = _send(port, b"<13>refused\n", close=False)
        _wait(lambda: counted.get("connection_refused") == 1)
        extra.close()
        for sock in held:
            sock.close()
        _wait(lambda: receiver.open_connections == 0)
        assert sorted(m[0] for m in receiver.drain(10)) == [b"<13>x", b"<13>x"]
    finally:
        receiver.stop()
