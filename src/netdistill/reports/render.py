"""A report run as JSON, CSV or a standalone HTML page with its chart drawn as inline
SVG on the server (no JavaScript, so the page can be mailed, archived or printed).

Values look the same in every format (``netdistill.output``): times in UTC ISO-8601
with ``Z``, exact integers for byte and packet sums. JSON is
``{report, title, params, columns, rows, chart, note}`` with ``rows`` as lists in
``columns`` order; CSV is a header line and one line per row.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

from netdistill import output
from netdistill.reports.catalogue import ChartSpec, ReportResult

FORMATS = ("json", "csv", "html")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
}
_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
MAX_SERIES = len(_PALETTE)


def _plain_values(values: dict[str, object]) -> dict[str, Any]:
    return {name: output._plain(value) for name, value in values.items()}


def to_json(result: ReportResult) -> str:
    rows = output.rows(result.table)
    columns = result.table.schema.names
    return json.dumps(
        {
            "report": result.report.name,
            "title": result.report.title,
            "params": _plain_values(result.values),
            "columns": columns,
            "rows": [[row[c] for c in columns] for row in rows],
            "chart": result.report.chart.model_dump() if result.report.chart else None,
            "note": result.note,
        },
        ensure_ascii=False,
    )


def to_csv(result: ReportResult) -> str:
    return output.to_csv(result.table)


def render(result: ReportResult, format: str) -> str:
    if format == "json":
        return to_json(result)
    if format == "csv":
        return to_csv(result)
    if format == "html":
        return to_html(result)
    raise ValueError(f"unknown format {format!r}: expected {', '.join(FORMATS)}")


# --- chart ---------------------------------------------------------------------------------


def _label(value: Any) -> str:
    if value is None:
        return "(none)"
    text = str(value)
    if len(text) >= 16 and text[4:5] == "-" and text[10:11] == "T":  # an ISO time
        return text[5:16].replace("T", " ")
    return text if len(text) <= 18 else text[:17] + "…"


def _short(number: float) -> str:
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= limit:
            return f"{number / limit:.3g}{suffix}"
    return f"{number:.3g}"


def chart_svg(result: ReportResult, *, width: int = 960, height: int = 340) -> str:
    """The report's chart as an ``<svg>`` element, or '' when it has none or no rows."""
    spec: ChartSpec | None = result.report.chart
    rows = output.rows(result.table)
    names = result.table.schema.names
    if spec is None or not rows or spec.x not in names or spec.y not in names:
        return ""
    series_field = spec.series if spec.series in names else None
    xs: list[Any] = list(dict.fromkeys(row[spec.x] for row in rows))
    if spec.kind == "line":
        xs.sort(key=lambda v: (v is None, v))
    totals: dict[Any, float] = {}
    points: dict[tuple[Any, Any], float] = {}
    for row in rows:
        key = row[series_field] if series_field else spec.y
        value = float(row[spec.y] or 0)
        points[(row[spec.x], key)] = points.get((row[spec.x], key), 0.0) + value
        totals[key] = totals.get(key, 0.0) + value
    series = sorted(totals, key=lambda k: -totals[k])[:MAX_SERIES]
    left, right, top, bottom = 70, 170, 16, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for (_, s), v in points.items() if s in series), default=0.0) or 1.0
    step = plot_w / len(xs)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img">',
        f"<title>{html.escape(result.report.title)}</title>",
    ]
    for i in range(5):  # horizontal grid and y labels
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_short(value)}</text>'
        )
    every = max(1, len(xs) // 12)
    for i, x in enumerate(xs):
        if i % every == 0:
            cx = left + step * (i + 0.5)
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                f"{html.escape(_label(x))}</text>"
            )
    for n, key in enumerate(series):
        color = _PALETTE[n]
        if spec.kind == "bar":
            bar_w = step * 0.8 / len(series)
            for i, x in enumerate(xs):
                if (x, key) not in points:
                    continue
                value = points[(x, key)]
                h = plot_h * value / peak
                bx = left + step * i + step * 0.1 + bar_w * n
                parts.append(
                    f'<rect x="{bx:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                    f'height="{h:.1f}" fill="{color}"><title>'
                    f"{html.escape(f'{_label(x)} {key}: {value:g}')}</title></rect>"
                )
        else:
            # a line runs over time buckets: a bucket without a row had no usage (0)
            coords = [
                (left + step * (i + 0.5), top + plot_h - plot_h * points.get((x, key), 0) / peak, x)
                for i, x in enumerate(xs)
            ]
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _ in coords)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
            for cx, cy, x in coords:
                value = points.get((x, key), 0.0)
                parts.append(
                    f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{color}"><title>'
                    f"{html.escape(f'{_label(x)} {key}: {value:g}')}</title></circle>"
                )
        ly = top + 14 * n
        parts.append(
            f'<rect x="{left + plot_w + 12}" y="{ly}" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + plot_w + 26}" y="{ly + 9}">{html.escape(_label(key))}</text>'
        )
    if len(totals) > len(series):
        parts.append(
            f'<text x="{left + plot_w + 12}" y="{top + 14 * len(series) + 9}">'
            f"+{len(totals) - len(series)} more</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
        f"{html.escape(spec.x)}</text>"
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{html.escape(spec.y)}</text>'
        "</svg>"
    )
    return "".join(parts)


# --- page ----------------------------------------------------------------------------------

_STYLE = """body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{background:#fff6d5;padding:.5em 1em;border-left:4px solid #e0b000}
.muted{color:#777}"""


def to_html(result: ReportResult, *, generated_at: dt.datetime | None = None) -> str:
    report = result.report
    esc = html.escape
    rows = output.rows(result.table)
    columns = result.table.schema.names
    numeric = {
        name
        for name in columns
        if str(result.table.schema.field(name).type).startswith(
            ("int", "uint", "double", "float", "decimal")
        )
    }
    params = "".join(
        f"<tr><th>{esc(name)}</th><td>{esc('' if v is None else str(v))}</td></tr>"
        for name, v in _plain_values(result.values).items()
    )
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=n' if c in numeric else ''}>"
            f"{esc('' if row[c] is None else str(row[c]))}</td>"
            for c in columns
        )
        + "</tr>"
        for row in rows
    )
    when = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    note = f'<p class="note">{esc(result.note)}</p>' if result.note else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(report.title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{esc(report.title)}</h1><p>{esc(report.description)}</p>"
        f"<table>{params}</table>{note}{chart_svg(result)}"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f'<p class="muted">{len(rows)} row(s); report {esc(report.name)}; '
        f"generated {when} by netdistill</p></body></html>\n"
    )
