"""Captured export traffic: read UDP datagrams from pcap/pcapng files, write them back.

``netdistill import FILE``, ``netdistill replay FILE`` and the tests read captures made
with tcpdump or Wireshark at a collector. The reader yields one ``Datagram`` per UDP
packet (IPv4 or IPv6) whatever the link layer: Ethernet with 802.1Q/QinQ tags, Linux
cooked capture v1/v2 (SLL/SLL2), raw IP, BSD loopback/null. Anything else is counted,
never raised: a non-UDP packet, an IP fragment (exporters send whole datagrams; a
fragment has no UDP header to read), a packet cut by the capture's snap length, or one
whose headers are malformed. Only a file that is not a capture at all, or whose block
structure breaks, raises ``DecodeError`` naming the file and the packet number.

Formats: libpcap (tcpdump.org/manpages/pcap-savefile.5) in both byte orders with micro-
or nanosecond timestamps, and pcapng (RFC draft-ietf-opsawg-pcapng) read through dpkt;
dpkt's pcapng reader takes the link type of the first interface for the whole file.

``write_pcap`` writes Ethernet/IPv4 (or IPv6)/UDP frames so that datagrams captured from
an exporter in a test become an import file.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import dpkt

from netdistill.errors import DecodeError
from netdistill.sources.base import Datagram

__all__ = ["CaptureStats", "PcapReader", "datagram_protocol", "read_pcap", "write_pcap"]

PCAP_MAGICS = {b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

# Link types (tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_RAW_BSD = (12, 14)  # DLT_RAW as some BSDs number it
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})
IPPROTO_UDP = 17
# IPv6 extension headers that can stand between the fixed header and UDP (RFC 8200 §4).
IPV6_EXTENSIONS = frozenset({0, 43, 60})
IPV6_FRAGMENT = 44
#: the first word of every sFlow v5 datagram (XDR unsigned int 5)
SFLOW_V5 = b"\x00\x00\x00\x05"


@dataclass(slots=True)
class CaptureStats:
    """What a capture held: every packet lands in exactly one of the last five counters."""

    packets: int = 0
    datagrams: int = 0
    not_udp: int = 0
    fragments: int = 0
    truncated: int = 0
    malformed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "packets": self.packets,
            "datagrams": self.datagrams,
            "not_udp": self.not_udp,
            "fragments": self.fragments,
            "truncated": self.truncated,
            "malformed": self.malformed,
        }


class _Skip(DecodeError):
    """A packet that is not a usable UDP datagram; ``reason`` names its counter. Private
    control flow: raised and caught in this module only."""


def _ip_payload_start(frame: bytes, linktype: int) -> tuple[int, int]:
    """Offset of the IP header in ``frame`` and the IP version (4/6)."""
    if linktype == LINKTYPE_ETHERNET:
        offset, ethertype = 14, None
        if len(frame) < 14:
            raise _Skip("truncated")
        ethertype = int.from_bytes(frame[12:14])
        while ethertype in VLAN_ETHERTYPES:
            if len(frame) < offset + 4:
                raise _Skip("truncated")
            ethertype = int.from_bytes(frame[offset + 2 : offset + 4])
            offset += 4
        return offset, _version_of_ethertype(ethertype)
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            raise _Skip("truncated")
        return 16, _version_of_ethertype(int.from_bytes(frame[14:16]))
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            raise _Skip("truncated")
        return 20, _version_of_ethertype(int.from_bytes(frame[0:2]))
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        # 4-byte address family in the capturing host's byte order (NULL) or network
        # order (LOOP); AF_INET is 2 everywhere, AF_INET6 is 10, 24, 28 or 30.
        if len(frame) < 4:
            raise _Skip("truncated")
        return 4, _version_of_first_byte(frame, 4)
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, *LINKTYPE_RAW_BSD):
        return 0, _version_of_first_byte(frame, 0)
    raise _Skip("not_udp")


def _version_of_ethertype(ethertype: int) -> int:
    if ethertype == ETHERTYPE_IPV4:
        return 4
    if ethertype == ETHERTYPE_IPV6:
        return 6
    raise _Skip("not_udp")


def _version_of_first_byte(frame: bytes, offset: int) -> int:
    if len(frame) <= offset:
        raise _Skip("truncated")
    version = frame[offset] >> 4
    if version not in (4, 6):
        raise _Skip("not_udp")
    return version


def _udp_of_frame(frame: bytes, linktype: int) -> tuple[str, int, bytes]:
    """(source address text, UDP destination port, UDP payload) of one captured frame."""
    offset, version = _ip_payload_start(frame, linktype)
    if version == 4:
        if len(frame) < offset + 20:
            raise _Skip("truncated")
        header_length = (frame[offset] & 0x0F) * 4
        if header_length < 20:
            raise _Skip("malformed")
        total_length = int.from_bytes(frame[offset + 2 : offset + 4])
        if frame[offset + 9] != IPPROTO_UDP:
            raise _Skip("not_udp")
        flags_fragment = int.from_bytes(frame[offset + 6 : offset + 8])
        if flags_fragment & 0x3FFF:  # more-fragments flag or a fragment offset
            raise _Skip("fragments")
        source = str(ipaddress.IPv4Address(frame[offset + 12 : offset + 16]))
        ip_end = offset + total_length
        udp = offset + header_length
        if total_length < header_length + 8:
            raise _Skip("malformed")
    else:
        if len(frame) < offset + 40:
            raise _Skip("truncated")
        payload_length = int.from_bytes(frame[offset + 4 : offset + 6])
        next_header = frame[offset + 6]
        source = str(ipaddress.IPv6Address(frame[offset + 8 : offset + 24]))
        ip_end = offset + 40 + payload_length
        udp = offset + 40
        while next_header in IPV6_EXTENSIONS:
            if len(frame) < udp + 8:
                raise _Skip("truncated")
            next_header, length = frame[udp], (frame[udp + 1] + 1) * 8
            udp += length
        if next_header == IPV6_FRAGMENT:
            raise _Skip("fragments")
        if next_header != IPPROTO_UDP:
            raise _Skip("not_udp")
    if len(frame) < udp + 8:
        raise _Skip("truncated")
    destination_port = int.from_bytes(frame[udp + 2 : udp + 4])
    udp_length = int.from_bytes(frame[udp + 4 : udp + 6])
    if udp_length < 8 or udp + udp_length > ip_end:
        raise _Skip("malformed")
    if len(frame) < udp + udp_length:
        raise _Skip("truncated")
    return source, destination_port, bytes(frame[udp + 8 : udp + udp_length])


class PcapReader:
    """Datagrams of one capture file, in file order.

    Iterate it (or its ``batches``) once; ``stats`` counts as it goes and is complete when
    iteration ends. ``size_bytes`` and ``bytes_read`` drive a progress bar. Use it as a
    context manager, or call ``close``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.stats = CaptureStats()
        try:
            self._file: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as error:
            raise DecodeError(f"{self.path}: cannot open capture", detail=str(error)) from None
        self.size_bytes = os.fstat(self._file.fileno()).st_size
        magic = self._file.read(4)
        self._file.seek(0)
        try:
            if magic in PCAP_MAGICS:
                self._reader: dpkt.pcap.Reader | dpkt.pcapng.Reader = dpkt.pcap.Reader(self._file)
            elif magic == PCAPNG_MAGIC:
                self._reader = dpkt.pcapng.Reader(self._file)
            else:
                raise DecodeError(
                    f"{self.path}: not a pcap or pcapng file",
                    offset=0,
                    detail=f"magic {magic.hex() or '(empty)'}",
                )
        except (ValueError, struct.error, dpkt.UnpackError) as error:
            self._file.close()
            raise DecodeError(
                f"{self.path}: unreadable capture header", detail=str(error)
            ) from None
        except DecodeError:
            self._file.close()
            raise
        self.linktype = self._reader.datalink()

    @property
    def bytes_read(self) -> int:
        return self._file.tell() if not self._file.closed else self.size_bytes

    def __iter__(self) -> Iterator[Datagram]:
        stats, linktype = self.stats, self.linktype
        packets = iter(self._reader)
        while True:
            try:
                timestamp, frame = next(packets)
            except StopIteration:
                return
            except (ValueError, struct.error, dpkt.UnpackError) as error:
                raise DecodeError(
                    f"{self.path}: unreadable capture record after packet {stats.packets}",
                    offset=self.bytes_read,
                    detail=str(error),
                ) from None
            stats.packets += 1
            try:
                source, port, payload = _udp_of_frame(frame, linktype)
            except _Skip as skip:
                setattr(stats, skip.reason, getattr(stats, skip.reason) + 1)
                continue
            stats.datagrams += 1
            yield Datagram(source, payload, float(timestamp), port)

    def batches(self, size: int = 4096) -> Iterator[list[Datagram]]:
        """The datagrams in lists of ``size`` (the last one shorter)."""
        batch: list[Datagram] = []
        for datagram in self:
            batch.append(datagram)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def datagram_protocol(payload: bytes) -> str:
    """``"sflow"`` for an sFlow v5 datagram, else ``"netflow"`` (v5/v9/IPFIX, or anything
    the NetFlow decoder will quarantine as an unknown version).

    The first word tells them apart without the UDP port: sFlow starts with the 32-bit
    version 5 (``00 00 00 05``), NetFlow and IPFIX with a 16-bit version 5, 9 or 10,
    so their first two bytes are never zero."""
    return "sflow" if payload[:4] == SFLOW_V5 else "netflow"


