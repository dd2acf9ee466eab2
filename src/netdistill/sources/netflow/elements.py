"""Information elements the NetFlow v9 / IPFIX decoder reads, and what they mean here.

Element numbers are IANA's IPFIX registry (RFC 7012 §4 and the IANA "IPFIX Information
Elements" table), which takes over NetFlow v9's field types 1-127 (RFC 3954 §8) with the
same numbers. Only the elements that fill a usage-record field (SYSTEM.md §2), carry a
time, carry a sampling rate, or carry the reverse direction of a biflow (RFC 5103) are
listed: every other element is skipped by its length unless the scheme maps it to a field
(``elements:`` of a netflow source, ``mapping.py``). When several elements can fill one
record field, the first one a template carries, in the order given by ``FIELD_SOURCES``,
wins.

An element is named by its *key*: the element id for IANA elements and NetFlow v9 field
types (v9 types go up to 65535, e.g. Cisco NSEL's 40001-40005), and
``element_key(enterprise, id)`` for an enterprise element (RFC 7011 §3.2: bit 0x8000 +
4-byte Private Enterprise Number), which never equals an IANA id.
"""

from __future__ import annotations

from typing import Final

_ENTERPRISE_MARK: Final = 1 << 56


def element_key(enterprise: int, element_id: int) -> int:
    """The key of an element: its id when IANA's (enterprise 0), otherwise a number no
    IANA id, v9 field type or v9 scope key can take."""
    if enterprise == 0:
        return element_id
    return _ENTERPRISE_MARK | (enterprise << 16) | element_id


#: RFC 5103 §6.1: the reverse PEN; (29305, N) is the reverse direction of IANA element N.
REVERSE_PEN: Final = 29305

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
INITIATOR_OCTETS: Final = 231  # Cisco NSEL NF_F_FWD_FLOW_DELTA_BYTES
RESPONDER_OCTETS: Final = 232  # NF_F_REV_FLOW_DELTA_BYTES
INITIATOR_PACKETS: Final = 298
RESPONDER_PACKETS: Final = 299
INGRESS_PHYSICAL_INTERFACE: Final = 252
EGRESS_PHYSICAL_INTERFACE: Final = 253

# -- biflows (RFC 5103 §6.1: the same element under the reverse PEN) -----------------------
REVERSE_OCTET_DELTA_COUNT: Final = element_key(REVERSE_PEN, OCTET_DELTA_COUNT)
REVERSE_PACKET_DELTA_COUNT: Final = element_key(REVERSE_PEN, PACKET_DELTA_COUNT)
REVERSE_OCTET_TOTAL_COUNT: Final = element_key(REVERSE_PEN, OCTET_TOTAL_COUNT)
REVERSE_PACKET_TOTAL_COUNT: Final = element_key(REVERSE_PEN, PACKET_TOTAL_COUNT)
REVERSE_TCP_CONTROL_BITS: Final = element_key(REVERSE_PEN, TCP_CONTROL_BITS)

#: counters of the reverse direction, best first; Cisco NSEL's responder counters
#: (232/299, RFC 5103's initiator/responder view) count the same thing
REVERSE_BYTES: Final = (REVERSE_OCTET_DELTA_COUNT, REVERSE_OCTET_TOTAL_COUNT, RESPONDER_OCTETS)
REVERSE_PACKETS: Final = (
    REVERSE_PACKET_DELTA_COUNT,
    REVERSE_PACKET_TOTAL_COUNT,
    RESPONDER_PACKETS,
)

# -- NAT and firewall events (IANA 225-233, 281/282; Cisco ASA NSEL v9 40001-40005) -------
POST_NAT_SOURCE_IPV4_ADDRESS: Final = 225
POST_NAT_DESTINATION_IPV4_ADDRESS: Final = 226
POST_NAPT_SOURCE_TRANSPORT_PORT: Final = 227
POST_NAPT_DESTINATION_TRANSPORT_PORT: Final = 228
NAT_EVENT: Final = 230
FIREWALL_EVENT: Final = 233
POST_NAT_SOURCE_IPV6_ADDRESS: Final = 281
POST_NAT_DESTINATION_IPV6_ADDRESS: Final = 282
NSEL_XLATE_SRC_ADDR_IPV4: Final = 40001
NSEL_XLATE_DST_ADDR_IPV4: Final = 40002
NSEL_XLATE_SRC_PORT: Final = 40003
NSEL_XLATE_DST_PORT: Final = 40004
NSEL_FW_EVENT: Final = 40005

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
#: when an event was observed (NAT and NSEL events carry it instead of flow times)
OBSERVATION_TIME_SECONDS: Final = 322
OBSERVATION_TIME_MILLISECONDS: Final = 323
OBSERVATION_TIME_MICROSECONDS: Final = 324  # NTP 64-bit
OBSERVATION_TIME_NANOSECONDS: Final = 325  # NTP 64-bit

