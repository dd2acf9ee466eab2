"""Real exporters' datagrams (shared/captures/akvorado-netflow, see its README) decode
without quarantine, with figures computed independently in the test: by the PyPI
``netflow`` package (a separate Python decoder), or by hand from the packet bytes.

Sampling: ``netflow`` reports raw counters; netdistill multiplies by the sampling rate
(SYSTEM.md §2), so expected = raw × the rate read by hand from the options data bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import netflow
import pyarrow as pa
import pytest
from nfbuild import AKVORADO, read_capture

from netdistill.sources.netflow import NetflowDecoder

pytestmark = pytest.mark.skipif(not AKVORADO.is_dir(), reason=f"captures not found at {AKVORADO}")


def decode_files(*names: str) -> tuple[pa.Table, NetflowDecoder]:
    """Feed each file in its own decode() call, templates first, as the README says."""
    decoder = NetflowDecoder()
    tables = []
    for name in names:
        result = decoder.decode(read_capture(name))
        assert result.quarantined == [], (name, result.quarantined)
        tables.append(result.records)
    assert decoder.flush().quarantined == []
    return pa.concat_tables(tables), decoder


def reference_flows(*names: str) -> list[dict[str, object]]:
    """Data flows as the ``netflow`` package decodes them (templates shared across calls)."""
    templates: dict[str, dict[object, object]] = {"netflow": {}, "ipfix": {}}
    flows = []
    for name in names:
        for datagram in read_capture(name):
            flows += [f.data for f in netflow.parse_packet(datagram.payload, templates).flows]
    # the netflow package lists IPFIX options records among flows; they have no counters
    return [f for f in flows if "templateId" not in f]


def _sum(table: pa.Table, column: str) -> int:
    return sum(v for v in table.column(column).to_pylist() if v is not None)


@dataclass(frozen=True)
class Case:
    files: tuple[str, ...]
    bytes_key: str
    packets_key: str
    rate: int  # read by hand from the bytes (see each case's comment)
    flows: int
    raw_bytes: int
    raw_packets: int


CASES = {
    # v5 header sampling_interval = 0x0000 → unsampled
    "nfv5": Case(("nfv5.pcap",), "IN_OCTETS", "IN_PACKETS", 1, 29, 88345, 78),
    # options record: FLOW_SAMPLER_ID 0x0001, SAMPLING_INTERVAL 0x00007530 = 30000; the
    # data records carry FLOW_SAMPLER_ID 1
    "v9-sampler-id": Case(
        ("template.pcap", "options-template.pcap", "options-data.pcap", "data.pcap"),
        "IN_BYTES",
        "IN_PKTS",
        30000,
        4,
        5848,
        4,
    ),
    # options record without sampler id: SAMPLING_INTERVAL 100 for the whole source id
    "v9-data+templates": Case(("data+templates.pcap",), "IN_BYTES", "IN_PKTS", 100, 21, 58329, 66),
    "v9-icmp": Case(("icmp-template.pcap", "icmp-data.pcap"), "IN_BYTES", "IN_PKTS", 1, 4, 376, 4),
    # IPFIX options: samplingPacketInterval 1, samplingPacketSpace 9 → 1 in 10 (RFC 5477)
    "ipfix-mpls": Case(("mpls.pcap",), "octetDeltaCount", "packetDeltaCount", 10, 2, 979, 11),
    # samplingPacketInterval 1, samplingPacketSpace 999 → 1 in 1000
    "ipfix-physical-interfaces": Case(
        ("physicalinterfaces.pcap",), "octetDeltaCount", "packetDeltaCount", 1000, 8, 31111, 29
    ),
    # SAMPLING_INTERVAL 2048 inside every data record
    "v9-in-record-rate": Case(
        ("samplingrate-template.pcap", "samplingrate-data.pcap"),
        "IN_BYTES",
        "IN_PKTS",
        2048,
        6,
        3740,
        6,
    ),
}


@pytest.mark.parametrize("case_id", list(CASES))
def test_totals_match_reference_decoder(case_id: str) -> None:
    case = CASES[case_id]
    table, _ = decode_files(*case.files)
    flows = reference_flows(*case.files)
    raw_bytes = sum(int(f[case.bytes_key]) for f in flows)  # type: ignore[call-overload]
    raw_packets = sum(int(f[case.packets_key]) for f in flows)  # type: ignore[call-overload]
    assert (len(flows), raw_bytes, raw_packets) == (case.flows, case.raw_bytes, case.raw_packets)
    assert table.num_rows == case.flows
    assert _sum(table, "bytes") == case.raw_bytes * case.rate
    assert _sum(table, "packets") == case.raw_packets * case.rate
    assert set(table.column("sampling_rate").to_pylist()) == {case.rate}
    assert set(table.column("source").to_pylist()) == {"netflow"}
    assert table.column("gatherer").null_count == table.num_rows


def test_v5_records_match_reference_field_by_field() -> None:
    table, _ = decode_files("nfv5.pcap")
    flows = reference_flows("nfv5.pcap")
    rows = table.to_pylist()
    for row, ref in zip(rows, flows, strict=True):
        assert row["src_port"] == ref["SRC_PORT"] and row["dst_port"] == ref["DST_PORT"]
        assert row["protocol"] == ref["PROTO"] and row["tcp_flags"] == ref["TCP_FLAGS"]
        assert row["src_as"] == ref["SRC_AS"] and row["dst_as"] == ref["DST_AS"]
        assert row["input_if"] == ref["INPUT"] and row["output_if"] == ref["OUTPUT"]
        assert row["bytes"] == ref["IN_OCTETS"]
    first = rows[0]
    assert (first["src_ip"], first["dst_ip"], first["next_hop"]) == (
        "161.202.212.212",
        "202.152.70.24",
        "61.6.255.150",
    )
    assert first["exporter"] == "10.19.144.41"
    # header: sys_uptime 2874339000 ms, unix_secs 1680626679, unix_nsecs 0; record
    # first = last = 2874324000 → 15 s before export: 1680626664 = 2023-04-04 16:44:24 UTC
    assert first["start_time"].timestamp() == 1680626664.0
    assert first["end_time"].timestamp() == 1680626664.0
    second = rows[1]  # first 2874315000 (24 s before), last 2874324000 → 9 s
    assert second["duration_s"] == 9.0
    assert second["start_time"].timestamp() == 1680626655.0


def test_v9_multiple_sampler_ids() -> None:
    files = (
        "multiplesamplingrates-template.pcap",
        "multiplesamplingrates-options-template.pcap",
        "multiplesamplingrates-options-data.pcap",
        "multiplesamplingrates-data.pcap",
    )
    table, _ = decode_files(*files)
    flows = reference_flows(*files)
    # options records: sampler 1 → SAMPLING_INTERVAL 2000, sampler 2 → 4000
    rates = {1: 2000, 2: 4000}
    expected = [int(f["IN_BYTES"]) * rates[int(f["FLOW_SAMPLER_ID"])] for f in flows]  # type: ignore[call-overload]
    assert table.column("bytes").to_pylist() == expected
    assert table.column("sampling_rate").to_pylist() == [
        rates[int(f["FLOW_SAMPLER_ID"])]
        for f in flows  # type: ignore[call-overload]
    ]
    assert table.num_rows == 12
    assert _sum(table, "bytes") == 32_332_000
    assert table.column("src_ip").to_pylist()[0] == "ffff::68"
    # IPv6 flow: the template carries BGP_IPV6_NEXT_HOP (63)
    assert table.column("next_hop").to_pylist()[0] == "ffff::2"


def test_ipfix_biflows_become_forward_and_reverse_records() -> None:
    """ipfixprobe sends biflows: octetDeltaCount (1) and, with enterprise bit and PEN
    29305, the *reverse* octetDeltaCount (RFC 5103 §6.1). The ``netflow`` package drops
    the enterprise bit and lets the reverse value overwrite the forward one (its first
    record shows 128 bytes where the forward counter is 0x3e = 62); RFC 7011 §3.2 says
    an enterprise element is a different element. netdistill stores each biflow as its
    forward record and, when the reverse direction carried traffic, a reverse record
    with source and destination swapped, so that sums bill both directions.

    Expected values come from the record bytes: template 258 is 81 bytes per record:
    octetDeltaCount at 1, reverse at 9, packetDeltaCount at 17, reverse at 25, TCP flags
    at 51, reverse flags at 52, ports at 53/55, ingressInterface at 57, addresses at
    61/65. nfdump shows the reverse counters as out bytes/packets: 1,674 and 26 in all
    (tests/integration/test_captures.py)."""
    table, _ = decode_files("ipfixprobe-templates.pcap", "ipfixprobe-data.pcap")
    payload = read_capture("ipfixprobe-data.pcap")[0].payload
    set_id, set_length = struct.unpack_from(">HH", payload, 16)
    assert set_id == 258 and (set_length - 4) % 81 == 0
    records = [payload[20 + 81 * i : 20 + 81 * (i + 1)] for i in range((set_length - 4) // 81)]

    def address(r: bytes, at: int) -> str:
        return ".".join(str(b) for b in r[at : at + 4])

    forward = [
        (
            address(r, 61), address(r, 65), struct.unpack_from(">H", r, 53)[0],
            struct.unpack_from(">H", r, 55)[0], struct.unpack_from(">Q", r, 1)[0],
            struct.unpack_from(">Q", r, 17)[0], r[51], False,
        )
        for r in records
    ]  # fmt: skip
    reverse = [
        (
            address(r, 65), address(r, 61), struct.unpack_from(">H", r, 55)[0],
            struct.unpack_from(">H", r, 53)[0], struct.unpack_from(">Q", r, 9)[0],
            struct.unpack_from(">Q", r, 25)[0], r[52], True,
        )
        for r in records
        if struct.unpack_from(">Q", r, 9)[0] or struct.unpack_from(">Q", r, 25)[0]
    ]  # fmt: skip
    columns = ("src_ip", "dst_ip", "src_port", "dst_port", "bytes", "packets", "tcp_flags")
    got = [tuple(row[c] for c in (*columns, "biflow_reverse")) for row in table.to_pylist()]
    assert got == forward + reverse
    assert forward[0][4] == 62
    assert (sum(r[4] for r in reverse), sum(r[5] for r in reverse)) == (1_674, 26)
    # the reverse record has no next hop and swapped interfaces; times are the biflow's
    rows = table.to_pylist()
    paired = [i for i, r in enumerate(records) if r[9:17] != bytes(8) or r[25:33] != bytes(8)]
    for reverse_row, forward_row in zip(rows[len(records) :], paired, strict=True):
        assert reverse_row["input_if"] is None
        assert reverse_row["output_if"] == rows[forward_row]["input_if"]
        assert reverse_row["start_time"] == rows[forward_row]["start_time"]
    # flowStartMicroseconds: NTP seconds 0xce740b4f = 3463711567 → 2009-10-05 06:06:07 UTC,
    # fraction 0x7df7a4e7 / 2^32 s = 0.492059 s
    first = rows[0]
    assert first["start_time"].isoformat() == "2009-10-05T06:06:07.492059+00:00"
    assert (first["src_ip"], first["dst_ip"], first["dst_port"]) == ("10.10.1.4", "10.10.1.1", 53)


@pytest.mark.parametrize(
    ("files", "flows", "input_if"),
    [
        # dataLinkFrameSection (315, variable length) records: one per data set here; the
        # ingressInterface is the first 4 bytes of each record (hand-read)
        (("datalink-template.pcap", "datalink-data.pcap"), 1, [582]),
        (
            (
                "ethernet-over-mpls-with-control-word-template.pcap",
                "ethernet-over-mpls-with-control-word-data.pcap",
            ),
            10,
            [1091, 1064, 1022, 1022, 1091, 1051, 1096, 1051, 1051, 1087],
        ),
        (("ipfix-srv6-template.pcap", "ipfix-srv6-data.pcap"), 1, [0]),
        # six Juniper (PEN 2636) elements before the IANA ones: skipped by length
        (("juniper-cpid-template.pcap", "juniper-cpid-data.pcap"), 1, [737]),
    ],
)
def test_variable_length_packet_sections(
    files: tuple[str, ...], flows: int, input_if: list[int]
) -> None:
    # the netflow package cannot decode these (PaddingCalculationError): hand counts
    table, _ = decode_files(*files)
    assert table.num_rows == flows
    assert table.column("input_if").to_pylist() == input_if
    assert table.column("direction").to_pylist() == [0] * flows


def test_nsel_nat_events_have_no_counters() -> None:
    table, _ = decode_files("nat.pcap")
    flows = reference_flows("nat.pcap")
    assert table.num_rows == len(flows) == 9
    assert table.column("bytes").null_count == 9  # NAT events carry no byte counter
    assert table.column("src_ip").to_pylist() == [f["IPV4_SRC_ADDR"] for f in flows]
    assert table.column("dst_port").to_pylist() == [f["L4_DST_PORT"] for f in flows]


def test_v9_absolute_millisecond_times() -> None:
    """The icmp capture's v9 template has no FIRST/LAST_SWITCHED but element 152
    (flowStartMilliseconds, Cisco NF_F_FLOW_CREATE_TIME_MSEC): read as absolute."""
    table, _ = decode_files("icmp-template.pcap", "icmp-data.pcap")
    flows = reference_flows("icmp-template.pcap", "icmp-data.pcap")
    starts = [int(r["start_time"].timestamp() * 1000) for r in table.to_pylist()]
    assert starts == [f["NF_F_FLOW_CREATE_TIME_MSEC"] for f in flows]
