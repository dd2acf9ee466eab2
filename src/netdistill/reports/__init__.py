"""The report catalogue: named, parameterized, read-only queries with a table, a chart
and HTML, CSV and JSON output (SYSTEM.md §6, seed 003). See docs/reports.md.

``catalogue.py`` defines a report and runs it, ``builtin.py`` holds the built-in ones,
``saved.py`` the ones operators save, ``render.py`` the outputs and ``api.py`` the
HTTP routes; ``netdistill report`` (``cli/report.py``) is the command line.
"""

from netdistill.errors import ReportError, UnknownReportError
from netdistill.reports.catalogue import ChartSpec, Report, ReportParam, ReportResult, run_report
from netdistill.reports.saved import delete_report, find_report, list_reports, save_report

__all__ = [
    "ChartSpec",
    "Report",
    "ReportError",
    "ReportParam",
    "ReportResult",
    "UnknownReportError",
    "delete_report",
    "find_report",
    "list_reports",
    "run_report",
    "save_report",
]
