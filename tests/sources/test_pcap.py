"""Reading captures (pcap, pcapng, every link layer we claim), writing them, replaying them.

Expected counts come from tcpdump where it is installed, or from the frames the test built.
"""

from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import dpkt
import pytest

from netdistill.errors import DecodeError
from netdistill.sources.base import Datagram
from netdistill.sources.pcap import PcapReader, read_pcap, write_pcap
from netdistill.sources.replay import replay, replay_file

CAPTURES = sorted(Path("/work/shared/captures/akvorado-netflow").glob("*.pcap"))
TCPDUMP = shutil.which("tcpdump")


def udp_ipv4(payload: bytes, source: str = "192.0.2.7", port: int = 2055) -> bytes:
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
        socket.inet_aton(source), socket.inet_aton("192.0.2.1"),
    )  # fmt: skip
    return ip + udp


def udp_ipv6(payload: bytes, source: str = "2001:db8::7", port: int = 4739) -> bytes:
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    # Hop-by-hop options header (8 bytes) before UDP, to exercise extension headers.
    hop_by_hop = bytes([17, 0]) + b"\x01\x04\x00\x00\x00\x00"
    header = struct.pack("!IHBB", 6 << 28, len(hop_by_hop) + len(udp), 0, 64)
    header += socket.inet_pton(socket.AF_INET6, source)
    header += socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    return header + hop_by_hop + udp


def tcp_ipv4() -> bytes:
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0,
        socket.inet_aton("192.0.2.9"), socket.inet_aton("192.0.2.1"),
    )  # fmt: skip
    return ip + bytes(20)


def ethernet(ip: bytes, vlans: int = 0) -> bytes:
    ethertype = b"\x08\x00" if ip[0] >> 4 == 4 else b"\x86\xdd"
    tags = b"".join(b"\x81\x00" + struct.pack("!H", 100 + i) for i in range(vlans))
    return b"\x00\x01\x02\x03\x04\x05\x00\x01\x02\x03\x04\x06" + tags + ethertype


def write_frames(path: Path, linktype: int, frames: list[bytes], snaplen: int = 65535) -> None:
    with open(path, "wb") as file:
        writer = dpkt.pcap.Writer(file, snaplen=snaplen, linktype=linktype)
        for i, frame in enumerate(frames):
            writer.writepkt(frame, ts=1_700_000_000 + i)


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    datagrams = [
        Datagram("192.0.2.10", b"\x00\x09" + bytes(range(200)), 1_700_000_000.25, 0),
        Datagram("2001:db8::10", b"\x00\x0a" + bytes(1398), 1_700_000_001.5, 4739),
        Datagram("10.0.0.1", b"", 1_700_000_002.0, 9995),
    ]
    path = tmp_path / "out.pcap"
    assert write_pcap(path, datagrams, dst_port=2055) == 3
    read, stats = read_pcap(path)
    assert [(d.exporter, d.payload, d.port) for d in read] == [
        ("192.0.2.10", datagrams[0].payload, 2055),
        ("2001:db8::10", datagrams[1].payload, 4739),
        ("10.0.0.1", b"", 9995),
    ]
    assert [d.received_at for d in read] == pytest.approx([d.received_at for d in datagrams])
    assert stats.as_dict() == {
        "packets": 3, "datagrams": 3, "not_udp": 0, "fragments": 0, "truncated": 0,
        "malformed": 0,
    }  # fmt: skip


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump not installed")
def test_written_file_reads_in_tcpdump(tmp_path: Path) -> None:
    datagrams = [Datagram("192.0.2.10", bytes(100 + i), 1_700_000_000.0 + i) for i in range(5)]
    path = tmp_path / "out.pcap"
    write_pcap(path, datagrams)
    out = subprocess.run(
        [TCPDUMP, "-r", str(path), "-n", "-v", "udp"], capture_output=True, text=True, check=True
    ).stdout
    assert re.findall(r"UDP, length (\d+)", out) == [str(100 + i) for i in range(5)]
    assert "bad cksum" not in out
    assert out.count("192.0.2.10.50000 > 127.0.0.1.2055") == 5


def test_link_layers(tmp_path: Path) -> None:
    payload = b"\x00\x0a" + bytes(50)
    cases = {
        "ethernet+vlan": (1, [ethernet(udp_ipv4(payload), vlans=2) + udp_ipv4(payload)]),
        "ethernet ipv6": (1, [ethernet(udp_ipv6(payload)) + udp_ipv6(payload)]),
        "raw": (101, [udp_ipv4(payload), udp_ipv6(payload)]),
        "ipv4 linktype": (228, [udp_ipv4(payload)]),
        "null": (0, [struct.pack("=I", 2) + udp_ipv4(payload)]),
        "loop": (108, [struct.pack("!I", 2) + udp_ipv4(payload)]),
        "sll": (113, [bytes(14) + b"\x08\x00" + udp_ipv4(payload)]),
        "sll2": (276, [b"\x86\xdd" + bytes(18) + udp_ipv6(payload)]),
    }
    for name, (linktype, frames) in cases.items():
        path = tmp_path / f"{linktype}.pcap"
        write_frames(path, linktype, frames)
        read, stats = read_pcap(path)
        assert stats.datagrams == len(frames), name
        assert all(d.payload == payload for d in read), name
        assert {d.exporter for d in read} <= {"192.0.2.7", "2001:db8::7"}, name


