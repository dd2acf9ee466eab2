"""What a report is, and how one runs: a named, parameterized, read-only query with a
table and an optional chart (SYSTEM.md §6; seed 003: "selection of one of a plurality
of reports … submitting queries to the database … outputting a report").

A ``Report`` holds SQL whose parameters are written ``$name`` and are always **bound**,
never pasted into the text: a value such as ``x' OR 1=1 --`` is compared as a string.
Each parameter is typed (``timestamp``, ``string``, ``int``, ``float``) and has a
default; ``from``/``to`` default to the last 24 hours (``now-24h`` … ``now``). A report
may name the tables (``requires``) and ``records`` columns (``requires_columns``) it
reads: when one is missing the result is empty with a note ``no data yet: <why>``
rather than an error, since derived tables appear only once their stage has run.

A saved report (``saved.py``) is the same model, written by an operator::

    name: bytes_per_exporter
    title: Bytes per exporter
    sql: SELECT exporter, sum(bytes) AS bytes FROM records
         WHERE start_time >= $from AND start_time < $to GROUP BY exporter ORDER BY bytes DESC
    params:
      - {name: from, type: timestamp, default: now-24h}
      - {name: to, type: timestamp, default: now}
    chart: {kind: bar, x: exporter, y: bytes}
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from netdistill.errors import QueryRefusedError, ReportError, StoreError
from netdistill.store.sandbox import QueryLimits, QueryRun

#: ``$name`` placeholders (DuckDB named parameters); ``$1`` positional ones are refused.
_PLACEHOLDER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_RELATIVE = re.compile(r"^now\s*(?:-\s*(\d+(?:\.\d+)?)\s*([smhdw]))?$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class ReportParam(BaseModel):
    """One parameter of a report, bound to ``$name`` in its SQL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    type: Literal["timestamp", "string", "int", "float"] = "string"
    default: str | int | float | None = Field(
        None, description="used when no value is given; None binds NULL (meaning 'all')"
    )
    description: str = ""
    choices: tuple[str, ...] | None = Field(None, description="allowed values (strings)")
    required: bool = False

    def parse(self, raw: object, now: float) -> object:
        """The value bound for ``raw`` (text from a URL or the command line)."""
        if raw is None:
            return None
        text = str(raw).strip()
        try:
            if self.type == "timestamp":
                return parse_time(text, now)
            if self.type == "int":
                return int(text)
            if self.type == "float":
                return float(text)
        except ValueError as exc:
            raise ReportError(f"parameter {self.name}={text!r}: {exc}") from None
        if self.choices is not None and text not in self.choices:
            raise ReportError(
                f"parameter {self.name}={text!r}: expected one of {', '.join(self.choices)}"
            )
        return text


class ChartSpec(BaseModel):
    """How a report is drawn: ``y`` against ``x``, one line or bar group per ``series``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["line", "bar"]
    x: str
    y: str
    series: str | None = None


class Report(BaseModel):
    """A named report: parameters, read-only SQL, the columns it returns, a chart."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    title: str
    description: str = ""
    sql: str
    params: tuple[ReportParam, ...] = ()
    columns: tuple[str, ...] = Field((), description="expected columns, in order (documentation)")
    chart: ChartSpec | None = None
    requires: tuple[str, ...] = Field((), description="tables that must exist, else 'no data'")
    requires_columns: tuple[str, ...] = Field((), description="records columns that must exist")
    why_missing: str = Field("", description="what fills the required tables or columns")
    saved: bool = False

    @model_validator(mode="after")
    def _check(self) -> Report:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"report {self.name}: a parameter is declared twice")
        undeclared = sorted(set(placeholders(self.sql)) - set(names))
        if undeclared:
            raise ValueError(
                f"report {self.name}: SQL uses undeclared parameter(s) "
                + ", ".join(f"${n}" for n in undeclared)
                + "; declare them under params"
            )
        if re.search(r"\$\d", self.sql):
            raise ValueError(f"report {self.name}: use named parameters ($name), not $1")
        return self

    def as_dict(self) -> dict[str, Any]:
        """The report as the catalogue (API, ``netdistill report list``) shows it."""
        return self.model_dump(mode="json")


