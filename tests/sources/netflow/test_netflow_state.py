"""Decoder state: templates across restarts, data held for its template, sequence gaps,
sampling-rate precedence, IPFIX encodings (variable length, enterprise, reduced size)."""

from __future__ import annotations

import struct

from nfbuild import (
    dgram,
    flowset,
    ipfix_message,
    ipfix_options_template,
    template_record,
    v5_datagram,
    v9_message,
    v9_options_template,
)

from netdistill.sources.base import NO_TEMPLATE
from netdistill.sources.netflow import NetflowDecoder

# v9 template 300: src, dst (IPv4), bytes, packets (4 bytes each), FIRST/LAST_SWITCHED
V9_FIELDS = [(8, 4), (12, 4), (1, 4), (2, 4), (22, 4), (21, 4)]


def v9_template(template_id: int = 300, fields: list[tuple[int, int]] = V9_FIELDS) -> bytes:
    return flowset(0, template_record(template_id, fields))


def v9_data(n: int, template_id: int = 300, bytes_: int = 1000) -> bytes:
    body = b"".join(
        struct.pack(">IIIIII", 0x0A000001 + i, 0xC0000201, bytes_, 2, 90_000, 99_000)
        for i in range(n)
    )
    return flowset(template_id, body)


def test_template_state_survives_a_restart() -> None:
    first = NetflowDecoder()
    version = first.template_version
    first.decode([dgram(v9_message([v9_template()]))])
    assert first.template_version > version
    state = first.template_state()

    restarted = NetflowDecoder()
    restarted.load_template_state(state)
    result = restarted.decode([dgram(v9_message([v9_data(3)], sequence=1))])
    assert result.quarantined == []
    assert result.records.num_rows == 3
    assert result.records.column("bytes").to_pylist() == [1000] * 3
    # uptime 100000 ms at export 1700000000 s; FIRST_SWITCHED 90000 → 10 s before
    assert result.records.column("start_time").to_pylist()[0].timestamp() == 1_699_999_990


def test_options_sampling_rate_survives_a_restart() -> None:
    first = NetflowDecoder()
    options = flowset(1, v9_options_template(400, [(1, 4)], [(34, 4)]))
    options_data = flowset(400, struct.pack(">II", 0, 64))
    first.decode([dgram(v9_message([v9_template(), options, options_data]))])
    restarted = NetflowDecoder()
    restarted.load_template_state(first.template_state())
    records = restarted.decode([dgram(v9_message([v9_data(1)]))]).records
    assert records.column("sampling_rate").to_pylist() == [64]
    assert records.column("bytes").to_pylist() == [64_000]


def test_data_before_template_is_held_then_decoded() -> None:
    decoder = NetflowDecoder(hold_s=10)
    early = decoder.decode([dgram(v9_message([v9_data(2)]), at=100.0)])
    assert early.records.num_rows == 0 and early.quarantined == []
    late = decoder.decode([dgram(v9_message([v9_template()]), at=105.0)])
    assert late.records.num_rows == 2
    assert decoder.counters.records == 2
    assert decoder.counters.dropped == {}


def test_data_before_template_in_the_same_batch() -> None:
    decoder = NetflowDecoder()
    result = decoder.decode(
        [dgram(v9_message([v9_data(2)])), dgram(v9_message([v9_template()], sequence=1))]
    )
    assert result.records.num_rows == 2


def test_held_data_is_quarantined_after_hold_s() -> None:
    decoder = NetflowDecoder(hold_s=10)
    payload = v9_message([v9_data(2)])
    assert decoder.decode([dgram(payload, at=100.0)]).quarantined == []
    assert decoder.expire(now=109.0).quarantined == []
    expired = decoder.expire(now=111.0)
    assert [(q.reason, q.offset, q.payload) for q in expired.quarantined] == [
        (NO_TEMPLATE, 20, payload)
    ]
    assert "300" in expired.quarantined[0].detail
    assert decoder.counters.dropped[NO_TEMPLATE] == 1
    # the template coming later no longer finds it
    assert decoder.decode([dgram(v9_message([v9_template()]), at=112.0)]).records.num_rows == 0


def test_hold_bound_and_flush() -> None:
    decoder = NetflowDecoder(hold_max_datagrams=2)
    result = decoder.decode([dgram(v9_message([v9_data(1)], sequence=i)) for i in range(3)])
    assert [q.reason for q in result.quarantined] == [NO_TEMPLATE]
    flushed = decoder.flush()
    assert [q.reason for q in flushed.quarantined] == [NO_TEMPLATE, NO_TEMPLATE]
    assert decoder.counters.dropped[NO_TEMPLATE] == 3


