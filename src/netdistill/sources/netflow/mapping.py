"""Elements the scheme maps to record fields (``elements:`` of a netflow source).

An entry names an element — ``{enterprise: 29305, id: 1}`` for an IPFIX enterprise
element (RFC 7011 §3.2), ``{id: 40005}`` for an IANA element or a NetFlow v9 field type
(v9 types go up to 65535, e.g. Cisco NSEL's) — and the field and type it fills. The
decoder reads the element's bytes (``extract.raw_key``) for all records of a template at
once; this module turns the ``(n, L)`` byte matrix into the field's Arrow column:

==========  ===========================================================================
uint8-64    big-endian unsigned of any length 1-8 (reduced size, RFC 7011 §6.2); a
            value too wide for the type saturates at its maximum
int64       big-endian two's complement of any length 1-8
ip          4 bytes IPv4, 16 bytes IPv6; another length is null
string      bytes up to the first NUL (fixed-length strings are NUL-padded), UTF-8;
            invalid UTF-8 is replaced (U+FFFD), never dropped
float64     8-byte float64 or 4-byte float32 (RFC 7011 §6.1.3); another length is null
bool        IPFIX boolean: 1 true, 2 false (RFC 7011 §6.1.5); anything else null
timestamp   4 bytes: seconds (dateTimeSeconds), 8 bytes: milliseconds
            (dateTimeMilliseconds) since the Unix epoch; another length is null
==========  ===========================================================================

A template that lacks a mapped element leaves its field null; a mapped element of
variable length (IPFIX length 65535) is not read and leaves it null too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from netdistill.records.fields import FIELD_TYPES
from netdistill.records.ip import ipv4_to_text, ipv6_to_text
from netdistill.sources.netflow.elements import element_key
from netdistill.sources.netflow.extract import Columns, assemble_uint, raw_key

#: the types an element can be mapped to (every field type)
MAPPABLE_TYPES = tuple(FIELD_TYPES)


@dataclass(frozen=True, slots=True)
class ElementMapping:
    """One ``elements:`` entry, validated (``config.ElementMappingConfig``)."""

    enterprise: int
    element_id: int
    field: str
    type: str

    @property
    def key(self) -> int:
        return element_key(self.enterprise, self.element_id)


def _unsigned(matrix: np.ndarray, type_: str) -> pa.Array:
    values = assemble_uint(matrix)
    dtype = np.dtype(type_)
    values = np.minimum(values, np.uint64(np.iinfo(dtype).max)).astype(dtype)
    return pa.array(values)


def _signed(matrix: np.ndarray) -> pa.Array:
    length = min(matrix.shape[1], 8)
    values = assemble_uint(matrix).view(np.int64)
    if length < 8:
        sign = np.int64(1) << np.int64(8 * length - 1)
        values = np.where(values & sign, values - (sign << np.int64(1)), values)
    return pa.array(values, pa.int64())


def _string(matrix: np.ndarray) -> pa.Array:
    width = matrix.shape[1]
    fixed = np.ascontiguousarray(matrix).view(f"S{width}").reshape(-1)  # NULs trimmed
    first_nul = np.where(matrix == 0, np.arange(width), width).min(axis=1)
    binary = pa.array(fixed, pa.binary())
    if (first_nul < np.char.str_len(fixed)).any():  # embedded NUL: cut at the first one
        binary = pa.array(
            [bytes(row[:cut]) for row, cut in zip(matrix, first_nul, strict=True)], pa.binary()
        )
    try:
        return binary.cast(pa.string())
    except pa.ArrowInvalid:  # rare: decode row by row, replacing bad bytes
        return pa.array([b.decode("utf-8", "replace") for b in binary.to_pylist()], pa.string())


def _float(matrix: np.ndarray) -> pa.Array:
    length = matrix.shape[1]
    if length == 8:
        return pa.array(assemble_uint(matrix).view(np.float64))
    if length == 4:
        bits = assemble_uint(matrix).astype(np.uint32)
        return pa.array(bits.view(np.float32).astype(np.float64))
    return pa.nulls(len(matrix), pa.float64())


def _timestamp(matrix: np.ndarray) -> pa.Array:
    length, n = matrix.shape[1], len(matrix)
    factor = {4: 1_000_000, 8: 1_000}.get(length)
    kind = pa.timestamp("us", tz="UTC")
    if factor is None:
        return pa.nulls(n, kind)
    return pa.array(assemble_uint(matrix).astype(np.int64) * factor, kind)


def convert(matrix: np.ndarray, type_: str) -> pa.Array:
    """The ``(n, L)`` raw bytes of one element as a column of ``type_``."""
    n, length = matrix.shape
    if type_ in ("uint8", "uint16", "uint32", "uint64"):
        return _unsigned(matrix, type_)
    if type_ == "int64":
        return _signed(matrix)
    if type_ == "ip":
        if length == 4:
            return ipv4_to_text(assemble_uint(matrix).astype(np.uint32))
        if length == 16:
            return ipv6_to_text(matrix)
        return pa.nulls(n, pa.string())
    if type_ == "string":
        return _string(matrix)
    if type_ == "float64":
        return _float(matrix)
    if type_ == "bool":
        values = assemble_uint(matrix)
        return pa.array(values == 1, mask=(values != 1) & (values != 2))
    if type_ == "timestamp":
        return _timestamp(matrix)
    raise ValueError(f"unknown field type {type_!r}")


def mapped_columns(
    columns: Columns, mappings: tuple[ElementMapping, ...], n: int
) -> dict[str, pa.Array]:
    """The mapped fields of ``n`` records; an element several entries map is read once
    per entry, a field the template does not carry is left out (null)."""
    out: dict[str, pa.Array] = {}
    for mapping in mappings:
        matrix = columns.get(raw_key(mapping.key))
        if matrix is not None and mapping.field not in out:
            out[mapping.field] = convert(matrix, mapping.type)
    return out