def read_pcap(path: str | os.PathLike[str]) -> tuple[list[Datagram], CaptureStats]:
    """All UDP datagrams of a capture, with the counts of what was skipped."""
    with PcapReader(path) as reader:
        datagrams = list(reader)
        return datagrams, reader.stats


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(datagram: Datagram, destination: str, source_port: int, destination_port: int) -> bytes:
    source_ip = ipaddress.ip_address(datagram.exporter)
    destination_ip = ipaddress.ip_address(destination)
    payload = datagram.payload
    udp_length = 8 + len(payload)
    if udp_length > 0xFFFF:
        raise ValueError(f"datagram of {len(payload)} bytes does not fit in UDP")
    if source_ip.version == 4:
        if destination_ip.version != 4:
            destination_ip = ipaddress.IPv4Address("127.0.0.1")
        # UDP checksum 0 means "not computed", which IPv4 allows (RFC 768).
        udp = struct.pack("!HHHH", source_port, destination_port, udp_length, 0)
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + udp_length, 0, 0x4000, 64, IPPROTO_UDP, 0,
            source_ip.packed, destination_ip.packed,
        )  # fmt: skip
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + header + udp + payload
    if destination_ip.version != 6:
        destination_ip = ipaddress.IPv6Address("::1")
    # IPv6 forbids a zero UDP checksum (RFC 8200 §8.1): compute it over the pseudo-header.
    pseudo = source_ip.packed + destination_ip.packed + struct.pack("!IxxxB", udp_length, 17)
    udp = struct.pack("!HHHH", source_port, destination_port, udp_length, 0)
    checksum = _checksum(pseudo + udp + payload) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", checksum)
    header = struct.pack("!IHBB", 6 << 28, udp_length, IPPROTO_UDP, 64)
    header += source_ip.packed + destination_ip.packed
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x86\xdd" + header + udp + payload


def write_pcap(
    path: str | os.PathLike[str],
    datagrams: Iterable[Datagram],
    dst_port: int = 2055,
    *,
    dst_ip: str = "127.0.0.1",
    src_port: int = 50000,
) -> int:
    """Write datagrams as an Ethernet libpcap file; return how many were written.

    The source address is the datagram's ``exporter`` (IPv4 or IPv6 text), the time its
    ``received_at``, the destination port its ``port`` when set, else ``dst_port``."""
    count = 0
    with open(path, "wb") as file:
        writer = dpkt.pcap.Writer(file, snaplen=65535, linktype=LINKTYPE_ETHERNET)
        for datagram in datagrams:
            frame = _frame(datagram, dst_ip, src_port, datagram.port or dst_port)
            writer.writepkt(frame, ts=datagram.received_at)
            count += 1
    return count
