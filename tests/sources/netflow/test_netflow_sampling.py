"""Sampling rates announced in options data, one test per RFC 5477 selector algorithm and
per NetFlow v9 sampler form. Datagrams are built with ``struct`` (nfbuild), not with the
project's encoder; each expected rate is the RFC's formula applied in the test to the
numbers written into the options record."""

from __future__ import annotations

import struct

import pytest
from nfbuild import (
    dgram,
    flowset,
    ipfix_message,
    ipfix_options_template,
    template_record,
    v9_message,
    v9_options_template,
)

from netdistill.sources.netflow import NetflowDecoder

RAW_BYTES, RAW_PACKETS = 1_000, 4


def _ipfix_flows(n: int, *, selector_id: int | None = None, id_length: int = 4) -> list[bytes]:
    """Data template 256 (src, dst, octets, packets [, selectorId]) and ``n`` records."""
    fields = [(8, 4), (12, 4), (1, 8), (2, 8)]
    if selector_id is not None:
        fields.append((302, id_length))
    template = flowset(2, template_record(256, fields))
    body = b""
    for i in range(n):
        body += struct.pack(">IIQQ", 0x0A000001 + i, 0xC0000201, RAW_BYTES, RAW_PACKETS)
        if selector_id is not None:
            body += selector_id.to_bytes(id_length, "big")
    return [template, flowset(256, body)]


def _decode_ipfix(options_template: bytes, options_data: bytes, **flows: int) -> list[int]:
    decoder = NetflowDecoder()
    result = decoder.decode(
        [
            dgram(ipfix_message([flowset(3, options_template), flowset(500, options_data)])),
            dgram(ipfix_message(_ipfix_flows(3, **flows), sequence=1)),
        ]
    )
    assert result.quarantined == []
    rates = result.records.column("sampling_rate").to_pylist()
    assert result.records.column("bytes").to_pylist() == [RAW_BYTES * r for r in rates]
    assert result.records.column("packets").to_pylist() == [RAW_PACKETS * r for r in rates]
    return rates  # type: ignore[no-any-return]


def test_ios_xr_random_1_out_of_256_without_selector_in_records() -> None:
    """What an ASR9k (IOS XR, ``sampler-map … random 1 out-of 256``) sends over IPFIX
    (Cisco bug CSCwe26529): options scoped by selectorId, selectorAlgorithm 3 (random
    n-out-of-N) with samplingPacketInterval 305 = 256 as the N of 1-out-of-N and no
    samplingPacketSpace, samplerName 84; its flow records carry no selector id. It was
    stored unsampled: 305 was read as RFC 5477's "n selected of n + 0" → 1."""
    template = ipfix_options_template(500, [(302, 8)], [(304, 2), (305, 4), (84, 32)])
    data = struct.pack(">QHI32s", 1, 3, 256, b"NETFLOW-SAMPLER-MAP")
    assert _decode_ipfix(template, data) == [256] * 3


