"""Enrichment throughput: records/s through one procedure with five enhanced fields.

Warm-cache part (this file): Ports, Prefix, Table and Categorizer lookups plus a plain
field, over ``--records`` records (1 M by default) in batches of ``--batch``, on one core
(POLARS_MAX_THREADS=1 and Arrow's CPU pool set to 1 thread before the imports). Each
batch has realistic repetition (a few thousand hosts and ports), as flows have.

GeoIP + ASN part (``geo_warm``): ``GeoIP.Country``/``City`` and ``ASN.Origin`` of both
addresses (four enhanced fields) from two MaxMind DB files written for the run, the same
5,000 sources and destinations in every batch, caches warmed by one pass over them first.

Cold-cache DNS part (``cold_cache_dns``): ``--dns-keys`` distinct addresses (10,000; 2,000
with ``--smoke``) through ``DNS.Name`` against a real dnsmasq serving them from a hosts
file, through the runner with an empty cache, at 64 and 256 questions in flight: keys/s,
queries sent, the in-flight maximum, and dnsmasq's own CPU time over the wall time (near
1 when dnsmasq, not the resolver or its timeout, is the limit). Every answer is checked
against the hosts file.

Run: ``.venv/bin/python benchmarks/enrich.py [--records 1000000] [--smoke]``. On a shared
machine (2 cores for several jobs) the figures are noisy: compare lines of one run.
"""

from __future__ import annotations

import os

os.environ.setdefault("POLARS_MAX_THREADS", "1")

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

pa.set_cpu_count(1)
pa.set_io_thread_count(1)

from netdistill.enhance.plan import build_enhancer  # noqa: E402
from netdistill.records.schema import conform  # noqa: E402
from netdistill.scheme.load import parse_scheme  # noqa: E402

SCHEME = """\
sources: [{{name: nf, type: netflow}}]
lookups:
  - {{name: Ports, type: ports}}
  - {{name: Cust, type: prefix, csv: {prefixes}, values: {{account_id: string}}}}
  - {{name: NMS, type: table, csv: {interfaces}, function: Site,
     keys: {{exporter: string, input_if: uint32}}, values: {{site: string}}}}
  - name: Apps
    type: categorizer
    inputs: [protocol, dst_port]
    rules:
      - {{category: dns, when: "protocol = 17 and dst_port = 53"}}
      - {{category: web, when: "protocol = 6 and dst_port in (80, 443, 8080)"}}
      - {{category: mail, when: "dst_port in (25, 465, 587, 993)"}}
    default: other
procedures:
  - name: bench
    trigger: nf
    add_fields: {{site: string, app: string}}
    fields:
      service: Ports.Service(protocol, dst_port).service
      account_id: Cust.Match(src_ip).account_id
      site: NMS.Site(exporter, input_if).site
      app: Apps.Classify(protocol, dst_port).category
      dst_ip: dst_ip
"""


def host_pools(rng: np.random.Generator, hosts: int) -> tuple[np.ndarray, np.ndarray]:
    """Source and destination addresses (``hosts`` each) in 10.0.0.0/8."""

    def ips(count: int) -> np.ndarray:
        base = rng.integers(0x0A000000, 0x0AFFFFFF, count, dtype=np.uint32)
        return np.array([f"{b >> 24}.{(b >> 16) & 255}.{(b >> 8) & 255}.{b & 255}" for b in base])

    return ips(hosts), ips(hosts)


def make_batch(
    rng: np.random.Generator,
    n: int,
    hosts: int,
    pools: tuple[np.ndarray, np.ndarray] | None = None,
) -> pa.Table:
    """A batch of flows between ``hosts`` sources and destinations (new ones unless
    ``pools`` are given)."""
    src_pool, dst_pool = pools or host_pools(rng, hosts)
    return conform(
        pa.table(
            {
                "src_ip": src_pool[rng.integers(0, hosts, n)],
                "dst_ip": dst_pool[rng.integers(0, hosts, n)],
                "exporter": np.array(["10.255.0.1", "10.255.0.2"])[rng.integers(0, 2, n)],
                "input_if": rng.integers(1, 48, n).astype(np.uint32),
                "protocol": rng.choice(np.array([6, 17], np.uint8), n),
                "dst_port": rng.choice(
                    np.array([53, 80, 443, 25, 22, 8080, 3389, 123], np.uint16), n
                ),
                "bytes": rng.integers(40, 1500, n).astype(np.uint64),
            }
        )
    )


