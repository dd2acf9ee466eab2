"""NAT and firewall event fields: the real nat.pcap (a CGNAT's NetFlow v9 NAT events,
hand-decoded here with ``struct``) and Cisco ASA NSEL records built with ``struct``."""

from __future__ import annotations

import socket
import struct

from nfbuild import dgram, flowset, read_capture, v9_message

from netdistill.sources.netflow import NetflowDecoder

#: nat.pcap template 264: src, post-NAT src, dst, post-NAT dst (IPv4), src port, post-NAPT
#: src port, dst port, post-NAPT dst port, ingressVRFID, protocol, natEvent,
#: observationTimeMilliseconds — 38 bytes
NAT_264 = struct.Struct(">4s4s4s4sHHHHIBBQ")


def nat_pcap_records() -> list[tuple[object, ...]]:
    out = []
    for datagram in read_capture("nat.pcap"):
        payload, offset = datagram.payload, 20
        while offset + 4 <= len(payload):
            set_id, length = struct.unpack_from(">HH", payload, offset)
            if set_id == 264:
                body = payload[offset + 4 : offset + length]
                for i in range(len(body) // NAT_264.size):
                    fields = NAT_264.unpack_from(body, i * NAT_264.size)
                    out.append(
                        tuple(socket.inet_ntoa(f) if isinstance(f, bytes) else f for f in fields)
                    )
            offset += length
    return out


def test_nat_pcap_fields() -> None:
    decoder = NetflowDecoder()
    result = decoder.decode(read_capture("nat.pcap"))
    assert result.quarantined == []
    expected = nat_pcap_records()
    assert len(expected) == 9
    rows = result.records.to_pylist()
    got = [
        (
            r["src_ip"], r["post_nat_src_ip"], r["dst_ip"], r["post_nat_dst_ip"], r["src_port"],
            r["post_nat_src_port"], r["dst_port"], r["post_nat_dst_port"], r["protocol"],
            r["nat_event"], int(r["start_time"].timestamp() * 1000),
        )
        for r in rows
    ]  # fmt: skip
    assert got == [(*e[:8], e[9], e[10], e[11]) for e in expected]
    # an event has one time: observationTimeMilliseconds for start and end
    assert all(r["start_time"] == r["end_time"] for r in rows)
    assert {r["firewall_event"] for r in rows} == {None}
    # the capture has one NAT44 delete (natEvent 2) among creates (1)
    assert sorted(r["nat_event"] for r in rows) == [1] * 8 + [2]


#: an ASA NSEL template (NetFlow v9, Cisco's field types): src, dst, ports, protocol,
#: NF_F_XLATE_SRC_ADDR_IPV4 40001, NF_F_XLATE_SRC_PORT 40003, NF_F_FW_EVENT 40005,
#: NF_F_EVENT_TIME_MSEC 323, initiator/responder octets 231/232
NSEL_FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (40001, 4), (40003, 2),
               (40005, 1), (323, 8), (231, 4), (232, 4)]  # fmt: skip
NSEL = struct.Struct(">IIHHBIHBQII")
T0_MS = 1_750_000_000_000
PUBLIC = 0xCB007105  # 203.0.113.5


def nsel_record(
    inside: int, port: int, event: int, at_ms: int, sent: int = 0, received: int = 0
) -> bytes:
    return NSEL.pack(inside, 0xC6336401, port, 443, 6, PUBLIC, 40_000, event, at_ms,
                     sent, received)  # fmt: skip


def nsel_datagrams() -> list[bytes]:
    """Host A holds 203.0.113.5:40000 from T0 to T0+60 s, host B from T0+120 to T0+180 s;
    the teardown records carry initiator (sent) and responder (received) octets."""
    a, b = 0x0A000001, 0x0A000002
    records = [
        nsel_record(a, 51_000, 1, T0_MS),
        nsel_record(a, 51_000, 2, T0_MS + 60_000, sent=1_200, received=48_000),
        nsel_record(b, 52_000, 1, T0_MS + 120_000),
        nsel_record(b, 52_000, 2, T0_MS + 180_000, sent=700, received=0),
    ]
    # v9 has no enterprise bit: field types above 32767 are plain (nfbuild's
    # template_record would add an IPFIX enterprise number)
    fields = b"".join(struct.pack(">HH", e, n) for e, n in NSEL_FIELDS)
    template = flowset(0, struct.pack(">HH", 263, len(NSEL_FIELDS)) + fields)
    body = b"".join(records)
    data = flowset(263, body + b"\x00" * (-len(body) % 4))
    return [v9_message([template, data], secs=T0_MS // 1000 + 200)]


def test_nsel_events_translated_address_and_biflow_counters() -> None:
    result = NetflowDecoder().decode([dgram(d) for d in nsel_datagrams()])
    assert result.quarantined == []
    rows = result.records.to_pylist()
    forward = [
        (r["src_ip"], r["post_nat_src_ip"], r["post_nat_src_port"], r["firewall_event"],
         r["bytes"], r["biflow_reverse"])
        for r in rows
    ]  # fmt: skip
    assert forward[:4] == [
        ("10.0.0.1", "203.0.113.5", 40_000, 1, 0, False),
        ("10.0.0.1", "203.0.113.5", 40_000, 2, 1_200, False),
        ("10.0.0.2", "203.0.113.5", 40_000, 1, 0, False),
        ("10.0.0.2", "203.0.113.5", 40_000, 2, 700, False),
    ]
    # the responder's 48,000 octets: one reverse record, from the server to host A
    reverse = rows[4:]
    assert [(r["src_ip"], r["dst_ip"], r["src_port"], r["bytes"]) for r in reverse] == [
        ("198.51.100.1", "10.0.0.1", 443, 48_000)
    ]
    assert reverse[0]["post_nat_dst_ip"] == "203.0.113.5"
    assert reverse[0]["post_nat_src_ip"] is None
