"""The SNMP interface lookup against a real net-snmp agent (snmpd) on a free loopback
port: names as the kernel lists them (/sys/class/net), aliases and speeds pinned with
snmpd's ``override``, through a real procedure; unknown exporters do not hold a batch
past ``first_walk_wait_s``; tables are refreshed in the background."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest
from peers_lookup import SilentUdp, Snmpd, machine_interfaces

from netdistill.enhance.plan import build_enhancer
from netdistill.errors import SchemeError
from netdistill.lookups.snmp import SnmpConfig, SnmpLookup
from netdistill.records.schema import conform
from netdistill.scheme.load import parse_scheme

COMMUNITY = "nd-test-community"
IF_SPEED = "1.3.6.1.2.1.2.2.1.5"
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"
IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.18"


@pytest.fixture(scope="module")
def interfaces() -> dict[int, str]:
    found = machine_interfaces()
    assert "lo" in found.values()
    return found


def pinned(interfaces: dict[int, str]) -> tuple[dict, dict[int, tuple[str | None, int]]]:
    """snmpd overrides and the (alias, speed in bit/s) they make, per ifIndex: the
    loopback saturates ifSpeed (so its speed is ifHighSpeed: 40 Gb/s), another interface,
    where there is one, has a small ifSpeed that wins over its ifHighSpeed (2.5 Mb/s)."""
    lo = next(i for i, n in interfaces.items() if n == "lo")
    overrides = {
        f"{IF_ALIAS}.{lo}": ("octet_str", "loopback: test alias"),
        f"{IF_SPEED}.{lo}": ("uinteger", 4294967295),
        f"{IF_HIGH_SPEED}.{lo}": ("uinteger", 40000),
    }
    expected = {lo: ("loopback: test alias", 40_000_000_000)}
    others = [i for i in interfaces if i != lo]
    if others:
        other = others[-1]
        overrides[f"{IF_SPEED}.{other}"] = ("uinteger", 2_500_000)
        overrides[f"{IF_HIGH_SPEED}.{other}"] = ("uinteger", 2)
        expected[other] = (None, 2_500_000)
    return overrides, expected


SCHEME = """\
sources: [{{name: nf, type: netflow}}]
lookups:
  - name: SNMP
    type: snmp
    community: {community}
    first_walk_wait_s: 5
    timeout_s: 10
    agents:
      127.0.0.1: {{address: "{address}"}}
      router-b: {{address: "{address}"}}
procedures:
  - name: ifaces
    trigger: nf
    add_fields: {{in_name: string, in_descr: string, in_alias: string, in_speed: uint64,
                  out_name: string}}
    fields:
      in_name: SNMP.Interface(exporter, input_if).name
      in_descr: SNMP.Interface(exporter, input_if).description
      in_alias: SNMP.Interface(exporter, input_if).alias
      in_speed: SNMP.Interface(exporter, input_if).speed
      out_name: SNMP.Interface(exporter, output_if).name
