"""Vectorized conversion of binary IP addresses to canonical text.

Decoders produce IPv4 addresses as ``uint32`` arrays and IPv6 addresses as ``(n, 16)``
``uint8`` arrays; the record batch carries canonical text (``ip`` fields). Both
conversions work on the *distinct* addresses of a batch only (hash dictionary-encoding in
Arrow's C++), since flows between the same hosts repeat: formatting cost scales with the
number of hosts, not the number of flows.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Arrow scalars made once: passing Python literals to compute functions makes pyarrow
# retry optional imports (pandas, dateutil) on every call, which costs more than the work.
_SHIFTS = tuple(pa.scalar(s, pa.uint32()) for s in (24, 16, 8, 0))
_OCTET_MASK = pa.scalar(255, pa.uint32())
_DOT = pa.scalar(".", pa.string())


def _format_ipv4_unique(values: pa.Array) -> pa.Array:
    octets = [
        pc.cast(pc.bit_wise_and(pc.shift_right(values, shift), _OCTET_MASK), pa.string())
        for shift in _SHIFTS
    ]
    return pc.binary_join_element_wise(*octets, _DOT)


def ipv4_to_text(addresses: np.ndarray) -> pa.Array:
    """``uint32`` host-order addresses → canonical dotted-quad strings."""
    if len(addresses) == 0:
        return pa.array([], pa.string())
    encoded = pc.dictionary_encode(pa.array(np.ascontiguousarray(addresses, dtype=np.uint32)))
    dictionary = _format_ipv4_unique(encoded.dictionary)
    return pc.take(dictionary, encoded.indices)


def ipv6_to_text(addresses: np.ndarray) -> pa.Array:
    """``(n, 16)`` uint8 network-order addresses → RFC 5952 text (IPv4-mapped shown as
    ``::ffff:a.b.c.d``, as Python's ``ipaddress`` does)."""
    if len(addresses) == 0:
        return pa.array([], pa.string())
    raw = np.ascontiguousarray(addresses, dtype=np.uint8).reshape(-1, 16)
    as_binary = pa.array(raw.view("S16").ravel(), pa.binary(16))
    encoded = pc.dictionary_encode(as_binary)
    # One Python call per distinct address (not per record): RFC 5952 zero compression
    # has no vectorized form in Arrow, and distinct IPv6 addresses per batch are few.
    texts = [str(ipaddress.IPv6Address(b)) for b in encoded.dictionary.to_pylist()]
    return pc.take(pa.array(texts, pa.string()), encoded.indices)


def text_to_ipv4(texts: pa.Array) -> np.ndarray:
    """Canonical dotted-quad strings → ``uint32`` (nulls → 0). For lookups and tests."""
    out = np.zeros(len(texts), dtype=np.uint32)
    for i, t in enumerate(texts.to_pylist()):
        if t is not None:
            out[i] = int(ipaddress.IPv4Address(t))
    return out
