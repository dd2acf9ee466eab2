"""Reports operators save themselves, kept in the store's ``saved_reports`` table, and
the whole catalogue (built-in reports first, then saved ones).

A saved report is a ``Report`` (``catalogue.py``) kept as JSON: its SQL was written by a
person, so it is checked by the query sandbox (``store/sandbox.py``) before it is saved,
and runs in the sandbox each time (a report saved before a rule existed is refused at
run time); every ``$name`` it uses must be declared under ``params``, so values are
always bound.
Built-in names cannot be taken, replaced or deleted. Saving again under the same name
replaces the saved report. Sample (``POST /api/reports``)::

    {"name": "bytes_per_exporter", "title": "Bytes per exporter",
     "sql": "SELECT exporter, sum(bytes) AS bytes FROM records WHERE start_time >= $from
             GROUP BY exporter ORDER BY bytes DESC",
     "params": [{"name": "from", "type": "timestamp", "default": "now-7d"}],
     "chart": {"kind": "bar", "x": "exporter", "y": "bytes"}}
"""

from __future__ import annotations

import json
import time
from typing import Any

from netdistill.errors import QueryRefusedError, ReportError, UnknownReportError
from netdistill.manager.tables import execute
from netdistill.reports.builtin import BUILTIN_REPORTS
from netdistill.reports.catalogue import Report
from netdistill.store import sandbox

_DDL = """
CREATE TABLE IF NOT EXISTS saved_reports (
    name VARCHAR PRIMARY KEY, definition VARCHAR NOT NULL, saved_at TIMESTAMPTZ NOT NULL)
"""

_BUILTIN = {report.name: report for report in BUILTIN_REPORTS}

#: names the CLI uses as sub-commands (``netdistill report list``)
RESERVED = frozenset({"list", "save", "delete"})


def _has_table(store: Any) -> bool:
    found = store.query(
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'saved_reports'"
    ).to_pylist()
    return bool(found[0]["n"])


def saved_reports(store: Any) -> list[Report]:
    """The saved reports, by name (none while nothing was saved)."""
    if not _has_table(store):
        return []
    rows = store.query("SELECT definition FROM saved_reports ORDER BY name").to_pylist()
    return [Report.model_validate({**json.loads(r["definition"]), "saved": True}) for r in rows]


def list_reports(store: Any) -> list[Report]:
    """Every report: the built-in ones, then the saved ones."""
    return [*BUILTIN_REPORTS, *saved_reports(store)]


def find_report(store: Any, name: str) -> Report:
    if name in _BUILTIN:
        return _BUILTIN[name]
    if _has_table(store):
        rows = store.query(
            "SELECT definition FROM saved_reports WHERE name = $name", {"name": name}
        ).to_pylist()
        if rows:
            return Report.model_validate({**json.loads(rows[0]["definition"]), "saved": True})
    raise UnknownReportError(
        f"no report named {name!r}; 'netdistill report list' or GET /api/reports lists them"
    )


def save_report(store: Any, report: Report, *, clock: Any = time.time) -> Report:
    """Check and store ``report`` (a ``DuckDBStore`` held by this process, the writer)."""
    if report.name in _BUILTIN:
        raise ReportError(f"{report.name!r} is a built-in report; save under another name")
    if report.name in RESERVED:
        raise ReportError(f"{report.name!r} is reserved by the command line; choose another")
    try:
        sandbox.check(report.sql)
    except QueryRefusedError as exc:
        raise QueryRefusedError(exc.rule, f"report {report.name}: {exc}") from None
    report = report.model_copy(update={"saved": True})
    definition = report.model_dump_json(exclude={"saved"})
    execute(store, _DDL)
    execute(
        store,
        "INSERT OR REPLACE INTO saved_reports VALUES (?, ?, to_timestamp(?))",
        (report.name, definition, clock()),
    )
    return report


def delete_report(store: Any, name: str) -> None:
    if name in _BUILTIN:
        raise ReportError(f"{name!r} is a built-in report and cannot be deleted")
    find_report(store, name)  # names the missing report clearly
    execute(store, "DELETE FROM saved_reports WHERE name = ?", (name,))
