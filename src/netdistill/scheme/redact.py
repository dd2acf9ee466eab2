"""Secrets out of what people below admin see, and back in when they save.

Which settings are secrets is read from the config models themselves (every field of
type ``Secret``, or a mapping of them such as ``headers``; ``secret_keys``), over the
scheme and every registered source, lookup and stage, so a new plugin's secret is
covered by declaring its type. A YAML text is redacted by key: the value of a
``secret``/``password``/… key, and every value under a ``headers`` key, is replaced in
the text by ``"***"`` when it is written inline; a ``{file: …}`` or ``{env: …}``
reference is left as written (it names where the secret is, not what it is). The text
keeps its layout, comments and line count, so a problem's line in a redacted text is
the line in the real one. (Comments are not parsed: a secret written in a comment is
not redacted.)

``restore_text`` is the way back: every secret that a new text gives as ``"***"`` takes
the value written at the same place in the current text, copied as written. "The same
place" is the path of keys from the top, an entry of a list counting by its ``name``
when it has one (so sources may be reordered or added around it), else by its position.
A ``"***"`` with no secret at its place in the current text is a problem at its
``file:line:column``.

YAML anchors: a value defined once (``&k``) and used by an alias (``*k``) is one node;
it is redacted where it is defined, whatever key that is, and the anchor is kept.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Iterable, Iterator
from typing import Any

import yaml
from pydantic import BaseModel

from netdistill.errors import SchemeError
from netdistill.scheme.secrets import MASK, Secret

Path_ = tuple[Any, ...]
SECRET_WORDS = ("password", "secret", "token")


def _annotation_secrets(annotation: Any, seen: set[type]) -> Iterator[tuple[str, Any]]:
    """('secret', None) if ``annotation`` is a Secret (maybe optional), ('map', None) if a
    mapping of them, ('model', cls) for every model inside it."""
    if annotation is Secret:
        yield ("secret", None)
        return
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield ("model", annotation)
        return
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        args = args[:1]
    elif origin in (dict, typing.Mapping) or (
        isinstance(origin, type) and issubclass(origin, dict)
    ):
        if len(args) == 2 and args[1] is Secret:
            yield ("map", None)
            return
        args = args[1:]
    elif origin not in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        return
    for arg in args:
        yield from _annotation_secrets(arg, seen)


def _walk(model: type[BaseModel], keys: set[str], maps: set[str], seen: set[type]) -> None:
    if model in seen:
        return
    seen.add(model)
    for name, field in model.model_fields.items():
        key = field.alias or name
        for kind, inner in _annotation_secrets(field.annotation, seen):
            if kind == "secret":
                keys.add(key)
            elif kind == "map":
                maps.add(key)
            else:
                _walk(inner, keys, maps, seen)


@functools.cache
def secret_keys() -> tuple[frozenset[str], frozenset[str]]:
    """(keys whose value is a secret, keys whose values are all secrets)."""
    from netdistill.lookups.registry import LOOKUPS
    from netdistill.scheme.models import Scheme
    from netdistill.sources.registry import SOURCES
    from netdistill.stages.registry import STAGES

    source_classes, lookup_classes = SOURCES.config_classes, LOOKUPS.config_classes
    stage_classes = STAGES.config_classes

    keys: set[str] = set()
    maps: set[str] = set()
    seen: set[type] = set()
    models: list[type[BaseModel]] = [Scheme, *source_classes(), *lookup_classes()]
    for model in [*models, *stage_classes()]:
        _walk(model, keys, maps, seen)
    return frozenset(keys), frozenset(maps)


# --- finding the secrets of a YAML text -----------------------------------------------------


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def _entry_id(index: int, item: yaml.Node) -> Any:
    if isinstance(item, yaml.MappingNode):
        for key, value in item.value:
            if key.value == "name" and isinstance(value, yaml.ScalarNode):
                return ("name", value.value)
    return index


def secret_nodes(root: yaml.Node | None) -> list[tuple[Path_, yaml.ScalarNode]]:
    """Every inline secret of a composed text with its path, each node once, in order."""
    keys, maps = secret_keys()
    found: list[tuple[Path_, yaml.ScalarNode]] = []
    taken: set[int] = set()
    visiting: set[int] = set()

    def add(path: Path_, node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode) and id(node) not in taken:
            taken.add(id(node))
            found.append((path, node))

    def visit(node: yaml.Node, path: Path_) -> None:
        if id(node) in visiting:  # a recursive alias
            return
        visiting.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                where = (*path, name)
                if name in keys:
                    add(where, value)
                if name in maps and isinstance(value, yaml.MappingNode):
                    for inner_key, inner in value.value:
                        add((*where, inner_key.value), inner)
                visit(value, where)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                visit(item, (*path, _entry_id(index, item)))
        visiting.discard(id(node))

    if root is not None:
        visit(root, ())
    return found


def _value_span(text: str, node: yaml.ScalarNode) -> tuple[int, int]:
    """[start, end) of the node's value in ``text``, past its anchor."""
    start, end = node.start_mark.index, node.end_mark.index
    if text.startswith("&", start):
        cut = start
        while cut < end and not text[cut].isspace():
            cut += 1
        while cut < end and text[cut] in " \t":
            cut += 1
        start = cut
    return start, end


