"""Mapping elements to fields (``elements:``): decoding each type from bytes built with
``struct``, the ipfixprobe capture's reverse octets mapped beside the biflow split, and
check-config's messages at file:line:column."""

from __future__ import annotations

import struct

import pytest
from nfbuild import AKVORADO, dgram, flowset, ipfix_message, read_capture

from netdistill.errors import SchemeError
from netdistill.scheme.load import parse_scheme
from netdistill.sources.netflow import NetflowDecoder
from netdistill.sources.netflow.mapping import ElementMapping

PEN = 4242


def ipfix_template(template_id: int, fields: list[tuple[int, int, int]]) -> bytes:
    out = struct.pack(">HH", template_id, len(fields))
    for enterprise, element, length in fields:
        if enterprise:
            out += struct.pack(">HHI", 0x8000 | element, length, enterprise)
        else:
            out += struct.pack(">HH", element, length)
    return out


def test_each_type_from_enterprise_elements() -> None:
    mappings = [
        ElementMapping(PEN, 1, "m_u16", "uint16"),
        ElementMapping(PEN, 2, "m_i64", "int64"),
        ElementMapping(PEN, 3, "m_ip4", "ip"),
        ElementMapping(PEN, 4, "m_ip6", "ip"),
        ElementMapping(PEN, 5, "m_text", "string"),
        ElementMapping(PEN, 6, "m_f64", "float64"),
        ElementMapping(PEN, 7, "m_f32", "float64"),
        ElementMapping(PEN, 8, "m_bool", "bool"),
        ElementMapping(PEN, 9, "m_ts", "timestamp"),
        ElementMapping(PEN, 10, "m_u16", "uint16"),  # not in the template: first wins
        ElementMapping(0, 8, "m_src", "ip"),  # an element the decoder reads too
    ]
    decoder = NetflowDecoder(element_mappings=mappings)
    fields = [(0, 8, 4), (0, 1, 8), (PEN, 1, 4), (PEN, 2, 3), (PEN, 3, 4), (PEN, 4, 16),
              (PEN, 5, 8), (PEN, 6, 8), (PEN, 7, 4), (PEN, 8, 1), (PEN, 9, 8)]  # fmt: skip
    records = [
        struct.pack(">IQI", 0x0A000001, 500, 70_000)  # 70,000 saturates a uint16
        + (-2 & 0xFFFFFF).to_bytes(3, "big")
        + bytes([192, 0, 2, 1])
        + bytes.fromhex("20010db8000000000000000000000001")
        + b"eth0\x00\x00\x00\x00"
        + struct.pack(">dfBQ", 2.5, 0.25, 1, 1_700_000_000_123),
        struct.pack(">IQI", 0x0A000002, 600, 7)
        + (5).to_bytes(3, "big")
        + bytes(4)
        + bytes(16)
        + "wlan-é".encode().ljust(8, b"\x00")
        + struct.pack(">dfBQ", -1.0, 1.0, 2, 0),
    ]
    result = decoder.decode(
        [
            dgram(
                ipfix_message(
                    [flowset(2, ipfix_template(300, fields)), flowset(300, b"".join(records))]
                )
            )
        ]
    )
    assert result.quarantined == []
    assert result.records.schema.names[-11:] == [
        "biflow_reverse", "m_u16", "m_i64", "m_ip4", "m_ip6", "m_text", "m_f64", "m_f32",
        "m_bool", "m_ts", "m_src",
    ]  # fmt: skip
    rows = result.records.to_pylist()
    got = [
        (r["m_u16"], r["m_i64"], r["m_ip4"], r["m_ip6"], r["m_text"], r["m_f64"], r["m_f32"],
         r["m_bool"], r["m_src"], r["bytes"])
        for r in rows
    ]  # fmt: skip
    assert got == [
        (65_535, -2, "192.0.2.1", "2001:db8::1", "eth0", 2.5, 0.25, True, "10.0.0.1", 500),
        (7, 5, "0.0.0.0", "::", "wlan-é", -1.0, 1.0, False, "10.0.0.2", 600),
    ]
    assert rows[0]["m_ts"].isoformat() == "2023-11-14T22:13:20.123000+00:00"
    assert "m_src" in decoder.schema.names
    assert {s.name for s in decoder.field_specs} >= {"m_u16", "m_ts", "m_src"}


