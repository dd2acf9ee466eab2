"""The demo devices: deterministic, realistic-looking traffic, exported as it claims."""

from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest
from netflow.ipfix import IPFIXExportPacket
from netflow.v9 import V9ExportPacket

from netdistill.demo import DemoExporter, DemoTraffic, demo_exporters, diurnal

DAY = 1_700_006_400 - 1_700_006_400 % 86400  # a midnight UTC


def test_same_seed_same_flows_other_seed_other_flows() -> None:
    a = DemoTraffic(seed=7).flows(DAY + 3600, DAY + 3660, 300)
    b = DemoTraffic(seed=7).flows(DAY + 3600, DAY + 3660, 300)
    c = DemoTraffic(seed=8).flows(DAY + 3600, DAY + 3660, 300)
    assert a.num_rows > 0
    assert a.equals(b)
    assert not a.equals(c)


def test_diurnal_shape() -> None:
    traffic = DemoTraffic()
    afternoon = traffic.flows(DAY + 14 * 3600, DAY + 14 * 3600 + 600, 300).num_rows
    night = traffic.flows(DAY + 4 * 3600, DAY + 4 * 3600 + 600, 300).num_rows
    assert afternoon > 2 * night
    # The mean over a day is the requested rate.
    assert np.mean(diurnal(np.arange(0, 24, 0.01))) == pytest.approx(1.0, abs=1e-3)
    assert afternoon / 600 == pytest.approx(300 * float(diurnal(14.0833)), rel=0.05)


def test_flows_look_real() -> None:
    t = DemoTraffic(hosts=300).flows(DAY + 15 * 3600, DAY + 15 * 3600 + 300, 300)
    c = {name: t.column(name).to_numpy() for name in t.column_names}
    packets, size = c["packets"], c["bytes"] / c["packets"]
    assert (packets >= 1).all()
    assert (size >= 28).all() and (size <= 1500).all()
    ends = t.column("end_time").to_numpy().astype(np.int64)
    assert (np.diff(ends) >= 0).all()
    assert (ends >= (DAY + 15 * 3600) * 1000).all() and (
        ends < (DAY + 15 * 3600 + 300) * 1000
    ).all()
    src_internal = (c["src_ip"] >> 24) == 10  # 10.0.0.0/8
    dst_internal = (c["dst_ip"] >> 24) == 10
    assert (src_internal ^ dst_internal).all()  # every flow crosses the edge
    assert 0.3 < src_internal.mean() < 0.7  # both directions
    assert len(set(c["src_ip"][src_internal])) > 100  # hundreds of customer hosts
    assert len({int(x) >> 8 for x in c["src_ip"][src_internal]}) >= 5  # several /24s
    services = dict(zip(*np.unique(c["service"], return_counts=True), strict=True))
    assert services["https"] > services["dns"] > services["ssh"]
    dns = c["service"] == "dns"
    assert set(c["protocol"][dns]) == {17} and 53 in set(c["dst_port"][dns])
    # Heavy tail: the top 1% of flows carry a large share of the bytes.
    top = np.sort(c["bytes"])[::-1]
    assert top[: len(top) // 100].sum() > 0.3 * top.sum()


def _receiver() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    return sock


def _drain(sock: socket.socket) -> list[tuple[bytes, str]]:
    sock.settimeout(0.3)
    out = []
    while True:
        try:
            payload, (address, _) = sock.recvfrom(65535)
        except TimeoutError:
            return out
        out.append((payload, address))


@pytest.mark.parametrize("protocol", ["v9", "ipfix"])
def test_exporter_delivers_what_it_counts(protocol: str) -> None:
    sock = _receiver()
    exporter = DemoExporter(
        sock.getsockname(), protocol, domain_id=9, source_address="127.0.0.2",
        rate_fps=400, seed=3, sampling_interval=10,
    )  # fmt: skip
    exporter.start()
    time.sleep(2.5)
    exporter.stop()
    received = _drain(sock)
    sock.close()
    totals = exporter.sent_totals()
    assert totals.flows > 0
    assert totals.datagrams == len(received) == exporter.datagrams_sent
    assert {address for _, address in received} == {"127.0.0.2"}
    templates: dict = {}
    flows = []
    sampling = []
    for payload, _ in received:
        (version,) = struct.unpack("!H", payload[:2])
        if protocol == "v9":
            assert version == 9
            packet = V9ExportPacket(payload, templates)
            assert packet.header.source_id == 9
            flows += [f.data for f in packet.flows]
            sampling += [o.data["SAMPLING_INTERVAL"] for o in packet.options]
        else:
            assert version == 10
            packet = IPFIXExportPacket(payload, templates)
            assert packet.header.obervation_domain_id == 9
            records = [f.data for f in packet.flows]
            flows += [r for r in records if "octetDeltaCount" in r]
            sampling += [r["samplingPacketInterval"] for r in records if "selectorId" in r]
    octets, packets = (
        ("IN_BYTES", "IN_PKTS") if protocol == "v9" else ("octetDeltaCount", "packetDeltaCount")
    )
    assert len(flows) == totals.flows
    assert sum(f[octets] for f in flows) == totals.bytes
    assert sum(f[packets] for f in flows) == totals.packets
    assert sampling and set(sampling) == {10}


def test_demo_pair_differs() -> None:
    v9, ipfix = demo_exporters(("127.0.0.1", 9))
    assert (v9.protocol, ipfix.protocol) == ("v9", "ipfix")
    assert v9.domain_id != ipfix.domain_id
    assert v9.source_address != ipfix.source_address


def test_tick_with_a_fixed_clock_is_repeatable() -> None:
    sock = _receiver()
    payloads = []
    for _ in range(2):
        exporter = DemoExporter(sock.getsockname(), "ipfix", clock=lambda: DAY + 50_000.0)
        exporter._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # no thread
        exporter.tick()
        exporter._socket.close()
        payloads.append([p for p, _ in _drain(sock)])
    sock.close()
    assert payloads[0] and payloads[0] == payloads[1]