def _replace(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    out, last = [], 0
    for start, end, new in sorted(spans):
        out.append(text[last:start])
        out.append(new)
        last = end
    out.append(text[last:])
    return "".join(out)


def _masked(old: str) -> str:
    """``"***"`` with as many line breaks as ``old`` had, so line numbers hold."""
    return f'"{MASK}"' + "\n" * old.count("\n")


def mask_text(text: str) -> str:
    """``text`` with every inline secret replaced by ``"***"``. A text that is not YAML
    is masked line by line (``secret: …`` lines), so even a broken text leaks nothing."""
    root = _compose(text)
    if root is None:
        return _mask_lines(text)
    spans = []
    for _, node in secret_nodes(root):
        start, end = _value_span(text, node)
        spans.append((start, end, _masked(text[start:end])))
    return _replace(text, spans)


def _mask_lines(text: str) -> str:
    keys, maps = secret_keys()
    words = {*keys, *maps, *SECRET_WORDS}
    out = []
    for line in text.splitlines(keepends=True):
        lowered = line.lower()
        if any(word in lowered for word in words):
            head, sep, _ = line.partition(":")
            ending = "\n" if line.endswith("\n") else ""
            line = f'{head}: "{MASK}"{ending}' if sep else f"# {MASK}{ending}"
        out.append(line)
    return "".join(out)


def restore_text(new: str, current: str, *, filename: str = "<scheme>") -> str:
    """``new`` with every ``"***"`` secret replaced by the value at its place in
    ``current`` (see the module docstring); ``SchemeError`` when there is none."""
    root = _compose(new)
    if root is None:  # the parser reports it
        return new
    wanted = [(p, n) for p, n in secret_nodes(root) if n.value == MASK]
    if not wanted:
        return new
    old_root = _compose(current)
    old = {path: node for path, node in secret_nodes(old_root)}
    spans, problems = [], []
    for path, node in wanted:
        found = old.get(path)
        if found is None or found.value == MASK:
            mark = node.start_mark
            dotted = ".".join(str(p[1] if isinstance(p, tuple) else p) for p in path)
            problems.append(
                f"{filename}:{mark.line + 1}:{mark.column + 1}: {dotted}: '***' stands for "
                "the secret at this place in the running scheme, and there is none: write "
                "the secret itself, {file: …} or {env: …}"
            )
            continue
        start, end = _value_span(new, node)
        old_start, old_end = _value_span(current, found)
        spans.append((start, end, current[old_start:old_end]))
    if problems:
        raise SchemeError(problems)
    return _replace(new, spans)


def redact_value(value: Any) -> Any:
    """A JSON-like value (a request body for the audit log) with every secret replaced by
    ``***``: values of secret keys and of keys that name a password, secret or token,
    and the inline secrets of any YAML text in it (``yaml``)."""
    keys, maps = secret_keys()
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = str(key)
            if name in maps and isinstance(item, dict):
                out[key] = {k: MASK for k in item}
            elif name in keys or any(w in name.lower() for w in SECRET_WORDS):
                out[key] = item if isinstance(item, dict) and _is_reference(item) else MASK
            elif name == "yaml" and isinstance(item, str):
                out[key] = mask_text(item)
            else:
                out[key] = redact_value(item)
        return out
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    return value


def _is_reference(value: dict[Any, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in ("file", "env")
