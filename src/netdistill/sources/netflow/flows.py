"""From decoded element columns to usage records (SYSTEM.md §2), for v5, v9 and IPFIX.

Everything here works on whole columns. Per-record attributes that come from the
message header (export time, exporter uptime, exporter, sampling rate) arrive already
broadcast to one value per record (``np.repeat`` by the caller).

Times, in µs since the Unix epoch:

* v5 and v9 (RFC 3954 §8, FIRST_SWITCHED/LAST_SWITCHED = 22/21): milliseconds of
  exporter uptime; absolute = export time − (sysUpTime − switched). The difference is
  taken modulo 2³² as a signed value, so uptime wrap-around after 49.7 days and records
  stamped a little after the header both come out right.
* IPFIX (RFC 7012 §5.9): flowStart/End Seconds (150/151), Milliseconds (152/153),
  Microseconds and Nanoseconds (154-157, NTP 64-bit timestamps, RFC 7011 §6.1.9-10),
  DeltaMicroseconds (158/159, before the message's export time), and SysUpTime (22/21)
  relative to systemInitTimeMilliseconds (160) from the record or from options data.
* v9 records without 22/21 may carry the IPFIX absolute elements (Cisco NSEL sends
  152/153): they are read as in IPFIX.
* Event records (NAT, NSEL) carry observationTime Seconds/Milliseconds/Micro/Nanoseconds
  (322-325) instead of flow times: used for start and end when no flow time is there.
* A record with no usable start takes its end, and one with neither takes the export
  time: a usage record must have a time to be billed, and the export time is the
  closest bound the exporter gave.

Biflows (RFC 5103): a record that carries reverse counters (the IANA counter under the
reverse PEN 29305, or Cisco NSEL's responder octets/packets 232/299) becomes two usage
records — the forward one as exported, and a reverse one with source and destination
(addresses, ports, interfaces, AS numbers, post-NAT address and port) swapped, the
reverse counters and TCP flags, and no next hop (the exporter gave the forward one
only). ``biflow_reverse`` tells them apart; a reverse direction with no packets and no
bytes adds no record. Every sum over ``bytes`` then bills both directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from netdistill.records.ip import ipv4_to_text, ipv6_to_text
from netdistill.records.schema import conform
from netdistill.sources.netflow import elements as ie
from netdistill.sources.netflow.extract import Columns
from netdistill.sources.netflow.fields import NETFLOW_SCHEMA
from netdistill.sources.netflow.mapping import ElementMapping, mapped_columns

_NTP_EPOCH_OFFSET_S = 2_208_988_800  # 1900-01-01 → 1970-01-01
_TIMESTAMP = pa.timestamp("us", tz="UTC")

_INTEGER_FIELDS: dict[str, np.dtype] = {
    "protocol": np.dtype(np.uint8),
    "tos": np.dtype(np.uint8),
    "tcp_flags": np.dtype(np.uint16),
    "src_port": np.dtype(np.uint16),
    "dst_port": np.dtype(np.uint16),
    "input_if": np.dtype(np.uint32),
    "output_if": np.dtype(np.uint32),
    "src_as": np.dtype(np.uint32),
    "dst_as": np.dtype(np.uint32),
    "direction": np.dtype(np.uint8),
    "post_nat_src_port": np.dtype(np.uint16),
    "post_nat_dst_port": np.dtype(np.uint16),
    "nat_event": np.dtype(np.uint8),
    "firewall_event": np.dtype(np.uint8),
}

#: what a biflow's reverse record swaps
_SWAPPED = (
    ("src_ip", "dst_ip"),
    ("src_port", "dst_port"),
    ("input_if", "output_if"),
    ("src_as", "dst_as"),
    ("post_nat_src_ip", "post_nat_dst_ip"),
    ("post_nat_src_port", "post_nat_dst_port"),
)


@dataclass(slots=True)
class RecordContext:
    """Per-record values from outside the record, one entry per record."""

    export_us: np.ndarray  # int64, message export time
    exporter_index: np.ndarray  # int32 index into ``exporters``
    exporters: list[str]
    sampling_rate: np.ndarray  # uint32, ≥ 1
    #: v5/v9: exporter uptime in ms at export (int64); None for IPFIX
    uptime_ms: np.ndarray | None = None
    #: IPFIX: systemInitTimeMilliseconds known from options data, -1 = unknown
    init_ms: np.ndarray | None = None


def _first(columns: Columns, candidates: tuple[int, ...]) -> tuple[int, np.ndarray] | None:
    for element_id in candidates:
        column = columns.get(element_id)
        if column is not None:
            return element_id, column
    return None


def _clip(column: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Narrow to the record field's type; an over-wide value saturates instead of
    wrapping (a reduced-size encoding is the common case, an over-wide one is rare)."""
    if column.dtype.itemsize > dtype.itemsize:
        column = np.minimum(column, np.iinfo(dtype).max)
    return column.astype(dtype, copy=False)


