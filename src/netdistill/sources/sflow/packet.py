"""Sampled packet headers (sFlow v5 ``sampled_header``, flow record 0:1), all at once.

The agent copies the first bytes of each sampled packet (typically 128). Header
protocols read: 1 Ethernet (IEEE 802.3, with up to two 802.1Q / 802.1ad tags: QinQ),
11 IPv4 and 12 IPv6 (the header starts at the IP header). From Ethernet on: IPv4
(RFC 791: TOS, protocol, addresses, options skipped by IHL, no ports in non-first
fragments), IPv6 (RFC 8200: traffic class, next header through hop-by-hop, routing and
destination options headers), then TCP/UDP/SCTP ports, TCP flags (with NS as bit 8, as
NetFlow's tcpControlBits) and ICMP/ICMPv6 type and code. Only the outer packet is
read: a VXLAN or other tunnel is accounted as the tunnel packet the link carried.

Vectorized: each step is a gather at per-row offsets over every header of the batch;
a field is valid only when its bytes lie inside the captured header (``valid``
masks), so a short capture gives nulls, never bytes of the next record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netdistill.sources.sflow.layout import Buffer

ETHERNET, IPV4, IPV6 = 1, 11, 12
_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
_V6_EXTENSIONS = (0, 43, 60)
_PORT_PROTOCOLS = (6, 17, 132)


@dataclass(slots=True)
class PacketFields:
    """Per header: values with their validity masks (``*_ok``)."""

    outer_vlan: np.ndarray
    outer_vlan_ok: np.ndarray
    inner_vlan: np.ndarray
    inner_vlan_ok: np.ndarray
    is_v4: np.ndarray
    is_v6: np.ndarray
    src_v4: np.ndarray  # uint32
    dst_v4: np.ndarray
    src_v6: np.ndarray  # (n, 16) uint8, filled where is_v6
    dst_v6: np.ndarray
    protocol: np.ndarray
    tos: np.ndarray
    ports_ok: np.ndarray
    src_port: np.ndarray
    dst_port: np.ndarray
    tcp_flags_ok: np.ndarray
    tcp_flags: np.ndarray
    icmp_ok: np.ndarray
    icmp_type: np.ndarray
    icmp_code: np.ndarray

    @property
    def ip_ok(self) -> np.ndarray:
        return self.is_v4 | self.is_v6


def parse_headers(
    buf: Buffer, start: np.ndarray, length: np.ndarray, protocol: np.ndarray
) -> PacketFields:
    """Decode the headers at ``start`` (absolute offsets) of ``length`` bytes whose
    sFlow header protocol is ``protocol``."""
    n = len(start)
    end = start + length
    byte, u16 = buf.byte, buf.u16

    # --- link layer -----------------------------------------------------------------
    ethernet = (protocol == ETHERNET) & (length >= 14)
    ethertype = np.where(ethernet, u16(start + 12), 0)
    l3 = start + 14
    vlans: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(2):
        tagged = ethernet & np.isin(ethertype, _VLAN_TAGS) & (l3 + 4 <= end)
        vlans.append((u16(l3) & 0x0FFF, tagged))
        ethertype = np.where(tagged, u16(l3 + 2), ethertype)
        l3 = np.where(tagged, l3 + 4, l3)
    version4 = (ethernet & (ethertype == 0x0800)) | (protocol == IPV4)
    version6 = (ethernet & (ethertype == 0x86DD)) | (protocol == IPV6)
    l3 = np.where(ethernet, l3, start)
    # the IP version nibble must agree with what the link layer said
    first = byte(l3)
    is_v4 = version4 & (l3 + 20 <= end) & ((first >> 4) == 4) & ((first & 0x0F) >= 5)
    is_v6 = version6 & (l3 + 40 <= end) & ((first >> 4) == 6)

    # --- IPv4 -----------------------------------------------------------------------
    ihl = (first & 0x0F) * 4
    not_fragment = (u16(l3 + 6) & 0x1FFF) == 0
    src_v4 = np.where(is_v4, buf.u16(l3 + 12) << 16 | buf.u16(l3 + 14), 0).astype(np.uint32)
    dst_v4 = np.where(is_v4, buf.u16(l3 + 16) << 16 | buf.u16(l3 + 18), 0).astype(np.uint32)

    # --- IPv6 -----------------------------------------------------------------------
    src_v6 = np.zeros((n, 16), np.uint8)
    dst_v6 = np.zeros((n, 16), np.uint8)
    if is_v6.any():
        src_v6[is_v6] = buf.bytes16(l3[is_v6] + 8)
        dst_v6[is_v6] = buf.bytes16(l3[is_v6] + 24)
    next_header = byte(l3 + 6)
    l4_v6 = l3 + 40
    for _ in range(3):
        extension = is_v6 & np.isin(next_header, _V6_EXTENSIONS) & (l4_v6 + 8 <= end)
        next_header = np.where(extension, byte(l4_v6), next_header)
        l4_v6 = np.where(extension, l4_v6 + (byte(l4_v6 + 1) + 1) * 8, l4_v6)

    protocol_number = np.where(is_v4, byte(l3 + 9), np.where(is_v6, next_header, 0))
    tos = np.where(is_v4, byte(l3 + 1), ((first & 0x0F) << 4) | (byte(l3 + 1) >> 4))
    l4 = np.where(is_v4, l3 + ihl, l4_v6)
    # an IPv6 next header still naming an extension header means we stopped walking
    l4_ok = (is_v4 & not_fragment) | (is_v6 & ~np.isin(next_header, (*_V6_EXTENSIONS, 44)))

    # --- transport ------------------------------------------------------------------
    ports_ok = l4_ok & np.isin(protocol_number, _PORT_PROTOCOLS) & (l4 + 4 <= end)
    tcp_flags_ok = l4_ok & (protocol_number == 6) & (l4 + 14 <= end)
    icmp = (is_v4 & (protocol_number == 1)) | (is_v6 & (protocol_number == 58))
    icmp_ok = l4_ok & icmp & (l4 + 2 <= end)
    return PacketFields(
        outer_vlan=vlans[0][0],
        outer_vlan_ok=vlans[0][1],
        inner_vlan=vlans[1][0],
        inner_vlan_ok=vlans[1][1],
        is_v4=is_v4,
        is_v6=is_v6,
        src_v4=src_v4,
        dst_v4=dst_v4,
        src_v6=src_v6,
        dst_v6=dst_v6,
        protocol=protocol_number,
        tos=tos,
        ports_ok=ports_ok,
        src_port=u16(l4),
        dst_port=u16(l4 + 2),
        tcp_flags_ok=tcp_flags_ok,
        tcp_flags=((byte(l4 + 12) & 1) << 8) | byte(l4 + 13),
        icmp_ok=icmp_ok,
        icmp_type=byte(l4),
        icmp_code=byte(l4 + 1),
    )