def test_flush_decodes_what_has_its_template() -> None:
    decoder = NetflowDecoder()
    decoder.decode([dgram(v9_message([v9_data(2)]))])
    decoder.load_template_state(_state_with_template())
    assert decoder.flush().records.num_rows == 2


def _state_with_template() -> bytes:
    other = NetflowDecoder()
    other.decode([dgram(v9_message([v9_template()]))])
    return other.template_state()


def test_templates_expire_without_refresh() -> None:
    decoder = NetflowDecoder(template_timeout_s=60)
    decoder.decode([dgram(v9_message([v9_template()]), at=1000.0)])
    version = decoder.template_version
    decoder.expire(now=1061.0)
    assert decoder.template_version > version
    result = decoder.decode([dgram(v9_message([v9_data(1)]), at=1062.0)])
    assert result.records.num_rows == 0  # held: the template is gone


def test_ipfix_template_withdrawal() -> None:
    decoder = NetflowDecoder()
    fields = [(8, 4), (12, 4), (1, 8), (2, 8)]
    record = struct.pack(">IIQQ", 1, 2, 500, 5)
    decoder.decode([dgram(ipfix_message([flowset(2, template_record(256, fields))]))])
    assert decoder.decode([dgram(ipfix_message([flowset(256, record)]))]).records.num_rows == 1
    decoder.decode([dgram(ipfix_message([flowset(2, struct.pack(">HH", 256, 0))]))])
    assert decoder.decode([dgram(ipfix_message([flowset(256, record)]))]).records.num_rows == 0


def test_v5_sequence_gap_counted_in_flows() -> None:
    decoder = NetflowDecoder()
    flows = [{}] * 3
    decoder.decode(
        [
            dgram(v5_datagram(flows, sequence=0)),
            dgram(v5_datagram(flows, sequence=3)),
            dgram(v5_datagram(flows, sequence=10)),  # flows 6-9 lost: 4
            dgram(v5_datagram(flows, sequence=13)),
            dgram(v5_datagram(flows, sequence=0, engine=(0, 1)), exporter="192.0.2.1"),
        ]
    )
    assert decoder.counters.sequence_lost == {"192.0.2.1": 4}


def test_v9_sequence_gap_counted_in_datagrams() -> None:
    decoder = NetflowDecoder()
    decoder.decode([dgram(v9_message([v9_template()], sequence=s)) for s in (5, 6, 9, 8, 10)])
    # 7 never came; 8 came late and fills its place in the span: 1 datagram lost
    assert decoder.counters.sequence_lost == {"192.0.2.1": 1}


def test_reordering_is_not_loss_and_a_restart_starts_again() -> None:
    decoder = NetflowDecoder()
    order = (500, 502, 501, 503, 600, 601, 2, 3)  # 504..599 missing; restart at 2
    decoder.decode([dgram(v9_message([v9_template()], sequence=s)) for s in order])
    assert decoder.counters.sequence_lost == {"192.0.2.1": 96}


def test_ipfix_sequence_gap_counted_in_records() -> None:
    decoder = NetflowDecoder()
    fields = [(8, 4), (1, 4)]
    tmpl = flowset(2, template_record(256, fields))
    data = flowset(256, struct.pack(">II", 1, 10) * 5)
    decoder.decode(
        [
            dgram(ipfix_message([tmpl, data], sequence=100)),
            dgram(ipfix_message([data], sequence=105)),
            dgram(ipfix_message([data], sequence=117)),  # 7 records lost
            dgram(ipfix_message([data], sequence=122, domain=9)),  # other domain: no gap
        ]
    )
    assert decoder.counters.sequence_lost == {"192.0.2.1": 7}


def test_sampling_rate_precedence() -> None:
    decoder = NetflowDecoder(default_sampling_rate=3, exporter_sampling_rates={"192.0.2.7": 5})
    v5 = v5_datagram([{"bytes": 10, "packets": 1}])
    records = decoder.decode(
        [
            dgram(v5),  # default
            dgram(v5, exporter="192.0.2.7"),  # exporter rate
            dgram(
                v5_datagram([{"bytes": 10, "packets": 1}], sampling=(1 << 14) | 7),
                exporter="192.0.2.7",
            ),  # header: low 14 bits = 7, mode bits ignored
        ]
    ).records
    assert records.column("sampling_rate").to_pylist() == [3, 5, 7]
    assert records.column("bytes").to_pylist() == [30, 50, 70]


