"""What the captures do not have: counter samples, IPv6 agents, sequence gaps, sampled
IPv4 records alone — and bad input. Datagrams are built with ``struct`` in ``sflowref``;
every malformed datagram is quarantined whole with its offset, the others of the batch
are kept, and nothing raises."""

from __future__ import annotations

import random
import struct

import pytest
import sflowref
from sflowref import (
    SFLOW_CAPTURES,
    counter_sample,
    ethernet_ipv4_tcp,
    flow_sample,
    header,
    raw_header,
    read_capture,
    xdr,
)

from netdistill.sources.base import Datagram
from netdistill.sources.sflow import SflowDecoder


def dg(payload: bytes, at: float = 1_700_000_000.0) -> Datagram:
    return Datagram("198.51.100.9", payload, at, 6343)


def good_datagram(sequence: int = 1, *, agent: str = "192.0.2.1", sub_agent: int = 0) -> bytes:
    frame = ethernet_ipv4_tcp("10.0.0.1", "10.0.0.2", 1234, 443, vlan=12, flags=0x18, tos=0x20)
    return header(
        agent=agent,
        sub_agent=sub_agent,
        sequence=sequence,
        samples=[flow_sample([raw_header(frame, frame_length=1500)], rate=100, pool=500)],
    )


def test_built_flow_sample_fields() -> None:
    result = SflowDecoder(source="edge").decode([dg(good_datagram())])
    assert result.quarantined == []
    row = result.records.to_pylist()[0]
    assert (row["src_ip"], row["dst_ip"], row["src_port"], row["dst_port"]) == (
        "10.0.0.1", "10.0.0.2", 1234, 443,
    )  # fmt: skip
    assert (row["protocol"], row["tcp_flags"], row["tos"], row["src_vlan"]) == (6, 0x18, 0x20, 12)
    assert (row["bytes"], row["packets"], row["sampling_rate"]) == (150_000, 100, 100)
    assert (row["input_if"], row["output_if"], row["exporter"]) == (1, 2, "192.0.2.1")
    assert row["source"] == "edge" and row["duration_s"] == 0.0
    assert row["start_time"].timestamp() == 1_700_000_000.0


def test_ipv6_agent_and_sampled_ipv4_record() -> None:
    ipv4 = xdr(3, struct.pack(">II4s4sIIII", 60, 17, bytes([10, 1, 1, 1]), bytes([10, 2, 2, 2]),
                              5353, 53, 0, 0))  # fmt: skip
    payload = header(agent="2001:db8::7", sub_agent=3, samples=[flow_sample([ipv4], rate=0)])
    result = SflowDecoder(default_sampling_rate=10).decode([dg(payload)])
    row = result.records.to_pylist()[0]
    assert row["exporter"] == "2001:db8::7" and row["sub_agent_id"] == 3
    assert (row["src_ip"], row["dst_ip"], row["src_port"], row["dst_port"]) == (
        "10.1.1.1", "10.2.2.2", 5353, 53,
    )  # fmt: skip
    # rate 0 means "not said": the source's default applies
    assert (row["bytes"], row["packets"], row["sampling_rate"]) == (600, 10, 10)


def test_counter_samples_are_interface_records_without_usage() -> None:
    payload = header(
        samples=[
            counter_sample(7, 10**12, 5 * 10**11),
            flow_sample([raw_header(ethernet_ipv4_tcp("10.0.0.1", "10.0.0.2", 1, 2))]),
            counter_sample(8, 1, 2, sequence=2),
        ]
    )
    decoder = SflowDecoder()
    table = decoder.decode([dg(payload)]).records
    counters = [r for r in table.to_pylist() if r["sample_kind"] == "counters"]
    assert [r["input_if"] for r in counters] == [7, 8]
    first = counters[0]
    assert (first["if_in_octets"], first["if_out_octets"], first["if_speed"]) == (
        10**12, 5 * 10**11, 10**9,
    )  # fmt: skip
    assert (first["if_in_packets"], first["if_out_packets"]) == (13, 27)
    assert (first["if_in_errors"], first["if_out_errors"]) == (5, 6)
    assert (first["if_in_discards"], first["if_out_discards"]) == (7, 8)
    assert first["bytes"] is None and first["packets"] is None
    assert [r["sample_kind"] for r in table.to_pylist()].count("flow") == 1
    assert decoder.agents()["192.0.2.1"]["counter_samples"] == 2


