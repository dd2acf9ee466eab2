"""An independent sFlow v5 reference for the tests: a plain ``struct`` walk written from
the sFlow Version 5 specification (sflow.org, July 2004), one sample at a time, with
packet headers decoded by dpkt (a separate library) — nothing shared with the decoder
under test. Plus builders for datagrams the captures do not have (counter samples,
IPv6 agents, sequence gaps, malformed ones) and the capture reader.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from netdistill.sources.base import Datagram


def _captures() -> Path:
    """shared/captures next to the repository (captures are read in place, never
    copied); from a git worktree, next to the main checkout it belongs to."""
    repo = Path(__file__).resolve().parents[3]
    candidates = [repo.parent / "shared" / "captures"]
    dot_git = repo / ".git"
    if dot_git.is_file():  # a worktree: "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(dot_git.read_text().split(":", 1)[1].strip())
        candidates.append(gitdir.parents[2].parent / "shared" / "captures")
    return next((c for c in candidates if c.is_dir()), candidates[0])


CAPTURES = _captures()
SFLOW_CAPTURES = CAPTURES / "akvorado-sflow"


def read_capture(path: Path) -> list[Datagram]:
    """UDP payloads of an Ethernet pcap, read with dpkt, the IP source as exporter."""
    out = []
    with open(path, "rb") as fh:
        for ts, frame in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(frame).data
            family = socket.AF_INET6 if isinstance(ip, dpkt.ip6.IP6) else socket.AF_INET
            udp = ip.data
            out.append(Datagram(socket.inet_ntop(family, ip.src), bytes(udp.data), ts, udp.dport))
    return out


@dataclass
class RefSample:
    agent: str
    sub_agent: int
    rate: int
    frame_length: int | None = None
    src_ip: str | None = None
    dst_ip: str | None = None
    protocol: int | None = None
    src_port: int | None = None
    dst_port: int | None = None
    src_vlan: int | None = None
    dst_vlan: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def bytes(self) -> int | None:
        return None if self.frame_length is None else self.frame_length * self.rate

    def five_tuple(self) -> tuple[object, ...]:
        return (self.src_ip, self.dst_ip, self.protocol, self.src_port, self.dst_port)


@dataclass
class RefDatagram:
    agent: str
    sub_agent: int
    sequence: int
    samples: list[RefSample]
    counter_samples: int = 0


def _address(payload: bytes, offset: int) -> tuple[str, int]:
    (kind,) = struct.unpack_from(">I", payload, offset)
    if kind == 1:
        return str(ipaddress.IPv4Address(payload[offset + 4 : offset + 8])), offset + 8
    assert kind == 2, kind
    return str(ipaddress.IPv6Address(payload[offset + 4 : offset + 20])), offset + 20


def _packet(sample: RefSample, protocol: int, header: bytes) -> None:
    """Fill the sample from a raw packet header, through dpkt."""
    if protocol == 1:
        eth = dpkt.ethernet.Ethernet(header)
        tags = getattr(eth, "vlan_tags", []) or []
        if tags and sample.src_vlan is None:
            sample.src_vlan = tags[0].id
        ip = eth.data
    elif protocol == 11:
        ip = dpkt.ip.IP(header)
    else:
        ip = dpkt.ip6.IP6(header)
    if isinstance(ip, dpkt.ip.IP):
        sample.src_ip = str(ipaddress.IPv4Address(ip.src))
        sample.dst_ip = str(ipaddress.IPv4Address(ip.dst))
        sample.protocol = ip.p
    elif isinstance(ip, dpkt.ip6.IP6):
        sample.src_ip = str(ipaddress.IPv6Address(ip.src))
        sample.dst_ip = str(ipaddress.IPv6Address(ip.dst))
        sample.protocol = ip.nxt
    else:
        return
    l4 = ip.data
    if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
        sample.src_port, sample.dst_port = l4.sport, l4.dport
    elif isinstance(l4, bytes) and sample.protocol in (6, 17) and len(l4) >= 4:
        # dpkt gives bytes when the capture cut the transport header short
        sample.src_port, sample.dst_port = struct.unpack_from(">HH", l4)
    if isinstance(l4, (dpkt.icmp.ICMP, dpkt.icmp6.ICMP6)):
        sample.extra["icmp"] = (l4.type, l4.code)


def decode(payload: bytes) -> RefDatagram:
    (version,) = struct.unpack_from(">I", payload, 0)
    assert version == 5
    agent, offset = _address(payload, 4)
    sub_agent, sequence, _uptime, n_samples = struct.unpack_from(">IIII", payload, offset)
    offset += 16
    datagram = RefDatagram(agent, sub_agent, sequence, [])
    for _ in range(n_samples):
        tag, length = struct.unpack_from(">II", payload, offset)
        if offset + 8 + length > len(payload):
            raise ValueError(f"sample at {offset} runs past the datagram")
        body = payload[offset + 8 : offset + 8 + length]
        offset += 8 + length
        if tag in (2, 4):
            datagram.counter_samples += 1
            continue
        if tag not in (1, 3):
            continue
        if tag == 1:
            _, _, rate, _, _, _, _, n_records = struct.unpack_from(">8I", body)
            position = 32
        else:
            _, _, _, rate, _, _, _, _, _, _, n_records = struct.unpack_from(">11I", body)
            position = 44
        sample = RefSample(agent, sub_agent, rate)
        seen: set[int] = set()
        for _ in range(n_records):
            record_tag, record_length = struct.unpack_from(">II", body, position)
            if position + 8 + record_length > len(body):
                raise ValueError(f"record at {position} runs past its sample")
            record = body[position + 8 : position + 8 + record_length]
            position += 8 + record_length
            if record_tag in seen:
                continue
            seen.add(record_tag)
            if record_tag == 1:
                protocol, frame_length, _stripped, header_length = struct.unpack_from(">4I", record)
                sample.frame_length = frame_length
                _packet(sample, protocol, record[16 : 16 + header_length])
            elif record_tag == 1001:
                sample.src_vlan, _, sample.dst_vlan, _ = struct.unpack_from(">4I", record)
            elif record_tag == 1002:
                hop, at = _address(record, 0)
                sample.extra["next_hop"] = hop
                sample.extra["masks"] = struct.unpack_from(">II", record, at)
            elif record_tag == 1003:
                hop, at = _address(record, 0)
                _as, src_as, _peer, n_segments = struct.unpack_from(">4I", record, at)
                at += 16
                path: list[int] = []
                for _ in range(n_segments):
                    _kind, count = struct.unpack_from(">II", record, at)
                    path += struct.unpack_from(f">{count}I", record, at + 8)
                    at += 8 + 4 * count
                sample.extra["src_as"] = src_as
                sample.extra["dst_as"] = path[-1] if path else 0
                sample.extra["gateway_next_hop"] = hop
            elif record_tag == 3:
                length, protocol = struct.unpack_from(">II", record)
                sample.extra["ipv4_length"] = length
                if sample.frame_length is not None:
                    continue
                sample.frame_length = length
                sample.src_ip = str(ipaddress.IPv4Address(record[8:12]))
                sample.dst_ip = str(ipaddress.IPv4Address(record[12:16]))
                sample.protocol = protocol
                sample.src_port, sample.dst_port = struct.unpack_from(">II", record, 16)
        datagram.samples.append(sample)
    return datagram


# --- builders ---------------------------------------------------------------------------


def header(
    *, agent: str = "192.0.2.1", sub_agent: int = 0, sequence: int = 1, uptime: int = 1000,
    samples: list[bytes],
) -> bytes:  # fmt: skip
    address = ipaddress.ip_address(agent)
    kind = 1 if address.version == 4 else 2
    return (
        struct.pack(">II", 5, kind)
        + address.packed
        + struct.pack(">IIII", sub_agent, sequence, uptime, len(samples))
        + b"".join(samples)
    )


def xdr(tag: int, body: bytes) -> bytes:
    if len(body) % 4:
        body += bytes(4 - len(body) % 4)
    return struct.pack(">II", tag, len(body)) + body


def flow_sample(
    records: list[bytes], *, sequence: int = 1, rate: int = 100, pool: int = 0, drops: int = 0,
    source_id: int = 3, input_if: int = 1, output_if: int = 2,
) -> bytes:  # fmt: skip
    body = struct.pack(
        ">8I", sequence, source_id, rate, pool, drops, input_if, output_if, len(records)
    )
    return xdr(1, body + b"".join(records))


def raw_header(frame: bytes, *, frame_length: int | None = None, protocol: int = 1) -> bytes:
    length = len(frame) + 4 if frame_length is None else frame_length
    return xdr(1, struct.pack(">4I", protocol, length, 4, len(frame)) + frame)


def ethernet_ipv4_tcp(src: str, dst: str, sport: int, dport: int, *, vlan: int | None = None,
                      flags: int = 0x12, tos: int = 0) -> bytes:  # fmt: skip
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags)
    ip = dpkt.ip.IP(
        src=ipaddress.IPv4Address(src).packed, dst=ipaddress.IPv4Address(dst).packed, p=6,
        tos=tos, data=tcp,
    )  # fmt: skip
    ip.len = 20 + len(bytes(tcp))
    eth = dpkt.ethernet.Ethernet(
        src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip
    )
    frame = bytes(eth)
    if vlan is not None:
        frame = frame[:12] + struct.pack(">HH", 0x8100, vlan) + frame[12:]
    return frame


def counter_sample(
    if_index: int, in_octets: int, out_octets: int, *, sequence: int = 1, speed: int = 10**9,
    in_packets: tuple[int, int, int] = (10, 2, 1), out_packets: tuple[int, int, int] = (20, 3, 4),
    in_errors: int = 5, out_errors: int = 6, in_discards: int = 7, out_discards: int = 8,
) -> bytes:  # fmt: skip
    generic = struct.pack(
        ">IIQIIQIIIIIIQIIIIII",
        if_index, 6, speed, 1, 3, in_octets, *in_packets, in_discards, in_errors, 0,
        out_octets, *out_packets, out_discards, out_errors, 0,
    )  # fmt: skip
    assert len(generic) == 88
    ethernet = xdr(2, bytes(52))  # ethernet counters: skipped by the decoder
    return xdr(2, struct.pack(">III", sequence, if_index, 2) + xdr(1, generic) + ethernet)