def test_ipfix_sampler_options_and_in_record_interval() -> None:
    decoder = NetflowDecoder()
    # options: scope selectorId (302), samplingPacketInterval 1 / Space 99 → 1 in 100
    options_template = flowset(3, ipfix_options_template(500, [(302, 4)], [(305, 4), (306, 4)]))
    options_data = flowset(500, struct.pack(">III", 7, 1, 99))
    data_template = flowset(2, template_record(256, [(8, 4), (1, 4), (302, 4)]))
    inline_template = flowset(2, template_record(257, [(8, 4), (1, 4), (34, 4)]))
    result = decoder.decode(
        [
            dgram(ipfix_message([options_template, options_data, data_template, inline_template])),
            dgram(ipfix_message([flowset(256, struct.pack(">III", 1, 10, 7))])),
            dgram(ipfix_message([flowset(256, struct.pack(">III", 1, 10, 8))])),  # unknown id
            dgram(ipfix_message([flowset(257, struct.pack(">III", 1, 10, 50))])),
        ]
    )
    assert result.quarantined == []
    rows = sorted(
        zip(
            result.records.column("sampling_rate").to_pylist(),
            result.records.column("bytes").to_pylist(),
            strict=True,
        )
    )
    assert rows == [(1, 10), (50, 500), (100, 1000)]


def test_ipfix_variable_length_enterprise_and_reduced_size() -> None:
    decoder = NetflowDecoder()
    fields = [
        (8, 4),
        (0x8000 | 12, 4),  # enterprise element 12 of PEN 9: not an address
        (82, 65535),  # interfaceName, variable length
        (1, 3),  # octetDeltaCount in 3 bytes (reduced size)
        (2, 1),
        (7, 2),
        (83, 65535),
        (152, 8),
        (153, 8),
    ]
    short = (
        struct.pack(">II", 0x0A000001, 0xDEADBEEF)
        + b"\x03eth"
        + b"\x01\x00\x00"
        + b"\x05"
        + struct.pack(">H", 80)
        + b"\x00"
        + struct.pack(">QQ", 1_700_000_000_000, 1_700_000_001_500)
    )
    long_name = b"x" * 300
    long = (
        struct.pack(">II", 0x0A000002, 0)
        + b"\xff"
        + struct.pack(">H", 300)
        + long_name
        + b"\xff\xff\xff"
        + b"\x07"
        + struct.pack(">H", 443)
        + b"\x02ab"
        + struct.pack(">QQ", 1_700_000_000_000, 1_700_000_000_000)
    )
    result = decoder.decode(
        [
            dgram(
                ipfix_message(
                    [
                        flowset(2, template_record(256, fields)),
                        flowset(256, short + long + b"\x00\x00"),
                    ]
                )
            )
        ]
    )
    assert result.quarantined == []
    rows = result.records.to_pylist()
    assert [(r["src_ip"], r["dst_ip"], r["bytes"], r["packets"], r["src_port"]) for r in rows] == [
        ("10.0.0.1", None, 65536, 5, 80),
        ("10.0.0.2", None, 0xFFFFFF, 7, 443),
    ]
    assert rows[0]["duration_s"] == 1.5


def test_ipfix_times_from_system_init_time_option() -> None:
    decoder = NetflowDecoder()
    options = flowset(3, ipfix_options_template(500, [(149, 4)], [(160, 8)]))
    init_ms = 1_600_000_000_000
    result = decoder.decode(
        [
            dgram(
                ipfix_message(
                    [
                        options,
                        flowset(500, struct.pack(">IQ", 0, init_ms)),
                        flowset(2, template_record(256, [(1, 4), (22, 4), (21, 4)])),
                    ]
                )
            ),
            dgram(ipfix_message([flowset(256, struct.pack(">III", 10, 5_000, 8_000))])),
        ]
    )
    row = result.records.to_pylist()[0]
    assert row["start_time"].timestamp() == 1_600_000_005
    assert row["end_time"].timestamp() == 1_600_000_008


def test_ipfix_delta_microseconds_and_ntp_nanoseconds() -> None:
    decoder = NetflowDecoder()
    ntp_seconds = 1_700_000_000 + 2_208_988_800
    record = struct.pack(">IIQ", 10, 2_500_000, (ntp_seconds << 32) | (1 << 31))
    result = decoder.decode(
        [
            dgram(
                ipfix_message(
                    [
                        flowset(2, template_record(256, [(1, 4), (158, 4), (157, 8)])),
                        flowset(256, record),
                    ],
                    export_s=1_700_000_010,
                )
            )
        ]
    )
    row = result.records.to_pylist()[0]
    assert row["start_time"].timestamp() == 1_700_000_007.5  # 2.5 s before export
    assert row["end_time"].timestamp() == 1_700_000_000.5  # NTP fraction 1/2
