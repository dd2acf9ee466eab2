"""The UDP shell: every datagram is either queued or counted, by reason."""

from __future__ import annotations

import os
import socket
import time

from netdistill.sources.base import QUEUE_FULL
from netdistill.sources.udp import UdpReceiver, read_kernel_drops


def wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.time() + timeout_s
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def test_full_internal_queue_is_counted_not_waited_on():
    drops: list[tuple[str, int]] = []
    receiver = UdpReceiver(
        [("127.0.0.1", 0)], queue_limit=10, on_drop=lambda reason, n: drops.append((reason, n))
    )
    receiver.start()
    try:
        host, port = receiver.bound[0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for i in range(50):
                sender.sendto(i.to_bytes(2, "big"), (host, port))
        wait_until(lambda: receiver.pending() + receiver.queue_full_drops == 50)
        assert receiver.pending() == 10
        assert receiver.queue_full_drops == 40
        assert drops == [(QUEUE_FULL, 1)] * 40
        queued = receiver.drain(100)
        assert [int.from_bytes(d[0], "big") for d in queued] == list(range(10))
        assert {d[1] for d in queued} == {"127.0.0.1"}
    finally:
        receiver.stop()


def test_kernel_socket_overflow_is_read_from_the_kernel():
    # A socket nobody reads, with the smallest buffer: the kernel drops what does not fit
    # and counts it in /proc/net/udp; sent = still queued + dropped, exactly.
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sink.bind(("127.0.0.1", 0))
        inode = os.fstat(sink.fileno()).st_ino
        for _ in range(500):
            sender.sendto(b"x" * 1000, sink.getsockname())
        sink.setblocking(False)
        queued = 0
        while True:
            try:
                sink.recv(2000)
                queued += 1
            except BlockingIOError:
                break
        dropped = read_kernel_drops({inode})
        assert dropped > 0
        assert queued + dropped == 500


def test_stop_ends_receive_threads_and_keeps_what_was_queued():
    receiver = UdpReceiver([("127.0.0.1", 0), ("::1", 0)])
    receiver.start()
    for family, (host, port) in zip((socket.AF_INET, socket.AF_INET6), receiver.bound, strict=True):
        with socket.socket(family, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"payload", (host, port))
    wait_until(lambda: receiver.pending() == 2)
    receiver.stop()
    assert sorted(d[1] for d in receiver.drain(10)) == ["127.0.0.1", "::1"]
