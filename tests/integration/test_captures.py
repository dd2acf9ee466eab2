"""Real exporters' captures (../shared/captures/akvorado-netflow): nfdump vs netdistill.

Each case's files (templates and options first, then data, all from one exporter) are
replayed in order to nfcapd, and given in the same order on one ``netdistill import``
command line. nfcapd sees them from 127.0.0.1; ``import`` keeps the pcap's source
address as the exporter. Flows, bytes and packets must be equal.

Where they are not, both figures are asserted exactly and the comment says which is
right. Every difference found is nfdump 1.7.1 not applying a sampling rate the exporter
announced, or dropping data that arrived before its template in the same datagram:

* counters are multiplied by the sampling rate (SYSTEM.md §2), so ``bytes / sampling_rate``
  gives back the exported counters — the "raw" column — which must equal nfdump's when
  nfdump applied no rate; each rate below was read by hand from the options data.
* the PyPI ``netflow`` package gives a third reading of raw counters where it can parse
  the capture (it fails on variable-length fields and ignores enterprise bits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import peers
import pytest
from peers import require

pytestmark = pytest.mark.integration

CAPTURES = next(
    (
        p / "shared" / "captures" / "akvorado-netflow"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "captures" / "akvorado-netflow").is_dir()
    ),
    Path(__file__).resolve().parents[2].parent / "shared" / "captures" / "akvorado-netflow",
)


@dataclass(frozen=True)
class Case:
    files: tuple[str, ...]
    nfdump: tuple[int, int, int]  # flows, bytes, packets as nfdump totals them
    ours: tuple[int, int, int] | None = None  # when different from nfdump's
    rates: dict[int, int] = field(default_factory=lambda: {})  # sampling_rate → records
    raw: tuple[int, int, int] | None = None  # counters before sampling
    netflow_package: tuple[int, int, int] | None = None  # raw, per the PyPI package


CASES: dict[str, Case] = {
    # One v9 datagram: a data set for template 257 *before* the template, then an
    # options template (scope System, SAMPLING_INTERVAL 34 = 100) and its data, then
    # template 257 and a second data set. nfdump drops the first set (11 flows) and
    # ignores the rate. RFC 3954 §9 / RFC 7011 §8 allow keeping data until its template
    # arrives; the System-scope interval applies to every flow of the exporter, so ours
    # is right: 21 flows × 100. The netflow package, too, reads 21 flows.
    "data+templates": Case(
        ("data+templates.pcap",),
        nfdump=(10, 54_592, 48),
        ours=(21, 5_832_900, 6_600),
        rates={100: 21},
        raw=(21, 58_329, 66),
        netflow_package=(21, 58_329, 66),
    ),
    "template+data": Case(
        ("template.pcap", "data.pcap"),
        nfdump=(4, 5_848, 4),
        rates={1: 4},
        netflow_package=(4, 5_848, 4),
    ),
    # options data: sampling interval 30000 for the whole exporter; nfdump applies it too
    "options+template+data": Case(
        ("options-template.pcap", "options-data.pcap", "template.pcap", "data.pcap"),
        nfdump=(4, 175_440_000, 120_000),
        rates={30_000: 4},
        raw=(4, 5_848, 4),
        netflow_package=(4, 5_848, 4),
    ),
    # flows that carry a data-link section, no counters
    "datalink": Case(
        ("datalink-template.pcap", "datalink-data.pcap"), nfdump=(1, 0, 0), rates={1: 1}
    ),
    "ethernet-over-mpls": Case(
        (
            "ethernet-over-mpls-with-control-word-template.pcap",
            "ethernet-over-mpls-with-control-word-data.pcap",
        ),
        nfdump=(10, 0, 0),
        rates={1: 10},
    ),
    "icmp": Case(
        ("icmp-template.pcap", "icmp-data.pcap"),
        nfdump=(4, 376, 4),
        rates={1: 4},
        netflow_package=(4, 376, 4),
    ),
    "ipfix-srv6": Case(
        ("ipfix-srv6-template.pcap", "ipfix-srv6-data.pcap"), nfdump=(1, 0, 0), rates={1: 1}
    ),
    # ipfixprobe sends RFC 5103 biflows: forward octet/packet counters (IANA 1, 2) and
    # reverse ones (same ids with the enterprise bit, PEN 29305). nfdump totals the
    # forward counters and shows the reverse as out_bytes/out_packets: 1,674 bytes, 26
    # packets. netdistill stores two of the four biflows' reverse directions (the others
    # carried nothing back) as records of their own: 4 + 2 flows, 24,268 + 1,674 bytes,
    # 34 + 26 packets — both directions billed. The netflow package ignores the
    # enterprise bit and reads the reverse counters as the forward ones: wrong.
    "ipfixprobe": Case(
        ("ipfixprobe-templates.pcap", "ipfixprobe-data.pcap"),
        nfdump=(4, 24_268, 34),
        ours=(6, 24_268 + 1_674, 34 + 26),
        raw=(6, 24_268 + 1_674, 34 + 26),
        rates={1: 6},
        netflow_package=(4, 1_546 + 2_304 + 128, 25 + 1),
    ),
    "juniper-cpid": Case(
        ("juniper-cpid-template.pcap", "juniper-cpid-data.pcap"), nfdump=(1, 0, 0), rates={1: 1}
    ),
    # IPFIX options (scope templateId) with samplingPacketInterval 1 and
    # samplingPacketSpace 9: RFC 5477 systematic count-based sampling, 1 packet selected
    # in every 1 + 9 = 10. nfdump ignores these elements; ×10 is right.
    "mpls": Case(
        ("mpls.pcap",),
        nfdump=(2, 979, 11),
        ours=(2, 9_790, 110),
        rates={10: 2},
        raw=(2, 979, 11),
        netflow_package=(2, 979, 11),
    ),
    # v9 options per FLOW_SAMPLER_ID (48): sampler 1 → SAMPLING_INTERVAL 2000, sampler 2
    # → 4000. nfdump applies sampler 1's rate but not sampler 2's (one flow, 1,348 bytes,
    # 18 packets, stays raw: 26,941,348 = (32,332,000 − 5,392,000) + 1,348). Ours applies
    # each flow's own sampler: right.
    "multiple-sampling-rates": Case(
        (
            "multiplesamplingrates-options-template.pcap",
            "multiplesamplingrates-options-data.pcap",
            "multiplesamplingrates-template.pcap",
            "multiplesamplingrates-data.pcap",
        ),
        nfdump=(12, 26_941_348, 40_018),
        ours=(12, 32_332_000, 112_000),
        rates={2_000: 11, 4_000: 1},
        raw=(12, 14_818, 38),
        netflow_package=(12, 14_818, 38),
    ),
    # NAT events (NSEL/NEL), no counters: nfdump stores them as EVENT records
    "nat": Case(("nat.pcap",), nfdump=(9, 0, 0), rates={1: 9}, netflow_package=(9, 0, 0)),
    "nfv5": Case(
        ("nfv5.pcap",), nfdump=(29, 88_345, 78), rates={1: 29}, netflow_package=(29, 88_345, 78)
    ),
    # IPFIX options: samplingPacketInterval 1, samplingPacketSpace 999 → 1 in 1000
    # (RFC 5477); nfdump ignores them.
    "physical-interfaces": Case(
        ("physicalinterfaces.pcap",),
        nfdump=(8, 31_111, 29),
        ours=(8, 31_111_000, 29_000),
        rates={1_000: 8},
        raw=(8, 31_111, 29),
        netflow_package=(8, 31_111, 29),
    ),
    # SAMPLING_INTERVAL (34) = 2048 inside each v9 flow record (RFC 3954 §8: the rate of
    # that flow's sampling); nfdump ignores it there.
    "sampling-rate-in-record": Case(
        ("samplingrate-template.pcap", "samplingrate-data.pcap"),
        nfdump=(6, 3_740, 6),
        ours=(6, 7_659_520, 12_288),
        rates={2_048: 6},
        raw=(6, 3_740, 6),
        netflow_package=(6, 3_740, 6),
    ),
}


def test_every_capture_is_covered() -> None:
    listed = {name for case in CASES.values() for name in case.files}
    on_disk = {p.name for p in CAPTURES.glob("*.pcap")}
    assert on_disk, f"no captures under {CAPTURES}"
    assert listed == on_disk


def netflow_package_raw(payloads: list[bytes]) -> tuple[int, int, int]:
    """Flows and raw counters as the PyPI ``netflow`` package reads them (templates kept
    across datagrams; options records, which carry no flow, left out)."""
    import netflow

    templates: dict[str, dict[int, object]] = {"netflow": {}, "ipfix": {}}
    flows = octets = packets = 0
    for payload in payloads:
        for flow in netflow.parse_packet(payload, templates).flows:
            d = flow.data
            b = d.get("IN_BYTES", d.get("IN_OCTETS", d.get("octetDeltaCount")))
            p = d.get("IN_PKTS", d.get("IN_PACKETS", d.get("packetDeltaCount")))
            if b is None and p is None and (
                "selectorAlgorithm" in d or ("FLOW_SAMPLER_ID" in d and "IPV6_SRC_ADDR" not in d)
                or ("SAMPLING_INTERVAL" in d and "IPV4_SRC_ADDR" not in d)
            ):  # fmt: skip
                continue
            flows += 1
            octets += b or 0
            packets += p or 0
    return flows, octets, packets


@pytest.mark.parametrize("name", list(CASES))
def test_capture_totals_equal_nfdump(name: str, tmp_path: Path) -> None:
    require("nfcapd", "nfdump")
    case = CASES[name]
    files = [CAPTURES / f for f in case.files]
    payloads = [p for f in files for p in peers.pcap_udp_payloads(f)]

    with peers.Nfcapd(tmp_path / "nfcapd") as nfcapd:
        peers.send_datagrams(payloads, nfcapd.port)
        peers.wait_udp_drained(nfcapd.port)
    nfdump = peers.nfdump_totals(nfcapd.records())

    data_dir = tmp_path / "data"
    peers.netdistill("import", *map(str, files), "--data-dir", str(data_dir))
    ours = peers.netdistill_totals(data_dir)

    assert (nfdump.flows, nfdump.bytes, nfdump.packets) == case.nfdump
    assert (ours.flows, ours.bytes, ours.packets) == (case.ours or case.nfdump)
    if case.ours is None:
        assert ours.bytes_by_src_ip == nfdump.bytes_by_src_ip

    rates = peers.query(data_dir, "select sampling_rate, count(*) as n from records group by 1")
    assert {int(r["sampling_rate"]): int(r["n"]) for r in rates} == case.rates  # type: ignore[call-overload]
    raw = peers.query(
        data_dir,
        "select count(*) as flows, coalesce(sum(bytes // sampling_rate), 0) as bytes, "
        "coalesce(sum(packets // sampling_rate), 0) as packets from records",
    )[0]
    assert (raw["flows"], raw["bytes"], raw["packets"]) == (case.raw or case.nfdump)

    if case.netflow_package is not None:
        assert netflow_package_raw(payloads) == case.netflow_package
