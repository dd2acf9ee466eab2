"""SchemeDiff: what changed between two schemes, compared with hand-written expectations
on small schemes (and with plain list comparison for ``flow_changed``)."""

from __future__ import annotations

import textwrap

import pytest

from netdistill.scheme.diff import NamedDiff, SchemeDiff
from netdistill.scheme.load import parse_scheme

BASE = """
version: 1
manager: {api_port: 0, retention_days: 30}
sources:
  - {name: edge, type: netflow, listen: ["127.0.0.1:0"]}
  - {name: core, type: netflow, listen: ["127.0.0.1:0"], gatherer: pop1}
  - {name: nas, type: radius, listen: ["127.0.0.1:0"], clients: {127.0.0.0/8: {secret: s}}}
gatherers:
  - {name: pop1, token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
lookups:
  - {name: Svc, type: ports}
procedures:
  - name: tag
    trigger: edge
    fields: {service: "Svc.Service(protocol, dst_port).service"}
stages:
  - {name: big, type: filter, input: edge, where: "bytes > 100"}
  - {name: conv, type: aggregate, input: edge, by: [src_ip, dst_ip]}
"""


def scheme(text: str = BASE, **replace: str) -> object:
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return parse_scheme(textwrap.dedent(text))


def edit(old: str, new: str) -> object:
    return scheme(**{old: new})


def test_identical_schemes_differ_in_nothing() -> None:
    diff = SchemeDiff(scheme(), scheme())
    assert not diff
    assert not diff.flow_changed
    assert diff.sources == {}
    assert diff.manager == {}
    assert diff.describe() == []


def test_a_changed_source_is_stopped_and_started_on_its_gatherer_only() -> None:
    new = edit(
        '{name: edge, type: netflow, listen: ["127.0.0.1:0"]}',
        '{name: edge, type: netflow, listen: ["127.0.0.1:9"]}',
    )
    diff = SchemeDiff(scheme(), new)
    assert list(diff.sources) == ["local"]
    local = diff.sources_on("local")
    assert local.names() == {"added": [], "removed": [], "changed": ["edge"]}
    assert local.to_stop == ["edge"]
    assert [s.name for s in local.to_start] == ["edge"]
    assert local.to_start[0].listen == ["127.0.0.1:9"]
    assert not diff.sources_on("pop1")
    assert diff.flow_changed


def test_a_source_moving_gatherer_leaves_one_and_joins_the_other() -> None:
    new = edit('listen: ["127.0.0.1:0"], gatherer: pop1}', 'listen: ["127.0.0.1:0"]}')
    diff = SchemeDiff(scheme(), new)
    assert diff.sources_on("pop1").names() == {"added": [], "removed": ["core"], "changed": []}
    assert diff.sources_on("local").names() == {"added": ["core"], "removed": [], "changed": []}
    # run runs every source itself: there it is one changed source
    assert diff.all_sources.names() == {"added": [], "removed": [], "changed": ["core"]}


def test_added_and_removed_sources_keep_the_schemes_order() -> None:
    new = edit(
        "  - {name: nas, type: radius",
        '  - {name: a2, type: netflow, listen: ["127.0.0.1:0"]}\n  - {name: nas2, type: radius',
    )
    diff = SchemeDiff(scheme(), new)
    local = diff.sources_on("local")
    assert local.names() == {"added": ["a2", "nas2"], "removed": ["nas"], "changed": []}
    assert local.to_stop == ["nas"]
    assert [s.name for s in local.to_start] == ["a2", "nas2"]


def test_lookups_procedures_and_stages() -> None:
    new = scheme(
        BASE.replace("bytes > 100", "bytes > 200").replace(
            "{name: Svc, type: ports}", "{name: Svc, type: ports, description: x}"
        )
        + "  - {name: conv2, type: aggregate, input: edge, by: [src_ip]}\n"
    )
    diff = SchemeDiff(scheme(), new)
    assert diff.stages.names() == {"added": ["conv2"], "removed": [], "changed": ["big"]}
    assert diff.lookups.names() == {"added": [], "removed": [], "changed": ["Svc"]}
    assert not diff.procedures
    assert diff.sources == {}
    assert diff.flow_changed
    assert diff.describe() == ["lookups: changed Svc", "stages: added conv2; changed big"]


def test_reordering_stages_is_a_flow_change_without_named_changes() -> None:
    text = BASE.replace(
        '  - {name: big, type: filter, input: edge, where: "bytes > 100"}\n'
        "  - {name: conv, type: aggregate, input: edge, by: [src_ip, dst_ip]}\n",
        "  - {name: conv, type: aggregate, input: edge, by: [src_ip, dst_ip]}\n"
        '  - {name: big, type: filter, input: edge, where: "bytes > 100"}\n',
    )
    diff = SchemeDiff(scheme(), scheme(text))
    assert diff.stages.names() == {"added": [], "removed": [], "changed": []}
    assert diff.stages.reordered
    assert diff.flow_changed


@pytest.mark.parametrize(
    ("old", "new", "keys", "flow"),
    [
        ("retention_days: 30}", "retention_days: 7}", ["retention_days"], False),
        (
            "retention_days: 30}",
            "retention_days: 30, stages_interval_s: 5}",
            ["stages_interval_s"],
            True,
        ),
        (
            "{api_port: 0, retention_days: 30}",
            "{api_port: 1, retention_days: 30, commit_interval_s: 2}",
            ["api_port", "commit_interval_s"],
            False,
        ),
    ],
)
def test_manager_settings(old: str, new: str, keys: list[str], flow: bool) -> None:
    diff = SchemeDiff(scheme(), edit(old, new))
    assert sorted(diff.manager) == keys
    assert diff.flow_changed is flow
    assert bool(diff)


def test_flow_changed_agrees_with_comparing_the_sections_as_lists() -> None:
    """The rule the live-apply paths used before SchemeDiff, on every edit above."""
    edits = [
        scheme(),
        edit("bytes > 100", "bytes > 101"),
        edit("retention_days: 30}", "retention_days: 7}"),
        edit("gatherer: pop1}", "gatherer: pop2}").model_copy(),
        edit("trigger: edge", "trigger: nas"),
        edit("{name: Svc, type: ports}", "{name: Svc, type: ports, description: x}"),
    ]
    base = scheme()
    for new in edits:
        by_lists = (
            any(
                getattr(base, k) != getattr(new, k)
                for k in ("sources", "lookups", "procedures", "stages")
            )
            or base.manager.stages_interval_s != new.manager.stages_interval_s
        )
        assert SchemeDiff(base, new).flow_changed is by_lists


def test_named_diff_on_plain_mappings() -> None:
    diff = NamedDiff.of({"a": 1, "b": 2, "c": 3}, {"c": 3, "b": 20, "d": 4})
    assert diff.names() == {"added": ["d"], "removed": ["a"], "changed": ["b"]}
    assert diff.changed == {"b": (2, 20)}
    assert diff.to_stop == ["a", "b"]
    assert diff.to_start == [20, 4]
    assert not diff.reordered
    assert not NamedDiff.of({"a": 1}, {"a": 1})
    assert NamedDiff.of({"a": 1, "b": 2}, {"b": 2, "a": 1}).reordered
