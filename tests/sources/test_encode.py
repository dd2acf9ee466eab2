"""The encoder's datagrams, read back by an independent decoder (PyPI ``netflow``).

Every test compares decoded values record by record with the flows given to the encoder,
so an encoder bug shows here rather than as a decoder bug elsewhere.
"""

from __future__ import annotations

import ipaddress
import struct

import numpy as np
import pyarrow as pa
import pytest
from netflow.ipfix import IPFIXExportPacket
from netflow.utils import parse_packet
from netflow.v5 import V5ExportPacket
from netflow.v9 import V9ExportPacket

from netdistill.sources.netflow.encode import (
    IpfixExporter,
    V5Exporter,
    V9Exporter,
    encode_ipfix,
    encode_v5,
    encode_v9,
    flow_columns,
)

T0 = 1_700_000_000_000  # epoch ms


def new_templates() -> dict:
    """The template cache ``parse_packet`` keeps across calls. Its own default for a
    missing key is a list, which its v9 and IPFIX parsers cannot index by id: give dicts."""
    return {"netflow": {}, "ipfix": {}}


def parse(payload: bytes, templates: dict) -> object:
    """``netflow.parse_packet``, except for payloads that happen to be valid UTF-8: the
    library then takes them for a hex string, so call its version class directly."""
    try:
        payload.decode()
    except UnicodeDecodeError:
        return parse_packet(payload, templates)
    version = struct.unpack("!H", payload[:2])[0]
    if version == 5:
        return V5ExportPacket(payload)
    if version == 9:
        return V9ExportPacket(payload, templates.setdefault("netflow", {}))
    return IPFIXExportPacket(payload, templates.setdefault("ipfix", {}))


