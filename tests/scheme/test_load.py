"""Scheme validation: defaults validate, and every problem is reported where it was made."""

from __future__ import annotations

import pytest

from netdistill.errors import SchemeError
from netdistill.scheme import Scheme, demo_scheme_path, load_scheme, parse_scheme


def test_defaults_and_demo_validate():
    assert Scheme().manager.retention_days == 90
    scheme = load_scheme(demo_scheme_path())
    assert [(s.name, s.type) for s in scheme.sources] == [
        ("demo-netflow", "netflow"),
        ("demo-radius", "radius"),
        ("demo-firewall", "syslog"),
        ("demo-proxy", "file"),
    ]
    assert [e.protocol for e in scheme.demo.exporters] == ["v9", "ipfix"]


BAD = """\
version: 1
manager:
  api_port: 99999
  retension_days: 3
sources:
  - name: edge
    type: netflow
    listen: ["127.0.0.1:2055", "bogus:x"]
  - name: edge2
    type: jflow
"""


def test_every_problem_has_file_line_column_value_and_expectation():
    with pytest.raises(SchemeError) as caught:
        parse_scheme(BAD, filename="bad.yaml")
    assert caught.value.problems == [
        "bad.yaml:3:13: manager.api_port: Input should be less than or equal to 65535 "
        "(found 99999)",
        "bad.yaml:4:3: manager.retension_days: unknown key (not a setting of this section; "
        "check its spelling) (found 3)",
        "bad.yaml:8:13: sources.0.listen: 'bogus:x': 'bogus' is not an IP address",
        "bad.yaml:10:11: sources.1.type: unknown type (known: 'netflow', 'sflow', 'file', "
        "'radius', 'syslog', 'lines') (found 'jflow')",
    ]


def test_yaml_syntax_error_has_its_place():
    with pytest.raises(SchemeError) as caught:
        parse_scheme("sources:\n  - name: [unclosed\n", filename="s.yaml")
    assert caught.value.problems[0].startswith("s.yaml:3:1: not valid YAML")


def test_duplicate_names_and_exporter_addresses():
    text = """\
sources:
  - {name: a, type: netflow, listen: ["2055"]}
  - {name: a, type: netflow, listen: ["[::1]:2056"], exporters: {router1: {sampling_rate: 10}}}
"""
    with pytest.raises(SchemeError) as caught:
        parse_scheme(text, filename="s.yaml")
    assert caught.value.problems == [
        "s.yaml:3:65: sources.1.exporters: exporter 'router1' is not an IP address",
    ]
    fixed = text.replace("router1", "192.0.2.1")
    ok = parse_scheme(
        fixed.replace(
            '{name: a, type: netflow, listen: ["[', '{name: b, type: netflow, listen: ["['
        )
    )
    assert ok.sources[1].exporters["192.0.2.1"].sampling_rate == 10
    with pytest.raises(SchemeError, match="two sources are named"):
        parse_scheme(text.replace("router1", "192.0.2.1"))


def test_missing_file_is_a_scheme_error(tmp_path):
    with pytest.raises(SchemeError, match="cannot read"):
        load_scheme(tmp_path / "nope.yaml")
