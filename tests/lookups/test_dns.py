"""The DNS lookup against dnsmasq (ground truth: its hosts file) and against servers
that are dead, slow or answer garbage: every failure is a null, counted, and the batch
ends within about the timeout."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import dns.rrset
import peers
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peers_lookup import DOMAIN, Dnsmasq, OddDns, SilentUdp, ptr_name, write_hosts

from netdistill.lookups import dns_wire
from netdistill.lookups.dns import DnsLookup, DnsLookupConfig

N_V4, N_V6 = 3000, 40


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dnsmasq, dict[str, str]]]:
    work = tmp_path_factory.mktemp("dnsmasq")
    truth = write_hosts(work / "hosts", N_V4, v6=N_V6)
    with Dnsmasq(work, work / "hosts") as server:
        yield server, truth


def lookup(*servers: str, **options: object) -> DnsLookup:
    return DnsLookup(DnsLookupConfig(name="DNS", servers=list(servers), **options))  # type: ignore[arg-type]


def column(values: list[str | None]) -> pa.Table:
    return pa.table({"k": pa.array(values, pa.string())})


def test_names_are_the_hosts_file(dnsmasq: tuple[Dnsmasq, dict[str, str]]) -> None:
    server, truth = dnsmasq
    unknown = [f"10.77.230.{i}" for i in range(1, 101)]  # not in the file: NXDOMAIN
    keys = [*truth, *unknown, None, "not-an-address"]
    dns_ = lookup(server.server, concurrency=256)
    drops_before = peers.udp_socket_drops(server.port)
    answer = dns_.call("Name", column(keys))
    out = answer.column("host_name").to_pylist()
    assert answer.column("_answered").to_pylist() == [True] * (len(truth) + 100) + [False] * 2
    assert out[: len(truth)] == list(truth.values())
    assert out[len(truth) :] == [None] * 102
    c = dns_.counters
    assert (c.calls, c.keys, c.misses, c.timeouts, c.errors) == (1, len(keys), 100, 0, 1)
    late = c.by_reason.pop("unmatched answer", 0)  # answers to a re-sent question
    assert c.by_reason == {"bad key": 1}
    # every datagram sent was either dropped by dnsmasq's full socket or answered, the
    # answer matched to its question or (a re-send's second answer) counted as unmatched
    drops = peers.udp_socket_drops(server.port) - drops_before
    assert dns_.stats.queries_sent == len(truth) + 100 + drops + late
    assert dns_.stats.max_in_flight == 256


def test_addresses_a_then_aaaa(dnsmasq: tuple[Dnsmasq, dict[str, str]]) -> None:
    server, truth = dnsmasq
    names = {name: ip for ip, name in truth.items()}
    keys = [*names, f"nosuch.{DOMAIN}", f"H00007.{DOMAIN.upper()}"]
    dns_ = lookup(server.server, concurrency=128)
    drops_before = peers.udp_socket_drops(server.port)
    out = dns_.call("Address", column(keys)).column("ip_address").to_pylist()
    assert out == [*names.values(), None, "10.77.0.8"]
    # v4 names: one A each; v6 names: an empty A answer, then AAAA; the unknown: NXDOMAIN;
    # plus re-sends (of a dropped question, or a slow answer: its second answer is late)
    drops = peers.udp_socket_drops(server.port) - drops_before
    late = dns_.counters.by_reason.get("unmatched answer", 0)
    assert dns_.stats.queries_sent == len(keys) + N_V6 + drops + late
    assert (dns_.counters.misses, dns_.counters.errors, dns_.counters.timeouts) == (1, 0, 0)


def test_same_answers_as_dnspython(dnsmasq: tuple[Dnsmasq, dict[str, str]]) -> None:
    """dnspython's own query and parser, one address at a time, agree with the lookup."""
    server, truth = dnsmasq
    sample = [*list(truth)[::97], *list(truth)[-N_V6:][::7]]
    expected = []
    for ip in sample:
        q = dns.message.make_query(ptr_name(ip), "PTR")
        r = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=2)
        expected.append(r.answer[0][0].target.to_text(omit_final_dot=True))
    assert lookup(server.server).call("Name", column(sample)).column(0).to_pylist() == expected


