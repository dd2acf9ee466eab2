"""GeoIP and ASN lookups over MaxMind DB files the tests write themselves (mmdb-writer):
exact per-address answers through a real procedure, nested networks, IPv4 and IPv6,
misses, the warm cache, and reloads while a procedure is running."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest
from mmdb_files import asn, city, write_mmdb
from netaddr import IPAddress, IPSet

from netdistill.enhance.plan import build_enhancer
from netdistill.errors import LookupDataError, SchemeError
from netdistill.lookups.asn import Asn, AsnConfig
from netdistill.lookups.geoip import GeoIP, GeoIPConfig
from netdistill.records.schema import conform
from netdistill.scheme.load import parse_scheme

FR = ("FR", "France", "Frankreich")
DE = ("DE", "Germany", "Deutschland")
US = ("US", "United States", "Vereinigte Staaten")
CA = ("CA", "Canada", "Kanada")
JP = ("JP", "Japan", "Japan")

#: insertion order: supernets first, nested networks after
CITY = {
    "10.0.0.0/8": city(DE, continent="EU"),
    "10.1.0.0/16": city(
        FR,
        "Paris",
        continent="EU",
        region=("IDF", "Île-de-France"),
        postal="75001",
        location=(48.8566, 2.3522, "Europe/Paris"),
    ),
    "10.1.2.0/24": city(
        FR, "Lyon", continent="EU", region=("ARA", "Auvergne-Rhône-Alpes"), postal="69001"
    ),
    "192.0.2.0/24": city(None, registered=JP, continent="AS"),
    "2001:db8::/32": city(US, continent="NA", location=(37.751, -97.822, "America/Chicago")),
    "2001:db8:1::/48": city(CA, "Toronto", continent="NA", region=("ON", "Ontario"), postal="M5H"),
}
ASN = {
    "10.0.0.0/8": asn(64500, "Example Backbone"),
    "10.1.0.0/16": asn(64501, "Example Paris"),
    "2001:db8::/32": asn(4200000000, "Example v6 (4-byte AS)"),
}

#: address → (country_code, country_name, continent_code, city, region_code, region_name,
#: postal_code, latitude, longitude, time_zone); None: a miss
EXPECTED = {
    "10.9.9.9": ("DE", "Germany", "EU", None, None, None, None, None, None, None),
    "10.1.200.7": (
        "FR", "France", "EU", "Paris", "IDF", "Île-de-France", "75001",
        48.8566, 2.3522, "Europe/Paris",
    ),
    "10.1.2.3": (
        "FR", "France", "EU", "Lyon", "ARA", "Auvergne-Rhône-Alpes", "69001",
        None, None, None,
    ),
    "::ffff:10.1.2.4": (
        "FR", "France", "EU", "Lyon", "ARA", "Auvergne-Rhône-Alpes", "69001",
        None, None, None,
    ),
    "192.0.2.55": ("JP", "Japan", "AS", None, None, None, None, None, None, None),
    "2001:db8:ffff::1": (
        "US", "United States", "NA", None, None, None, None,
        37.751, -97.822, "America/Chicago",
    ),
    "2001:db8:1:2::3": ("CA", "Canada", "NA", "Toronto", "ON", "Ontario", "M5H", None, None, None),
    "8.8.8.8": None,
    "2001:db9::1": None,
    "198.51.100.1": None,
}  # fmt: skip
ASN_EXPECTED = {
    "10.9.9.9": (64500, "Example Backbone"),
    "10.1.200.7": (64501, "Example Paris"),
    "10.1.2.3": (64501, "Example Paris"),
    "::ffff:10.1.2.4": (64501, "Example Paris"),
    "2001:db8:ffff::1": (4200000000, "Example v6 (4-byte AS)"),
    "2001:db8:1:2::3": (4200000000, "Example v6 (4-byte AS)"),
}


def leaf_network(networks, address: str) -> str | None:
    """The network of the file's tree that holds ``address``, computed with netaddr from
    the inserted networks: the most specific inserted network, minus the networks nested
    in it, split into CIDRs; the CIDR holding the address."""
    ip = IPAddress(address)
    if ip.version == 6 and ip.is_ipv4_mapped():
        ip = ip.ipv4()
    holding = [n for n in networks if ip in IPSet([n])]
    if not holding:
        return None
    best = max(holding, key=lambda n: int(n.split("/")[1]))
    rest = IPSet([best]) - IPSet([n for n in networks if n != best and IPSet([n]) < IPSet([best])])
    return next(str(c) for c in rest.iter_cidrs() if ip in c)


SCHEME = """\
sources: [{{name: nf, type: netflow}}]
lookups:
  - {{name: GeoIP, type: geoip, database: {city}, reload_check_s: {check}}}
  - {{name: ASN, type: asn, database: {asn}, reload_check_s: {check}}}