def warm_cache(records: int, batch: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        prefixes = Path(tmp) / "prefixes.csv"
        prefixes.write_text(
            "network,account_id\n"
            + "".join(f"10.{i}.0.0/16,acct{i}\n" for i in range(256))
            + "".join(f"10.{i}.{j}.0/24,sub{i}-{j}\n" for i in range(0, 256, 4) for j in range(256))
        )
        interfaces = Path(tmp) / "interfaces.csv"
        interfaces.write_text(
            "exporter,input_if,site\n"
            + "".join(f"10.255.0.{e},{i},site{e}-{i}\n" for e in (1, 2) for i in range(1, 48))
        )
        scheme = parse_scheme(SCHEME.format(prefixes=prefixes, interfaces=interfaces))
        enhancer = build_enhancer(scheme)
        assert enhancer is not None
        batches = [make_batch(rng, batch, hosts=5000) for _ in range(max(1, records // batch))]
        enhancer("nf", batches[0])  # warm: tables loaded, code paths compiled
        started = time.process_time()
        wall = time.perf_counter()
        done = 0
        for b in batches:
            out = enhancer("nf", b)
            done += out.num_rows
        cpu = time.process_time() - started
        wall = time.perf_counter() - wall
        enhancer.close()
    return {"records": done, "cpu_s": cpu, "wall_s": wall, "records_per_cpu_s": done / cpu}


GEO_SCHEME = """\
sources: [{{name: nf, type: netflow}}]
lookups:
  - {{name: GeoIP, type: geoip, database: {city}}}
  - {{name: ASN, type: asn, database: {asn}}}
procedures:
  - name: geo
    trigger: nf
    add_fields: {{country: string, city: string}}
    fields:
      country: GeoIP.Country(src_ip).country_code
      city: GeoIP.City(dst_ip).city
      src_as: ASN.Origin(src_ip).asn
      dst_as: ASN.Origin(dst_ip).asn
"""


def geo_warm(records: int, batch: int) -> dict[str, float]:
    """GeoIP + ASN through a procedure, warm: four enhanced fields (Country and ASN of the
    source, City and ASN of the destination) over MaxMind DB files written here (a /16
    per country with nested /24 cities, an AS per /16, IPv6 too)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lookups"))
    from mmdb_files import asn, city, write_mmdb

    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as tmp:
        city_path, asn_path = Path(tmp) / "city.mmdb", Path(tmp) / "asn.mmdb"
        countries = [("DE", "Germany", "Deutschland"), ("FR", "France", "Frankreich")]
        cities: dict[str, object] = {}
        for i in range(256):
            cities[f"10.{i}.0.0/16"] = city(countries[i % 2], continent="EU")
            for j in range(0, 256, 64):
                cities[f"10.{i}.{j}.0/24"] = city(countries[i % 2], f"city-{i}-{j}")
        cities["2001:db8::/32"] = city(countries[0])
        write_mmdb(city_path, cities)
        write_mmdb(
            asn_path,
            {f"10.{i}.0.0/16": asn(64512 + i, f"AS {i}") for i in range(256)},
            database_type="GeoLite2-ASN",
        )
        scheme = parse_scheme(GEO_SCHEME.format(city=city_path, asn=asn_path))
        enhancer = build_enhancer(scheme)
        assert enhancer is not None
        # the same 5,000 sources and 5,000 destinations in every batch, as the first part
        # has per batch; one pass over them first fills the warm caches
        pools = host_pools(rng, 5000)
        batches = [
            make_batch(rng, batch, hosts=5000, pools=pools) for _ in range(max(1, records // batch))
        ]
        enhancer("nf", conform(pa.table({"src_ip": pools[0], "dst_ip": pools[1]})))
        started = time.process_time()
        wall = time.perf_counter()
        done = 0
        for b in batches:
            done += enhancer("nf", b).num_rows
        cpu = time.process_time() - started
        wall = time.perf_counter() - wall
        read = sum(enhancer.lookups[n].lookup.stats.addresses_read for n in ("GeoIP", "ASN"))
        enhancer.close()
    return {"records": done, "cpu_s": cpu, "wall_s": wall, "addresses_read": read}


def cold_cache_dns(keys: int) -> list[dict[str, float]]:
    """Cold-cache DNS enrichment against dnsmasq, through the runner (empty cache)."""
    import sys

    repo = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(repo / "tests" / "integration"), str(repo / "tests" / "lookups")]
    import peers
    from peers_lookup import Dnsmasq, write_hosts

    from netdistill.lookups.dns import DnsLookupConfig
    from netdistill.lookups.registry import build_lookup

    work = Path(tempfile.mkdtemp(prefix="enrich-dns-"))
    truth = write_hosts(work / "hosts", keys)
    table = pa.table({"ip_address": list(truth)})
    results = []
    with Dnsmasq(work, work / "hosts") as server:
        for in_flight in (64, 256, 64, 256):
            config = DnsLookupConfig(
                name="DNS", servers=[server.server], timeout_s=20.0, concurrency=in_flight
            )
            runner = build_lookup(config)
            server_cpu = peers.cpu_seconds(server.pid)
            start = time.perf_counter()
            out = runner.call("Name", table).column(0).to_pylist()
            wall = time.perf_counter() - start
            server_cpu = peers.cpu_seconds(server.pid) - server_cpu
            wrong = sum(a != b for a, b in zip(out, truth.values(), strict=True))
            if wrong:
                raise AssertionError(f"{wrong} answers differ from the hosts file")
            stats = runner.lookup.stats
            results.append(
                {
                    "in_flight": in_flight,
                    "keys_per_s": keys / wall,
                    "wall_s": wall,
                    "queries_sent": stats.queries_sent,
                    "max_in_flight": stats.max_in_flight,
                    "timeouts": runner.lookup.counters.timeouts,
                    "dnsmasq_busy": server_cpu / wall,
                }
            )
            runner.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--dns-keys", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true", help="100k records, 2,000 DNS keys")
    args = parser.parse_args()
    records = 100_000 if args.smoke else args.records
    result = warm_cache(records, min(args.batch, records))
    print(
        f"warm cache, 5 enhanced fields: {result['records']:,} records in "
        f"{result['cpu_s']:.2f} s CPU ({result['wall_s']:.2f} s wall): "
        f"{result['records_per_cpu_s']:,.0f} records/s per CPU second, "
        f"{result['records'] / result['wall_s']:,.0f} records/s wall"
    )
    geo = geo_warm(records, min(args.batch, records))
    print(
        f"warm cache, GeoIP + ASN (4 fields from 2 MaxMind DB files): {geo['records']:,} "
        f"records in {geo['cpu_s']:.2f} s CPU ({geo['wall_s']:.2f} s wall): "
        f"{geo['records'] / geo['cpu_s']:,.0f} records/s per CPU second, "
        f"{geo['records'] / geo['wall_s']:,.0f} records/s wall "
        f"({geo['addresses_read']:,.0f} addresses read from the files, all before the clock)"
    )
    keys = 2_000 if args.smoke else args.dns_keys
    for r in cold_cache_dns(keys):
        print(
            f"cold cache, DNS.Name against dnsmasq, {r['in_flight']:.0f} in flight: "
            f"{r['keys_per_s']:,.0f} keys/s ({keys:,} keys in {r['wall_s']:.2f} s), "
            f"{r['queries_sent']:,.0f} queries sent, max in flight {r['max_in_flight']:.0f}, "
            f"{r['timeouts']:.0f} timeouts, dnsmasq busy {r['dnsmasq_busy']:.0%} of the time"
        )


if __name__ == "__main__":
    main()