def test_outside_the_domain_is_refused_and_counted(dnsmasq: tuple[Dnsmasq, dict[str, str]]) -> None:
    server, truth = dnsmasq
    dns_ = lookup(server.server)
    out = dns_.call("Address", column(["www.example.com", next(iter(truth.values()))]))
    assert out.column(0).to_pylist() == [None, next(iter(truth))]
    assert (dns_.counters.errors, dns_.counters.by_reason) == (1, {"REFUSED": 1})


def test_dead_server_costs_one_timeout() -> None:
    with SilentUdp() as dead:
        dns_ = lookup(dead.server, timeout_s=0.4, concurrency=100, attempts=3)
        keys = [f"10.1.{i // 256}.{i % 256}" for i in range(1000)]
        start = time.monotonic()
        out = dns_.call("Name", column(keys))
        elapsed = time.monotonic() - start
    assert out.column(0).null_count == 1000
    assert dns_.counters.timeouts == 1000 and dns_.counters.errors == 0
    assert dns_.counters.by_reason == {"batch deadline": 1}
    # the first 100 are sent three times (at 0, 0.13 and 0.27 s), the other 900 never
    assert dns_.stats.queries_sent == 300
    assert 0.35 <= elapsed < 0.8


def test_dead_first_server_falls_over_to_the_second(
    dnsmasq: tuple[Dnsmasq, dict[str, str]],
) -> None:
    server, truth = dnsmasq
    keys = list(truth)[:300]
    with SilentUdp() as dead:
        dns_ = lookup(dead.server, server.server, timeout_s=2.0, attempts=2, concurrency=128)
        start = time.monotonic()
        out = dns_.call("Name", column(keys)).column(0).to_pylist()
        elapsed = time.monotonic() - start
        sent_to_dead = dead.drain()
        again = dns_.call("Name", column(list(truth)[300:400])).column(0).to_pylist()
        sent_to_dead_again = dead.drain()
    assert out == [truth[k] for k in keys]
    assert again == [truth[k] for k in list(truth)[300:400]]
    assert dns_.counters.timeouts == 0
    # first sends are spread over both servers (about half of 300 reach the dead one
    # before its silence is known); no re-send goes to it, and once it has missed
    # DOWN_AFTER re-sends the next batch skips it altogether
    assert 20 < sent_to_dead < 200, sent_to_dead
    assert sent_to_dead_again == 0
    assert elapsed < 1.5  # the first window's re-send (0.5 s before any round trip) + slack


def test_slow_names_time_out_the_rest_answer() -> None:
    ips = [f"192.0.2.{i}" for i in range(1, 41)]
    answers = {ptr_name(ip): f"n{i}.{DOMAIN}" for i, ip in enumerate(ips)}
    slow = frozenset(ptr_name(ip) for ip in ips[::8])  # 5 of 40
    with OddDns(answers, slow=slow, delay_s=2.0) as odd:
        dns_ = lookup(odd.server, timeout_s=0.5)
        start = time.monotonic()
        out = dns_.call("Name", column(ips)).column(0).to_pylist()
        elapsed = time.monotonic() - start
    assert out == [None if ptr_name(ip) in slow else answers[ptr_name(ip)] for ip in ips]
    assert (dns_.counters.timeouts, dns_.counters.errors, dns_.counters.misses) == (5, 0, 0)
    assert 0.4 <= elapsed < 0.8


def test_a_name_dropped_on_every_attempt_is_sent_again_with_back_off() -> None:
    """An overflowing server dropped 4 names on all 3 normal attempts: they are sent again
    (waits doubling) and answered well before the timeout, not left to time out."""
    ips = [f"192.0.2.{i}" for i in range(1, 41)]
    answers = {ptr_name(ip): f"n{i}.{DOMAIN}" for i, ip in enumerate(ips)}
    dropped = frozenset(ptr_name(ip) for ip in ips[::10])
    with OddDns(answers, dropped=dropped, drop_first=3) as odd:
        dns_ = lookup(odd.server, timeout_s=10.0, attempts=3)
        start = time.monotonic()
        out = dns_.call("Name", column(ips)).column(0).to_pylist()
        elapsed = time.monotonic() - start
    assert out == [answers[ptr_name(ip)] for ip in ips]
    assert {odd.asked[name] for name in dropped} == {4}
    assert dns_.stats.queries_sent == 40 + 3 * 4
    assert (dns_.counters.timeouts, dns_.counters.errors) == (0, 0)
    # sends at 0, ~4 srtt, ~8 srtt (>= 50 ms each), then after 2 x the RTO: under a second
    assert elapsed < 1.5


