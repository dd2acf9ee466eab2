"""Saved reports (round trip, refusals) and the outputs: exact CSV, JSON, HTML + SVG."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError
from reports_data import RANGE, build_store

from netdistill.errors import QueryRefusedError, ReportError, UnknownReportError
from netdistill.reports import (
    Report,
    delete_report,
    find_report,
    list_reports,
    run_report,
    save_report,
)
from netdistill.reports.builtin import BUILTIN_REPORTS
from netdistill.reports.render import render, to_html


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store, _ = build_store(tmp_path_factory.mktemp("saved") / "s.duckdb")
    yield store
    store.close()


LABELLED = {
    "name": "labelled_count",
    "title": "Records of a source",
    "sql": "SELECT $label AS label, count(*) AS n FROM records WHERE source = $source",
    "params": [
        {"name": "label", "default": "all"},
        {"name": "source", "required": True},
    ],
}


def test_saved_report_round_trip(store):
    saved = save_report(store, Report.model_validate(LABELLED))
    assert saved.saved
    again = find_report(store, "labelled_count")
    assert again == saved
    names = [r.name for r in list_reports(store)]
    assert names == [r.name for r in BUILTIN_REPORTS] + ["labelled_count"]
    result = run_report(store, again, {"label": 'a,"b"', "source": "radius"})
    assert render(result, "csv") == 'label,n\n"a,""b""",14\n'
    # the value is compared, not pasted: no record has this source
    injected = run_report(store, again, {"source": "x' OR 1=1 --"})
    assert render(injected, "csv") == "label,n\nall,0\n"
    with pytest.raises(ReportError, match="needs parameter source"):
        run_report(store, again, {})
    changed = save_report(store, Report.model_validate({**LABELLED, "title": "Renamed"}))
    assert find_report(store, "labelled_count").title == changed.title == "Renamed"
    delete_report(store, "labelled_count")
    with pytest.raises(UnknownReportError, match="no report named 'labelled_count'"):
        find_report(store, "labelled_count")


def test_refusals(store):
    with pytest.raises(
        QueryRefusedError,
        match=r"wipe: refused \(rule: one-select\): only a SELECT is allowed, not DELETE",
    ):
        save_report(store, Report(name="wipe", title="x", sql="DELETE FROM records"))
    with pytest.raises(QueryRefusedError, match="exactly one statement is allowed, found 2"):
        save_report(store, Report(name="two", title="x", sql="SELECT 1; DROP TABLE records"))
    with pytest.raises(ValidationError, match=r"undeclared parameter\(s\) \$who"):
        Report(name="undeclared", title="x", sql="SELECT * FROM records WHERE user_name = $who")
    with pytest.raises(ReportError, match="'billing_usage' is a built-in report"):
        save_report(store, Report(name="billing_usage", title="x", sql="SELECT 1"))
    with pytest.raises(ReportError, match="built-in report and cannot be deleted"):
        delete_report(store, "audit_gaps")
    assert store.query("SELECT count(*) AS n FROM records").to_pylist() == [{"n": 30}]


def test_saved_report_over_a_missing_table_says_no_data(store):
    report = save_report(
        store, Report(name="rollup_view", title="x", sql="SELECT * FROM rollup_daily_accounts")
    )
    result = run_report(store, report)
    assert result.note.startswith("no data yet: ")
    assert "rollup_daily_accounts" in result.note
    delete_report(store, "rollup_view")


def test_csv_and_json_outputs(store):
    result = run_report(store, find_report(store, "audit_quarantine"), RANGE)
    assert render(result, "csv") == (
        "source,reason,items,first_at,last_at\n"
        "nf,before_template,1,2026-03-01T00:03:00Z,2026-03-01T00:03:00Z\n"
        "nf,malformed,2,2026-03-01T00:01:00Z,2026-03-01T00:02:00Z\n"
        "proxy,malformed,1,2026-03-01T01:00:00Z,2026-03-01T01:00:00Z\n"
    )
    body = json.loads(render(result, "json"))
    assert body == {
        "report": "audit_quarantine",
        "title": "Audit: quarantined input",
        "params": {
            "from": "2026-03-01T00:00:00Z",
            "to": "2026-03-02T00:00:00Z",
            "source": None,
        },
        "columns": ["source", "reason", "items", "first_at", "last_at"],
        "rows": [
            ["nf", "before_template", 1, "2026-03-01T00:03:00Z", "2026-03-01T00:03:00Z"],
            ["nf", "malformed", 2, "2026-03-01T00:01:00Z", "2026-03-01T00:02:00Z"],
            ["proxy", "malformed", 1, "2026-03-01T01:00:00Z", "2026-03-01T01:00:00Z"],
        ],
        "chart": {"kind": "bar", "x": "source", "y": "items", "series": "reason"},
        "note": "",
    }


def test_html_page_with_svg_charts(store):
    bars = to_html(run_report(store, find_report(store, "audit_quarantine"), RANGE))
    assert bars.startswith("<!DOCTYPE html>") and "<script" not in bars
    svg = bars[bars.index("<svg") : bars.index("</svg>")]
    titles = re.findall(r'height="([\d.]+)" fill="[^"]+"><title>([^<]+)</title></rect>', svg)
    # the tallest bar (2 items) spans the plot (340 - 16 - 56 = 268 px), the others half
    # series in order of their total (malformed 3, before_template 1), x in row order
    assert titles == [
        ("268.0", "nf malformed: 2"),
        ("134.0", "proxy malformed: 1"),
        ("134.0", "nf before_template: 1"),
    ]
    assert bars.count("<tr><td>") == 3  # one table row per result row
    lines = to_html(run_report(store, find_report(store, "network_activity"), RANGE))
    assert lines.count("<polyline") == 3  # (none), dns, http
    # one point per series and hour 00:00-06:00, 0 where a series had no record
    assert lines.count("<circle") == 3 * 7
    assert lines.count("<title>03-01 03:00 http: 0</title>") == 1
    saved = save_report(
        store,
        Report(
            name="escaped",
            title="<b>t</b>",
            sql="SELECT '<script>alert(1)</script>' AS x, 1 AS y",
            chart={"kind": "bar", "x": "x", "y": "y"},
        ),
    )
    page = to_html(run_report(store, saved))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;t&lt;/b&gt;" in page
    delete_report(store, "escaped")