def _address(element_id: int, column: np.ndarray) -> pa.Array:
    if element_id in ie.IPV6_ELEMENTS:
        return ipv6_to_text(column)
    return ipv4_to_text(column)


def _ntp_to_us(value: np.ndarray) -> np.ndarray:
    value = value.astype(np.uint64)
    seconds = (value >> np.uint64(32)).astype(np.int64) - _NTP_EPOCH_OFFSET_S
    fraction = value & np.uint64(0xFFFFFFFF)
    micros = ((fraction * np.uint64(1_000_000)) >> np.uint64(32)).astype(np.int64)
    return seconds * 1_000_000 + micros


def _uptime_relative_us(
    switched: np.ndarray, uptime_ms: np.ndarray, export_us: np.ndarray
) -> np.ndarray:
    behind = (uptime_ms - switched.astype(np.int64)) & 0xFFFFFFFF
    behind = np.where(behind >= 1 << 31, behind - (1 << 32), behind)
    return export_us - behind * 1000


def _time_us(
    columns: Columns, ctx: RecordContext, *, start: bool, init_ms: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(time µs, valid mask) of the flow start or end."""
    n = len(ctx.export_us)
    if ctx.uptime_ms is not None:  # v5 / v9
        column = columns.get(ie.FLOW_START_SYS_UP_TIME if start else ie.FLOW_END_SYS_UP_TIME)
        if column is not None:
            return _uptime_relative_us(column, ctx.uptime_ms, ctx.export_us), np.ones(n, bool)
        # else v9 exporters such as Cisco ASA (NSEL) send IPFIX's absolute times instead
    offset = 0 if start else 1
    scaled = (
        (ie.FLOW_START_MILLISECONDS + offset, 1_000),
        (ie.FLOW_START_SECONDS + offset, 1_000_000),
    )
    for element_id, factor in scaled:
        column = columns.get(element_id)
        if column is not None:
            return column.astype(np.int64) * factor, np.ones(n, bool)
    for element_id in (ie.FLOW_START_MICROSECONDS + offset, ie.FLOW_START_NANOSECONDS + offset):
        column = columns.get(element_id)
        if column is not None:
            return _ntp_to_us(column), np.ones(n, bool)
    column = columns.get(ie.FLOW_START_DELTA_MICROSECONDS + offset)
    if column is not None:
        return ctx.export_us - column.astype(np.int64), np.ones(n, bool)
    for element_id, factor in (
        (ie.OBSERVATION_TIME_MILLISECONDS, 1_000),
        (ie.OBSERVATION_TIME_SECONDS, 1_000_000),
    ):
        column = columns.get(element_id)
        if column is not None:
            return column.astype(np.int64) * factor, np.ones(n, bool)
    for element_id in (ie.OBSERVATION_TIME_MICROSECONDS, ie.OBSERVATION_TIME_NANOSECONDS):
        column = columns.get(element_id)
        if column is not None:
            return _ntp_to_us(column), np.ones(n, bool)
    column = columns.get(ie.FLOW_START_SYS_UP_TIME if start else ie.FLOW_END_SYS_UP_TIME)
    if column is not None and init_ms is not None:
        valid = init_ms >= 0
        return (init_ms + column.astype(np.int64)) * 1000, valid
    return np.zeros(n, np.int64), np.zeros(n, bool)


def build_records(
    columns: Columns,
    ctx: RecordContext,
    source: str,
    *,
    mappings: tuple[ElementMapping, ...] = (),
    schema: pa.Schema = NETFLOW_SCHEMA,
) -> pa.Table:
    """One usage-record table (``schema``) from the element columns of records that share
    one template (or one v5 batch); a biflow's reverse records follow the forward ones."""
    n = len(ctx.export_us)
    out: dict[str, pa.Array] = {}

    init_ms = ctx.init_ms
    in_record_init = columns.get(ie.SYSTEM_INIT_TIME_MILLISECONDS)
    if in_record_init is not None:
        init_ms = in_record_init.astype(np.int64)
    start_us, start_ok = _time_us(columns, ctx, start=True, init_ms=init_ms)
    end_us, end_ok = _time_us(columns, ctx, start=False, init_ms=init_ms)
    end_us = np.where(end_ok, end_us, np.where(start_ok, start_us, ctx.export_us))
    start_us = np.where(start_ok, start_us, end_us)
    out["start_time"] = pa.array(start_us, _TIMESTAMP)
    out["end_time"] = pa.array(end_us, _TIMESTAMP)
    out["duration_s"] = pa.array((end_us - start_us) / 1e6, pa.float64())

    src = _first(columns, ie.FIELD_SOURCES["src_ip"])
    next_hops = ie.FIELD_SOURCES["next_hop"]
    if src is not None and src[0] in ie.IPV6_ELEMENTS:
        # templates that carry both families of next hop fill the one of the flow's family
        next_hops = tuple(e for e in next_hops if e in ie.IPV6_ELEMENTS) + tuple(
            e for e in next_hops if e in ie.IPV4_ELEMENTS
        )
    for name, candidates in (
        ("src_ip", ie.FIELD_SOURCES["src_ip"]),
        ("dst_ip", ie.FIELD_SOURCES["dst_ip"]),
        ("next_hop", next_hops),
        ("post_nat_src_ip", ie.FIELD_SOURCES["post_nat_src_ip"]),
        ("post_nat_dst_ip", ie.FIELD_SOURCES["post_nat_dst_ip"]),
    ):
        found = _first(columns, candidates)
        if found is not None:
            out[name] = _address(*found)

    rate = ctx.sampling_rate.astype(np.uint64)
    for name in ("bytes", "packets"):
        found = _first(columns, ie.FIELD_SOURCES[name])
        if found is not None:
            out[name] = pa.array(found[1].astype(np.uint64) * rate, pa.uint64())
    out["sampling_rate"] = pa.array(ctx.sampling_rate.astype(np.uint32), pa.uint32())

    for name, dtype in _INTEGER_FIELDS.items():
        found = _first(columns, ie.FIELD_SOURCES[name])
        if found is not None:
            out[name] = pa.array(_clip(found[1], dtype))

    exporters = pa.array(ctx.exporters, pa.string())
    out["exporter"] = pc.take(exporters, pa.array(ctx.exporter_index, pa.int32()))
    out["source"] = pc.take(pa.array([source], pa.string()), pa.array(np.zeros(n, np.int32)))
    out.update(mapped_columns(columns, mappings, n))
    reverse = _reverse_records(columns, out, rate)
    if reverse is None:
        return conform(pa.table(out), schema)
    out["biflow_reverse"] = pa.array(np.zeros(n, bool))
    return pa.concat_tables([conform(pa.table(out), schema), conform(reverse, schema)])


def _reverse_records(
    columns: Columns, forward: dict[str, pa.Array], rate: np.ndarray
) -> pa.Table | None:
    """The reverse records of a biflow template (RFC 5103 §6.1), None for a one-way one."""
    reverse_bytes = _first(columns, ie.REVERSE_BYTES)
    reverse_packets = _first(columns, ie.REVERSE_PACKETS)
    if reverse_bytes is None and reverse_packets is None:
        return None
    n = len(rate)
    octets = np.zeros(n, np.uint64) if reverse_bytes is None else reverse_bytes[1]
    packets = np.zeros(n, np.uint64) if reverse_packets is None else reverse_packets[1]
    rows = np.flatnonzero((octets.astype(np.uint64) > 0) | (packets.astype(np.uint64) > 0))
    take = pa.array(rows, pa.int64())
    out = {name: pc.take(array, take) for name, array in forward.items() if name != "next_hop"}
    for a, b in _SWAPPED:
        out.pop(a, None)
        out.pop(b, None)
        if b in forward:
            out[a] = forward[b].take(take)
        if a in forward:
            out[b] = forward[a].take(take)
    rate = rate[rows].astype(np.uint64)
    out["bytes"] = pa.array(octets[rows].astype(np.uint64) * rate, pa.uint64())
    out["packets"] = pa.array(packets[rows].astype(np.uint64) * rate, pa.uint64())
    if reverse_bytes is None:
        del out["bytes"]
    if reverse_packets is None:
        del out["packets"]
    flags = columns.get(ie.REVERSE_TCP_CONTROL_BITS)
    out.pop("tcp_flags", None)
    if flags is not None:
        out["tcp_flags"] = pa.array(_clip(flags[rows], np.dtype(np.uint16)))
    out["biflow_reverse"] = pa.array(np.ones(len(rows), bool))
    return pa.table(out)
