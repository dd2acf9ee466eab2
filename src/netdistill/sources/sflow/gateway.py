"""Extended gateway records (sFlow v5 flow record 0:1003): BGP next hop, AS numbers and
the AS path, one record at a time.

The AS path is a list of segments (1 = AS_SET, 2 = AS_SEQUENCE, as in BGP), each a
counted list of AS numbers, followed by a counted list of communities: nested and
variable-length. Routers send one AS_SEQUENCE (or none) almost always, so that shape is
read for all records at once (gathers, the path text joined by Arrow's
``binary_join`` over a list array); any other shape, and any record whose lengths do
not fit, goes through a ``struct`` walk one record at a time, which is also the one
place that says what is wrong with a bad record. The benchmark's ``sflow+bgp`` line
measures the common case.

Mapping: ``src_as`` as given; ``dst_as`` is the last AS of the path (the origin AS of
the destination prefix), 0 when the path is empty (NetFlow's "no BGP AS" value);
``as_path`` is the path as text, sequences as space-separated numbers and sets in
braces: ``64500 64501 {64502 64503}``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from netdistill.errors import GatewayError
from netdistill.sources.sflow.layout import Buffer

_U32 = struct.Struct(">I")
_FIXED = struct.Struct(">III")  # as, src_as, src_peer_as
#: AS numbers and communities one gateway record may list: bounds the loops; a longer
#: list is refused as malformed (a real path is a few dozen)
MAX_LIST = 4096


@dataclass(slots=True)
class Gateways:
    next_hop_is_v6: np.ndarray
    next_hop_v4: np.ndarray  # uint32
    next_hop_v6: np.ndarray  # (n, 16) uint8
    src_as: np.ndarray
    dst_as: np.ndarray
    as_path: pa.Array  # string
    #: per record: absolute offset of a problem, or -1
    problem_offset: np.ndarray
    problem_value: np.ndarray


def parse_gateways(buf: Buffer, body: np.ndarray, length: np.ndarray) -> Gateways:
    """The gateway records at ``body`` (absolute offsets) of ``length`` bytes."""
    n = len(body)
    u32 = buf.u32
    end = body + length
    address_type = u32(body)
    is_v6 = address_type == 2
    fixed = body + 4 + np.where(is_v6, 16, 4)  # as, src_as, src_peer_as, segments
    segments = u32(fixed + 12)
    path = fixed + 16
    count = np.where(segments == 1, u32(path + 4), 0)
    segment_type = u32(path)
    after = np.where(segments == 1, path + 8 + 4 * np.minimum(count, MAX_LIST), path)
    communities = u32(after)
    simple = (
        ((address_type == 1) | is_v6)
        & (fixed + 16 <= end)
        & ((segments == 0) | ((segments == 1) & (segment_type == 2) & (count <= MAX_LIST)))
        & (after + 4 <= end)
        & (communities <= MAX_LIST)
        & (after + 8 + 4 * np.minimum(communities, MAX_LIST) <= end)
    )
    count = np.where(simple, count, 0)
    next_hop_v6 = np.zeros((n, 16), np.uint8)
    if is_v6.any():
        next_hop_v6[is_v6] = buf.bytes16(body[is_v6] + 4)
    out = Gateways(
        next_hop_is_v6=is_v6 & simple,
        next_hop_v4=np.where(simple & ~is_v6, u32(body + 4), 0).astype(np.uint32),
        next_hop_v6=next_hop_v6,
        src_as=np.where(simple, u32(fixed + 4), 0),
        dst_as=np.where(count > 0, u32(path + 8 + 4 * (count - 1)), 0),
        as_path=_join_paths(buf, path + 8, count),
        problem_offset=np.full(n, -1, np.int64),
        problem_value=np.zeros(n, np.int64),
    )
    others = np.flatnonzero(~simple)
    if len(others):
        paths = out.as_path.to_pylist()
        for i in others.tolist():
            try:
                paths[i] = _parse_one(buf.data, int(body[i]), int(end[i]), i, out)
            except GatewayError as exc:
                out.problem_offset[i] = exc.offset
                out.problem_value[i] = exc.value
        out.as_path = pa.array(paths, pa.string())
    return out


def _join_paths(buf: Buffer, first: np.ndarray, count: np.ndarray) -> pa.Array:
    """``count[i]`` AS numbers from ``first[i]`` as one space-separated text per row."""
    offsets = np.zeros(len(count) + 1, np.int64)
    np.cumsum(count, out=offsets[1:])
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], count)
    numbers = buf.u32(np.repeat(first, count) + 4 * within)
    texts = pa.array(numbers.astype(np.uint32)).cast(pa.string())
    lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), texts)
    return pc.binary_join(lists, " ")


def _need(position: int, size: int, end: int) -> None:
    if position + size > end:
        raise GatewayError(position, end - position)


def _parse_one(data: bytes, position: int, end: int, i: int, out: Gateways) -> str:
    """Fill row ``i`` of ``out`` from the record at ``position``; returns its AS path."""
    unpack = _U32.unpack_from
    _need(position, 4, end)
    (address_type,) = unpack(data, position)
    if address_type not in (1, 2):
        raise GatewayError(position, address_type)
    position += 4
    if address_type == 1:
        _need(position, 4, end)
        out.next_hop_v4[i] = unpack(data, position)[0]
        position += 4
    else:
        _need(position, 16, end)
        out.next_hop_is_v6[i] = True
        out.next_hop_v6[i] = np.frombuffer(data, np.uint8, 16, position)
        position += 16
    _need(position, 16, end)
    _, src_as, _ = _FIXED.unpack_from(data, position)
    (segments,) = unpack(data, position + 12)
    position += 16
    if segments > MAX_LIST:
        raise GatewayError(position - 4, segments)
    parts: list[str] = []
    dst_as = 0
    for _ in range(segments):
        _need(position, 8, end)
        segment_type, count = struct.unpack_from(">II", data, position)
        position += 8
        if count > MAX_LIST:
            raise GatewayError(position - 4, count)
        _need(position, 4 * count, end)
        numbers = struct.unpack_from(f">{count}I", data, position)
        position += 4 * count
        if numbers:
            dst_as = numbers[-1]
            text = " ".join(map(str, numbers))
            parts.append("{" + text + "}" if segment_type == 1 else text)
    _need(position, 4, end)
    (communities,) = unpack(data, position)
    if communities > MAX_LIST:
        raise GatewayError(position, communities)
    _need(position + 4, 4 * communities + 4, end)  # the communities and localpref
    out.src_as[i] = src_as
    out.dst_as[i] = dst_as
    return " ".join(parts)