def test_sequence_gaps_per_agent_and_sub_agent() -> None:
    decoder = SflowDecoder()
    # agent A sub 0: 1, 2, 5 (3 and 4 lost); agent A sub 1: 10, 11 (none lost);
    # agent B: 7, 9 (8 lost), then 8 arrives late (no loss after all)
    batch = [
        dg(good_datagram(1)),
        dg(good_datagram(10, sub_agent=1)),
        dg(good_datagram(2)),
        dg(good_datagram(11, sub_agent=1)),
        dg(good_datagram(5)),
        dg(good_datagram(7, agent="192.0.2.2")),
        dg(good_datagram(9, agent="192.0.2.2")),
    ]
    decoder.decode(batch)
    assert dict(decoder.counters.sequence_lost) == {"192.0.2.1": 2, "192.0.2.2": 1}
    decoder.decode([dg(good_datagram(8, agent="192.0.2.2"))])
    assert dict(decoder.counters.sequence_lost) == {"192.0.2.1": 2, "192.0.2.2": 0}
    # a consecutive run in the next batch adds nothing
    decoder.decode([dg(good_datagram(n)) for n in range(6, 40)])
    assert decoder.counters.sequence_lost["192.0.2.1"] == 2


def _sample_count_patched(count: int) -> bytes:
    payload = bytearray(good_datagram())
    payload[24:28] = struct.pack(">I", count)
    return bytes(payload)


def test_malformed_datagrams_are_quarantined_with_offsets() -> None:
    good = good_datagram()
    sample_length_past = bytearray(good)
    sample_length_past[32:36] = struct.pack(">I", 4000)  # the first sample's length
    odd_length = bytearray(good)
    odd_length[32:36] = struct.pack(">I", struct.unpack_from(">I", good, 32)[0] + 1)
    header_too_long = bytearray(good)
    # the raw header record: sample body at 36, records at 36 + 32; its header_length word
    header_too_long[36 + 32 + 8 + 12 : 36 + 32 + 8 + 16] = struct.pack(">I", 1000)
    cases = [
        (b"\x00\x00\x00\x05\x00\x00", "truncated", 6),
        (struct.pack(">II", 4, 1) + bytes(40), "unknown_version", 0),
        (struct.pack(">II", 5, 3) + bytes(40), "malformed", 4),
        (_sample_count_patched(1000), "malformed", 24),
        (bytes(sample_length_past), "truncated", 32),
        (bytes(odd_length), "malformed", 32),
        (bytes(header_too_long), "malformed", 36 + 32 + 8 + 12),
    ]
    decoder = SflowDecoder()
    batch = [dg(good)] + [dg(payload) for payload, _, _ in cases] + [dg(good_datagram(2))]
    result = decoder.decode(batch)
    assert result.records.num_rows == 2  # the two good ones, whatever sits between them
    got = [(q.payload, q.reason, q.offset) for q in result.quarantined]
    assert got == [(bytes(p), r, o) for p, r, o in cases]
    assert all(q.detail for q in result.quarantined)
    assert decoder.counters.dropped == {"truncated": 2, "unknown_version": 1, "malformed": 4}


@pytest.mark.skipif(not SFLOW_CAPTURES.is_dir(), reason="captures not found")
def test_every_truncation_of_real_datagrams_is_quarantined_never_raised() -> None:
    """Cut each real datagram at every length: each cut either decodes to the samples
    the reference walk finds in it (a cut in trailing bytes) or is quarantined."""
    batch = []
    for path in sorted(SFLOW_CAPTURES.glob("*.pcap")):
        for datagram in read_capture(path):
            batch += [dg(datagram.payload[:cut]) for cut in range(len(datagram.payload))]
    decoder = SflowDecoder()
    result = decoder.decode(batch)
    kept = len(batch) - len(result.quarantined)
    expected_rows = 0
    for item in batch:
        try:
            expected_rows += len(sflowref.decode(item.payload).samples)
        except (struct.error, ValueError, AssertionError):  # the reference refuses it too
            continue
    assert result.records.num_rows == expected_rows
    assert kept > 0 and len(result.quarantined) > 0
    assert all(q.offset is not None and 0 <= q.offset <= len(q.payload) for q in result.quarantined)