def test_garbage_answers_are_errors_when_they_carry_the_id() -> None:
    ips = [f"198.51.100.{i}" for i in range(1, 51)]
    with OddDns({}, garbage=True, keep_id=True) as odd:
        dns_ = lookup(odd.server, timeout_s=0.5)
        start = time.monotonic()
        out = dns_.call("Name", column(ips))
        elapsed = time.monotonic() - start
    assert out.column(0).null_count == 50
    assert dns_.counters.errors == 50 and dns_.counters.timeouts == 0
    assert dns_.counters.by_reason == {"malformed answer": 50}
    assert elapsed < 0.5


def test_garbage_without_the_id_is_ignored_and_times_out() -> None:
    ips = [f"198.51.100.{i}" for i in range(1, 51)]
    with OddDns({}, garbage=True, keep_id=False) as odd:
        dns_ = lookup(odd.server, timeout_s=0.5, attempts=1)
        start = time.monotonic()
        out = dns_.call("Name", column(ips))
        elapsed = time.monotonic() - start
    assert out.column(0).null_count == 50
    assert dns_.counters.timeouts + dns_.counters.errors == 50
    # a random id may hit an open question (1 in 65536 per datagram × 50): then it is an error
    assert dns_.counters.by_reason.get("unmatched answer", 0) + dns_.counters.errors == 50
    assert 0.4 <= elapsed < 0.8


# --- the wire codec against dnspython ------------------------------------------------------


def test_wire_follows_cname_chains_and_compression() -> None:
    q = dns.message.make_query("www.a.example.", "A")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("www.a.example.", 60, "IN", "CNAME", "web.b.example."))
    r.answer.append(dns.rrset.from_text("web.b.example.", 60, "IN", "CNAME", "x.c.example."))
    r.answer.append(dns.rrset.from_text("x.c.example.", 60, "IN", "A", "192.0.2.7"))
    data = r.to_wire()  # dnspython compresses the names
    rcode, truncated, values = dns_wire.parse_reply(data, dns_wire.encode_name("WWW.a.example"), 1)
    assert (rcode, truncated, values) == (0, False, ["192.0.2.7"])
    with pytest.raises(dns_wire.WireError, match="another question"):
        dns_wire.parse_reply(data, dns_wire.encode_name("other.example"), 1)
    assert dns_wire.query(0x1234, dns_wire.encode_name("www.a.example"), 1) == (
        dns.message.make_query("www.a.example.", "A", id=0x1234, use_edns=False).to_wire()
    )


def test_wire_rejects_pointer_loops() -> None:
    header = bytes.fromhex("abcd81800001000000000000")
    with pytest.raises(dns_wire.WireError, match="pointer"):
        dns_wire.parse_reply(header + b"\xc0\x0c\x00\x01\x00\x01", b"\x00", 1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_wire_never_raises_anything_but_wire_error(data: bytes) -> None:
    for prefix in (b"", bytes.fromhex("abcd8180000100010000000001610000010001")):
        with contextlib.suppress(dns_wire.WireError):
            dns_wire.parse_reply(prefix + data, dns_wire.encode_name("a"), 1)


def test_config_rejects_server_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be an IP address"):
        DnsLookupConfig(name="DNS", servers=["dns.example.org"])
    assert DnsLookup(DnsLookupConfig(name="DNS", servers=["[::1]:5353"])).servers == [("::1", 5353)]
    assert [f.notation() for f in lookup("127.0.0.1").functions()] == [
        "DNS.Name(ip_address:ip) → (host_name:string)",
        "DNS.Address(host_name:string) → (ip_address:ip)",
    ]
    assert dns.rdatatype.PTR == dns_wire.TYPE_PTR
