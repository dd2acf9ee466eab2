"""NetFlow v5: fixed 24-byte header and 48-byte flow records (Cisco's "NetFlow Export
Datagram Format", version 5).

All record blocks of a batch are joined and read with one ``np.frombuffer`` call; the
header values each record needs (export time, uptime, exporter, sampling rate) are
broadcast with ``np.repeat``. Records map onto the same element numbers as v9 (v9's
field types were defined from v5's record), so ``flows.build_records`` serves both.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from netdistill.errors import DecodeError
from netdistill.sources.netflow import elements as ie
from netdistill.sources.netflow.extract import Columns

HEADER = struct.Struct(">HHIIIIBBH")
HEADER_LENGTH: Final = HEADER.size  # 24
RECORD_LENGTH: Final = 48

RECORD_DTYPE: Final = np.dtype(
    [
        ("srcaddr", ">u4"),
        ("dstaddr", ">u4"),
        ("nexthop", ">u4"),
        ("input", ">u2"),
        ("output", ">u2"),
        ("dPkts", ">u4"),
        ("dOctets", ">u4"),
        ("first", ">u4"),
        ("last", ">u4"),
        ("srcport", ">u2"),
        ("dstport", ">u2"),
        ("pad1", "u1"),
        ("tcp_flags", "u1"),
        ("prot", "u1"),
        ("tos", "u1"),
        ("src_as", ">u2"),
        ("dst_as", ">u2"),
        ("src_mask", "u1"),
        ("dst_mask", "u1"),
        ("pad2", ">u2"),
    ]
)
assert RECORD_DTYPE.itemsize == RECORD_LENGTH

_ELEMENT_OF: Final = {
    "srcaddr": ie.SOURCE_IPV4_ADDRESS,
    "dstaddr": ie.DESTINATION_IPV4_ADDRESS,
    "nexthop": ie.IP_NEXT_HOP_IPV4_ADDRESS,
    "input": ie.INGRESS_INTERFACE,
    "output": ie.EGRESS_INTERFACE,
    "dPkts": ie.PACKET_DELTA_COUNT,
    "dOctets": ie.OCTET_DELTA_COUNT,
    "first": ie.FLOW_START_SYS_UP_TIME,
    "last": ie.FLOW_END_SYS_UP_TIME,
    "srcport": ie.SOURCE_TRANSPORT_PORT,
    "dstport": ie.DESTINATION_TRANSPORT_PORT,
    "tcp_flags": ie.TCP_CONTROL_BITS,
    "prot": ie.PROTOCOL_IDENTIFIER,
    "tos": ie.IP_CLASS_OF_SERVICE,
    "src_as": ie.BGP_SOURCE_AS_NUMBER,
    "dst_as": ie.BGP_DESTINATION_AS_NUMBER,
}


@dataclass(frozen=True, slots=True)
class V5Header:
    count: int
    sys_uptime_ms: int
    export_us: int
    flow_sequence: int
    engine_type: int
    engine_id: int
    #: low 14 bits of sampling_interval; the top 2 bits are the sampling mode
    sampling_interval: int


def parse_header(payload: bytes) -> V5Header:
    if len(payload) < HEADER_LENGTH:
        raise DecodeError(
            "truncated", offset=len(payload), detail="NetFlow v5 header needs 24 bytes"
        )
    _, count, uptime, secs, nsecs, sequence, engine_type, engine_id, sampling = HEADER.unpack_from(
        payload
    )
    needed = HEADER_LENGTH + RECORD_LENGTH * count
    if len(payload) < needed:
        raise DecodeError(
            "truncated",
            offset=len(payload),
            detail=f"NetFlow v5 header count {count} needs {needed} bytes, got {len(payload)}",
        )
    return V5Header(
        count,
        uptime,
        secs * 1_000_000 + nsecs // 1000,
        sequence,
        engine_type,
        engine_id,
        sampling & 0x3FFF,
    )


@dataclass(slots=True)
class V5Batch:
    """Record blocks of the v5 datagrams of one decode call, and their headers."""

    blocks: list[memoryview] = field(default_factory=list)
    headers: list[V5Header] = field(default_factory=list)
    exporter_index: list[int] = field(default_factory=list)
    rates: list[int] = field(default_factory=list)

    def add(self, payload: bytes, header: V5Header, exporter_index: int, rate: int) -> None:
        if header.count == 0:
            return
        view = memoryview(payload)
        self.blocks.append(view[HEADER_LENGTH : HEADER_LENGTH + RECORD_LENGTH * header.count])
        self.headers.append(header)
        self.exporter_index.append(exporter_index)
        self.rates.append(rate)

    def columns(self) -> tuple[Columns, np.ndarray]:
        """(element columns, records per datagram) of every record, one frombuffer."""
        counts = np.array([h.count for h in self.headers], dtype=np.int64)
        records = np.frombuffer(b"".join(self.blocks), dtype=RECORD_DTYPE)
        columns: Columns = {
            element: records[name].astype(records[name].dtype.newbyteorder("="))
            for name, element in _ELEMENT_OF.items()
        }
        return columns, counts
