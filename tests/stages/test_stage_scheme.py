"""The scheme's ``stages:`` section: types, references and errors with their line."""

from __future__ import annotations

import pytest

from netdistill.errors import SchemeError
from netdistill.scheme.load import parse_scheme

HEAD = """\
sources:
  - {name: routers, type: netflow, listen: ["127.0.0.1:0"]}
procedures:
  - {name: enrich, trigger: routers}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SchemeError) as info:
        parse_scheme(HEAD + text, filename="s.yaml")
    return info.value.problems


def test_an_unknown_stage_type_names_the_known_ones_and_the_line() -> None:
    (problem,) = problems("stages:\n  - {name: x, type: sort}\n")
    assert problem.startswith("s.yaml:6:")
    assert "unknown stage type 'sort'" in problem
    assert "filter, merge, aggregate, rollup, alert" in problem


def test_two_stages_with_one_name_are_refused() -> None:
    (problem,) = problems("stages:\n  - {name: x, type: rollup}\n  - {name: x, type: rollup}\n")
    assert "two stages are named 'x'" in problem


def test_a_stage_may_not_take_a_source_or_procedure_name() -> None:
    (problem,) = problems("stages:\n  - {name: enrich, type: rollup}\n")
    assert "stage 'enrich' has the name of a source or procedure" in problem


def test_unknown_keys_in_a_stage_are_refused_at_their_line() -> None:
    (problem,) = problems("stages:\n  - name: x\n    type: rollup\n    colour: red\n")
    assert problem.startswith("s.yaml:8:") and "colour" in problem
