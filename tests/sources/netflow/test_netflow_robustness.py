"""Hostile and broken datagrams never raise out of decode(): each is decoded or
quarantined with a reason, detail and byte offset, and counted; the rest of the batch
is kept."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nfbuild import dgram, flowset, ipfix_message, template_record, v5_datagram, v9_message

from netdistill.sources.base import MALFORMED
from netdistill.sources.netflow import NetflowDecoder

IPFIX_FIELDS = [(8, 4), (12, 4), (1, 8), (2, 4), (7, 2), (11, 2), (4, 1), (152, 8), (82, 65535)]


def good_ipfix(n: int = 3) -> bytes:
    records = b"".join(
        struct.pack(">IIQIHHBQ", 0x0A000001, 0x0A000002, 100, 1, 1, 2, 6, 1_700_000_000_000)
        + b"\x02ab"
        for _ in range(n)
    )
    return ipfix_message([flowset(2, template_record(256, IPFIX_FIELDS)), flowset(256, records)])


def good_v9(n: int = 3) -> bytes:
    fields = [(8, 4), (12, 4), (1, 4), (2, 4), (22, 4), (21, 4)]
    body = struct.pack(">IIIIII", 1, 2, 100, 1, 0, 0) * n
    return v9_message([flowset(0, template_record(300, fields)), flowset(300, body)])


def check_accounting(decoder: NetflowDecoder, datagrams: int, result_quarantined: int) -> None:
    assert decoder.counters.datagrams == datagrams
    assert sum(decoder.counters.dropped.values()) == result_quarantined


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_arbitrary_bytes_never_raise(payloads: list[bytes]) -> None:
    decoder = NetflowDecoder()
    result = decoder.decode([dgram(p) for p in payloads])
    flushed = decoder.flush()
    check_accounting(decoder, len(payloads), len(result.quarantined) + len(flushed.quarantined))
    for q in result.quarantined:
        assert q.reason and q.detail and q.payload in payloads


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from([good_ipfix(), good_v9(), v5_datagram([{}] * 3)]))
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[: cut if draw(st.booleans()) else len(data)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_mutated_and_truncated_datagrams_never_raise(payloads: list[bytes]) -> None:
    decoder = NetflowDecoder()
    intact = good_ipfix(2)
    result = decoder.decode([dgram(p) for p in payloads] + [dgram(intact, exporter="198.51.100.1")])
    flushed = decoder.flush()
    check_accounting(decoder, len(payloads) + 1, len(result.quarantined) + len(flushed.quarantined))
    # the intact datagram from another exporter is always decoded, whatever the others did
    from_intact = [e for e in result.records.column("exporter").to_pylist() if e == "198.51.100.1"]
    assert len(from_intact) == 2
    for q in result.quarantined + flushed.quarantined:
        assert q.offset is None or 0 <= q.offset <= len(q.payload)


def decode_one(payload: bytes) -> tuple[NetflowDecoder, list[tuple[str, int | None, str]], int]:
    decoder = NetflowDecoder()
    result = decoder.decode([dgram(payload), dgram(good_v9(1), exporter="198.51.100.9")])
    kept = result.records.column("exporter").to_pylist().count("198.51.100.9")
    assert kept == 1  # the good datagram of the batch is kept
    quarantined = [(q.reason, q.offset, q.detail) for q in result.quarantined]
    return decoder, quarantined, result.records.num_rows - 1


IPFIX_HEADER = 16


@pytest.mark.parametrize(
    ("payload", "reason", "offset", "in_detail", "records"),
    [
        (b"", "truncated", 0, "version", 0),
        (b"\x00\x07" + bytes(30), "unknown_version", 0, "7", 0),
        (v5_datagram([{}] * 3)[:-1], "truncated", 167, "count 3", 0),
        (b"\x00\x09" + bytes(10), "truncated", 12, "v9 header", 0),
        # set length 2 (< 4): zero-length / absurd set
        (ipfix_message([struct.pack(">HH", 256, 2)]), MALFORMED, IPFIX_HEADER + 2, "length 2", 0),
        # set pointing past the end
        (
            ipfix_message([struct.pack(">HH", 2, 400) + bytes(8)]),
            "truncated",
            IPFIX_HEADER,
            "past",
            0,
        ),
        # template with zero-length fields only: record length 0
        (
            ipfix_message([flowset(2, template_record(256, [(1, 0), (2, 0)]))]),
            MALFORMED,
            20,
            "record length 0",
            0,
        ),
        # v9 template with zero fields
        (v9_message([flowset(0, struct.pack(">HH", 300, 0))]), MALFORMED, 24, "zero fields", 0),
        # template id below 256
        (ipfix_message([flowset(2, template_record(17, [(1, 4)]))]), MALFORMED, 20, "below 256", 0),
        # variable-length field whose length runs past the set
        (
            ipfix_message(
                [flowset(2, template_record(256, [(82, 65535)])), flowset(256, b"\x09abc")]
            ),
            "truncated",
            32,
            "past",
            0,
        ),
        # an intact datagram: nothing quarantined
        (good_ipfix(2), None, None, "", 2),
    ],
)
def test_malformed_datagrams_are_quarantined_with_place(
    payload: bytes, reason: str | None, offset: int | None, in_detail: str, records: int
) -> None:
    decoder, quarantined, decoded = decode_one(payload)
    if reason is None:
        assert quarantined == []
    else:
        assert len(quarantined) == 1
        got_reason, got_offset, detail = quarantined[0]
        assert (got_reason, got_offset) == (reason, offset), detail
        assert in_detail in detail
        assert decoder.counters.dropped[reason] == 1
    assert decoded == records


def test_ipfix_length_beyond_datagram_keeps_complete_sets() -> None:
    payload = bytearray(good_ipfix(2))
    struct.pack_into(">H", payload, 2, len(payload) + 50)
    _, quarantined, decoded = decode_one(bytes(payload))
    assert decoded == 2
    assert [(r, o) for r, o, _ in quarantined] == [("truncated", len(payload))]


def test_bad_template_after_good_one_keeps_the_good_one() -> None:
    sets = flowset(2, template_record(256, [(1, 4)]) + template_record(3, [(2, 4)]))
    decoder = NetflowDecoder()
    result = decoder.decode([dgram(ipfix_message([sets]))])
    assert [q.reason for q in result.quarantined] == [MALFORMED]
    data = decoder.decode([dgram(ipfix_message([flowset(256, struct.pack(">I", 77))]))])
    assert data.records.column("bytes").to_pylist() == [77]


def test_unknown_template_state_is_rejected_cleanly() -> None:
    from netdistill.errors import DecodeError

    decoder = NetflowDecoder()
    with pytest.raises(DecodeError):
        decoder.load_template_state(b"not json")