# -- sampling (RFC 3954 §8, RFC 7012 §5.2, RFC 5477 §8) -------------------------------------
SAMPLING_INTERVAL: Final = 34
SAMPLING_ALGORITHM: Final = 35  # v9: 1 deterministic, 2 random; both 1-in-N
SAMPLER_ID: Final = 48  # v9 FLOW_SAMPLER_ID
SAMPLER_MODE: Final = 49  # v9 FLOW_SAMPLER_MODE, as 35
SAMPLER_RANDOM_INTERVAL: Final = 50
SELECTOR_ID: Final = 302
SELECTOR_ALGORITHM: Final = 304  # IANA "PSAMP parameters" registry, RFC 5476
SAMPLING_PACKET_INTERVAL: Final = 305
SAMPLING_PACKET_SPACE: Final = 306
SAMPLING_TIME_INTERVAL: Final = 307  # µs
SAMPLING_TIME_SPACE: Final = 308
SAMPLING_SIZE: Final = 309
SAMPLING_POPULATION: Final = 310
SAMPLING_PROBABILITY: Final = 311  # float64 (or float32, reduced size)
HASH_OUTPUT_RANGE_MIN: Final = 329
HASH_OUTPUT_RANGE_MAX: Final = 330
HASH_SELECTED_RANGE_MIN: Final = 331
HASH_SELECTED_RANGE_MAX: Final = 332

#: Elements whose value is an address rather than an integer: read as raw bytes.
IPV4_ELEMENTS: Final = frozenset({8, 12, 15, 18, 225, 226, 40001, 40002})
IPV6_ELEMENTS: Final = frozenset({27, 28, 62, 63, 281, 282})

#: record field → elements that can fill it, best first. ``bytes``/``packets`` fall back to
#: the total and post-NAT/OUT counters only when the delta count is absent (a v9 exporter
#: that sends OUT_BYTES next to IN_BYTES describes the other direction, not this one).
FIELD_SOURCES: Final[dict[str, tuple[int, ...]]] = {
    "bytes": (OCTET_DELTA_COUNT, OCTET_TOTAL_COUNT, POST_OCTET_DELTA_COUNT, INITIATOR_OCTETS),
    "packets": (
        PACKET_DELTA_COUNT,
        PACKET_TOTAL_COUNT,
        POST_PACKET_DELTA_COUNT,
        INITIATOR_PACKETS,
    ),
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
    # NAT (RFC 8158 and IANA) and Cisco ASA NSEL: the IANA element first
    "post_nat_src_ip": (
        POST_NAT_SOURCE_IPV4_ADDRESS,
        POST_NAT_SOURCE_IPV6_ADDRESS,
        NSEL_XLATE_SRC_ADDR_IPV4,
    ),
    "post_nat_dst_ip": (
        POST_NAT_DESTINATION_IPV4_ADDRESS,
        POST_NAT_DESTINATION_IPV6_ADDRESS,
        NSEL_XLATE_DST_ADDR_IPV4,
    ),
    "post_nat_src_port": (POST_NAPT_SOURCE_TRANSPORT_PORT, NSEL_XLATE_SRC_PORT),
    "post_nat_dst_port": (POST_NAPT_DESTINATION_TRANSPORT_PORT, NSEL_XLATE_DST_PORT),
    "nat_event": (NAT_EVENT,),
    "firewall_event": (FIREWALL_EVENT, NSEL_FW_EVENT),
}

#: Elements read for times and sampling (not record fields by themselves).
AUX_ELEMENTS: Final = frozenset(
    {
        FLOW_END_SYS_UP_TIME,
        FLOW_START_SYS_UP_TIME,
        *range(FLOW_START_SECONDS, SYSTEM_INIT_TIME_MILLISECONDS + 1),
        *range(OBSERVATION_TIME_SECONDS, OBSERVATION_TIME_NANOSECONDS + 1),
        SAMPLING_INTERVAL,
        SAMPLER_RANDOM_INTERVAL,
        SAMPLER_ID,
        SELECTOR_ID,
        SELECTOR_ALGORITHM,
        *range(SAMPLING_PACKET_INTERVAL, SAMPLING_PROBABILITY + 1),
        *range(HASH_OUTPUT_RANGE_MIN, HASH_SELECTED_RANGE_MAX + 1),
        *REVERSE_BYTES,
        *REVERSE_PACKETS,
        REVERSE_TCP_CONTROL_BITS,
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
