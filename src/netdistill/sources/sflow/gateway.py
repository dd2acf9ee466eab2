"""Extended gateway records (sFlow v5 flow record 0:1003): BGP next hop, AS numbers and
the AS path, one record at a time.

The AS path is a list of segments (1 = AS_SET, 2 = AS_SEQUENCE, as in BGP), each a
counted list of AS numbers, followed by a counted list of communities: a nested,
variable-length structure with nothing to vectorize over. Only routers with BGP send
it, once per flow sample, so this loop runs at most once per sample, over ``struct``;
its cost is in the benchmark's "with gateway" figure.

Mapping: ``src_as`` as given; ``dst_as`` is the last AS of the path (the origin AS of
the destination prefix), 0 when the path is empty (NetFlow's "no BGP AS" value);
``as_path`` is the path as text, sequences as space-separated numbers and sets in
braces: ``64500 64501 {64502 64503}``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

_U32 = struct.Struct(">I")
_FIXED = struct.Struct(">III")  # as, src_as, src_peer_as
#: AS numbers and communities one gateway record may list: bounds the loops; a longer
#: list is refused as malformed (a real path is a few dozen)
MAX_LIST = 4096


class GatewayError(Exception):
    def __init__(self, offset: int, value: int) -> None:
        self.offset = offset
        self.value = value


@dataclass(slots=True)
class Gateways:
    next_hop_is_v6: np.ndarray
    next_hop_v4: np.ndarray  # uint32
    next_hop_v6: np.ndarray  # (n, 16) uint8
    src_as: np.ndarray
    dst_as: np.ndarray
    as_path: list[str]
    #: per record: absolute offset of a problem, or -1
    problem_offset: np.ndarray
    problem_value: np.ndarray


def parse_gateways(data: bytes, body: np.ndarray, length: np.ndarray) -> Gateways:
    n = len(body)
    out = Gateways(
        next_hop_is_v6=np.zeros(n, bool),
        next_hop_v4=np.zeros(n, np.uint32),
        next_hop_v6=np.zeros((n, 16), np.uint8),
        src_as=np.zeros(n, np.int64),
        dst_as=np.zeros(n, np.int64),
        as_path=[""] * n,
        problem_offset=np.full(n, -1, np.int64),
        problem_value=np.zeros(n, np.int64),
    )
    for i, (start, size) in enumerate(zip(body.tolist(), length.tolist(), strict=True)):
        try:
            _parse_one(data, start, start + size, i, out)
        except GatewayError as exc:
            out.problem_offset[i] = exc.offset
            out.problem_value[i] = exc.value
    return out


def _need(position: int, size: int, end: int) -> None:
    if position + size > end:
        raise GatewayError(position, end - position)


def _parse_one(data: bytes, position: int, end: int, i: int, out: Gateways) -> None:
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
    out.as_path[i] = " ".join(parts)
