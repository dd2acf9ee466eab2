"""Loading a scheme from YAML, with every problem reported at file:line:column.

PyYAML's composer gives each node its position; we keep a map from the path of keys and
indexes to that position, so that a pydantic error at ``sources.0.listen.1`` is reported
where the operator wrote it, with the value found and what was expected — except for a
secret (``scheme/secrets.py``), whose problems never print the value: a missing
``{env: …}`` or unreadable ``{file: …}`` is reported at that key, e.g.
``scheme.yaml:12:30: sources.0.clients.192.0.2.10.secret.env: environment variable
BRAS_SECRET is not set``. Relative secret files are relative to the scheme file's
directory (the working directory for a text with no file).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from netdistill.errors import SchemeError
from netdistill.scheme.models import Scheme
from netdistill.scheme.secrets import secrets_relative_to

#: error types whose input must not be printed (it may be a secret)
_QUIET_TYPES = ("secret",)
_SECRET_WORDS = ("password", "secret", "token", "key", "header", "auth")

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
    from netdistill.lookups.registry import LOOKUPS
    from netdistill.sources.registry import SOURCES
    from netdistill.stages.registry import STAGES

    tags = {"sources": SOURCES, "lookups": LOOKUPS, "stages": STAGES}
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


def _quiet(error: Mapping[str, Any], loc: tuple[Any, ...]) -> bool:
    """Whether the value found must not be printed: a secret's, or an unknown key's
    whose name looks like one (``pasword: hunter2``)."""
    if error.get("type") in _QUIET_TYPES:
        return True
    names = [str(part).lower() for part in loc if isinstance(part, str)]
    if any(word in name for name in names for word in _SECRET_WORDS):
        return True
    if error.get("type") == "extra_forbidden" and names:
        from netdistill.scheme.redact import secret_keys

        keys, maps = secret_keys()
        return bool(difflib.get_close_matches(names[-1], [*keys, *maps, *_SECRET_WORDS], 1, 0.7))
    return False


def _base_dir(filename: str) -> Path | None:
    return None if filename.startswith("<") else Path(filename).absolute().parent


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
        with secrets_relative_to(_base_dir(filename)):
            return Scheme.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = _without_union_tags(tuple(error["loc"]))
            if error.get("type") == "union_tag_invalid":
                loc = (*loc, "type")
                error = {**error, "input": error.get("ctx", {}).get("tag")}
            if error.get("type") == "secret" and error.get("ctx", {}).get("key"):
                loc = (*loc, error["ctx"]["key"])  # at the file: or env: key's value
            if error.get("type") == "extra_forbidden":
                line, column = _locate(positions, (*loc, "<key>"))
            else:
                line, column = _locate(positions, loc)
            dotted = ".".join(str(p) for p in loc) or "(top)"
            value = error.get("input")
            shown = "" if error.get("type") == "missing" else f" (found {value!r})"
            if isinstance(value, dict | list) or _quiet(error, loc):
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
