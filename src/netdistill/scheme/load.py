"""Loading a scheme from YAML, with every problem reported at file:line:column.

PyYAML's composer gives each node its position; we keep a map from the path of keys and
indexes to that position, so that a pydantic error at ``sources.0.listen.1`` is reported
where the operator wrote it, with the value found and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from netdistill.errors import SchemeError
from netdistill.scheme.models import Scheme

Position = tuple[int, int]


def demo_scheme_path() -> Path:
    return Path(__file__).with_name("demo.yaml")


def _positions(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], Position]):
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value
            out[(*path, name)] = (value.start_mark.line + 1, value.start_mark.column + 1)
            out[(*path, name, "<key>")] = (key.start_mark.line + 1, key.start_mark.column + 1)
            _positions(value, (*path, name), out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _positions(item, (*path, index), out)


def _locate(positions: dict[tuple[Any, ...], Position], loc: tuple[Any, ...]) -> Position:
    """The position of the deepest known prefix of ``loc`` (pydantic adds union tags)."""
    parts = list(loc)
    for end in range(len(parts), -1, -1):
        key = tuple(parts[:end])
        if key in positions:
            return positions[key]
    return (1, 1)


def _without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the discriminator tags pydantic puts in locations (``sources.0.netflow.x``,
    ``lookups.1.prefix.values``)."""
    from netdistill.lookups.registry import LOOKUP_TYPES
    from netdistill.sources.registry import SOURCE_TYPES
    from netdistill.stages.registry import STAGE_TYPES

    tags = {"sources": SOURCE_TYPES, "lookups": LOOKUP_TYPES, "stages": STAGE_TYPES}
    out: list[Any] = []
    for index, part in enumerate(loc):
        after_list_index = index > 1 and isinstance(loc[index - 1], int)
        if after_list_index and part in tags.get(str(loc[index - 2]), ()):
            continue
        out.append(part)
    return tuple(out)


def _describe(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    message = error.get("msg", "invalid")
    if kind == "extra_forbidden":
        return "unknown key (not a setting of this section; check its spelling)"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        expected = error.get("ctx", {}).get("expected_tags", "")
        return f"unknown type (known: {expected})"
    return message.removeprefix("Value error, ")


def parse_scheme(text: str, *, filename: str = "<scheme>") -> Scheme:
    """Parse and validate a scheme; raise ``SchemeError`` listing every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise SchemeError([f"{where}: not valid YAML: {exc.problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SchemeError(
            [f"{filename}:1:1: a scheme is a mapping of sections, not {type(data).__name__}"]
        )
    positions: dict[tuple[Any, ...], Position] = {}
    if root is not None:
        _positions(root, (), positions)
    try:
        return Scheme.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = _without_union_tags(tuple(error["loc"]))
            if error.get("type") == "union_tag_invalid":
                loc = (*loc, "type")
                error = {**error, "input": error.get("ctx", {}).get("tag")}
            if error.get("type") == "extra_forbidden":
                line, column = _locate(positions, (*loc, "<key>"))
            else:
                line, column = _locate(positions, loc)
            dotted = ".".join(str(p) for p in loc) or "(top)"
            value = error.get("input")
            shown = "" if error.get("type") == "missing" else f" (found {value!r})"
            if isinstance(value, dict | list):
                shown = ""
            problems.append(f"{filename}:{line}:{column}: {dotted}: {_describe(error)}{shown}")
        raise SchemeError(problems) from None


def load_scheme(path: Path | str) -> Scheme:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemeError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_scheme(text, filename=str(path))
