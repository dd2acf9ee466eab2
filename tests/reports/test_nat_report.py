"""The abuse-desk report ``nat_holder`` on a real store: the CGNAT capture nat.pcap and
Cisco ASA NSEL events, both imported with ``netdistill import``'s code path. Expected
holders are read from the datagram bytes by the NAT decoder tests' ``struct`` readers."""

from __future__ import annotations

import datetime as dt
import socket
import sys
from pathlib import Path

import dpkt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sources" / "netflow"))

from nfbuild import AKVORADO
from test_netflow_nat import T0_MS, nat_pcap_records, nsel_datagrams

from netdistill import output
from netdistill.importer import import_files
from netdistill.reports import find_report, run_report
from netdistill.store.duckdb import DuckDBStore

pytestmark = pytest.mark.skipif(not AKVORADO.is_dir(), reason="captures not found")


def write_pcap(path: Path, payloads: list[bytes], exporter: str) -> None:
    with path.open("wb") as fh:
        writer = dpkt.pcap.Writer(fh)
        for i, payload in enumerate(payloads):
            udp = dpkt.udp.UDP(sport=40_000, dport=2055, data=payload)
            udp.ulen = len(udp)
            ip = dpkt.ip.IP(src=socket.inet_aton(exporter), dst=socket.inet_aton("192.0.2.250"),
                            p=17, data=udp)  # fmt: skip
            ip.len = len(ip)
            frame = dpkt.ethernet.Ethernet(data=ip, type=dpkt.ethernet.ETH_TYPE_IP)
            writer.writepkt(bytes(frame), ts=T0_MS / 1000 + 200 + i)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("nat")
    nsel = directory / "nsel.pcap"
    write_pcap(nsel, nsel_datagrams(), "192.0.2.9")
    path = directory / "s.duckdb"
    for files in ([AKVORADO / "nat.pcap"], [nsel]):
        import_files(files, data_dir=directory, config=None, source_name=None,
                     store=DuckDBStore(path))  # fmt: skip
    opened = DuckDBStore(path, read_only=True)
    yield opened
    opened.close()


def holders(store: DuckDBStore, **params: object) -> list[tuple[object, ...]]:
    result = run_report(store, find_report(store, "nat_holder"), params)
    assert result.note == ""
    return [
        (r["inside_ip"], r["inside_port"], r["public_port"], r["until"] is None)
        for r in output.rows(result.table)
    ]


def at(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def test_cgnat_create_events_hold_until_a_delete(store: DuckDBStore) -> None:
    records = nat_pcap_records()
    created = [r for r in records if r[10] == 1]
    # each create event: its public port at its own time and later → the inside host
    for inside, public, _, _, port, public_port, *_, when in created:
        assert public == "10.143.52.29"
        found = holders(store, ip=public, port=public_port, time=at(when + 5_000))
        assert (inside, port, public_port, True) in found
    # before its create event nobody held it
    first = created[0]
    assert holders(store, ip="10.143.52.29", port=first[5], time=at(first[11] - 1)) == []
    # a delete without its create (created before the capture) names nobody
    (deleted,) = [r for r in records if r[10] == 2]
    assert holders(store, ip="10.143.52.29", port=deleted[5], time=at(deleted[11])) == []
    # the whole address at the last event's time: every create so far, none deleted
    everyone = holders(store, ip="10.143.52.29", time=at(records[-1][11]))
    assert sorted(everyone) == sorted((r[0], r[4], r[5], True) for r in created)


def test_nsel_mappings_are_closed_by_teardown(store: DuckDBStore) -> None:
    def who(offset_s: float, margin_s: int = 0) -> list[tuple[object, ...]]:
        when = at(T0_MS + int(offset_s * 1000))
        return holders(store, ip="203.0.113.5", port=40_000, time=when, margin_s=margin_s)

    assert who(30) == [("10.0.0.1", 51_000, 40_000, False)]
    assert who(60) == [("10.0.0.1", 51_000, 40_000, False)]  # the delete's own instant
    assert who(90) == []
    assert who(75, margin_s=20) == [("10.0.0.1", 51_000, 40_000, False)]
    assert len(who(90, margin_s=30)) == 2  # [60 s, 120 s]: both ends touch
    assert who(150) == [("10.0.0.2", 52_000, 40_000, False)]
    assert who(181) == []
    assert holders(store, ip="203.0.113.6", time=at(T0_MS + 30_000)) == []


def test_nat_fields_and_report_parameters_are_required(store: DuckDBStore) -> None:
    from netdistill.reports import ReportError

    with pytest.raises(ReportError, match="ip"):
        run_report(store, find_report(store, "nat_holder"), {"time": at(T0_MS)})
