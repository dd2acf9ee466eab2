"""Flow samples → usage records, counter samples → interface-counter records (columns).

Flow samples (sFlow v5 ``flow_sample`` 0:1 and ``flow_sample_expanded`` 0:3) and their
records, read for every sample of a batch at once:

* sampled packet: 0:1 raw header (``packet.py``), else 0:3 sampled IPv4, else 0:4
  sampled IPv6 (addresses, protocol, ports, TCP flags, TOS / priority); bytes are the
  agent's ``frame_length`` of the raw header (the packet as it was on the wire: layer 2
  header and FCS included, as sFlow defines it), else the IP length of 0:3 / 0:4, else
  the MAC length of 0:2 sampled Ethernet;
* 0:1001 extended switch: ``src_vlan``, ``dst_vlan`` (without it, ``src_vlan`` is the
  raw header's outer 802.1Q tag; ``inner_vlan`` is always the QinQ inner tag);
* 0:1002 extended router: ``next_hop``, ``src_mask``, ``dst_mask``;
* 0:1003 extended gateway (``gateway.py``): ``src_as``, ``dst_as``, ``as_path``, and
  the BGP next hop as ``next_hop`` when there is no router record.

Scaling (SYSTEM.md §2): each sample stands for ``sampling_rate`` packets, so
``packets = sampling_rate`` and ``bytes = length × sampling_rate``; a rate of 0 (not
said) takes the source's ``default_sampling_rate``.

Interfaces: the sample's input/output (compact: 2-bit format + 30-bit value;
expanded: both as words). Format 0 is an ifIndex (0 = unknown, 0x3FFFFFFF = the agent
itself: kept as they are); format 1 on output means the agent discarded the packet:
``output_if`` null, ``discard_reason`` the reason code; format 2 means several output
interfaces: ``output_if`` null.

Counter samples (0:2, expanded 0:4) with a generic interface counters record (0:1)
give one record each: ``input_if`` = ifIndex, the running totals in the ``if_*``
fields, ``bytes``/``packets`` null. Other counter records (Ethernet, VLAN, CPU …) and
other record formats are skipped by length.

When a sample carries a record type twice, the first one is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from netdistill.records.ip import ipv4_to_text, ipv6_to_text
from netdistill.sources.sflow.gateway import parse_gateways
from netdistill.sources.sflow.layout import (
    COUNTER_SAMPLE,
    FLOW_SAMPLE,
    Buffer,
    Items,
    Problems,
)
from netdistill.sources.sflow.packet import parse_headers

Columns = dict[str, pa.Array]

RAW_HEADER, SAMPLED_ETHERNET, SAMPLED_IPV4, SAMPLED_IPV6 = 1, 2, 3, 4
EXTENDED_SWITCH, EXTENDED_ROUTER, EXTENDED_GATEWAY = 1001, 1002, 1003
GENERIC_INTERFACE = 1
_PORT_PROTOCOLS = (6, 17, 132)
_MAX_VLAN = 4095  # 802.1Q VLAN ids are 12 bits; agents say 0xFFFFFFFF for "none"


@dataclass(slots=True)
class SampleHeaders:
    """The fixed part of flow or counter samples (one entry per sample)."""

    datagram: np.ndarray
    sequence: np.ndarray
    source_type: np.ndarray
    source_index: np.ndarray
    records: np.ndarray  # record count
    first_record: np.ndarray  # absolute offset
    end: np.ndarray  # absolute offset of the sample's end
    # flow samples only (zeros for counters)
    sampling_rate: np.ndarray
    sample_pool: np.ndarray
    drops: np.ndarray
    input_format: np.ndarray
    input_value: np.ndarray
    output_format: np.ndarray
    output_value: np.ndarray


def read_sample_headers(
    buf: Buffer, problems: Problems, samples: Items, *, flow: bool
) -> SampleHeaders:
    """Fixed headers of ``samples`` (all flow or all counter samples)."""
    body, length = samples.body, samples.length
    datagram = samples.owner
    compact = samples.tag == (FLOW_SAMPLE if flow else COUNTER_SAMPLE)
    u32 = buf.u32
    fixed = np.where(compact, 32, 44) if flow else np.where(compact, 12, 16)
    short = length < fixed
    problems.mark(datagram[short], body[short] - 4, 8, length[short])
    word = [u32(body + 4 * k) for k in range(11 if flow else 4)]
    sequence = word[0]
    source_type = np.where(compact, word[1] >> 24, word[1])
    source_index = np.where(compact, word[1] & 0xFFFFFF, word[2])
    zeros = np.zeros(len(body), np.int64)
    if flow:
        c = compact
        records = np.where(c, word[7], word[10])
        sampling_rate = np.where(c, word[2], word[3])
        sample_pool = np.where(c, word[3], word[4])
        drops = np.where(c, word[4], word[5])
        input_format = np.where(c, word[5] >> 30, word[6])
        input_value = np.where(c, word[5] & 0x3FFFFFFF, word[7])
        output_format = np.where(c, word[6] >> 30, word[8])
        output_value = np.where(c, word[6] & 0x3FFFFFFF, word[9])
    else:
        records = np.where(compact, word[2], word[3])
        sampling_rate = sample_pool = drops = zeros
        input_format = input_value = output_format = output_value = zeros
    first = body + fixed
    end = body + length
    too_many = ~short & (records * 8 > end - first)
    problems.mark(datagram[too_many], first[too_many] - 4, 9, records[too_many])
    return SampleHeaders(
        datagram=datagram,
        sequence=sequence,
        source_type=source_type,
        source_index=source_index,
        records=np.where(short | too_many, 0, records),
        first_record=first,
        end=end,
        sampling_rate=sampling_rate,
        sample_pool=sample_pool,
        drops=drops,
        input_format=input_format,
        input_value=input_value,
        output_format=output_format,
        output_value=output_value,
    )


def _first_of(records: Items, tag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sample, body, length) of the first record of format ``tag`` in each sample."""
    selected = records.tag == tag
    owners = records.owner[selected]
    if len(owners) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    # records come in (sample, position) order: the first of a sample is where the
    # sample number changes
    first = np.flatnonzero(np.diff(owners, prepend=-1) != 0)
    return owners[first], records.body[selected][first], records.length[selected][first]