procedures:
  - name: geo
    trigger: nf
    add_fields:
      country: string
      country_name: string
      continent: string
      city: string
      region: string
      region_name: string
      postal: string
      lat: float64
      lon: float64
      tz: string
      geo_network: string
      as_org: string
      as_network: string
    fields:
      country: GeoIP.Country(src_ip).country_code
      country_name: GeoIP.Country(src_ip).country_name
      continent: GeoIP.Country(src_ip).continent_code
      city: GeoIP.City(src_ip).city
      region: GeoIP.City(src_ip).region_code
      region_name: GeoIP.City(src_ip).region_name
      postal: GeoIP.City(src_ip).postal_code
      lat: GeoIP.City(src_ip).latitude
      lon: GeoIP.City(src_ip).longitude
      tz: GeoIP.City(src_ip).time_zone
      geo_network: GeoIP.City(src_ip).network
      src_as: ASN.Origin(src_ip).asn
      as_org: ASN.Origin(src_ip).as_organization
      as_network: ASN.Origin(src_ip).network
"""
GEO_FIELDS = (
    "country", "country_name", "continent", "city", "region", "region_name", "postal",
    "lat", "lon", "tz",
)  # fmt: skip


@pytest.fixture
def files(tmp_path):
    city_path, asn_path = tmp_path / "city.mmdb", tmp_path / "asn.mmdb"
    write_mmdb(city_path, CITY)
    write_mmdb(asn_path, ASN, database_type="GeoLite2-ASN")
    return city_path, asn_path


def enhancer_for(city_path, asn_path, check: float = 1.0):
    scheme = parse_scheme(SCHEME.format(city=city_path, asn=asn_path, check=check))
    enhancer = build_enhancer(scheme)
    assert enhancer is not None
    return enhancer


def batch(addresses: list[str | None]) -> pa.Table:
    return conform(pa.table({"src_ip": pa.array(addresses, pa.string())}))


def check_rows(out: pa.Table, addresses, country_from=None, city_from=None) -> None:
    """Exact answers per address: the Country outputs from ``country_from`` and the City
    outputs from ``city_from`` (each ``(networks, expected)``, the original files by
    default), the ASN outputs from ``ASN``."""
    _, country_expected = country_from or (CITY, EXPECTED)
    city_networks, city_expected = city_from or (CITY, EXPECTED)
    rows = out.to_pylist()
    assert len(rows) == len(addresses)
    for address, row in zip(addresses, rows, strict=True):
        got = tuple(row[f] for f in GEO_FIELDS)
        want = country_expected.get(address) if address is not None else None
        assert got[:3] == (want or (None,) * 10)[:3], address
        want = city_expected.get(address) if address is not None else None
        assert got[3:] == (want or (None,) * 10)[3:], address
        network = leaf_network(list(city_networks), address) if want else None
        assert row["geo_network"] == network, address
        as_want = ASN_EXPECTED.get(address) or (None, None)
        assert (row["src_as"], row["as_org"]) == as_want, address
        as_network = leaf_network(list(ASN), address) if as_want[0] else None
        assert row["as_network"] == as_network, address


def test_exact_answers_through_a_procedure(files):
    enhancer = enhancer_for(*files)
    # every address several times, a null and text that is no address, in a mixed order
    addresses = [*EXPECTED, *reversed(EXPECTED), None, "not-an-ip", *EXPECTED]
    out = enhancer("nf", batch(addresses))
    check_rows(out, [a if a != "not-an-ip" else None for a in addresses])
    geo = enhancer.lookups["GeoIP"]
    # each distinct address was read from the file once per function (10 + null + junk)
    assert geo.lookup.stats.addresses_read == 2 * (len(EXPECTED) + 2)
    assert geo.lookup.counters.by_reason == {"not an address": 2}
    assert geo.lookup.counters.errors == 0
    assert geo.status()["errors"] == 0
    # warm: the same addresses again are answered from the cache, not the file
    out = enhancer("nf", batch(addresses))
    check_rows(out, [a if a != "not-an-ip" else None for a in addresses])
    assert geo.lookup.stats.addresses_read == 2 * (len(EXPECTED) + 2)
    assert geo.lookup.stats.cache_hits == 2 * (len(EXPECTED) + 2)
    enhancer.close()


def test_names_in_another_language(files):
    geo = GeoIP(GeoIPConfig(name="G", type="geoip", database=str(files[0]), language="de"))
    out = geo.call("Country", pa.table({"ip": ["10.1.2.3", "10.9.9.9", "8.8.8.8", "192.0.2.1"]}))
    assert out.column("country_name").to_pylist() == ["Frankreich", "Deutschland", None, "Japan"]
    geo.close()


def test_ipv4_only_file_answers_ipv6_as_a_miss(tmp_path):
    path = tmp_path / "v4.mmdb"
    write_mmdb(path, {"10.0.0.0/8": asn(64500, "v4 only")}, ip_version=4)
    lookup = Asn(AsnConfig(name="A", type="asn", database=str(path)))
    out = lookup.call("Origin", pa.table({"ip": ["10.2.3.4", "2001:db8::1", "11.0.0.1"]}))
    assert out.to_pylist() == [
        {"asn": 64500, "as_organization": "v4 only", "network": "10.0.0.0/8"},
        {"asn": None, "as_organization": None, "network": None},
        {"asn": None, "as_organization": None, "network": None},
    ]
    assert lookup.counters.by_reason == {"ipv6 in ipv4 file": 1}
    assert lookup.counters.misses == 2 and lookup.counters.errors == 0
    lookup.close()


def test_warm_cache_is_bounded_and_answers_stay_exact(files):
    config = GeoIPConfig(name="G", type="geoip", database=str(files[0]), cache={"size": 4})
    geo = GeoIP(config)
    addresses = list(EXPECTED)
    for start in range(0, 3 * len(addresses), 3):  # sliding windows over the addresses
        window = [addresses[(start + k) % len(addresses)] for k in range(5)]
        out = geo.call("Country", pa.table({"ip": window}))
        want = [(EXPECTED[a] or (None,) * 3)[:3] for a in window]
        got = [(r["country_code"], r["country_name"], r["continent_code"]) for r in out.to_pylist()]
        assert got == want
        assert len(geo.file._generation.caches["Country"]) <= 4
    geo.close()


def test_missing_or_broken_file_is_a_clear_error(tmp_path):
    with pytest.raises(LookupDataError, match=r"nope\.mmdb"):
        GeoIP(GeoIPConfig(name="G", type="geoip", database=str(tmp_path / "nope.mmdb")))
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"not a maxmind db" * 10)
    with pytest.raises(LookupDataError, match=r"junk\.mmdb: not a readable MaxMind DB file"):
        GeoIP(GeoIPConfig(name="G", type="geoip", database=str(junk)))


def test_scheme_type_checks_geo_outputs(files):
    text = SCHEME.format(city=files[0], asn=files[1], check=1.0).replace(
        "src_as: ASN.Origin(src_ip).asn", "src_as: GeoIP.Country(src_ip).country_code"
    )
    with pytest.raises(SchemeError) as info:
        parse_scheme(text, filename="s.yaml")
    (problem,) = info.value.problems
    assert problem.startswith("s.yaml:") and "procedures.0.fields.src_as" in problem
    assert "string" in problem and "uint32" in problem


def test_reload_while_a_procedure_runs(files, tmp_path):
    """The files are replaced (renamed over) with changed data while another thread runs
    the procedure: every batch has exact answers of the old or the new files, none fails,
    and the new answers arrive."""
    city_path, asn_path = files
    enhancer = enhancer_for(city_path, asn_path, check=0.0)
    addresses = [*EXPECTED] * 3
    new_city = {**CITY, "10.1.2.0/24": city(DE, "Köln", continent="EU")}
    new_expected = {
        **EXPECTED,
        "10.1.2.3": ("DE", "Germany", "EU", "Köln", None, None, None, None, None, None),
        "::ffff:10.1.2.4": ("DE", "Germany", "EU", "Köln", None, None, None, None, None, None),
    }
    seen: dict[str, int] = {"old": 0, "new": 0, "mixed": 0}
    failures: list[BaseException] = []
    stop = threading.Event()

    old, new = (CITY, EXPECTED), (new_city, new_expected)

    def classify(out: pa.Table) -> str:
        """Which file each function's answers came from: one call answers from one file,
        the two functions of a batch may straddle a swap."""
        for country_from, city_from, name in [
            (old, old, "old"),
            (new, new, "new"),
            (old, new, "mixed"),
            (new, old, "mixed"),
        ]:
            try:
                check_rows(out, addresses, country_from, city_from)
                return name
            except AssertionError:
                continue
        check_rows(out, addresses)  # raises the first difference from the old answers
        raise AssertionError

    def run() -> None:
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                seen[classify(enhancer("nf", batch(addresses)))] += 1
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)
                return

    worker = threading.Thread(target=run)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while seen["old"] < 3 and time.monotonic() < deadline and not failures:
            time.sleep(0.01)
        for _ in range(5):  # several rewrites: old → new → old …, each by rename
            write_mmdb(city_path, new_city)
            time.sleep(0.05)
            write_mmdb(city_path, CITY)
            time.sleep(0.05)
        write_mmdb(city_path, new_city)
        before = seen["new"]
        deadline = time.monotonic() + 10
        while seen["new"] < before + 3 and time.monotonic() < deadline and not failures:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not failures, failures[0]
    assert seen["old"] >= 3 and seen["new"] >= before + 3
    geo = enhancer.lookups["GeoIP"]
    assert geo.lookup.counters.errors == 0 and geo.status()["timeouts"] == 0
    assert geo.lookup.stats.loads >= 2
    # after the last swap, a fresh batch has the new answers exactly
    check_rows(enhancer("nf", batch(addresses)), addresses, new, new)
    enhancer.close()


def test_a_bad_replacement_keeps_the_old_file(files):
    city_path, _ = files
    geo = GeoIP(GeoIPConfig(name="G", type="geoip", database=str(city_path), reload_check_s=0))
    keys = pa.table({"ip": ["10.1.2.3"]})
    assert geo.call("City", keys).column("city").to_pylist() == ["Lyon"]
    partial = city_path.with_name("x.partial")
    partial.write_bytes(b"\0" * 4096)  # a half-copied file put in place
    partial.replace(city_path)
    assert geo.call("City", keys).column("city").to_pylist() == ["Lyon"]
    assert geo.stats.reloads_failed == 1
    assert geo.counters.by_reason == {"reload failed": 1}
    write_mmdb(city_path, {"10.0.0.0/8": city(DE, "Bonn")})
    assert geo.call("City", keys).column("city").to_pylist() == ["Bonn"]
    assert geo.stats.loads == 2
    geo.close()


def test_builder_offers_the_geo_functions(files):
    """The console's End / Continue lists (enhance/catalogue.py) from the scheme's lookups."""
    from netdistill.enhance.catalogue import options
    from netdistill.enhance.config import catalogue_of, field_types

    scheme = parse_scheme(SCHEME.format(city=files[0], asn=files[1], check=1.0))
    catalogue = catalogue_of(scheme.lookups)
    fields = field_types(scheme.procedures[0].add_fields)
    first = options("src_as", "", fields, catalogue)
    assert (
        "ASN.Origin(ip:ip) → (asn:uint32, as_organization:string, network:string)"
        in (first["continue"])
    )
    end = options("src_as", "ASN.Origin(src_ip)", fields, catalogue)["end"]
    assert end == [
        {"expression": "ASN.Origin(src_ip).asn", "display": "ASN...asn", "type": "uint32"}
    ]
    end = options("country", "GeoIP.City(dst_ip)", fields, catalogue)["end"]
    assert [e["display"] for e in end] == [
        "GeoIP...city", "GeoIP...region_code", "GeoIP...region_name", "GeoIP...postal_code",
        "GeoIP...country_code", "GeoIP...country_name", "GeoIP...time_zone", "GeoIP...network",
    ]  # fmt: skip
