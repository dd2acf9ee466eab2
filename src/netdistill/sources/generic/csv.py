"""The ``csv`` line format: delimited text (RFC 4180 quoting) mapped onto record fields.

Each line is one record. Fields may be quoted with ``quote`` (a doubled quote inside is
one quote character, RFC 4180 §2.7); a quoted field cannot span lines, since the
transports cut their input at newlines. A whole batch is checked with one regular
expression (Rust ``regex``, no Python loop), the well-formed lines are read by polars'
CSV reader in one call, and the mapping converts whole columns (``mapping.py``).

With ``header: true`` the first line this format instance sees gives the column names
and any later line equal to it (a rotated file starting again) is skipped; a source
that starts in the middle of a file should map columns by index instead.

Scheme snippet::

    sources:
      - name: billing-export
        type: file
        path: /var/log/export/*.csv
        format: csv
        format_options:
          header: true
          delimiter: ";"
          fields:
            - {name: start_time, type: timestamp, from: when, format: "%d.%m.%Y %H:%M:%S"}
            - {name: user_name, from: login}
            - {name: bytes, type: uint64, from: volume}
            - {name: service, value: vpn}
"""

from __future__ import annotations

import csv as stdlib_csv
import io
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


class CsvOptions(BaseModel):
    """``format_options`` of the ``csv`` format."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fields: tuple[FieldMapping, ...] = Field(min_length=1)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote: str = Field(default='"', min_length=1, max_length=1)
    #: the first line holds column names (``from`` may then name a column)
    header: bool = False
    #: zone of times written without an offset
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _check(self) -> CsvOptions:
        check_mappings(self.fields)
        if self.delimiter == self.quote or self.delimiter in "\r\n":
            raise ValueError("delimiter must differ from quote and from line ends")
        for f in self.fields:
            if isinstance(f.source, str) and not self.header:
                raise ValueError(
                    f"field {f.name!r}: column {f.source!r} is a name, which needs "
                    "header: true (or give a 0-based column index)"
                )
            if isinstance(f.source, int) and f.source < 0:
                raise ValueError(f"field {f.name!r}: column index must be >= 0")
        return self


def _char(c: str) -> str:
    return f"\\x{{{ord(c):X}}}"


class CsvFormat:
    """Delimited lines → records; stateless but for the header."""

    def __init__(self, options: CsvOptions) -> None:
        self.options = options
        self.fields = field_specs(options.fields)
        d, q = _char(options.delimiter), _char(options.quote)
        self._quoted = f"{q}(?:[^{q}]|{q}{q})*{q}"
        field = f"(?:{self._quoted}|[^{d}{q}\\r\\n]*)"
        self._field_d = f"{field}{d}"
        self._well_formed = f"^(?:{field}{d})*{field}$"
        self._field = field
        self._header: str | None = None
        self._columns: dict[str, int] = {}
        #: lines recognised and not used: blank lines and repeated headers
        self.ignored = 0

    def _column_index(self, mapping: FieldMapping) -> int:
        if isinstance(mapping.source, int):
            return mapping.source
        return self._columns.get(str(mapping.source), -1)

    def _take_header(self, lines: pl.Series) -> None:
        first = lines.filter(lines.str.strip_chars().str.len_bytes() > 0).head(1)
        if first.len() == 0:
            return
        self._header = first[0]
        reader = stdlib_csv.reader(
            [self._header], delimiter=self.options.delimiter, quotechar=self.options.quote
        )
        self._columns = {name.strip(): i for i, name in enumerate(next(reader))}

    def parse(self, lines: pa.Table) -> Parsed:
        text = pl.Series(lines.column("line")).cast(pl.String).str.strip_chars_end("\r\n")
        n = text.len()
        if self.options.header and self._header is None:
            self._take_header(text)
        blank = text.is_null() | (text.str.strip_chars().str.len_bytes() == 0)
        skip = blank | (text == self._header) if self._header is not None else blank
        skip = skip.fill_null(True)
        needed = max(self._column_index(m) for m in self.options.fields) + 1
        # one DFA pass finds the lines that are well formed and wide enough (nearly all);
        # only the others are checked again, and the short ones among them counted
        full = f"^(?:{self._field_d}){{{max(needed - 1, 0)}}}(?:{self._field_d})*{self._field}$"
        long_enough = (text.str.contains(full).fill_null(False) & ~skip).fill_null(False)
        well_formed = long_enough
        rest = (~long_enough & ~skip).arg_true()
        if rest.len():
            checked = text.gather(rest).str.contains(self._well_formed).fill_null(False)
            well_formed = long_enough.clone().scatter(rest, checked)
        count = pl.Series([needed] * 0, dtype=pl.Int64).extend_constant(needed, n)
        short_lines = (~long_enough & well_formed).arg_true()
        if short_lines.len():
            short_count = (
                text.gather(short_lines)
                .str.replace_all(self._quoted, "")
                .str.count_matches(self.options.delimiter, literal=True)
                .cast(pl.Int64)
                + 1
            )
            count = count.scatter(short_lines, short_count)
        missing = [
            m for m in self.options.fields if m.source is not None and self._column_index(m) < 0
        ]
        frame = pl.DataFrame({"i": pl.int_range(n, eager=True), "ok": well_formed, "count": count})
        structural: list[tuple[int, str]] = []
        malformed = frame.filter(~pl.col("ok") & ~skip)["i"].to_list()
        structural += [
            (i, "not a well-formed CSV line (unbalanced or stray quote)") for i in malformed
        ]
        if missing:
            names = ", ".join(repr(m.source) for m in missing)
            ok_rows = frame.filter(pl.col("ok"))["i"].to_list()
            structural += [(i, f"no column {names} in the header") for i in ok_rows]
            self.ignored += int(skip.sum())
            return Parsed(empty_records(self.options.fields), sorted(structural))
        short = frame.filter(pl.col("ok") & (pl.col("count") < needed))
        structural += [
            (i, f"{c} columns, the mapping needs {needed}")
            for i, c in zip(short["i"].to_list(), short["count"].to_list(), strict=True)
        ]
        rows = frame.filter(pl.col("ok") & (pl.col("count") >= needed))
        self.ignored += int(skip.sum())
        good_lines = text.gather(rows["i"])
        texts = self._read(good_lines, needed)
        table, row_bad, row_reason = build_records(
            texts, self.options.fields, self.options.timezone
        )
        records, bad = assemble(table, rows["i"], row_bad, row_reason, structural)
        return Parsed(records, bad)

    def _read(self, good_lines: pl.Series, width: int) -> pl.DataFrame:
        names = [f"c{i}" for i in range(width)]
        # only the mapped columns are materialised
        used = sorted({self._column_index(m) for m in self.options.fields if m.source is not None})
        if good_lines.len() == 0:
            raw = pl.DataFrame({c: pl.Series([], dtype=pl.String) for c in names})
        else:
            buffer = good_lines.str.join("\n").item() + "\n"
            raw = pl.read_csv(
                io.BytesIO(buffer.encode()),
                has_header=False,
                separator=self.options.delimiter,
                quote_char=self.options.quote,
                schema={c: pl.String for c in names},
                columns=used,
                truncate_ragged_lines=True,
                missing_columns="insert",
                extra_columns="ignore",
            )
        out: dict[str, Any] = {}
        for m in self.options.fields:
            if m.source is not None:
                out[m.name] = raw[f"c{self._column_index(m)}"]
        return pl.DataFrame(out, schema={k: pl.String for k in out}, height=raw.height)

    def flush(self) -> Parsed:
        return Parsed(empty_records(self.options.fields))