def _need(
    problems: Problems,
    samples: SampleHeaders,
    owners: np.ndarray,
    body: np.ndarray,
    length: np.ndarray,
    minimum: np.ndarray | int,
) -> np.ndarray:
    """Mark records shorter than ``minimum`` bytes; returns the mask of long enough ones."""
    short = length < minimum
    problems.mark(samples.datagram[owners[short]], body[short] - 4, 11, length[short])
    return ~short


class _Row:
    """Per-sample output columns being filled: values and validity."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.values: dict[str, np.ndarray] = {}
        self.valid: dict[str, np.ndarray] = {}

    def set(self, name: str, rows: np.ndarray, values: np.ndarray, where: np.ndarray) -> None:
        """Fill ``name`` at ``rows`` where ``where`` and not filled yet (first wins)."""
        column = self.values.setdefault(name, np.zeros(self.n, np.int64))
        valid = self.valid.setdefault(name, np.zeros(self.n, bool))
        take = where & ~valid[rows]
        column[rows[take]] = values[take]
        valid[rows[take]] = True

    def array(
        self, name: str, dtype: np.dtype, arrow: pa.DataType, maximum: int | None = None
    ) -> pa.Array:
        """The column as ``arrow``; a value above ``maximum`` (default: the type's) is
        not what the field can mean (a VLAN of 0xFFFFFFFF, a port of 2^20) and becomes
        null rather than wrap around."""
        valid = self.valid.get(name)
        if valid is None:
            return pa.nulls(self.n, arrow)
        values = self.values[name]
        limit = int(np.iinfo(dtype).max) if maximum is None else maximum
        return pa.array(values.astype(dtype), arrow, mask=~(valid & (values <= limit)))


def ip_text(
    n: int,
    v4_rows: np.ndarray,
    v4: np.ndarray,
    v6_rows: np.ndarray,
    v6: np.ndarray,
) -> pa.Array:
    """Text addresses: ``v4[i]`` at ``v4_rows[i]``, ``v6[i]`` at ``v6_rows[i]``, null
    elsewhere (a row in both takes its IPv4 value)."""
    texts4 = ipv4_to_text(v4)
    texts6 = ipv6_to_text(v6)
    null = len(texts4) + len(texts6)
    index = np.full(n, null, np.int64)
    index[v6_rows] = len(texts4) + np.arange(len(v6_rows))
    index[v4_rows] = np.arange(len(v4_rows))
    combined = pa.concat_arrays([texts4, texts6, pa.nulls(1, pa.string())])
    return combined.take(pa.array(index))


def flow_columns(
    buf: Buffer,
    problems: Problems,
    samples: SampleHeaders,
    records: Items,
    default_sampling_rate: int,
) -> Columns:
    """The usage-record columns of every flow sample (rows in sample order). Problems
    found in records are marked; the caller drops the rows of bad datagrams."""
    n = len(samples.datagram)
    row = _Row(n)
    u32 = buf.u32
    src4: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, uint32) in priority order
    dst4: list[tuple[np.ndarray, np.ndarray]] = []
    src6: list[tuple[np.ndarray, np.ndarray]] = []
    dst6: list[tuple[np.ndarray, np.ndarray]] = []

    # --- 0:1 raw packet header ------------------------------------------------------
    owners, body, length = _first_of(records, RAW_HEADER)
    ok = _need(problems, samples, owners, body, length, 16)
    header_length = u32(body + 12)
    too_long = ok & (header_length > length - 16)
    problems.mark(
        samples.datagram[owners[too_long]], body[too_long] + 12, 12, header_length[too_long]
    )
    ok &= ~too_long
    row.set("length", owners, u32(body + 4), ok)
    packet = parse_headers(buf, body + 16, np.where(ok, header_length, 0), u32(body))
    ip_ok = ok & packet.ip_ok
    src4.append((owners[ip_ok & packet.is_v4], packet.src_v4[ip_ok & packet.is_v4]))
    dst4.append((owners[ip_ok & packet.is_v4], packet.dst_v4[ip_ok & packet.is_v4]))
    src6.append((owners[ip_ok & packet.is_v6], packet.src_v6[ip_ok & packet.is_v6]))
    dst6.append((owners[ip_ok & packet.is_v6], packet.dst_v6[ip_ok & packet.is_v6]))
    row.set("ip", owners, np.ones(len(owners), np.int64), ip_ok)
    row.set("protocol", owners, packet.protocol, ip_ok)
    row.set("tos", owners, packet.tos, ip_ok)
    row.set("src_port", owners, packet.src_port, ok & packet.ports_ok)
    row.set("dst_port", owners, packet.dst_port, ok & packet.ports_ok)
    row.set("tcp_flags", owners, packet.tcp_flags, ok & packet.tcp_flags_ok)
    row.set("icmp_type", owners, packet.icmp_type, ok & packet.icmp_ok)
    row.set("icmp_code", owners, packet.icmp_code, ok & packet.icmp_ok)
    row.set("inner_vlan", owners, packet.inner_vlan, ok & packet.inner_vlan_ok)
    header_vlan = (owners, packet.outer_vlan, ok & packet.outer_vlan_ok)

    # --- 0:3 sampled IPv4 and 0:4 sampled IPv6 --------------------------------------
    for tag, size, address, after in ((SAMPLED_IPV4, 32, 4, 16), (SAMPLED_IPV6, 56, 16, 40)):
        owners, body, length = _first_of(records, tag)
        ok = _need(problems, samples, owners, body, length, size)
        fresh = ok & ~row.valid.get("ip", np.zeros(n, bool))[owners]
        protocol = u32(body + 4)
        row.set("length", owners, u32(body), ok)
        row.set("ip", owners, np.ones(len(owners), np.int64), fresh)
        row.set("protocol", owners, protocol, fresh)
        ports = fresh & np.isin(protocol, _PORT_PROTOCOLS)
        row.set("src_port", owners, u32(body + after), ports)
        row.set("dst_port", owners, u32(body + after + 4), ports)
        row.set("tcp_flags", owners, u32(body + after + 8), fresh & (protocol == 6))
        row.set("tos", owners, u32(body + after + 12), fresh)
        if address == 4:
            src4.append((owners[fresh], u32(body + 8)[fresh].astype(np.uint32)))
            dst4.append((owners[fresh], u32(body + 12)[fresh].astype(np.uint32)))
        else:
            src6.append((owners[fresh], buf.bytes16(body[fresh] + 8)))
            dst6.append((owners[fresh], buf.bytes16(body[fresh] + 24)))

    # --- 0:2 sampled Ethernet: only the length, when nothing better said it ----------
    owners, body, length = _first_of(records, SAMPLED_ETHERNET)
    ok = _need(problems, samples, owners, body, length, 24)
    row.set("length", owners, u32(body), ok)

    # --- 0:1001 extended switch -----------------------------------------------------
    owners, body, length = _first_of(records, EXTENDED_SWITCH)
    ok = _need(problems, samples, owners, body, length, 16)
    src_vlan, dst_vlan = u32(body), u32(body + 8)
    row.set("src_vlan", owners, src_vlan, ok & (src_vlan <= _MAX_VLAN))
    row.set("dst_vlan", owners, dst_vlan, ok & (dst_vlan <= _MAX_VLAN))
    row.set("src_vlan", *header_vlan)

    # --- 0:1002 extended router -----------------------------------------------------
    owners, body, length = _first_of(records, EXTENDED_ROUTER)
    address_type = u32(body)
    bad_type = (address_type != 1) & (address_type != 2) & (length >= 4)
    problems.mark(samples.datagram[owners[bad_type]], body[bad_type], 13, address_type[bad_type])
    is_v6 = address_type == 2
    ok = _need(problems, samples, owners, body, length, np.where(is_v6, 28, 16)) & ~bad_type
    masks_at = body + np.where(is_v6, 20, 8)
    row.set("src_mask", owners, u32(masks_at), ok)
    row.set("dst_mask", owners, u32(masks_at + 4), ok)
    hop4 = ok & ~is_v6
    hop6 = ok & is_v6
    next_hop4 = [(owners[hop4], u32(body + 4)[hop4].astype(np.uint32))]
    next_hop6 = [(owners[hop6], buf.bytes16(body[hop6] + 4))]
    row.set("next_hop", owners, np.ones(len(owners), np.int64), ok)

    # --- 0:1003 extended gateway ----------------------------------------------------
    owners, body, length = _first_of(records, EXTENDED_GATEWAY)
    if len(owners):
        gateways = parse_gateways(buf, body, length)
        bad = gateways.problem_offset >= 0
        problems.mark(
            samples.datagram[owners[bad]], gateways.problem_offset[bad], 14,
            gateways.problem_value[bad],
        )  # fmt: skip
        ok = ~bad
        row.set("src_as", owners, gateways.src_as, ok)
        row.set("dst_as", owners, gateways.dst_as, ok)
        fresh = ok & ~row.valid.get("next_hop", np.zeros(n, bool))[owners]
        hop4, hop6 = fresh & ~gateways.next_hop_is_v6, fresh & gateways.next_hop_is_v6
        next_hop4.append((owners[hop4], gateways.next_hop_v4[hop4]))
        next_hop6.append((owners[hop6], gateways.next_hop_v6[hop6]))
        path_index = np.full(n, len(owners), np.int64)
        path_index[owners[ok]] = np.flatnonzero(ok)
        as_path = pa.concat_arrays([gateways.as_path, pa.nulls(1, pa.string())]).take(
            pa.array(path_index)
        )
    else:
        as_path = pa.nulls(n, pa.string())

    # --- sample header: rate, interfaces --------------------------------------------
    everyone = np.arange(n)
    rate = np.where(samples.sampling_rate == 0, default_sampling_rate, samples.sampling_rate)
    for side in ("input", "output"):
        fmt = getattr(samples, f"{side}_format")
        value = getattr(samples, f"{side}_value")
        row.set(f"{side}_if", everyone, value, fmt == 0)
    row.set("discard_reason", everyone, samples.output_value, samples.output_format == 1)

    def joined(parts: list[tuple[np.ndarray, np.ndarray]], width: int) -> tuple:
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        shape = (0, 16) if width == 16 else (0,)
        values = (
            np.concatenate([p[1] for p in parts])
            if parts
            else np.zeros(shape, np.uint8 if width == 16 else np.uint32)
        )
        return rows, values

    length_valid = row.valid.get("length", np.zeros(n, bool))
    length_values = row.values.get("length", np.zeros(n, np.int64)).astype(np.uint64)
    uint64 = np.dtype(np.uint64)
    return {
        "src_ip": ip_text(n, *joined(src4, 4), *joined(src6, 16)),
        "dst_ip": ip_text(n, *joined(dst4, 4), *joined(dst6, 16)),
        "next_hop": ip_text(n, *joined(next_hop4, 4), *joined(next_hop6, 16)),
        "src_port": row.array("src_port", np.dtype(np.uint16), pa.uint16()),
        "dst_port": row.array("dst_port", np.dtype(np.uint16), pa.uint16()),
        "protocol": row.array("protocol", np.dtype(np.uint8), pa.uint8()),
        "tos": row.array("tos", np.dtype(np.uint8), pa.uint8()),
        "tcp_flags": row.array("tcp_flags", np.dtype(np.uint16), pa.uint16()),
        "bytes": pa.array(length_values * rate.astype(uint64), pa.uint64(), mask=~length_valid),
        "packets": pa.array(rate.astype(uint64), pa.uint64()),
        "sampling_rate": pa.array(rate.astype(np.uint32), pa.uint32()),
        "input_if": row.array("input_if", np.dtype(np.uint32), pa.uint32()),
        "output_if": row.array("output_if", np.dtype(np.uint32), pa.uint32()),
        "discard_reason": row.array("discard_reason", np.dtype(np.uint32), pa.uint32()),
        "src_as": row.array("src_as", np.dtype(np.uint32), pa.uint32()),
        "dst_as": row.array("dst_as", np.dtype(np.uint32), pa.uint32()),
        "as_path": as_path,
        "src_vlan": row.array("src_vlan", np.dtype(np.uint16), pa.uint16(), _MAX_VLAN),
        "dst_vlan": row.array("dst_vlan", np.dtype(np.uint16), pa.uint16(), _MAX_VLAN),
        "inner_vlan": row.array("inner_vlan", np.dtype(np.uint16), pa.uint16()),
        "src_mask": row.array("src_mask", np.dtype(np.uint8), pa.uint8(), 128),
        "dst_mask": row.array("dst_mask", np.dtype(np.uint8), pa.uint8(), 128),
        "icmp_type": row.array("icmp_type", np.dtype(np.uint8), pa.uint8()),
        "icmp_code": row.array("icmp_code", np.dtype(np.uint8), pa.uint8()),
    }


#: generic interface counters (0:1): field → (offset, words to add up); 88 bytes
_INTERFACE_COUNTERS: dict[str, tuple[int, ...]] = {
    "if_in_packets": (32, 36, 40),
    "if_in_discards": (44,),
    "if_in_errors": (48,),
    "if_out_packets": (64, 68, 72),
    "if_out_discards": (76,),
    "if_out_errors": (80,),
}


def counter_columns(
    buf: Buffer, problems: Problems, samples: SampleHeaders, records: Items
) -> tuple[np.ndarray, Columns]:
    """(sample of each row, columns): one row per counter sample with a generic
    interface counters record."""
    owners, body, length = _first_of(records, GENERIC_INTERFACE)
    ok = _need(problems, samples, owners, body, length, 88)
    owners, body = owners[ok], body[ok]
    columns: Columns = {
        "input_if": pa.array(buf.u32(body).astype(np.uint32), pa.uint32()),
        "if_speed": pa.array(buf.u64(body + 8), pa.uint64()),
        "if_in_octets": pa.array(buf.u64(body + 24), pa.uint64()),
        "if_out_octets": pa.array(buf.u64(body + 56), pa.uint64()),
    }
    for name, offsets in _INTERFACE_COUNTERS.items():
        total = sum((buf.u32(body + offset) for offset in offsets), np.zeros(len(body), np.int64))
        columns[name] = pa.array(total.astype(np.uint64), pa.uint64())
    return owners, columns