def test_non_udp_truncated_and_malformed_are_counted(tmp_path: Path) -> None:
    good = ethernet(udp_ipv4(b"x" * 100)) + udp_ipv4(b"x" * 100)
    fragment = bytearray(good)
    fragment[14 + 6] = 0x20  # more-fragments flag
    bad_length = bytearray(good)
    bad_length[14 + 20 + 4 : 14 + 20 + 6] = struct.pack("!H", 4)  # UDP length < 8
    arp = ethernet(udp_ipv4(b""))[:12] + b"\x08\x06" + bytes(28)
    frames = [
        good,
        ethernet(tcp_ipv4()) + tcp_ipv4(),
        arp,
        bytes(fragment),
        bytes(bad_length),
        good[:60],  # cut by the snap length
    ]
    path = tmp_path / "mixed.pcap"
    write_frames(path, 1, frames)
    read, stats = read_pcap(path)
    assert len(read) == 1
    assert stats.as_dict() == {
        "packets": 6, "datagrams": 1, "not_udp": 2, "fragments": 1, "truncated": 1,
        "malformed": 1,
    }  # fmt: skip


def test_pcapng(tmp_path: Path) -> None:
    payloads = [bytes([i]) * (10 + i) for i in range(7)]
    path = tmp_path / "capture.pcapng"
    with open(path, "wb") as file:
        writer = dpkt.pcapng.Writer(file, snaplen=65535, linktype=1)
        for i, p in enumerate(payloads):
            writer.writepkt(ethernet(udp_ipv4(p)) + udp_ipv4(p), ts=1_700_000_000.5 + i)
        writer.writepkt(ethernet(tcp_ipv4()) + tcp_ipv4(), ts=1_700_000_100)
    read, stats = read_pcap(path)
    assert [d.payload for d in read] == payloads
    assert read[0].received_at == pytest.approx(1_700_000_000.5)
    assert (stats.packets, stats.datagrams, stats.not_udp) == (8, 7, 1)


def test_batches_and_progress(tmp_path: Path) -> None:
    path = tmp_path / "many.pcap"
    write_pcap(path, (Datagram("192.0.2.1", bytes(64), 1.0 + i) for i in range(1000)))
    with PcapReader(path) as reader:
        assert reader.bytes_read < reader.size_bytes
        sizes = [len(b) for b in reader.batches(300)]
        assert reader.bytes_read == reader.size_bytes == path.stat().st_size
    assert sizes == [300, 300, 300, 100]


def test_unreadable_files_raise_decode_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a capture\n")
    with pytest.raises(DecodeError, match=r"notes\.txt: not a pcap or pcapng file"):
        read_pcap(text)
    with pytest.raises(DecodeError, match="cannot open"):
        read_pcap(tmp_path / "missing.pcap")
    # A pcapng whose block lengths are garbage after the first packets.
    path = tmp_path / "broken.pcapng"
    with open(path, "wb") as file:
        writer = dpkt.pcapng.Writer(file, snaplen=65535, linktype=1)
        for i in range(3):
            writer.writepkt(ethernet(udp_ipv4(b"abc")) + udp_ipv4(b"abc"), ts=1.0 + i)
    with open(path, "ab") as file:
        file.write(struct.pack("<II", 6, 20) + bytes(12))  # EPB of 20 bytes: too short
    with pytest.raises(DecodeError, match=r"broken\.pcapng.*after packet 3"):
        read_pcap(path)


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump not installed")
@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_akvorado_captures_match_tcpdump(capture: Path) -> None:
    lines = subprocess.run(
        [TCPDUMP, "-r", str(capture), "-n", "udp"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    # "TIME IP 10.0.0.15.50000 > 10.0.0.1.2055: UDP, length 1234"
    pattern = re.compile(r" IP6? (\S+)\.\d+ > \S+\.(\d+): UDP, length (\d+)")
    expected = [(m[1], int(m[2]), int(m[3])) for m in map(pattern.search, lines) if m]
    assert len(expected) == len(lines) > 0
    read, stats = read_pcap(capture)
    assert [(d.exporter, d.port, len(d.payload)) for d in read] == expected
    assert stats.datagrams == len(expected)


# -- replay ------------------------------------------------------------------------------


class Sink:
    """A UDP socket on loopback counting what arrives, in a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.address = self.sock.getsockname()
        self.payloads: list[bytes] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.payloads.append(self.sock.recv(65535))
            except TimeoutError:
                return

    def join(self) -> list[bytes]:
        self.thread.join()
        self.sock.close()
        return self.payloads


def test_replay_sends_every_payload_in_order() -> None:
    sink = Sink()
    payloads = [i.to_bytes(4, "big") * 10 for i in range(3000)]
    stats = replay([Datagram("192.0.2.1", p, 0.0) for p in payloads], sink.address, loops=2)
    assert (stats.datagrams, stats.bytes, stats.errors) == (6000, 6000 * 40, 0)
    assert sink.join() == payloads * 2


def test_replay_paces_within_five_percent() -> None:
    sink = Sink()
    started = time.perf_counter()
    stats = replay([b"x" * 100] * 2000, sink.address, rate_pps=4000)
    elapsed = time.perf_counter() - started
    assert stats.datagrams == 2000
    assert 0.5 * 0.95 <= elapsed <= 0.5 * 1.05 + 0.01
    assert len(sink.join()) == 2000


def test_replay_file(tmp_path: Path) -> None:
    path = tmp_path / "capture.pcap"
    write_pcap(path, [Datagram("192.0.2.1", bytes([i]) * 30, float(i)) for i in range(50)])
    sink = Sink()
    stats = replay_file(path, sink.address, loops=3)
    assert stats.datagrams == 150
    assert sink.join() == [bytes([i]) * 30 for i in range(50)] * 3
