"""Real agents' datagrams (shared/captures/akvorado-sflow, see its README) decode without
quarantine, and every sample matches the independent reference walk of ``sflowref``
(struct + dpkt, written from the sFlow v5 spec): counts, scaled totals, 5-tuples and the
extended records, field by field.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import sflowref
from sflowref import SFLOW_CAPTURES, read_capture

from netdistill.sources.sflow import SflowDecoder

pytestmark = pytest.mark.skipif(
    not SFLOW_CAPTURES.is_dir(), reason=f"captures not found at {SFLOW_CAPTURES}"
)

FILES = sorted(p.name for p in SFLOW_CAPTURES.glob("*.pcap")) if SFLOW_CAPTURES.is_dir() else []


def decode_file(name: str) -> tuple[pa.Table, SflowDecoder]:
    decoder = SflowDecoder()
    result = decoder.decode(read_capture(SFLOW_CAPTURES / name))
    assert result.quarantined == [], [(q.reason, q.detail, q.offset) for q in result.quarantined]
    return result.records, decoder


def reference(name: str) -> list[sflowref.RefSample]:
    datagrams = read_capture(SFLOW_CAPTURES / name)
    return [s for d in datagrams for s in sflowref.decode(d.payload).samples]


def test_all_eleven_captures_are_there() -> None:
    assert len(FILES) == 11, FILES


@pytest.mark.parametrize("name", FILES)
def test_totals_match_reference(name: str) -> None:
    table, decoder = decode_file(name)
    samples = reference(name)
    assert table.num_rows == len(samples) > 0
    assert sum(table.column("bytes").to_pylist()) == sum(s.bytes or 0 for s in samples)
    assert sum(table.column("packets").to_pylist()) == sum(s.rate for s in samples)
    assert table.column("sampling_rate").to_pylist() == [s.rate for s in samples]
    assert set(table.column("sample_kind").to_pylist()) == {"flow"}
    assert set(table.column("source").to_pylist()) == {"sflow"}
    assert decoder.counters.records == table.num_rows
    assert decoder.counters.dropped == {}


def _vlan(value: int | None) -> int | None:
    return None if value is None or value > 4095 else value


@pytest.mark.parametrize("name", FILES)
def test_samples_match_reference_field_by_field(name: str) -> None:
    table, _ = decode_file(name)
    for row, ref in zip(table.to_pylist(), reference(name), strict=True):
        got = (row["src_ip"], row["dst_ip"], row["protocol"], row["src_port"], row["dst_port"])
        assert got == ref.five_tuple()
        assert (row["exporter"], row["sub_agent_id"]) == (ref.agent, ref.sub_agent)
        assert (row["src_vlan"], row["dst_vlan"]) == (_vlan(ref.src_vlan), _vlan(ref.dst_vlan))
        assert (row["icmp_type"], row["icmp_code"]) == ref.extra.get("icmp", (None, None))
        hop = ref.extra.get("next_hop", ref.extra.get("gateway_next_hop"))
        assert row["next_hop"] == hop
        assert (row["src_mask"], row["dst_mask"]) == ref.extra.get("masks", (None, None))
        assert (row["src_as"], row["dst_as"]) == (ref.extra.get("src_as"), ref.extra.get("dst_as"))
        assert row["start_time"] == row["end_time"]


def test_1140_extended_router_and_gateway() -> None:
    """Hand-read from the bytes: the 4th sample's gateway record has an AS path of one
    sequence 203698 6762 26615 and next hop 31.14.69.110; the 2nd has an empty path."""
    rows = decode_file("data-1140.pcap")[0].to_pylist()
    assert rows[3]["as_path"] == "203698 6762 26615"
    assert (rows[3]["src_as"], rows[3]["dst_as"]) == (0, 26615)
    assert rows[1]["as_path"] == "" and rows[1]["src_as"] == 13335
    assert [r["as_path"] for r in rows[::2]] == [None, None, None]  # no gateway record


def test_interface_formats() -> None:
    """Output interface format 1 = discarded (reason 1), 2 = several interfaces (7),
    0 with 0x3FFFFFFF = the agent itself (kept as the ifIndex value)."""
    discard = decode_file("data-discard-interface.pcap")[0].to_pylist()[0]
    assert (discard["input_if"], discard["output_if"], discard["discard_reason"]) == (27, None, 1)
    multiple = decode_file("data-multiple-interfaces.pcap")[0].to_pylist()[0]
    assert (multiple["output_if"], multiple["discard_reason"]) == (None, None)
    local = decode_file("data-local-interface.pcap")[0].to_pylist()[0]
    assert local["output_if"] == 0x3FFFFFFF


def test_qinq_outer_and_inner_tags() -> None:
    """data-qinq: an expanded sample of a frame with two 802.1Q tags (checked with dpkt in
    the reference: outer 1062); the inner tag is read here by hand from the frame."""
    datagram = read_capture(SFLOW_CAPTURES / "data-qinq.pcap")[0]
    frame_at = datagram.payload.index(bytes.fromhex("8100"), 80)  # the first tag's TPID
    inner = int.from_bytes(datagram.payload[frame_at + 6 : frame_at + 8]) & 0x0FFF
    row = decode_file("data-qinq.pcap")[0].to_pylist()[0]
    assert (row["src_vlan"], row["inner_vlan"]) == (1062, inner)
    assert row["sampling_rate"] == 4096 and row["bytes"] == 106 * 4096


def test_sample_pool_and_drops_per_agent() -> None:
    _, decoder = decode_file("data-qinq.pcap")
    assert decoder.agents() == {
        "172.17.128.58": {
            "flow_samples": 1,
            "counter_samples": 0,
            "sample_pool": 12237120,
            "drops": 30,
        }
    }


def test_same_records_through_netdistill_pcap_reader() -> None:
    """The project's own pcap reader (used by import) gives the same datagrams."""
    from netdistill.sources.pcap import datagram_protocol, read_pcap

    for name in FILES:
        datagrams, stats = read_pcap(SFLOW_CAPTURES / name)
        assert [d.payload for d in datagrams] == [
            d.payload for d in read_capture(SFLOW_CAPTURES / name)
        ]
        assert {datagram_protocol(d.payload) for d in datagrams} == {"sflow"}
        assert stats.datagrams == len(datagrams)


def test_path_is_in_shared_not_repo() -> None:
    assert Path(__file__).resolve().parents[3] not in SFLOW_CAPTURES.parents