def test_random_n_out_of_population_with_selector_in_records() -> None:
    """Fixed IOS XR releases add samplingSize 309 / samplingPopulation 310 (RFC 5477
    §8.2.3); records name their selector in 2 bytes while the options use 8."""
    template = ipfix_options_template(500, [(302, 8)], [(304, 2), (305, 4), (309, 4), (310, 4)])
    size, population = 2, 1024
    data = struct.pack(">QHIII", 0x2A, 3, 512, size, population)
    assert _decode_ipfix(template, data, selector_id=0x2A, id_length=2) == [population // size] * 3


@pytest.mark.parametrize(
    ("name", "options", "values", "expected"),
    [
        # 1 systematic count-based: n = 2 selected, then m = 198 skipped → 1 in (2+198)/2
        ("count-based", [(304, 2), (305, 4), (306, 4)], (">HII", 1, 2, 198), (2 + 198) // 2),
        # 2 systematic time-based: 10 ms selected every 10 + 990 ms → traffic × 100
        (
            "time-based",
            [(304, 2), (307, 4), (308, 4)],
            (">HII", 2, 10_000, 990_000),
            (10_000 + 990_000) // 10_000,
        ),
        # 3 random n-out-of-N
        ("random", [(304, 2), (309, 4), (310, 4)], (">HII", 3, 1, 4096), 4096),
        # 4 uniform probabilistic: p = 0.001 as float64 → 1000
        ("probabilistic", [(304, 2), (311, 8)], (">Hd", 4, 0.001), round(1 / 0.001)),
        # … and in reduced-size float32 (RFC 7011 §6.2)
        ("probabilistic-32", [(304, 2), (311, 4)], (">Hf", 4, 0.0625), round(1 / 0.0625)),
        # 6-8 hash-based filtering: selected 0..99 of a 0..9999 output range → 1 in 100
        (
            "hash-crc",
            [(304, 2), (329, 8), (330, 8), (331, 8), (332, 8)],
            (">HQQQQ", 8, 0, 9_999, 0, 99),
            (9_999 - 0 + 1) // (99 - 0 + 1),
        ),
    ],
)
def test_rfc5477_selector_algorithms(
    name: str, options: list[tuple[int, int]], values: tuple[object, ...], expected: int
) -> None:
    template = ipfix_options_template(500, [(302, 4)], options)
    data = struct.pack(">I", 9) + struct.pack(*values)  # type: ignore[arg-type]
    assert _decode_ipfix(template, data, selector_id=9) == [expected] * 3, name


def test_property_match_filtering_is_not_sampling() -> None:
    """Algorithm 5 selects packets by their properties (RFC 5475 §6.1): no rate can be
    derived, so nothing is learnt and the records keep the default rate."""
    template = ipfix_options_template(500, [(302, 4)], [(304, 2)])
    assert _decode_ipfix(template, struct.pack(">IH", 9, 5), selector_id=9) == [1] * 3


def test_a_record_without_selector_is_not_guessed_among_several() -> None:
    """Two selectors with different rates in one domain and records that name neither:
    the rate is unknown, so the configured default applies (and no selector is guessed)."""
    decoder = NetflowDecoder(default_sampling_rate=7)
    template = flowset(3, ipfix_options_template(500, [(302, 4)], [(309, 4), (310, 4)]))
    data = flowset(500, struct.pack(">III", 1, 1, 100) + struct.pack(">III", 2, 1, 200))
    result = decoder.decode(
        [
            dgram(ipfix_message([template, data])),
            dgram(ipfix_message(_ipfix_flows(2), sequence=2)),
        ]
    )
    assert result.records.column("sampling_rate").to_pylist() == [7, 7]


def test_v9_flow_sampler_random_interval_alone() -> None:
    """A v9 sampler options record with FLOW_SAMPLER_ID 48, FLOW_SAMPLER_MODE 49 = 2
    (random) and FLOW_SAMPLER_RANDOM_INTERVAL 50 = 333 and no SAMPLING_INTERVAL 34;
    records carry FLOW_SAMPLER_ID (1 byte)."""
    decoder = NetflowDecoder()
    options = flowset(1, v9_options_template(400, [(1, 4)], [(48, 1), (49, 1), (50, 4)]))
    options_data = flowset(400, struct.pack(">IBBI", 0, 3, 2, 333) + b"\x00\x00")
    data_template = flowset(0, template_record(300, [(8, 4), (1, 4), (2, 4), (48, 1)]))
    data = flowset(300, struct.pack(">IIIB", 0x0A000001, 10, 1, 3) + b"\x00\x00\x00")
    result = decoder.decode([dgram(v9_message([options, options_data, data_template, data]))])
    assert result.quarantined == []
    assert result.records.column("sampling_rate").to_pylist() == [333]
    assert result.records.column("bytes").to_pylist() == [3_330]


def test_v9_sampling_algorithm_with_interval_in_options() -> None:
    """SAMPLING_ALGORITHM 35 (1 deterministic, 2 random) beside SAMPLING_INTERVAL 34:
    both are 1-in-N, the algorithm changes nothing in the rate."""
    for algorithm in (1, 2):
        decoder = NetflowDecoder()
        options = flowset(1, v9_options_template(400, [(1, 4)], [(35, 1), (34, 4)]))
        options_data = flowset(400, struct.pack(">IBI", 0, algorithm, 64) + b"\x00\x00\x00")
        data_template = flowset(0, template_record(300, [(8, 4), (1, 4), (2, 4)]))
        data = flowset(300, struct.pack(">III", 0x0A000001, 10, 1))
        result = decoder.decode([dgram(v9_message([options, options_data, data_template, data]))])
        assert result.records.column("bytes").to_pylist() == [640]
