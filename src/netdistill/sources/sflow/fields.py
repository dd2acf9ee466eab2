"""The fields an sFlow source fills beyond the standard ones, and its batch schema.

Flow samples become usage records (``sample_kind = 'flow'``); counter samples become
interface-counter records (``sample_kind = 'counters'``) in the same table, with
``bytes`` and ``packets`` null so that usage sums never count them, the interface in
``input_if`` and the agent's running totals in the ``if_*`` fields (SNMP IF-MIB
semantics: totals since the agent started, not deltas).
"""

from __future__ import annotations

import pyarrow as pa

from netdistill.records.batch import FieldSpec
from netdistill.records.fields import FIELD_TYPES
from netdistill.records.schema import SOURCE_SCHEMA

SAMPLE_KIND = FieldSpec(
    "sample_kind", "string", "sFlow sample: flow (usage) or counters (interface totals)"
)
SUB_AGENT_ID = FieldSpec("sub_agent_id", "uint32", "sFlow sub-agent id of the exporter")
SRC_VLAN = FieldSpec("src_vlan", "uint16", "VLAN the packet came in on (outer tag)")
DST_VLAN = FieldSpec("dst_vlan", "uint16", "VLAN the packet went out on")
INNER_VLAN = FieldSpec("inner_vlan", "uint16", "inner (customer) VLAN of a QinQ frame")
SRC_MASK = FieldSpec("src_mask", "uint8", "source prefix length of the route")
DST_MASK = FieldSpec("dst_mask", "uint8", "destination prefix length of the route")
# the same names and types as the firewall formats' (one name for one thing)
ICMP_TYPE = FieldSpec("icmp_type", "uint8", "ICMP type (RFC 792 / RFC 4443)")
ICMP_CODE = FieldSpec("icmp_code", "uint8", "ICMP code")
AS_PATH = FieldSpec(
    "as_path", "string", "BGP AS path to the destination, e.g. '64500 {64501 64502}'"
)
DISCARD_REASON = FieldSpec(
    "discard_reason", "uint32", "set when the agent dropped the packet: the sFlow reason code"
)

#: interface counters (sFlow generic interface counters, IF-MIB totals)
COUNTER_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("if_speed", "uint64", "interface speed, bits/s"),
    FieldSpec("if_in_octets", "uint64", "ifInOctets (running total)"),
    FieldSpec("if_in_packets", "uint64", "ifInUcastPkts + ifInMulticastPkts + ifInBroadcastPkts"),
    FieldSpec("if_in_errors", "uint64", "ifInErrors (running total)"),
    FieldSpec("if_in_discards", "uint64", "ifInDiscards (running total)"),
    FieldSpec("if_out_octets", "uint64", "ifOutOctets (running total)"),
    FieldSpec(
        "if_out_packets", "uint64", "ifOutUcastPkts + ifOutMulticastPkts + ifOutBroadcastPkts"
    ),
    FieldSpec("if_out_errors", "uint64", "ifOutErrors (running total)"),
    FieldSpec("if_out_discards", "uint64", "ifOutDiscards (running total)"),
)

SFLOW_FIELDS: tuple[FieldSpec, ...] = (
    SAMPLE_KIND,
    SUB_AGENT_ID,
    SRC_VLAN,
    DST_VLAN,
    INNER_VLAN,
    SRC_MASK,
    DST_MASK,
    ICMP_TYPE,
    ICMP_CODE,
    AS_PATH,
    DISCARD_REASON,
    *COUNTER_FIELDS,
)

#: the batch schema of an sFlow source: the standard fields, then ``SFLOW_FIELDS``
SFLOW_SCHEMA = pa.schema(
    [*SOURCE_SCHEMA, *(pa.field(s.name, FIELD_TYPES[s.type][0]) for s in SFLOW_FIELDS)]
)
