"""The NetFlow allow list (``exporters`` + ``allow_unknown: false``) and the RADIUS
clients: other senders are refused in the receive thread, before the queue and the
decoder, and counted per address; check-config refuses an allow list naming nobody."""

from __future__ import annotations

import socket
import time

import pytest

from netdistill.errors import SchemeError
from netdistill.scheme.load import parse_scheme
from netdistill.sources.netflow.config import NetflowSourceConfig
from netdistill.sources.netflow.encode import V5Exporter, encode_v5
from netdistill.sources.netflow.listener import NetflowSource
from netdistill.sources.radius.config import RadiusSourceConfig
from netdistill.sources.radius.listener import RadiusSource


def send_from(address: str, port: int, payloads: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        for payload in payloads:
            sock.sendto(payload, ("127.0.0.1", port))


def v5(n: int) -> list[bytes]:
    start = 1_700_000_000_000
    flows = {
        "start_time": [start + i for i in range(n)],
        "end_time": [start + i + 10 for i in range(n)],
        "src_ip": [0x0A000001 + i for i in range(n)],
        "dst_ip": [0xC0000201] * n,
        "src_port": [1000] * n,
        "dst_port": [80] * n,
        "protocol": [6] * n,
        "bytes": [100] * n,
        "packets": [1] * n,
    }
    return encode_v5(flows, V5Exporter())


def netflow(**settings: object) -> NetflowSource:
    config = NetflowSourceConfig.model_validate(
        {"name": "nf", "type": "netflow", "listen": ["127.0.0.1:0"], **settings}
    )
    return NetflowSource(config)


def collect(source: NetflowSource, datagrams: int) -> int:
    records = 0
    deadline = time.monotonic() + 10
    while source.counters.datagrams < datagrams and time.monotonic() < deadline:
        records += source.poll(10_000).records.num_rows
        time.sleep(0.01)
    return records


def test_only_the_named_exporters_are_taken():
    source = netflow(exporters={"127.0.0.2": {}}, allow_unknown=False)
    source.start()
    try:
        port = source.bound[0][1]
        send_from("127.0.0.3", port, v5(300))  # 10 datagrams, refused before the queue
        send_from("127.0.0.4", port, v5(30))
        send_from("127.0.0.2", port, v5(90))  # 3 datagrams
        assert collect(source, 3) == 90
        status = source.status()
    finally:
        source.stop()
    assert status["unknown_exporters"] == {"127.0.0.3": 10, "127.0.0.4": 1}
    assert status["dropped"] == {"unknown_exporter": 11}
    assert status["datagrams"] == 3  # the refused ones never reached the decoder


def test_the_default_takes_every_exporter():
    source = netflow()
    source.start()
    try:
        port = source.bound[0][1]
        send_from("127.0.0.3", port, v5(30))
        send_from("127.0.0.2", port, v5(30))
        assert collect(source, 2) == 60
        assert "unknown_exporters" not in source.status()
    finally:
        source.stop()


def test_check_config_refuses_an_allow_list_naming_nobody():
    text = "sources:\n  - name: nf\n    type: netflow\n    allow_unknown: false\n"
    with pytest.raises(SchemeError) as caught:
        parse_scheme(text, filename="s.yaml")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("s.yaml:2:5: sources.0")
    assert "no exporters are named" in caught.value.problems[0]
    ok = parse_scheme(text + '    exporters: {"192.0.2.1": {}}\n    quarantine: {rows_per_s: 5}\n')
    assert ok.sources[0].quarantine.rows_per_s == 5  # type: ignore[union-attr]


def test_radius_refuses_unknown_clients_before_the_queue_and_counts_them():
    config = RadiusSourceConfig.model_validate(
        {
            "name": "bras",
            "type": "radius",
            "listen": ["127.0.0.1:0"],
            "clients": {"127.0.0.2": {"secret": "s"}},
        }
    )
    source = RadiusSource(config)
    source.start()
    try:
        send_from("127.0.0.3", source.bound[0][1], [b"\x04\x01\x00\x14" + bytes(16)] * 25)
        deadline = time.monotonic() + 5
        while source.status()["unknown_clients"] != {"127.0.0.3": 25}:
            assert time.monotonic() < deadline, source.status()
            time.sleep(0.01)
        assert source.pending() == 0
        assert source.counters.dropped == {"unknown_client": 25}
        assert source.counters.datagrams == 25
    finally:
        source.stop()
        source.receiver.close()
