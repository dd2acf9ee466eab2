"""The ``jsonl`` line format: one JSON object per line (JSON Lines, RFC 8259 values)
mapped onto record fields.

``from`` names a key or a dotted path into nested objects (``client.ip``). A value is
taken as text (a JSON string's content; any other value in its JSON form, as polars'
JSONPath kernel ``str.json_path_match`` writes it), then converted by the mapping
(``mapping.py``). A missing key or a JSON ``null`` leaves the field null; a line that is
not a JSON object is bad, as is a value that does not convert (the reason names the
field and the value).

Speed: the batch is decoded once (``str.json_decode`` into a struct built from the
paths, all leaves text), not once per path. Where that decoder and the JSONPath kernel
could differ, the JSONPath kernel decides: lines with a backslash (escaped keys, lone
surrogates), a control character, a mapped key written twice (the kernel takes the
last) or possibly more than 127 levels of nesting take the per-path route, as do, per
field, number-like texts on lines with a fraction, an exponent, ``-0`` or a 19-digit
integer (the kernel writes those as floats). A batch the decoder refuses (an invalid
line, an object or array at a mapped path) is checked line by line with the kernel and
decoded again without the invalid lines, or, failing that, taken path by path.

Scheme snippet::

    sources:
      - name: vpn-json
        type: file
        path: /var/log/vpn/sessions.jsonl
        format: jsonl
        format_options:
          fields:
            - {name: start_time, type: timestamp, from: session.start, format: epoch_s}
            - {name: src_ip, type: ip, from: client.ip}
            - {name: user_name, from: user}
            - {name: bytes, type: uint64, from: traffic.total}
"""

from __future__ import annotations

import json
import re
from typing import Any

import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from netdistill.sources.generic.mapping import (
    FieldMapping,
    assemble,
    build_records,
    check_mappings,
    empty_records,
    field_specs,
)
from netdistill.sources.lines import Parsed