def placeholders(sql: str) -> list[str]:
    """The ``$name`` parameters ``sql`` uses, each once, in order of first use."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(sql)))


def parse_time(text: str, now: float) -> dt.datetime:
    """``now``, ``now-24h`` (s, m, h, d, w), an ISO-8601 date or time (UTC when no zone)."""
    match = _RELATIVE.match(text.lower())
    if match:
        amount, unit = match.groups()
        offset = float(amount) * _UNIT_S[unit] if amount else 0.0
        return dt.datetime.fromtimestamp(now - offset, dt.UTC)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise ValueError(
            "expected an ISO-8601 time (2026-11-23T09:00:00Z), a date, or now-24h"
        ) from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@dataclass(frozen=True)
class ReportResult:
    """One run: the report, the values bound, the rows, and a note when there is no data."""

    report: Report
    values: dict[str, object]
    table: pa.Table
    note: str = ""


def bind(report: Report, given: Mapping[str, object], now: float) -> dict[str, object]:
    """Every declared parameter's value: given (parsed to its type) or its default."""
    declared = {p.name: p for p in report.params}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ReportError(
            f"report {report.name} has no parameter {', '.join(unknown)} "
            f"(it has: {', '.join(declared) or 'none'})"
        )
    values: dict[str, object] = {}
    for param in report.params:
        if param.name in given and given[param.name] not in (None, ""):
            values[param.name] = param.parse(given[param.name], now)
        elif param.required:
            raise ReportError(f"report {report.name} needs parameter {param.name}")
        else:
            values[param.name] = param.parse(param.default, now)
    return values


def _missing(store: Any, report: Report) -> str:
    """Why the report has no data yet ('' when its tables and columns exist)."""
    needed = list(report.requires) + (["records"] if report.requires_columns else [])
    if not needed:
        return ""
    found = store.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE list_contains($tables, table_name)",
        {"tables": needed},
    ).to_pylist()
    tables = {row["table_name"] for row in found}
    columns = {row["column_name"] for row in found if row["table_name"] == "records"}
    absent = [t for t in needed if t not in tables]
    absent += [f"records.{c}" for c in report.requires_columns if c not in columns]
    if not absent:
        return ""
    why = f" ({report.why_missing})" if report.why_missing else ""
    return f"no data yet: {', '.join(absent)} does not exist{why}"


def is_builtin(report: Report) -> bool:
    """Whether ``report`` is one of the built-in objects (not merely named like one)."""
    from netdistill.reports.builtin import BUILTIN_REPORTS

    return any(report is builtin for builtin in BUILTIN_REPORTS)


def run_report(
    store: Any,
    report: Report,
    given: Mapping[str, object] | None = None,
    *,
    clock: Callable[[], float] = time.time,
    limits: QueryLimits | None = None,
    measured: QueryRun | None = None,
) -> ReportResult:
    """Run ``report`` on ``store`` with ``given`` parameter values (text or typed).

    A built-in report's SQL is the manager's own (``Store.query``); any other report's
    SQL was written by a person and runs in the query sandbox (``Store.query_user``,
    within ``limits``; ``measured`` receives its rows and time)."""
    values = bind(report, given or {}, clock())
    used = placeholders(report.sql)
    note = _missing(store, report)
    if note:
        return ReportResult(report, values, _empty(report), note)
    bound = {name: values[name] for name in used} or None
    try:
        if is_builtin(report):
            table = store.query(report.sql, bound)
        else:
            table = store.query_user(report.sql, bound, limits=limits, measured=measured)
    except QueryRefusedError as exc:
        raise QueryRefusedError(exc.rule, f"report {report.name}: {exc}") from None
    except StoreError as exc:
        if "does not exist" in str(exc):  # a saved report over a table not made yet
            return ReportResult(report, values, _empty(report), f"no data yet: {exc}")
        raise ReportError(f"report {report.name}: {exc}") from None
    return ReportResult(report, values, table)


def _empty(report: Report) -> pa.Table:
    return pa.table({name: pa.array([], pa.null()) for name in report.columns})