def test_random_garbage_never_raises() -> None:
    rng = random.Random(5)
    good = good_datagram()
    batch = []
    for _ in range(3000):
        payload = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            payload[rng.randrange(len(payload))] = rng.randrange(256)
        batch.append(dg(bytes(payload)))
    batch += [dg(rng.randbytes(rng.randrange(0, 300))) for _ in range(500)]
    decoder = SflowDecoder()
    result = decoder.decode(batch)
    assert result.records.num_rows + len(result.quarantined) >= 1
    assert len(result.quarantined) == sum(decoder.counters.dropped.values())
    assert not any(q.detail.startswith("unexpected") for q in result.quarantined)


def _gateway(next_hop: bytes, segments: list[tuple[int, list[int]]], *, src_as: int = 64496,
             communities: int = 2) -> bytes:  # fmt: skip
    kind = 1 if len(next_hop) == 4 else 2
    body = struct.pack(">I", kind) + next_hop + struct.pack(">IIII", 64999, src_as, 64497,
                                                           len(segments))  # fmt: skip
    for segment_type, numbers in segments:
        body += struct.pack(f">II{len(numbers)}I", segment_type, len(numbers), *numbers)
    body += struct.pack(f">I{communities}I", communities, *range(communities))
    return xdr(1003, body + struct.pack(">I", 100))


def test_gateway_paths_of_every_shape() -> None:
    """One AS_SEQUENCE (the vectorized path), none, several segments with an AS_SET and
    an IPv6 next hop (the per-record path): AS path text, dst_as = the last AS."""
    frame = raw_header(ethernet_ipv4_tcp("10.0.0.1", "10.0.0.2", 1, 2))
    v6_hop = bytes.fromhex("20010db8000000000000000000000001")
    gateways = [
        _gateway(bytes([10, 9, 9, 9]), [(2, [64500, 64501, 64502])]),
        _gateway(bytes([10, 9, 9, 8]), [], src_as=0),
        _gateway(v6_hop, [(2, [64500, 64501]), (1, [64502, 64503])]),
        _gateway(bytes([10, 9, 9, 7]), [(2, [64510])], communities=0),
    ]
    payload = header(samples=[flow_sample([frame, g], sequence=i) for i, g in enumerate(gateways)])
    result = SflowDecoder().decode([dg(payload)])
    assert result.quarantined == []
    rows = result.records.to_pylist()
    assert [(r["as_path"], r["src_as"], r["dst_as"], r["next_hop"]) for r in rows] == [
        ("64500 64501 64502", 64496, 64502, "10.9.9.9"),
        ("", 0, 0, "10.9.9.8"),
        ("64500 64501 {64502 64503}", 64496, 64503, "2001:db8::1"),
        ("64510", 64496, 64510, "10.9.9.7"),
    ]


def test_bad_gateway_records_are_quarantined() -> None:
    frame = raw_header(ethernet_ipv4_tcp("10.0.0.1", "10.0.0.2", 1, 2))
    good = _gateway(bytes([10, 9, 9, 9]), [(2, [64500])])
    too_many = bytearray(good)
    too_many[8 + 4 + 4 + 12 + 4 + 4 : 8 + 4 + 4 + 12 + 4 + 8] = struct.pack(">I", 50)  # AS count
    bad_address = bytearray(good)
    bad_address[8:12] = struct.pack(">I", 9)
    batch = [
        dg(header(samples=[flow_sample([frame, bytes(record)])]))
        for record in (good, bytes(too_many), bytes(bad_address))
    ]
    result = SflowDecoder().decode(batch)
    assert result.records.num_rows == 1
    assert [(q.payload, q.reason) for q in result.quarantined] == [
        (batch[1].payload, "malformed"),
        (batch[2].payload, "malformed"),
    ]
    assert all("AS path" in q.detail for q in result.quarantined)
