"""Information elements the NetFlow v9 / IPFIX decoder reads, and what they mean here.

Element numbers are IANA's IPFIX registry (RFC 7012 §4 and the IANA "IPFIX Information
Elements" table), which takes over NetFlow v9's field types 1-127 (RFC 3954 §8) with the
same numbers. Only the elements that fill a usage-record field (SYSTEM.md §2), carry a
time, or carry a sampling rate are listed: every other element, and every enterprise
element (RFC 7011 §3.2, bit 0x8000 + 4-byte Private Enterprise Number), is skipped by its
length. When several elements can fill one record field, the first one a template
carries, in the order given by ``FIELD_SOURCES``, wins.
"""

from __future__ import annotations

from typing import Final

# -- counters and keys (RFC 7012 §5) -------------------------------------------------------
OCTET_DELTA_COUNT: Final = 1
PACKET_DELTA_COUNT: Final = 2
PROTOCOL_IDENTIFIER: Final = 4
IP_CLASS_OF_SERVICE: Final = 5
TCP_CONTROL_BITS: Final = 6
SOURCE_TRANSPORT_PORT: Final = 7
SOURCE_IPV4_ADDRESS: Final = 8
INGRESS_INTERFACE: Final = 10
DESTINATION_TRANSPORT_PORT: Final = 11
DESTINATION_IPV4_ADDRESS: Final = 12
EGRESS_INTERFACE: Final = 14
IP_NEXT_HOP_IPV4_ADDRESS: Final = 15
BGP_SOURCE_AS_NUMBER: Final = 16
BGP_DESTINATION_AS_NUMBER: Final = 17
BGP_NEXT_HOP_IPV4_ADDRESS: Final = 18
POST_OCTET_DELTA_COUNT: Final = 23  # v9 OUT_BYTES
POST_PACKET_DELTA_COUNT: Final = 24  # v9 OUT_PKTS
SOURCE_IPV6_ADDRESS: Final = 27
DESTINATION_IPV6_ADDRESS: Final = 28
FLOW_DIRECTION: Final = 61
IP_NEXT_HOP_IPV6_ADDRESS: Final = 62
BGP_NEXT_HOP_IPV6_ADDRESS: Final = 63
OCTET_TOTAL_COUNT: Final = 85
PACKET_TOTAL_COUNT: Final = 86
INGRESS_PHYSICAL_INTERFACE: Final = 252
EGRESS_PHYSICAL_INTERFACE: Final = 253

# -- times -------------------------------------------------------------------------------
FLOW_END_SYS_UP_TIME: Final = 21  # v9 LAST_SWITCHED, ms of exporter uptime
FLOW_START_SYS_UP_TIME: Final = 22  # v9 FIRST_SWITCHED
FLOW_START_SECONDS: Final = 150
FLOW_END_SECONDS: Final = 151
FLOW_START_MILLISECONDS: Final = 152
FLOW_END_MILLISECONDS: Final = 153
FLOW_START_MICROSECONDS: Final = 154  # NTP 64-bit timestamp (RFC 7011 §6.1.9)
FLOW_END_MICROSECONDS: Final = 155
FLOW_START_NANOSECONDS: Final = 156
FLOW_END_NANOSECONDS: Final = 157
FLOW_START_DELTA_MICROSECONDS: Final = 158  # µs before the message's export time
FLOW_END_DELTA_MICROSECONDS: Final = 159
SYSTEM_INIT_TIME_MILLISECONDS: Final = 160

# -- sampling (RFC 3954 §8, RFC 7012 §5.2, RFC 5477) ---------------------------------------
SAMPLING_INTERVAL: Final = 34
SAMPLER_RANDOM_INTERVAL: Final = 50
SAMPLER_ID: Final = 48  # v9 FLOW_SAMPLER_ID
SELECTOR_ID: Final = 302
SAMPLING_PACKET_INTERVAL: Final = 305
SAMPLING_PACKET_SPACE: Final = 306
SAMPLING_SIZE: Final = 309
SAMPLING_POPULATION: Final = 310

#: Elements whose value is an address rather than an integer: read as raw bytes.
IPV4_ELEMENTS: Final = frozenset({8, 12, 15, 18})
IPV6_ELEMENTS: Final = frozenset({27, 28, 62, 63})

#: record field → elements that can fill it, best first. ``bytes``/``packets`` fall back to
#: the total and post-NAT/OUT counters only when the delta count is absent (a v9 exporter
#: that sends OUT_BYTES next to IN_BYTES describes the other direction, not this one).
FIELD_SOURCES: Final[dict[str, tuple[int, ...]]] = {
    "bytes": (OCTET_DELTA_COUNT, OCTET_TOTAL_COUNT, POST_OCTET_DELTA_COUNT),
    "packets": (PACKET_DELTA_COUNT, PACKET_TOTAL_COUNT, POST_PACKET_DELTA_COUNT),
    "protocol": (PROTOCOL_IDENTIFIER,),
    "tos": (IP_CLASS_OF_SERVICE,),
    "tcp_flags": (TCP_CONTROL_BITS,),
    "src_port": (SOURCE_TRANSPORT_PORT,),
    "dst_port": (DESTINATION_TRANSPORT_PORT,),
    "input_if": (INGRESS_INTERFACE, INGRESS_PHYSICAL_INTERFACE),
    "output_if": (EGRESS_INTERFACE, EGRESS_PHYSICAL_INTERFACE),
    "src_as": (BGP_SOURCE_AS_NUMBER,),
    "dst_as": (BGP_DESTINATION_AS_NUMBER,),
    "direction": (FLOW_DIRECTION,),
    # addresses: IPv4 first; a template carries one family per record
    "src_ip": (SOURCE_IPV4_ADDRESS, SOURCE_IPV6_ADDRESS),
    "dst_ip": (DESTINATION_IPV4_ADDRESS, DESTINATION_IPV6_ADDRESS),
    # the router's own next hop before the BGP one: it is where the packets went
    "next_hop": (
        IP_NEXT_HOP_IPV4_ADDRESS,
        IP_NEXT_HOP_IPV6_ADDRESS,
        BGP_NEXT_HOP_IPV4_ADDRESS,
        BGP_NEXT_HOP_IPV6_ADDRESS,
    ),
}

#: Elements read for times and sampling (not record fields by themselves).
AUX_ELEMENTS: Final = frozenset(
    {
        FLOW_END_SYS_UP_TIME,
        FLOW_START_SYS_UP_TIME,
        *range(FLOW_START_SECONDS, SYSTEM_INIT_TIME_MILLISECONDS + 1),
        SAMPLING_INTERVAL,
        SAMPLER_RANDOM_INTERVAL,
        SAMPLER_ID,
        SELECTOR_ID,
        SAMPLING_PACKET_INTERVAL,
        SAMPLING_PACKET_SPACE,
        SAMPLING_SIZE,
        SAMPLING_POPULATION,
    }
)

#: Every element the decoder extracts from a record; the rest is skipped by length.
WANTED_ELEMENTS: Final = frozenset(
    {e for sources in FIELD_SOURCES.values() for e in sources} | AUX_ELEMENTS
)

#: NetFlow v9 options-template scope fields have their own type space (RFC 3954 §6.1:
#: 1 System, 2 Interface, 3 Line Card, 4 Cache, 5 Template) that overlaps element
#: numbers; they are stored shifted by this offset so that they never read as elements.
V9_SCOPE_OFFSET: Final = 1 << 16
