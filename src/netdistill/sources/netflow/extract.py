"""Column extraction: the data records of one template, all at once, into numpy arrays.

A fixed-length template becomes one numpy structured dtype — big-endian integer fields at
their byte offsets, only the wanted elements named, everything else (unknown and
enterprise elements, RFC 7011 §3.2) covered by ``itemsize`` — so the records of every
data set of that template in a batch decode with one ``np.frombuffer`` call. Integers in
reduced-size encoding (RFC 7011 §6.2: e.g. octetDeltaCount in 4 bytes, or odd lengths
such as 3) are read as a ``(L,)u1`` subarray and assembled with shifts.

Templates with variable-length fields (IPFIX, RFC 7011 §7: length 65535, a 1-byte length
or 255 + a 2-byte length) cannot be mapped by a dtype: ``walk_variable`` walks record by
record — inherently sequential, each record's start depends on the previous record's
lengths — but only to find offsets; the values are then gathered with numpy fancy
indexing for all records at once.

Elements the scheme maps to fields (``Template.mapped``) are read a second time, as raw
``(n, L)`` bytes under ``raw_key(key)`` (a negative number: never an element key), so a
mapping can read an element that the decoder also reads as an integer. Mapped
variable-length elements are not read (their field stays null; docs/netflow.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from netdistill.errors import DecodeError
from netdistill.sources.base import MALFORMED
from netdistill.sources.netflow.elements import IPV4_ELEMENTS, IPV6_ELEMENTS
from netdistill.sources.netflow.templates import VARIABLE_LENGTH, Template

Columns = dict[int, np.ndarray]


def raw_key(key: int) -> int:
    """Where the raw bytes of mapped element ``key`` are kept in ``Columns``."""
    return -(key + 1)


_NATIVE = {1: np.dtype(">u1"), 2: np.dtype(">u2"), 4: np.dtype(">u4"), 8: np.dtype(">u8")}


def _usable(element_id: int, length: int) -> bool:
    """Addresses of the wrong length cannot be read as addresses; zero-length and
    variable-length wanted elements carry no usable integer either."""
    if length in (0, VARIABLE_LENGTH):
        return False
    if element_id in IPV4_ELEMENTS:
        return length == 4
    if element_id in IPV6_ELEMENTS:
        return length == 16
    return True


@dataclass(frozen=True, slots=True)
class FixedLayout:
    dtype: np.dtype
    #: element id → field name in ``dtype``
    names: dict[int, str]


@lru_cache(maxsize=4096)
def fixed_layout(template: Template) -> FixedLayout:
    """The structured dtype of a fixed-length template (cached: a template is immutable
    and a collector sees few distinct ones)."""
    assert template.record_length is not None
    offsets: list[int] = []
    position = 0
    for f in template.fields:
        offsets.append(position)
        position += f.length
    names: dict[int, str] = {}
    formats: list[object] = []
    positions: list[int] = []
    for element_id, index in sorted(template.wanted.items()):
        length = template.fields[index].length
        if not _usable(element_id, length):
            continue
        name = f"e{element_id}"
        names[element_id] = name
        formats.append(_NATIVE.get(length, (np.uint8, (length,))))
        positions.append(offsets[index])
    for key, index in sorted(template.mapped_at.items()):
        length = template.fields[index].length
        if length in (0, VARIABLE_LENGTH):
            continue
        names[raw_key(key)] = f"m{key}"
        formats.append((np.uint8, (length,)))
        positions.append(offsets[index])
    dtype = np.dtype(
        {
            "names": list(names.values()),
            "formats": formats,
            "offsets": positions,
            "itemsize": template.record_length,
        }
    )
    return FixedLayout(dtype, names)


def assemble_uint(matrix: np.ndarray) -> np.ndarray:
    """``(n, L)`` big-endian bytes → uint64 (the last 8 bytes when L > 8)."""
    matrix = matrix[:, -8:]
    out = np.zeros(matrix.shape[0], dtype=np.uint64)
    for k in range(matrix.shape[1]):
        out = (out << np.uint64(8)) | matrix[:, k].astype(np.uint64)
    return out


def _native(column: np.ndarray) -> np.ndarray:
    if column.ndim == 2:
        return column
    return column.astype(column.dtype.newbyteorder("="))


def decode_fixed(template: Template, data: bytes, count: int) -> Columns:
    """Wanted elements of ``count`` consecutive records in ``data``. IPv6 addresses stay
    ``(n, 16)`` uint8; other odd-length fields become uint64."""
    layout = fixed_layout(template)
    if count == 0:
        return {e: np.zeros(0, dtype=np.uint64) for e in layout.names}
    records = np.frombuffer(data, dtype=layout.dtype, count=count)
    out: Columns = {}
    for element_id, name in layout.names.items():
        column = records[name]
        if element_id < 0:
            out[element_id] = np.ascontiguousarray(column)
        elif column.ndim == 2 and element_id not in IPV6_ELEMENTS:
            out[element_id] = assemble_uint(column)
        else:
            out[element_id] = _native(column)
    return out


@lru_cache(maxsize=4096)
def _variable_plan(template: Template) -> tuple[tuple[int, ...], dict[int, tuple[int, int, int]]]:
    """Segments of fixed fields between variable ones, and for each usable wanted element
    (segment, offset in segment, length)."""
    segment_lengths: list[int] = []
    where: dict[int, tuple[int, int, int]] = {}
    wanted_at = {index: element for element, index in template.wanted.items()}
    mapped_at = {index: key for key, index in template.mapped_at.items()}
    segment, position = 0, 0
    for index, f in enumerate(template.fields):
        if f.length == VARIABLE_LENGTH:
            segment_lengths.append(position)
            segment, position = segment + 1, 0
            continue
        element = wanted_at.get(index)
        if element is not None and _usable(element, f.length):
            where[element] = (segment, position, f.length)
        mapped = mapped_at.get(index)
        if mapped is not None and f.length:
            where[raw_key(mapped)] = (segment, position, f.length)
        position += f.length
    segment_lengths.append(position)
    return tuple(segment_lengths), where


def walk_variable(template: Template, data: bytes, start: int, end: int) -> np.ndarray:
    """Start offset of every segment of every record in ``data[start:end]``: an
    ``(n, segments)`` int64 array. Bytes left over shorter than a minimal record are
    padding (RFC 7011 §3.3.1); a record running past ``end`` raises ``DecodeError``."""
    segment_lengths, _ = _variable_plan(template)
    n_segments = len(segment_lengths)
    starts: list[int] = []
    position = start
    minimum = template.min_record_length
    unpack_u16 = struct.Struct(">H").unpack_from
    while end - position >= minimum:
        record_start = position
        for s in range(n_segments):
            starts.append(position)
            position += segment_lengths[s]
            if s == n_segments - 1:
                break
            if position >= end:
                raise DecodeError(
                    "truncated",
                    offset=record_start,
                    detail=f"template {template.template_id}: variable-length field past set end",
                )
            length = data[position]
            position += 1
            if length == 255:
                if position + 2 > end:
                    raise DecodeError(
                        "truncated",
                        offset=position,
                        detail=f"template {template.template_id}: 3-byte length past set end",
                    )
                length = unpack_u16(data, position)[0]
                position += 2
            position += length
        if position > end:
            raise DecodeError(
                "truncated",
                offset=record_start,
                detail=f"template {template.template_id}: record runs past the set end",
            )
    return np.asarray(starts, dtype=np.int64).reshape(-1, n_segments)


def gather_variable(template: Template, data: bytes, starts: np.ndarray) -> Columns:
    """Wanted elements of the records whose segment starts ``walk_variable`` found (with
    offsets into ``data``), gathered for all records at once."""
    _, where = _variable_plan(template)
    buffer = np.frombuffer(data, dtype=np.uint8)
    out: Columns = {}
    for element_id, (segment, position, length) in where.items():
        offsets = starts[:, segment] + position
        matrix = buffer[offsets[:, None] + np.arange(length)]
        keep_bytes = element_id < 0 or element_id in IPV6_ELEMENTS
        out[element_id] = matrix if keep_bytes else assemble_uint(matrix)
    return out


def check_layout(template: Template) -> None:
    """Raise ``DecodeError`` for templates numpy cannot map (defensive: lengths are
    already bounded when the template is parsed)."""
    if template.record_length is not None:
        try:
            fixed_layout(template)
        except (ValueError, TypeError) as exc:
            raise DecodeError(MALFORMED, detail=f"template {template.template_id}: {exc}") from exc
