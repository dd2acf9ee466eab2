"""A pure NetFlow v5 / v9 / IPFIX encoder: flows in, export datagrams (``bytes``) out.

The demo exporters, the tests and the benchmarks use it to produce what a router would
send. It is written apart from the decoder (it shares no code or constants with it), so
that a decoder test compares two readings of the specs, not one reading with itself:

* NetFlow v5 — Cisco's fixed format: 24-byte header, up to 30 records of 48 bytes;
  ``flow_sequence`` counts the flows exported before the datagram.
* NetFlow v9 — RFC 3954: template FlowSet (id 0) in the first datagram and again every
  ``template_refresh_datagrams`` datagrams, data FlowSets padded to 4 bytes, times as
  milliseconds of exporter uptime (FIRST_SWITCHED 22 / LAST_SWITCHED 21); the header's
  ``sequence`` counts datagrams (§5.1) and ``count`` counts the records of every FlowSet.
* IPFIX — RFC 7011: template Set (id 2) like v9's, 8-byte octet and packet counters,
  absolute ``flowStartMilliseconds``/``flowEndMilliseconds`` (152/153); the header's
  sequence number counts the Data Records sent before the message (§3.1) — option data
  records included, since they are Data Records too.

Flows are given column-wise, as a ``pyarrow.Table`` or a mapping of numpy arrays:

========================  ========================================================
``start_time, end_time``  epoch milliseconds (int) or ``datetime64``/Arrow timestamps
``src_ip, dst_ip``        IPv4 as ``uint32`` (host order)
``src_ip6, dst_ip6``      optional IPv6: ``(n, 16) uint8`` or Arrow ``binary(16)``
``ip_version``            optional, 4 or 6 per row (all 6 when only ``*_ip6`` is given)
``src_port, dst_port, protocol, bytes, packets``            required
``tcp_flags, tos, input_if, output_if, src_as, dst_as``     optional, 0 when absent
========================  ========================================================

With ``IpfixExporter(biflow=True)`` IPFIX records are RFC 5103 biflows: the columns
``rev_bytes`` and ``rev_packets`` go out as reverseOctetDeltaCount and
reversePacketDeltaCount — IANA 1 and 2 with the enterprise bit and the reverse PEN 29305
(RFC 5103 §6.1), as ipfixprobe sends them.

Counters are encoded as given (what the sampler saw); with ``sampling_interval`` set the
exporter also announces the interval — v5 in its header, v9 as an options record (scope
System, field SAMPLING_INTERVAL 34), IPFIX as an options record (scope selectorId 302,
samplingPacketInterval 305) — so a collector can multiply. The options data goes out with
every template refresh. Values too wide for their field raise ``ValueError``.

Records are packed in bulk through big-endian numpy structured dtypes: one ``tobytes``
per call, sliced per datagram; the only Python loop runs once per datagram.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import pyarrow as pa

__all__ = [
    "IpfixExporter",
    "V5Exporter",
    "V9Exporter",
    "encode_ipfix",
    "encode_v5",
    "encode_v9",
    "flow_columns",
]

Flows: TypeAlias = pa.Table | Mapping[str, object]

#: Largest UDP payload we build: fits a 1500-byte MTU with IPv4/IPv6 and UDP headers.
MAX_DATAGRAM_BYTES = 1400
V5_MAX_FLOWS = 30

REQUIRED = ("start_time", "end_time", "src_port", "dst_port", "protocol", "bytes", "packets")
OPTIONAL = ("tcp_flags", "tos", "input_if", "output_if", "src_as", "dst_as")

# Template ids: data templates for IPv4 and IPv6 flows, then the sampling options template.
TEMPLATE_IPV4 = 256
TEMPLATE_IPV6 = 257
TEMPLATE_OPTIONS = 258

# (element id, length, record column, numpy big-endian type). Element ids are IANA's
# (RFC 7012), equal to RFC 3954's v9 field types for 1-127.
_V9_COMMON = [
    (1, 8, "bytes", ">u8"),  # IN_BYTES: 8 bytes, a flow can pass 4 GiB
    (2, 8, "packets", ">u8"),  # IN_PKTS
    (22, 4, "first", ">u4"),  # FIRST_SWITCHED, ms of uptime
    (21, 4, "last", ">u4"),  # LAST_SWITCHED
]
#: interfaces, AS numbers and ports: the same elements and lengths in v9 and IPFIX
_ROUTING_AND_PORTS = [
    (10, 4, "input_if", ">u4"),
    (14, 4, "output_if", ">u4"),
    (16, 4, "src_as", ">u4"),
    (17, 4, "dst_as", ">u4"),
    (7, 2, "src_port", ">u2"),
    (11, 2, "dst_port", ">u2"),
]
_V9_TAIL = [
    *_ROUTING_AND_PORTS,
    (4, 1, "protocol", "u1"),
    (5, 1, "tos", "u1"),
    (6, 1, "tcp_flags", "u1"),  # RFC 3954 §8: TCP_FLAGS is one byte in v9
]
_IPFIX_COMMON = [
    (1, 8, "bytes", ">u8"),  # octetDeltaCount
    (2, 8, "packets", ">u8"),  # packetDeltaCount
    (152, 8, "start_time", ">u8"),  # flowStartMilliseconds
    (153, 8, "end_time", ">u8"),  # flowEndMilliseconds
]
_IPFIX_TAIL = [
    *_ROUTING_AND_PORTS,
    (6, 2, "tcp_flags", ">u2"),  # tcpControlBits is unsigned16 in IPFIX
    (4, 1, "protocol", "u1"),
    (5, 1, "tos", "u1"),
]
#: an element number above 0xFFFF is (PEN << 16) | id: an enterprise element
REVERSE_PEN = 29305
_IPFIX_REVERSE = [
    ((REVERSE_PEN << 16) | 1, 8, "rev_bytes", ">u8"),
    ((REVERSE_PEN << 16) | 2, 8, "rev_packets", ">u8"),
]
_IPV4_ADDRESSES = [(8, 4, "src_ip", ">u4"), (12, 4, "dst_ip", ">u4")]
_IPV6_ADDRESSES = [(27, 16, "src_ip6", "V16"), (28, 16, "dst_ip6", "V16")]

Layout = list[tuple[int, int, str, str]]

V9_LAYOUTS: dict[int, Layout] = {
    TEMPLATE_IPV4: _V9_COMMON + _IPV4_ADDRESSES + _V9_TAIL,
    TEMPLATE_IPV6: _V9_COMMON + _IPV6_ADDRESSES + _V9_TAIL,
}
IPFIX_LAYOUTS: dict[int, Layout] = {
    TEMPLATE_IPV4: _IPFIX_COMMON + _IPV4_ADDRESSES + _IPFIX_TAIL,
    TEMPLATE_IPV6: _IPFIX_COMMON + _IPV6_ADDRESSES + _IPFIX_TAIL,
}
IPFIX_BIFLOW_LAYOUTS: dict[int, Layout] = {
    tid: layout + _IPFIX_REVERSE for tid, layout in IPFIX_LAYOUTS.items()
}

_V5_RECORD = np.dtype(
    [
        ("src_ip", ">u4"), ("dst_ip", ">u4"), ("next_hop", ">u4"),
        ("input_if", ">u2"), ("output_if", ">u2"),
        ("packets", ">u4"), ("bytes", ">u4"),
        ("first", ">u4"), ("last", ">u4"),
        ("src_port", ">u2"), ("dst_port", ">u2"),
        ("pad1", "u1"), ("tcp_flags", "u1"), ("protocol", "u1"), ("tos", "u1"),
        ("src_as", ">u2"), ("dst_as", ">u2"),
        ("src_mask", "u1"), ("dst_mask", "u1"), ("pad2", ">u2"),
    ]
)  # fmt: skip
assert _V5_RECORD.itemsize == 48


def _record_dtype(layout: Layout) -> np.dtype:
    return np.dtype([(name, kind) for _, _, name, kind in layout])


# -- input -------------------------------------------------------------------------------


def _as_numpy(value: object) -> np.ndarray:
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if isinstance(value, pa.Array):
        if pa.types.is_fixed_size_binary(value.type):
            raw = np.frombuffer(value.buffers()[1], dtype=np.uint8)
            start = value.offset * value.type.byte_width
            return raw[start : start + len(value) * value.type.byte_width].reshape(-1, 16)
        return value.to_numpy(zero_copy_only=False)
    return np.asarray(value)


def _epoch_ms(values: np.ndarray) -> np.ndarray:
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[ms]").astype(np.int64)
    return values.astype(np.int64)


def flow_columns(flows: Flows) -> dict[str, np.ndarray]:
    """The flows as a dict of numpy arrays, times as epoch-ms ``int64``, optional columns
    filled with 0 and ``ip_version`` always present. Raises ``ValueError`` on a missing
    required column."""
    names = flows.column_names if isinstance(flows, pa.Table) else list(flows)
    source = flows.column if isinstance(flows, pa.Table) else flows.__getitem__
    missing = [c for c in REQUIRED if c not in names]
    has_v4 = "src_ip" in names and "dst_ip" in names
    has_v6 = "src_ip6" in names and "dst_ip6" in names
    if not has_v4 and not has_v6:
        missing.append("src_ip/dst_ip")
    if missing:
        raise ValueError(f"flows lack column(s) {', '.join(missing)}")
    columns = {name: _as_numpy(source(name)) for name in names}
    n = len(columns["start_time"])
    columns["start_time"] = _epoch_ms(columns["start_time"])
    columns["end_time"] = _epoch_ms(columns["end_time"])
    for name in OPTIONAL:
        if name not in columns:
            columns[name] = np.zeros(n, dtype=np.uint32)
    if "ip_version" not in columns:
        columns["ip_version"] = np.full(n, 4 if has_v4 else 6, dtype=np.uint8)
    if not has_v4:
        columns["src_ip"] = columns["dst_ip"] = np.zeros(n, dtype=np.uint32)
    for name in ("src_ip6", "dst_ip6"):
        if name in columns:
            columns[name] = np.ascontiguousarray(columns[name], dtype=np.uint8).reshape(-1, 16)
    if np.any((columns["ip_version"] != 4) & (columns["ip_version"] != 6)):
        raise ValueError("ip_version must be 4 or 6")
    if not has_v6 and np.any(columns["ip_version"] == 6):
        raise ValueError("rows with ip_version 6 need src_ip6 and dst_ip6 columns")
    if np.any(columns["end_time"] < columns["start_time"]):
        raise ValueError("a flow ends before it starts")
    return columns


def _fill(out: np.ndarray, name: str, values: np.ndarray) -> None:
    """Assign ``values`` into a record column, refusing values its width cannot hold
    (a silent wrap would make encoder-based tests pass on wrong data)."""
    target = out.dtype[name]
    if target.kind == "V":
        out[name] = np.ascontiguousarray(values, dtype=np.uint8).view(target).ravel()
        return
    values = np.asarray(values)
    if values.size and (values.min() < 0 or int(values.max()) > np.iinfo(target).max):
        raise ValueError(f"{name} out of range for a {target.itemsize}-byte field")
    out[name] = values


def _pack(columns: dict[str, np.ndarray], rows: np.ndarray, layout: Layout) -> np.ndarray:
    dtype = _record_dtype(layout)
    out = np.zeros(len(rows), dtype=dtype)
    for _, _, name, _ in layout:
        _fill(out, name, columns[name][rows])
    return out


# -- exporter states ---------------------------------------------------------------------


@dataclass
class V5Exporter:
    """State of one v5 exporter. ``boot_time_ms`` is set at the first encode when None
    (an hour before the earliest flow), so uptime-relative times stay positive."""

    engine_type: int = 0
    engine_id: int = 0
    sampling_interval: int | None = None
    boot_time_ms: int | None = None
    flow_sequence: int = 0
    datagrams: int = 0


@dataclass
class V9Exporter:
    """State of one v9 exporter (RFC 3954): source id, uptime origin, packet sequence."""

    source_id: int = 0
    template_refresh_datagrams: int = 20
    sampling_interval: int | None = None
    boot_time_ms: int | None = None
    sequence: int = 0
    datagrams: int = 0
    flows: int = 0
    _since_template: int | None = field(default=None, repr=False)


@dataclass
class IpfixExporter:
    """State of one IPFIX exporting process (RFC 7011) for one observation domain."""

    observation_domain_id: int = 0
    template_refresh_datagrams: int = 20
    sampling_interval: int | None = None
    selector_id: int = 1
    #: RFC 5103 biflows: records also carry the ``rev_bytes`` / ``rev_packets`` columns
    biflow: bool = False
    sequence: int = 0
    datagrams: int = 0
    flows: int = 0
    _since_template: int | None = field(default=None, repr=False)


def _export_time_ms(columns: dict[str, np.ndarray], export_time_ms: int | None) -> int:
    # Default: the last flow's end, so that the output depends on the input only.
    if export_time_ms is not None:
        return int(export_time_ms)
    if len(columns["end_time"]):
        return int(columns["end_time"].max())
    return int(time.time() * 1000)


def _boot_time(exporter: V5Exporter | V9Exporter, columns: dict[str, np.ndarray], now: int) -> int:
    if exporter.boot_time_ms is None:
        earliest = int(columns["start_time"].min()) if len(columns["start_time"]) else now
        exporter.boot_time_ms = (earliest // 1000) * 1000 - 3_600_000
    boot = exporter.boot_time_ms
    if len(columns["start_time"]) and int(columns["start_time"].min()) < boot:
        raise ValueError("a flow starts before the exporter's boot time")
    return boot


def _uptime_columns(columns: dict[str, np.ndarray], boot: int) -> None:
    # Uptime is a 32-bit millisecond counter: it wraps after 49.7 days (RFC 3954 §5.1).
    columns["first"] = (columns["start_time"] - boot) & 0xFFFFFFFF
    columns["last"] = (columns["end_time"] - boot) & 0xFFFFFFFF


# -- v5 ----------------------------------------------------------------------------------


def encode_v5(
    flows: Flows, exporter: V5Exporter | None = None, *, export_time_ms: int | None = None
) -> list[bytes]:
    """Encode IPv4 flows as NetFlow v5 datagrams of up to 30 records each."""
    exporter = exporter if exporter is not None else V5Exporter()
    columns = flow_columns(flows)
    if np.any(columns["ip_version"] != 4):
        raise ValueError("NetFlow v5 carries IPv4 flows only")
    now = _export_time_ms(columns, export_time_ms)
    boot = _boot_time(exporter, columns, now)
    _uptime_columns(columns, boot)
    n = len(columns["start_time"])
    records = np.zeros(n, dtype=_V5_RECORD)
    for name in (
        "src_ip", "dst_ip", "input_if", "output_if", "packets", "bytes", "first", "last",
        "src_port", "dst_port", "tcp_flags", "protocol", "tos", "src_as", "dst_as",
    ):  # fmt: skip
        _fill(records, name, columns[name])
    body = records.tobytes()
    sampling = 0
    if exporter.sampling_interval:
        # 2 bits of mode (01 = deterministic packet interval) + 14 bits of interval.
        sampling = (1 << 14) | (exporter.sampling_interval & 0x3FFF)
    uptime = (now - boot) & 0xFFFFFFFF
    out = []
    for first in range(0, n, V5_MAX_FLOWS):
        count = min(V5_MAX_FLOWS, n - first)
        header = struct.pack(
            "!HHIIIIBBH", 5, count, uptime, now // 1000, (now % 1000) * 1_000_000,
            exporter.flow_sequence & 0xFFFFFFFF, exporter.engine_type, exporter.engine_id,
            sampling,
        )  # fmt: skip
        out.append(header + body[first * 48 : (first + count) * 48])
        exporter.flow_sequence += count
        exporter.datagrams += 1
    return out


# -- v9 and IPFIX share the datagram planning ---------------------------------------------


def _field_specifier(element: int, length: int) -> bytes:
    if element > 0xFFFF:  # enterprise element: bit 0x8000 + PEN (RFC 7011 §3.2)
        return struct.pack("!HHI", 0x8000 | (element & 0x7FFF), length, element >> 16)
    return struct.pack("!HH", element, length)


def _template_record(template_id: int, layout: Layout) -> bytes:
    fields = b"".join(_field_specifier(element, length) for element, length, _, _ in layout)
    return struct.pack("!HH", template_id, len(layout)) + fields


def _flowset(flowset_id: int, body: bytes) -> bytes:
    """A v9 FlowSet, padded to 4 bytes with the padding counted in its length (§5.2)."""
    padding = -(4 + len(body)) % 4
    return struct.pack("!HH", flowset_id, 4 + len(body) + padding) + body + b"\x00" * padding


def _v9_templates(exporter: V9Exporter) -> tuple[bytes, int]:
    """The template FlowSet(s) with the options template and its data: bytes, records."""
    body = b"".join(_template_record(tid, layout) for tid, layout in V9_LAYOUTS.items())
    out = _flowset(0, body)
    records = len(V9_LAYOUTS)
    if exporter.sampling_interval:
        # Options template FlowSet (id 1, RFC 3954 §6.1): scope System (1), 4 bytes;
        # option SAMPLING_INTERVAL (34), 4 bytes. Record length 8 keeps alignment.
        options = struct.pack("!HHH", TEMPLATE_OPTIONS, 4, 4) + struct.pack("!HHHH", 1, 4, 34, 4)
        out += _flowset(1, options)
        data = struct.pack("!II", exporter.source_id, exporter.sampling_interval)
        out += _flowset(TEMPLATE_OPTIONS, data)
        records += 2
    return out, records


def _ipfix_templates(exporter: IpfixExporter) -> tuple[bytes, int, int]:
    """Template Set, options template Set and its data: bytes, records, data records."""
    layouts = IPFIX_BIFLOW_LAYOUTS if exporter.biflow else IPFIX_LAYOUTS
    body = b"".join(_template_record(tid, layout) for tid, layout in layouts.items())
    out = struct.pack("!HH", 2, 4 + len(body)) + body
    if not exporter.sampling_interval:
        return out, len(IPFIX_LAYOUTS), 0
    # Options Template Set (id 3, RFC 7011 §3.4.2.2): scope selectorId (302, 8 bytes),
    # samplingPacketInterval (305, 4 bytes) — RFC 5477 §8.2.
    options = struct.pack("!HHH", TEMPLATE_OPTIONS, 2, 1) + struct.pack("!HHHH", 302, 8, 305, 4)
    out += struct.pack("!HH", 3, 4 + len(options)) + options
    data = struct.pack("!QI", exporter.selector_id, exporter.sampling_interval)
    out += struct.pack("!HH", TEMPLATE_OPTIONS, 4 + len(data)) + data
    return out, len(IPFIX_LAYOUTS) + 1, 1


def _plan(
    groups: list[tuple[int, int, int]], capacity: int, template_bytes: int,
    since_template: int | None, refresh_every: int,
) -> list[tuple[bool, int, int, int]]:  # fmt: skip
    """Split record groups (template id, count, record size) into datagrams: a list of
    (with templates, template id, first record of the group, record count)."""
    plan = []
    since = since_template
    for template_id, count, size in groups:
        first = 0
        while first < count:
            with_templates = since is None or since >= refresh_every
            room = capacity - 4 - (template_bytes if with_templates else 0)
            take = min(count - first, max(1, room // size))
            plan.append((with_templates, template_id, first, take))
            since = 1 if with_templates else since + 1  # type: ignore[operator]
            first += take
    return plan


def _split_by_version(columns: dict[str, np.ndarray]) -> list[tuple[int, np.ndarray]]:
    versions = columns["ip_version"]
    out = []
    for template_id, version in ((TEMPLATE_IPV4, 4), (TEMPLATE_IPV6, 6)):
        rows = np.flatnonzero(versions == version)
        if len(rows):
            out.append((template_id, rows))
    return out


def encode_v9(
    flows: Flows, exporter: V9Exporter | None = None, *, export_time_ms: int | None = None
) -> list[bytes]:
    """Encode flows as NetFlow v9 datagrams of at most ~1400 bytes (RFC 3954).

    IPv4 flows come first, then IPv6 flows, each in input order; one data FlowSet per
    datagram. When templates are due, the datagram starts with them."""
    exporter = exporter if exporter is not None else V9Exporter()
    columns = flow_columns(flows)
    now = _export_time_ms(columns, export_time_ms)
    boot = _boot_time(exporter, columns, now)
    _uptime_columns(columns, boot)
    templates, template_records = _v9_templates(exporter)
    packed = {
        tid: _pack(columns, rows, V9_LAYOUTS[tid]) for tid, rows in _split_by_version(columns)
    }
    plan = _plan(
        [(tid, len(p), p.dtype.itemsize) for tid, p in packed.items()],
        MAX_DATAGRAM_BYTES - 20, len(templates), exporter._since_template,
        exporter.template_refresh_datagrams,
    )  # fmt: skip
    bodies = {tid: p.tobytes() for tid, p in packed.items()}
    uptime = (now - boot) & 0xFFFFFFFF
    out = []
    for with_templates, tid, first, count in plan:
        size = packed[tid].dtype.itemsize
        flowset = _flowset(tid, bodies[tid][first * size : (first + count) * size])
        records = count + (template_records if with_templates else 0)
        header = struct.pack(
            "!HHIIII", 9, records, uptime, now // 1000, exporter.sequence & 0xFFFFFFFF,
            exporter.source_id,
        )  # fmt: skip
        out.append(header + (templates if with_templates else b"") + flowset)
        exporter.sequence += 1  # v9 counts export packets (RFC 3954 §5.1)
        exporter.datagrams += 1
        exporter.flows += count
        exporter._since_template = 1 if with_templates else (exporter._since_template or 0) + 1
    if not plan and exporter._since_template is None:
        # Nothing to send yet: an exporter still announces its templates at start.
        header = struct.pack("!HHIIII", 9, template_records, uptime, now // 1000,
                             exporter.sequence & 0xFFFFFFFF, exporter.source_id)  # fmt: skip
        out.append(header + templates)
        exporter.sequence += 1
        exporter.datagrams += 1
        exporter._since_template = 1
    return out


def encode_ipfix(
    flows: Flows, exporter: IpfixExporter | None = None, *, export_time_ms: int | None = None
) -> list[bytes]:
    """Encode flows as IPFIX messages of at most ~1400 bytes (RFC 7011), ordered as
    ``encode_v9`` orders them. Data Sets are not padded (§3.3.1 makes padding optional)."""
    exporter = exporter if exporter is not None else IpfixExporter()
    columns = flow_columns(flows)
    now = _export_time_ms(columns, export_time_ms)
    templates, _, option_records = _ipfix_templates(exporter)
    layouts = IPFIX_BIFLOW_LAYOUTS if exporter.biflow else IPFIX_LAYOUTS
    if exporter.biflow and not {"rev_bytes", "rev_packets"} <= columns.keys():
        raise ValueError("biflow records need rev_bytes and rev_packets columns")
    packed = {tid: _pack(columns, rows, layouts[tid]) for tid, rows in _split_by_version(columns)}
    plan = _plan(
        [(tid, len(p), p.dtype.itemsize) for tid, p in packed.items()],
        MAX_DATAGRAM_BYTES - 16, len(templates), exporter._since_template,
        exporter.template_refresh_datagrams,
    )  # fmt: skip
    bodies = {tid: p.tobytes() for tid, p in packed.items()}
    out = []

    def message(body: bytes) -> bytes:
        return struct.pack(
            "!HHIII", 10, 16 + len(body), now // 1000, exporter.sequence & 0xFFFFFFFF,
            exporter.observation_domain_id,
        ) + body  # fmt: skip

    for with_templates, tid, first, count in plan:
        size = packed[tid].dtype.itemsize
        data_set = (
            struct.pack("!HH", tid, 4 + count * size)
            + bodies[tid][first * size : (first + count) * size]
        )
        out.append(message((templates if with_templates else b"") + data_set))
        exporter.sequence += count + (option_records if with_templates else 0)
        exporter.datagrams += 1
        exporter.flows += count
        exporter._since_template = 1 if with_templates else (exporter._since_template or 0) + 1
    if not plan and exporter._since_template is None:
        out.append(message(templates))
        exporter.sequence += option_records
        exporter.datagrams += 1
        exporter._since_template = 1
    return out