"""


def test_interfaces_through_a_procedure(tmp_path, interfaces):
    overrides, expected = pinned(interfaces)
    with Snmpd(tmp_path, community=COMMUNITY, overrides=overrides) as agent:
        text = SCHEME.format(community=COMMUNITY, address=agent.address)
        enhancer = build_enhancer(parse_scheme(text))
        assert enhancer is not None
        try:
            indexes = [*interfaces, 9999]  # 9999: no such interface → a miss
            rows = [
                (exporter, i, o)
                for exporter in ("127.0.0.1", "router-b")
                for i in indexes
                for o in (indexes[0], 9999)
            ]
            records = conform(
                pa.table(
                    {
                        "exporter": [r[0] for r in rows],
                        "input_if": pa.array([r[1] for r in rows], pa.uint32()),
                        "output_if": pa.array([r[2] for r in rows], pa.uint32()),
                    }
                )
            )
            for _ in range(2):  # the second batch from the kept tables, no new walk
                out = enhancer("nf", records).to_pylist()
                for (exporter, i, o), got in zip(rows, out, strict=True):
                    name = interfaces.get(i)
                    alias, speed = expected.get(i, (None, got["in_speed"]))
                    assert (got["in_name"], got["in_descr"]) == (name, name), (exporter, i)
                    assert (got["in_alias"], got["in_speed"]) == (
                        (alias, speed) if name else (None, None)
                    ), (exporter, i)
                    assert got["out_name"] == interfaces.get(o)
                lookup = enhancer.lookups["SNMP"].lookup
                assert lookup.stats.walks == 2  # one per exporter
                assert lookup.stats.agents == 2
                assert lookup.stats.interfaces == 2 * len(interfaces)
                assert lookup.counters.errors == 0 and lookup.counters.timeouts == 0
        finally:
            enhancer.close()


def test_a_silent_agent_holds_a_batch_no_longer_than_first_walk_wait(tmp_path, interfaces):
    lo = next(i for i, n in interfaces.items() if n == "lo")
    with Snmpd(tmp_path, community=COMMUNITY) as agent, SilentUdp() as silent:
        config = SnmpConfig(
            name="SNMP",
            type="snmp",
            community=COMMUNITY,
            first_walk_wait_s=0.3,
            request_timeout_s=0.6,
            retries=0,
            retry_s=60,
            agents={"live": {"address": agent.address}, "dead": {"address": silent.server}},
        )
        lookup = SnmpLookup(config)
        try:
            # the live agent's table first, so the mixed batch below only waits for "dead"
            warm = pa.table({"exporter": ["live"], "if_index": pa.array([lo], pa.uint32())})
            deadline = time.monotonic() + 10
            while lookup.call("Interface", warm).column("name")[0].as_py() is None:
                assert time.monotonic() < deadline, "snmpd did not answer"
            keys = pa.table(
                {
                    "exporter": ["live", "dead", "dead"],
                    "if_index": pa.array([lo, lo, 2], pa.uint32()),
                }
            )
            started = time.monotonic()
            out = lookup.call("Interface", keys)
            took = time.monotonic() - started
            assert out.column("name").to_pylist() == ["lo", None, None]
            assert 0.25 <= took < 0.3 + 0.25, took
            assert lookup.counters.timeouts == 2
            # the walk fails at its own request timeout; then it is not tried for retry_s
            deadline = time.monotonic() + 5
            while lookup.stats.walks_failed == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert lookup.counters.by_reason == {"timeout": 1}
            asked = silent.drain()
            assert asked == 1  # retries: 0 → one GETBULK
            started = time.monotonic()
            out = lookup.call("Interface", keys)
            assert time.monotonic() - started < 0.2  # no walk due: nothing to wait for
            assert out.column("name").to_pylist() == ["lo", None, None]
            assert silent.drain() == 0 and lookup.stats.walks_failed == 1
        finally:
            lookup.close()


def test_refresh_keeps_the_old_table_until_a_walk_succeeds(tmp_path, interfaces):
    """A due table is walked again in the background; while the agent is away the old
    table answers (the failed walk is counted), and the next walk after ``retry_s``
    brings the agent's new values."""
    lo = next(i for i, n in interfaces.items() if n == "lo")
    alias = f"{IF_ALIAS}.{lo}"
    keys = pa.table({"exporter": ["r1"], "if_index": pa.array([lo], pa.uint32())})
    first = Snmpd(tmp_path / "a", community=COMMUNITY, overrides={alias: ("octet_str", "before")})
    config = SnmpConfig(
        name="SNMP",
        type="snmp",
        community=COMMUNITY,
        refresh_s=0.5,
        retry_s=0.5,
        request_timeout_s=0.3,
        retries=0,
        agents={"r1": {"address": first.address}},
    )
    lookup = SnmpLookup(config)
    answers: list[str | None] = []

    def ask() -> str | None:
        answers.append(lookup.call("Interface", keys).column("alias")[0].as_py())
        return answers[-1]

    try:
        with first:
            assert ask() == "before"
        time.sleep(0.6)  # due for a refresh; the agent is gone
        assert ask() == "before"  # starts the refresh, answers from the table it has
        deadline = time.monotonic() + 5
        while lookup.stats.walks_failed == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lookup.stats.walks_failed == 1 and lookup.counters.errors == 1
        assert ask() == "before"
        second = Snmpd(
            tmp_path / "b",
            community=COMMUNITY,
            overrides={alias: ("octet_str", "after")},
            port=first.port,
        )
        with second:
            deadline = time.monotonic() + 10
            while ask() != "after" and time.monotonic() < deadline:
                time.sleep(0.05)
        assert answers[-1] == "after"
        assert set(answers) == {"before", "after"}  # never a null meanwhile
        assert lookup.stats.walks == 2
    finally:
        lookup.close()


def test_scheme_checks(tmp_path):
    base = SCHEME.format(community="c", address="127.0.0.1:1161")
    parse_scheme(base)
    with pytest.raises(SchemeError) as info:
        parse_scheme(
            base.replace('router-b: {address: "127.0.0.1:1161"}', "router-b: {address: ':x'}")
        )
    assert "agents.router-b.address" in info.value.problems[0]
    with pytest.raises(SchemeError) as info:
        parse_scheme(base.replace("first_walk_wait_s: 5", "first_walk_wait_s: 10"))
    assert "first_walk_wait_s must be below timeout_s" in info.value.problems[0]
    with pytest.raises(SchemeError) as info:
        parse_scheme(
            base.replace(
                "in_name: SNMP.Interface(exporter, input_if).name",
                "in_name: SNMP.Interface(exporter, input_if).speed",
            )
        )
    assert "procedures.0.fields.in_name" in info.value.problems[0]