def random_flows(n: int, seed: int = 0, ipv6_share: float = 0.0, wide: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    start = T0 + rng.integers(0, 60_000, n)
    flows = {
        "start_time": start,
        "end_time": start + rng.integers(0, 30_000, n),
        "src_ip": rng.integers(0, 2**32, n, dtype=np.uint32),
        "dst_ip": rng.integers(0, 2**32, n, dtype=np.uint32),
        "src_ip6": rng.integers(0, 256, (n, 16), dtype=np.uint8),
        "dst_ip6": rng.integers(0, 256, (n, 16), dtype=np.uint8),
        "ip_version": np.where(rng.random(n) < ipv6_share, 6, 4).astype(np.uint8),
        "src_port": rng.integers(0, 2**16, n),
        "dst_port": rng.integers(0, 2**16, n),
        "protocol": rng.integers(0, 256, n),
        "bytes": rng.integers(0, 2**40 if wide else 2**32, n, dtype=np.uint64),
        "packets": rng.integers(0, 2**33 if wide else 2**32, n, dtype=np.uint64),
        "tcp_flags": rng.integers(0, 256, n),
        "tos": rng.integers(0, 256, n),
        "input_if": rng.integers(0, 2**32 if wide else 2**16, n, dtype=np.uint32),
        "output_if": rng.integers(0, 2**32 if wide else 2**16, n, dtype=np.uint32),
        "src_as": rng.integers(0, 2**32 if wide else 2**16, n, dtype=np.uint32),
        "dst_as": rng.integers(0, 2**32 if wide else 2**16, n, dtype=np.uint32),
    }
    return flows


def expected_rows(flows: dict) -> list[dict]:
    """The input flows as the encoders order them: IPv4 ones, then IPv6 ones."""
    versions = flows["ip_version"]
    order = np.concatenate([np.flatnonzero(versions == 4), np.flatnonzero(versions == 6)])
    rows = []
    for i in order:
        row = {k: int(v[i]) for k, v in flows.items() if k not in ("src_ip6", "dst_ip6")}
        if versions[i] == 6:
            row["src"] = str(ipaddress.IPv6Address(bytes(flows["src_ip6"][i])))
            row["dst"] = str(ipaddress.IPv6Address(bytes(flows["dst_ip6"][i])))
        else:
            row["src"] = str(ipaddress.IPv4Address(row["src_ip"]))
            row["dst"] = str(ipaddress.IPv4Address(row["dst_ip"]))
        rows.append(row)
    return rows


def flowset_ids(payload: bytes, header: int) -> list[int]:
    ids, offset = [], header
    while offset < len(payload):
        set_id, length = struct.unpack("!HH", payload[offset : offset + 4])
        ids.append(set_id)
        offset += length
    return ids


def test_v9_records_decode_exactly() -> None:
    flows = random_flows(2000, seed=1, ipv6_share=0.3)
    exporter = V9Exporter(source_id=77)
    datagrams = encode_v9(flows, exporter, export_time_ms=T0 + 100_000)
    boot = exporter.boot_time_ms
    # the default boot time: one hour before the earliest flow, on a whole second
    earliest_ms = int(np.asarray(flows["start_time"]).min())
    assert boot == (earliest_ms // 1000) * 1000 - 3_600_000
    templates = new_templates()
    decoded = []
    for index, payload in enumerate(datagrams):
        assert len(payload) <= 1400
        packet = parse(payload, templates)
        assert packet.header.version == 9
        assert packet.header.sequence == index  # v9 counts datagrams
        assert packet.header.source_id == 77
        assert packet.header.uptime == T0 + 100_000 - boot
        assert packet.header.timestamp == (T0 + 100_000) // 1000
        with_templates = flowset_ids(payload, 20)[0] == 0
        assert packet.header.count == len(packet.flows) + (2 if with_templates else 0)
        decoded += packet.flows
    expected = expected_rows(flows)
    assert len(decoded) == len(expected) == 2000
    for got, want in zip(decoded, expected, strict=True):
        data = got.data
        src = data.get("IPV4_SRC_ADDR", data.get("IPV6_SRC_ADDR"))
        dst = data.get("IPV4_DST_ADDR", data.get("IPV6_DST_ADDR"))
        assert (src, dst) == (want["src"], want["dst"])
        assert data["IN_BYTES"] == want["bytes"]
        assert data["IN_PKTS"] == want["packets"]
        assert data["FIRST_SWITCHED"] + boot == want["start_time"]
        assert data["LAST_SWITCHED"] + boot == want["end_time"]
        assert data["L4_SRC_PORT"] == want["src_port"]
        assert data["L4_DST_PORT"] == want["dst_port"]
        assert data["PROTOCOL"] == want["protocol"]
        assert data["SRC_TOS"] == want["tos"]
        assert data["TCP_FLAGS"] == want["tcp_flags"]
        assert data["INPUT_SNMP"] == want["input_if"]
        assert data["OUTPUT_SNMP"] == want["output_if"]
        assert data["SRC_AS"] == want["src_as"]
        assert data["DST_AS"] == want["dst_as"]
    assert sum(f.data["IN_BYTES"] for f in decoded) == int(flows["bytes"].sum())
    assert exporter.sequence == exporter.datagrams == len(datagrams)
    assert exporter.flows == 2000


def test_ipfix_records_decode_exactly() -> None:
    flows = random_flows(2000, seed=2, ipv6_share=0.3)
    exporter = IpfixExporter(observation_domain_id=4242)
    datagrams = encode_ipfix(flows, exporter, export_time_ms=T0 + 100_000)
    templates = new_templates()
    decoded = []
    for payload in datagrams:
        assert len(payload) <= 1400
        packet = parse(payload, templates)
        assert packet.header.version == 10
        assert packet.header.length == len(payload)
        assert packet.header.obervation_domain_id == 4242  # sic, the library's spelling
        assert packet.header.sequence_number == len(decoded)  # data records sent before
        assert packet.header.export_uptime == (T0 + 100_000) // 1000  # export time, seconds
        decoded += packet.flows
    expected = expected_rows(flows)
    assert len(decoded) == len(expected)
    for got, want in zip(decoded, expected, strict=True):
        data = got.data
        if want["ip_version"] == 6:
            src = str(ipaddress.IPv6Address(data["sourceIPv6Address"]))
            dst = str(ipaddress.IPv6Address(data["destinationIPv6Address"]))
        else:
            src = str(ipaddress.IPv4Address(data["sourceIPv4Address"]))
            dst = str(ipaddress.IPv4Address(data["destinationIPv4Address"]))
        assert (src, dst) == (want["src"], want["dst"])
        assert data["octetDeltaCount"] == want["bytes"]
        assert data["packetDeltaCount"] == want["packets"]
        assert data["flowStartMilliseconds"] == want["start_time"]
        assert data["flowEndMilliseconds"] == want["end_time"]
        assert data["sourceTransportPort"] == want["src_port"]
        assert data["destinationTransportPort"] == want["dst_port"]
        assert data["protocolIdentifier"] == want["protocol"]
        assert data["ipClassOfService"] == want["tos"]
        assert data["tcpControlBits"] == want["tcp_flags"]
        assert data["ingressInterface"] == want["input_if"]
        assert data["egressInterface"] == want["output_if"]
        assert data["bgpSourceAsNumber"] == want["src_as"]
        assert data["bgpDestinationAsNumber"] == want["dst_as"]
    assert sum(r.data["packetDeltaCount"] for r in decoded) == int(flows["packets"].sum())
    assert exporter.sequence == 2000


def test_v5_records_decode_exactly() -> None:
    flows = random_flows(95, seed=3, wide=False)
    exporter = V5Exporter(engine_type=1, engine_id=9, sampling_interval=512)
    datagrams = encode_v5(flows, exporter, export_time_ms=T0 + 100_000)
    assert [len(d) for d in datagrams] == [24 + 30 * 48] * 3 + [24 + 5 * 48]
    decoded = []
    for payload in datagrams:
        packet = parse(payload, new_templates())
        assert packet.header.sequence == len(decoded)  # v5 counts flows
        assert (packet.header.engine_type, packet.header.engine_id) == (1, 9)
        assert packet.header.sampling_interval == (1 << 14) | 512
        decoded += packet.flows
    boot = exporter.boot_time_ms
    for got, want in zip(decoded, expected_rows(flows), strict=True):
        d = got.data
        assert (d["IPV4_SRC_ADDR"], d["IPV4_DST_ADDR"]) == (want["src_ip"], want["dst_ip"])
        assert (d["IN_OCTETS"], d["IN_PACKETS"]) == (want["bytes"], want["packets"])
        assert d["FIRST_SWITCHED"] + boot == want["start_time"]
        assert d["LAST_SWITCHED"] + boot == want["end_time"]
        assert (d["SRC_PORT"], d["DST_PORT"], d["PROTO"]) == (
            want["src_port"],
            want["dst_port"],
            want["protocol"],
        )
        assert (d["TCP_FLAGS"], d["TOS"]) == (want["tcp_flags"], want["tos"])
        assert (d["SRC_AS"], d["DST_AS"]) == (want["src_as"], want["dst_as"])
        assert (d["INPUT"], d["OUTPUT"]) == (want["input_if"], want["output_if"])
    assert len(decoded) == 95
    assert exporter.flow_sequence == 95


def test_v5_refuses_ipv6_and_wide_values() -> None:
    with pytest.raises(ValueError, match="IPv4"):
        encode_v5(random_flows(10, ipv6_share=1.0, wide=False))
    with pytest.raises(ValueError, match="out of range"):
        encode_v5(random_flows(10, wide=True))


def test_v9_sampling_options_and_template_refresh() -> None:
    exporter = V9Exporter(source_id=5, template_refresh_datagrams=3, sampling_interval=1000)
    datagrams = []
    for second in range(10):
        batch = random_flows(20, seed=second)  # 20 records of 55 bytes: one datagram each
        datagrams += encode_v9(batch, exporter, export_time_ms=T0 + 200_000 + second * 1000)
    assert len(datagrams) == 10
    with_templates = [i for i, d in enumerate(datagrams) if flowset_ids(d, 20)[0] == 0]
    assert with_templates == [0, 3, 6, 9]
    assert flowset_ids(datagrams[0], 20) == [0, 1, 258, 256]
    # A collector that starts late decodes nothing until the next refresh, then all.
    templates = new_templates()
    options = []
    flows = 0
    for payload in datagrams[3:]:
        packet = parse(payload, templates)
        options += packet.options
        flows += len(packet.flows)
    assert flows == 7 * 20
    assert [o.data["SAMPLING_INTERVAL"] for o in options] == [1000, 1000, 1000]
    assert [o.scopes["System"] for o in options] == [5, 5, 5]


def test_ipfix_sampling_options() -> None:
    exporter = IpfixExporter(observation_domain_id=3, sampling_interval=100, selector_id=7)
    datagrams = encode_ipfix(random_flows(50, seed=4), exporter, export_time_ms=T0 + 100_000)
    assert flowset_ids(datagrams[0], 16) == [2, 3, 258, 256]
    templates = new_templates()
    records = []
    for payload in datagrams:
        records += parse(payload, templates).flows
    # The library lists options data records among the flows.
    options = [r.data for r in records if "samplingPacketInterval" in r.data]
    assert options == [{"selectorId": 7, "samplingPacketInterval": 100}]
    assert len(records) == 51
    assert exporter.sequence == 51  # option data records are Data Records too (§3.1)


def test_templates_announced_without_flows() -> None:
    empty = {k: v[:0] for k, v in random_flows(1).items()}
    v9 = encode_v9(empty, V9Exporter(), export_time_ms=T0)
    ipfix = encode_ipfix(empty, IpfixExporter(), export_time_ms=T0)
    assert len(v9) == len(ipfix) == 1
    templates = new_templates()
    assert parse(v9[0], templates).flows == []
    assert set(templates["netflow"]) == {256, 257}
    assert parse(ipfix[0], templates).flows == []
    assert set(templates["ipfix"]) == {256, 257}


def test_arrow_table_with_timestamps_equals_arrays() -> None:
    flows = random_flows(100, seed=5)
    del flows["src_ip6"], flows["dst_ip6"], flows["ip_version"]
    table = pa.table(
        {
            **{k: v for k, v in flows.items() if k not in ("start_time", "end_time")},
            "start_time": pa.array(flows["start_time"].astype("datetime64[ms]")),
            "end_time": pa.array(flows["end_time"].astype("datetime64[ms]")),
        }
    )
    from_table = encode_ipfix(table, IpfixExporter(), export_time_ms=T0)
    from_arrays = encode_ipfix(flows, IpfixExporter(), export_time_ms=T0)
    assert from_table == from_arrays
    columns = flow_columns(table)
    assert columns["start_time"].dtype == np.int64
    assert (columns["start_time"] == flows["start_time"]).all()


def test_missing_columns_and_bad_times_are_refused() -> None:
    flows = random_flows(5)
    del flows["bytes"]
    with pytest.raises(ValueError, match="bytes"):
        encode_v9(flows)
    flows = random_flows(5)
    flows["end_time"] = flows["start_time"] - 1
    with pytest.raises(ValueError, match="ends before"):
        encode_ipfix(flows)
    flows = random_flows(5)
    with pytest.raises(ValueError, match="boot"):
        encode_v9(flows, V9Exporter(boot_time_ms=T0 + 10**9))