@pytest.mark.skipif(not AKVORADO.is_dir(), reason="captures not found")
def test_reverse_octets_mapped_beside_the_biflow_split() -> None:
    """The docs' example: ipfixprobe's reverse octetDeltaCount (29305/1) as rev_bytes.
    Every forward record carries its biflow's raw reverse count; the sum equals the
    reverse records' bytes (1,674: tests/sources/netflow/test_netflow_captures.py)."""
    decoder = NetflowDecoder(element_mappings=[ElementMapping(29305, 1, "rev_bytes", "uint64")])
    records = []
    for name in ("ipfixprobe-templates.pcap", "ipfixprobe-data.pcap"):
        records += decoder.decode(read_capture(name)).records.to_pylist()
    forward = [r for r in records if not r["biflow_reverse"]]
    reverse = [r for r in records if r["biflow_reverse"]]
    assert sum(r["rev_bytes"] for r in forward) == sum(r["bytes"] for r in reverse) == 1_674


SCHEME = """version: 1
sources:
  - name: edge
    type: netflow
    elements:
      - {enterprise: 29305, id: 1, field: rev_bytes, type: uint64}
      - {id: 40005, field: nsel_event, type: uint8}
      - {id: 1, field: bytes, type: uint64}
      - {id: 7, field: rev_bytes, type: uint32}
      - {id: 8, field: user_name, type: ip}
      - {enterprise: 29305, id: 1, field: rev_bytes, type: uint64}
"""


def test_check_config_reports_clashes_at_their_place() -> None:
    with pytest.raises(SchemeError) as caught:
        parse_scheme(SCHEME, filename="s.yaml")
    assert caught.value.problems == [
        "s.yaml:8:24: sources.0.elements.2.field: 'bytes' is filled by the decoder itself "
        "(found 'bytes')",
        "s.yaml:9:41: sources.0.elements.3.type: 'rev_bytes' is mapped as uint64 by entry 0 "
        "(found 'uint32')",
        "s.yaml:10:41: sources.0.elements.4.type: 'user_name' is a standard string field "
        "(found 'ip')",
        "s.yaml:11:33: sources.0.elements.5.id: element 29305/1 is mapped to 'rev_bytes' by "
        "entry 0 (found 1)",
    ]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("{enterprise: 9, id: 40000, field: x, type: uint8}", "7:9: sources.0.elements.1: "
         "enterprise element id 40000 does not fit 15 bits"),
        ("{id: 9, field: x, type: uint128}", "7:33: sources.0.elements.1.type: unknown type "
         "'uint128'"),
        ("{id: 0, field: x, type: uint8}", "7:14: sources.0.elements.1.id: Input should be "
         "greater than or equal to 1"),
        ("{id: 70000, field: x, type: uint8}", "7:14: sources.0.elements.1.id: Input should "
         "be less than or equal to 65535"),
        ("{id: 9, field: X-y, type: uint8}", "7:24: sources.0.elements.1.field: "
         "invalid field name 'X-y'"),
    ],
)  # fmt: skip
def test_check_config_bad_entries(entry: str, problem: str) -> None:
    text = SCHEME.split("      - {id: 1, field: bytes")[0].replace(
        "      - {id: 40005, field: nsel_event, type: uint8}\n", f"      - {entry}\n"
    )
    with pytest.raises(SchemeError) as caught:
        parse_scheme(text, filename="s.yaml")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"s.yaml:{problem}"), caught.value.problems


def test_a_valid_mapping_passes_and_declares_its_fields() -> None:
    scheme = parse_scheme(SCHEME.split("      - {id: 1, field: bytes")[0], filename="s.yaml")
    source = scheme.sources[0]
    assert [(f.name, f.type) for f in source.fields] == [  # type: ignore[union-attr]
        ("rev_bytes", "uint64"),
        ("nsel_event", "uint8"),
    ]
