"""IP text columns → numbers, vectorized, for network tests and longest-prefix match.

An ``ip`` column holds canonical text. ``parse_ips`` returns, per row, the version (4, 6
or 0 for null/invalid) and the address as two uint64 halves (``hi``, ``lo``; IPv4 is in
``lo``). It works on the *distinct* values (Arrow dictionary encoding): IPv4 text is split
and cast by Arrow kernels; IPv6 text goes through ``ipaddress`` once per distinct value
(RFC 5952 text has no vectorized parser in Arrow, and distinct IPv6 hosts per batch are
few).
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_V4 = r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$"


def _parse_distinct(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(values)
    version = np.zeros(n, dtype=np.uint8)
    hi = np.zeros(n, dtype=np.uint64)
    lo = np.zeros(n, dtype=np.uint64)
    is_v4 = pc.fill_null(pc.match_substring_regex(values, _V4), False)
    v4_index = np.flatnonzero(is_v4.to_numpy(zero_copy_only=False))
    if len(v4_index):
        parts = pc.split_pattern(values.take(pa.array(v4_index)), ".")
        octets = pc.cast(pc.list_flatten(parts), pa.uint32()).to_numpy().reshape(-1, 4)
        ok = (octets <= 255).all(axis=1)
        packed = (octets[:, 0] << 24) | (octets[:, 1] << 16) | (octets[:, 2] << 8) | octets[:, 3]
        lo[v4_index] = packed.astype(np.uint64)
        version[v4_index] = np.where(ok, 4, 0)
    other = np.flatnonzero(~is_v4.to_numpy(zero_copy_only=False))
    texts = values.take(pa.array(other, pa.int64())).to_pylist() if len(other) else []
    for index, text in zip(other, texts, strict=True):
        if text is None or ":" not in text:
            continue
        try:
            number = int(ipaddress.IPv6Address(text))
        except ValueError:
            continue
        version[index] = 6
        hi[index] = number >> 64
        lo[index] = number & 0xFFFF_FFFF_FFFF_FFFF
    return version, hi, lo


def parse_ips(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(version, hi, lo) per row of an ip/text column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if len(column) == 0:
        empty = np.zeros(0, dtype=np.uint64)
        return np.zeros(0, dtype=np.uint8), empty, empty
    encoded = pc.dictionary_encode(column)
    version, hi, lo = _parse_distinct(encoded.dictionary)
    size = len(version)  # one more entry, version 0, for null rows
    version, hi, lo = (np.append(a, a.dtype.type(0)) for a in (version, hi, lo))
    indices = encoded.indices.fill_null(size).to_numpy()
    return version[indices], hi[indices], lo[indices]


def network_bounds(network: str) -> tuple[int, int, int, int]:
    """(version, prefix length, hi, lo) of a network's first address."""
    net = ipaddress.ip_network(network, strict=False)
    number = int(net.network_address)
    if net.version == 4:
        return 4, net.prefixlen, 0, number
    return 6, net.prefixlen, number >> 64, number & 0xFFFF_FFFF_FFFF_FFFF


def mask_halves(version: int, length: int) -> tuple[int, int]:
    """The (hi, lo) netmask of a prefix length."""
    if version == 4:
        return 0, (0xFFFF_FFFF << (32 - length)) & 0xFFFF_FFFF
    full = ((1 << 128) - 1) ^ ((1 << (128 - length)) - 1)
    return full >> 64, full & 0xFFFF_FFFF_FFFF_FFFF


def in_network(column: pa.Array | pa.ChunkedArray, network: str) -> np.ndarray:
    """Per row: the address is inside ``network`` (False for null or the other version)."""
    version, hi, lo = parse_ips(column)
    net_version, length, net_hi, net_lo = network_bounds(network)
    mask_hi, mask_lo = mask_halves(net_version, length)
    return (
        (version == net_version)
        & ((hi & np.uint64(mask_hi)) == np.uint64(net_hi))
        & ((lo & np.uint64(mask_lo)) == np.uint64(net_lo))
    )
