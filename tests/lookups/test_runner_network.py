"""The runner in front of the real DNS lookup: a timeout is not cached as a miss (the next
batch asks again), an NXDOMAIN is (the next batch does not); the lookup's own counters and
stats show in the runner's status."""

from __future__ import annotations

import time

import pyarrow as pa
from peers_lookup import DOMAIN, OddDns, SilentUdp, ptr_name

from netdistill.lookups.base import CacheConfig
from netdistill.lookups.dns import DnsLookup, DnsLookupConfig
from netdistill.lookups.runner import LookupRunner


def runner(server: str, **options: object) -> LookupRunner:
    config = DnsLookupConfig(
        name="DNS",
        servers=[server],
        cache=CacheConfig(size=1000, ttl_s=300, negative_ttl_s=60),
        **options,  # type: ignore[arg-type]
    )
    return LookupRunner(DnsLookup(config), config)


def ips(values: list[str]) -> pa.Table:
    return pa.table({"ip_address": pa.array(values, pa.string())})


def test_timeouts_are_asked_again_misses_are_not() -> None:
    known = [f"192.0.2.{i}" for i in range(1, 6)]
    unknown = [f"192.0.2.{i}" for i in range(101, 104)]  # NXDOMAIN
    slow = [f"192.0.2.{i}" for i in range(201, 203)]  # answered after the timeout
    answers = {ptr_name(ip): f"n{i}.{DOMAIN}" for i, ip in enumerate(known + slow)}
    keys = known + unknown + slow
    expected = [answers[ptr_name(ip)] for ip in known] + [None] * 5
    with OddDns(answers, slow=frozenset(ptr_name(ip) for ip in slow), delay_s=3.0) as odd:
        dns_ = runner(odd.server, timeout_s=0.5, attempts=1)
        for batch in (1, 2):
            started = time.monotonic()
            got = dns_.call("Name", ips(keys)).column("host_name").to_pylist()
            assert got == expected
            assert time.monotonic() - started < 0.8
            # the known and the NXDOMAIN names were asked once (batch 1 only); the slow
            # ones once per batch, since their timeouts were not cached as misses
            assert {ip: odd.asked.get(ptr_name(ip), 0) for ip in keys} == {
                **{ip: 1 for ip in known + unknown},
                **{ip: batch for ip in slow},
            }
    assert len(dns_.cache) == 8  # 5 names + 3 negative answers; never the 2 slow ones
    status = dns_.status()
    # runner: 20 keys, batch 2 found 8 in the cache; misses = 3 NXDOMAIN answers + 3 hits
    assert (status["keys"], status["cache_hits"], status["misses"], status["calls"]) == (
        20,
        8,
        6,
        2,
    )
    backend = status["backend"]
    assert (backend["keys"], backend["timeouts"], backend["misses"], backend["errors"]) == (
        12,
        4,
        3,
        0,
    )
    assert backend["by_reason"] == {"batch deadline": 2}
    assert status["stats"]["queries_sent"] == 12
    assert status["stats"]["answers"] == 8
    assert status["stats"]["max_in_flight"] == 10
    dns_.close()


def test_dead_server_every_batch_asks_again() -> None:
    keys = [f"10.9.0.{i}" for i in range(1, 51)]
    with SilentUdp() as dead:
        dns_ = runner(dead.server, timeout_s=0.3, attempts=2, concurrency=64)
        for _ in range(3):
            assert dns_.call("Name", ips(keys)).column(0).null_count == 50
    status = dns_.status()
    assert len(dns_.cache) == 0
    assert (status["cache_hits"], status["misses"]) == (0, 0)
    assert status["backend"]["timeouts"] == 150
    assert status["backend"]["by_reason"] == {"batch deadline": 3}
    # each batch: 50 questions sent twice (the re-send after 0.15 s, before the deadline)
    assert status["stats"]["queries_sent"] == 300
    dns_.close()
