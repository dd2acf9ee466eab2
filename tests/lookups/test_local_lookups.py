"""Ports, Prefix, Table and Categorizer against independent answers."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import pyarrow as pa
import pytest

from netdistill.lookups.categorizer import Categorizer, CategorizerConfig
from netdistill.lookups.ports import PROTOCOL_NUMBERS, Ports, PortsConfig
from netdistill.lookups.prefix import Prefix, PrefixConfig
from netdistill.lookups.table import Table, TableConfig
from netdistill.store.duckdb import DuckDBStore


def test_ports_answers_every_etc_services_row():
    rows = []
    for line in Path("/etc/services").read_text().splitlines():
        parts = line.split("#")[0].split()
        if len(parts) >= 2 and parts[1].split("/")[1] in PROTOCOL_NUMBERS:
            port, proto = parts[1].split("/")
            rows.append((parts[0], PROTOCOL_NUMBERS[proto], int(port)))
    assert len(rows) == 314
    ports = Ports(PortsConfig(name="Ports", type="ports"))
    keys = pa.table(
        {
            "protocol": pa.array([r[1] for r in rows] + [6], pa.uint8()),
            "port": pa.array([r[2] for r in rows] + [1], pa.uint16()),
        }
    )
    # port 1/tcp is tcpmux; add an unknown port (6, 1) → (proto 6, port 1) is known, so
    # check an unknown one separately
    got = ports.call("Service", keys).column("service").to_pylist()
    assert got[:-1] == [r[0] for r in rows]
    unknown = pa.table(
        {"protocol": pa.array([17, None], pa.uint8()), "port": pa.array([1, 80], pa.uint16())}
    )
    assert ports.call("Service", unknown).column("service").to_pylist() == [None, None]
    back = ports.call("Port", pa.table({"service": ["http", "domain", "nope"]}))
    assert back.to_pylist() == [
        {"protocol": 6, "port": 80},
        {"protocol": 6, "port": 53},
        {"protocol": None, "port": None},
    ]


def _networks(rng):
    nets = set()
    while len(nets) < 300:
        if rng.random() < 0.8:
            length = rng.choice([0, 8, 12, 16, 20, 24, 28, 30, 32])
            nets.add(ipaddress.ip_network((rng.getrandbits(32), length), strict=False))
        else:
            length = rng.choice([0, 16, 32, 48, 64, 127, 128])
            nets.add(ipaddress.ip_network((rng.getrandbits(128), length), strict=False))
    # nested prefixes so longest-match matters
    nets.update(
        ipaddress.ip_network(n)
        for n in [
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.2.0/24",
            "10.1.2.3/32",
            "2001:db8::/32",
            "2001:db8:1::/48",
        ]
    )
    return sorted(nets, key=lambda n: (n.version, int(n.network_address), n.prefixlen))


def test_prefix_longest_match_against_brute_force(tmp_path):
    rng = random.Random(7)
    nets = [n for n in _networks(rng) if n.prefixlen != 0]
    csv = tmp_path / "nets.csv"
    csv.write_text("network,account_id\n" + "".join(f"{n},acct-{i}\n" for i, n in enumerate(nets)))
    prefix = Prefix(
        PrefixConfig(name="Cust", type="prefix", csv=str(csv), values={"account_id": "string"})
    )
    probes = []
    for n in nets:  # inside each network, plus random addresses
        probes.append(str(n.network_address + rng.randrange(n.num_addresses)))
    probes += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(2000)]
    probes += [str(ipaddress.IPv6Address(rng.getrandbits(128))) for _ in range(200)]
    probes += ["10.1.2.3", "10.1.2.4", "10.1.3.1", "10.200.0.1", "2001:db8:1::9", None, "junk"]
    got = prefix.call("Match", pa.table({"ip": pa.array(probes, pa.string())})).to_pylist()
    for address, row in zip(probes, got, strict=True):
        best = None
        if address not in (None, "junk"):
            ip = ipaddress.ip_address(address)
            for i, n in enumerate(nets):
                if (
                    n.version == ip.version
                    and ip in n
                    and (best is None or n.prefixlen > nets[best].prefixlen)
                ):
                    best = i
        want = (
            {"account_id": f"acct-{best}", "network": str(nets[best])}
            if best is not None
            else {"account_id": None, "network": None}
        )
        assert row == want, address


def test_table_from_csv_and_from_sql_in_the_store(tmp_path):
    csv = tmp_path / "nms.csv"
    csv.write_text(
        "exporter,input_if,site,speed\n10.0.0.1,1,paris,1000\n10.0.0.1,2,lyon,100\n"
        "10.0.0.2,1,nice,10\n10.0.0.1,1,duplicate,1\n"
    )
    config = dict(
        name="NMS",
        type="table",
        function="Site",
        keys={"exporter": "ip", "input_if": "uint32"},
        values={"site": "string", "speed": "uint64"},
    )
    keys = pa.table(
        {
            "exporter": ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.9", None],
            "input_if": pa.array([1, 2, 1, 1, 1], pa.uint32()),
        }
    )
    want = [
        {"site": "paris", "speed": 1000},
        {"site": "lyon", "speed": 100},
        {"site": "nice", "speed": 10},
        {"site": None, "speed": None},
        {"site": None, "speed": None},
    ]
    from_csv = Table(TableConfig(**config, csv=str(csv)))
    assert from_csv.call("Site", keys).to_pylist() == want
    assert from_csv.call("Site", keys).schema.field("speed").type == pa.uint64()
    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        sql = (
            "SELECT * FROM (VALUES ('10.0.0.1', 1, 'paris', 1000), ('10.0.0.1', 2, 'lyon', 100),"
            " ('10.0.0.2', 1, 'nice', 10)) AS t(exporter, input_if, site, speed)"
        )
        from_sql = Table(TableConfig(**config, sql=sql), store=store)
        assert from_sql.call("Site", keys).to_pylist() == want
    finally:
        store.close()


def test_table_config_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one of 'csv' and 'sql'"):
        TableConfig(name="T", type="table", keys={"a": "string"}, values={"b": "string"})


def test_categorizer_first_rule_wins():
    config = CategorizerConfig(
        name="Apps",
        type="categorizer",
        inputs=["protocol", "dst_port", "dst_ip"],
        rules=[
            {"category": "dns", "when": "protocol = 17 and dst_port = 53"},
            {"category": "web", "when": "protocol = 6 and dst_port in (80, 443)"},
            {"category": "internal", "when": "dst_ip in 10.0.0.0/8"},
        ],
        default="other",
    )
    assert [f.notation() for f in config.functions()] == [
        "Apps.Classify(protocol:uint8, dst_port:uint16, dst_ip:ip) → (category:string)"
    ]
    keys = pa.table(
        {
            "protocol": pa.array([17, 6, 6, 6, None], pa.uint8()),
            "dst_port": pa.array([53, 443, 22, 80, None], pa.uint16()),
            "dst_ip": ["10.0.0.1", "10.0.0.1", "10.0.0.1", "8.8.8.8", None],
        }
    )
    got = Categorizer(config).call("Classify", keys).column("category").to_pylist()
    assert got == ["dns", "web", "internal", "web", "other"]


def test_categorizer_rule_errors_name_the_rule():
    with pytest.raises(
        ValueError, match=r"rule 2 \(web\): column 10: cannot compare number with string"
    ):
        CategorizerConfig(
            name="A",
            type="categorizer",
            inputs=["dst_port"],
            rules=[
                {"category": "x", "when": "dst_port = 1"},
                {"category": "web", "when": "dst_port = 'http'"},
            ],
        )


def test_prefix_match_either_takes_the_first_address_inside_a_network(tmp_path):
    csv = tmp_path / "nets.csv"
    csv.write_text("network,account_id\n10.1.0.0/16,acme\n10.1.2.0/24,acme-south\n")
    prefix = Prefix(
        PrefixConfig(name="Cust", type="prefix", csv=str(csv), values={"account_id": "string"})
    )
    keys = pa.table(
        {
            "ip": ["10.1.2.9", "8.8.8.8", "8.8.8.8", None, "10.1.9.9"],
            "other_ip": ["10.1.9.9", "10.1.2.7", "9.9.9.9", "10.1.0.1", "10.1.2.1"],
        }
    )
    got = prefix.call("MatchEither", keys)
    assert got.column("account_id").to_pylist() == [
        "acme-south",
        "acme-south",
        None,
        "acme",
        "acme",
    ]
    assert got.column("matched_ip").to_pylist() == [
        "10.1.2.9", "10.1.2.7", None, "10.1.0.1", "10.1.9.9"
    ]  # fmt: skip