_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class JsonLinesOptions(BaseModel):
    """``format_options`` of the ``jsonl`` format."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fields: tuple[FieldMapping, ...] = Field(min_length=1)
    #: zone of times written without an offset
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _check(self) -> JsonLinesOptions:
        check_mappings(self.fields)
        return self


def json_path(source: str | int) -> str:
    """A dotted path (``a.b``) as JSONPath (``$.a.b``; other keys bracketed and quoted)."""
    parts = []
    for key in str(source).split("."):
        if _SIMPLE_KEY.match(key):
            parts.append(f".{key}")
        else:
            escaped = key.replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"['{escaped}']")
    return "$" + "".join(parts)


def _struct(paths: dict[str, list[str]]) -> pl.Struct | None:
    """The struct type holding every path as text; None when one path is a prefix of
    another (a key both a value and an object)."""
    if not paths:
        return None
    tree: dict[str, Any] = {}
    for keys in paths.values():
        node = tree
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                return None
            node = child
        if keys[-1] in node:
            return None
        node[keys[-1]] = None

    def build(node: dict[str, Any]) -> pl.Struct:
        return pl.Struct({k: pl.String if v is None else build(v) for k, v in node.items()})

    return build(tree)


# a number the JSONPath kernel writes as a float: fraction, exponent, -0, 19+ digits
_FLOATISH = r"[:,\[]\s*(?:-?\d+[.eE]|-0[^0-9]|-?\d{19})"
_NUMBER = r"^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$"


class JsonLinesFormat:
    """JSON object lines → records; stateless."""

    def __init__(self, options: JsonLinesOptions) -> None:
        self.options = options
        self.fields = field_specs(options.fields)
        sources = {m.name: str(m.source) for m in options.fields if m.source is not None}
        self._paths = {name: json_path(source) for name, source in sources.items()}
        self._keys = {name: source.split(".") for name, source in sources.items()}
        self._dtype = _struct(self._keys)
        # a line naming one of these twice may hold a mapped key twice
        self._key_literals = sorted({json.dumps(k) for ks in self._keys.values() for k in ks})
        #: blank lines (recognised, not used)
        self.ignored = 0

    def parse(self, lines: pa.Table) -> Parsed:
        text = pl.Series(lines.column("line")).cast(pl.String)
        stripped = text.str.strip_chars()
        blank = (stripped.is_null() | (stripped.str.len_bytes() == 0)).fill_null(True)
        self.ignored += int(blank.sum())
        candidate = stripped.str.starts_with("{").fill_null(False)
        texts, valid = self._extract(stripped, candidate)
        frame = pl.DataFrame({"i": pl.int_range(text.len(), eager=True), "ok": valid})
        malformed = frame.filter(~pl.col("ok") & ~blank)["i"].to_list()
        structural = [(i, "not a JSON object") for i in malformed]
        rows = frame.filter(pl.col("ok"))["i"]
        table, row_bad, row_reason = build_records(
            texts, self.options.fields, self.options.timezone
        )
        records, bad = assemble(table, rows, row_bad, row_reason, structural)
        return Parsed(records, bad)

    def _extract(self, stripped: pl.Series, candidate: pl.Series) -> tuple[pl.DataFrame, pl.Series]:
        """Text columns of the valid lines (in line order) and which lines are valid."""
        if self._dtype is None:
            return self._by_path(stripped, candidate)
        suspect = candidate & self._suspect(stripped)
        fast = candidate & ~suspect
        decoded = self._decode(stripped.filter(fast))
        if decoded is None:
            # some line is invalid or holds an object where a value is mapped
            fast = fast & stripped.str.json_path_match("$").is_not_null()
            decoded = self._decode(stripped.filter(fast))
            if decoded is None:
                return self._by_path(stripped, candidate)
        good = stripped.filter(fast)
        floaty = good.str.contains(_FLOATISH)
        columns = {}
        for name, path in self._paths.items():
            column = decoded[name]
            redo = (floaty & column.str.contains(_NUMBER)).fill_null(False)
            if redo.any():
                at = redo.arg_true()
                column = column.scatter(at, good.gather(at).str.json_path_match(path))
            columns[name] = column
        texts = pl.DataFrame(columns, schema={name: pl.String for name in self._paths})
        if not suspect.any():
            return texts, fast
        slow_texts, slow_valid = self._by_path(stripped, suspect)
        index = pl.int_range(stripped.len(), eager=True)
        order = pl.concat([index.filter(fast), index.filter(slow_valid)]).arg_sort()
        return pl.concat([texts, slow_texts]).select(pl.all().gather(order)), fast | slow_valid

    def _suspect(self, stripped: pl.Series) -> pl.Series:
        """Lines the decoder and the JSONPath kernel might read differently."""
        odd = stripped.str.contains(r"[\\\x00-\x1f]")
        long = stripped.str.len_bytes() >= 256
        if long.any():
            deep = stripped.str.count_matches(r"[\[{]") >= 128
            odd = odd | (long & deep)
        for literal in self._key_literals:
            odd = odd | (stripped.str.count_matches(literal, literal=True) >= 2)
        return odd.fill_null(False)

    def _decode(self, good: pl.Series) -> pl.DataFrame | None:
        if good.len() == 0:
            return pl.DataFrame(
                {name: [] for name in self._paths}, schema=dict.fromkeys(self._paths, pl.String)
            )
        try:
            frame = good.str.json_decode(dtype=self._dtype).struct.unnest()
        except pl.exceptions.ComputeError:
            return None
        out = {}
        for name, keys in self._keys.items():
            column = frame[keys[0]]
            for key in keys[1:]:
                column = column.struct.field(key)
            out[name] = column
        return pl.DataFrame(out)

    def _by_path(self, stripped: pl.Series, candidate: pl.Series) -> tuple[pl.DataFrame, pl.Series]:
        """One JSONPath match per line and path (the exact but slower route)."""
        valid = (candidate & stripped.str.json_path_match("$").is_not_null()).fill_null(False)
        good = stripped.filter(valid)
        if not self._paths:  # constants only
            return pl.DataFrame(height=good.len()), valid
        texts = pl.DataFrame(
            {name: good.str.json_path_match(path) for name, path in self._paths.items()},
            schema={name: pl.String for name in self._paths},
            height=good.len(),
        )
        return texts, valid

    def flush(self) -> Parsed:
        return Parsed(empty_records(self.options.fields))
