"""Aggregate reports per time window: what each flow aggregation process hands to the
accounting module (seed 000, claims 1–2; SYSTEM.md §3, delivery step 5).

Windows are ``length_s`` long and keyed by their start (Unix seconds). The series starts
at the window holding the earliest record (by ``time_field``) and is contiguous from then
on: an empty window still gets a report with no rows, so a consumer can tell "nothing
happened" from "not produced". A window is closed — its report computed once, stored in
the ``windows`` table and served by the API — when the manager's clock passes its end +
``grace_s``, and never before ``grace_s`` after the manager started: windows that came
due while it was down wait that long, so gatherers can resend what they spooled first.

A report groups the window's records by ``account`` and ``service``, where ``account``
is the first non-empty of ``account_id``, ``user_name``, ``src_ip`` (else ``''``), and
sums bytes, packets, sessions (records) and duration. The record's time is
``end_time`` (``start_time`` when that is missing), or the other way round with
``time_field: start_time``. Durations are summed as integer microseconds, so the sum
does not depend on row order: two managers that received the same batches produce
byte-identical reports, and the ``checksum`` (SHA-256 of the canonical JSON of window
and rows, not of ``closed_at``) says so. Records that arrive after their window closed
are not in any report (a report, once closed, never changes); ``late_records`` in the
status counts them.

The SQL runs in DuckDB over ``records`` once per job run for every due window at once;
the Python loop that follows runs per aggregate row, not per record.

Scheme::

    manager:
      windows: {length_s: 300, grace_s: 60, time_field: end_time}
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from netdistill.manager.jobs import Every
from netdistill.manager.tables import execute, execute_many
from netdistill.store import Store

log = logging.getLogger(__name__)

_DDL = """
CREATE TABLE IF NOT EXISTS windows (
    window_start BIGINT PRIMARY KEY, window_end BIGINT NOT NULL,
    closed_at TIMESTAMPTZ NOT NULL, records BIGINT NOT NULL, bytes UBIGINT NOT NULL,
    packets UBIGINT NOT NULL, checksum VARCHAR NOT NULL, report VARCHAR NOT NULL)
"""


class WindowsConfig(BaseModel):
    """``manager.windows``: the aggregate report windows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    length_s: PositiveInt = Field(300, description="window length; windows start at multiples")
    grace_s: float = Field(60.0, ge=0, description="wait after a window's end before closing it")
    time_field: Literal["end_time", "start_time"] = Field(
        "end_time", description="which record time places a record in a window"
    )
    interval_s: float = Field(1.0, gt=0, description="how often the job looks for due windows")
    max_windows_per_run: PositiveInt = Field(1000, description="bound of one catch-up step")


def ensure_tables(store: Store) -> None:
    execute(store, _DDL)


def _time_expression(time_field: str) -> str:
    other = "start_time" if time_field == "end_time" else "end_time"
    return f"coalesce({time_field}, {other})"


def compute_rows(
    store: Store, config: WindowsConfig, first_start: int, end: int
) -> dict[int, list[dict[str, Any]]]:
    """Aggregate rows of every window in [first_start, end), keyed by window start."""
    length = config.length_s
    t = _time_expression(config.time_field)
    sql = f"""
        SELECT (epoch_us({t}) // $length_us) * $length AS window_start,
               coalesce(nullif(account_id, ''), nullif(user_name, ''), src_ip, '') AS account,
               coalesce(service, '') AS service,
               CAST(coalesce(sum(bytes), 0) AS UBIGINT) AS bytes,
               CAST(coalesce(sum(packets), 0) AS UBIGINT) AS packets,
               count(*) AS sessions,
               CAST(coalesce(sum(CAST(round(duration_s * 1e6) AS BIGINT)), 0) AS BIGINT)
                   AS duration_us
        FROM records
        WHERE {t} >= to_timestamp($lo) AND {t} < to_timestamp($hi)
        GROUP BY ALL
        ORDER BY window_start, account, service
    """
    params = {"length_us": length * 1_000_000, "length": length, "lo": first_start, "hi": end}
    table = store.query(sql, params)
    out: dict[int, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        start = int(row.pop("window_start"))
        row["duration_s"] = row.pop("duration_us") / 1e6
        out.setdefault(start, []).append(row)
    return out


def checksum(start: int, end: int, time_field: str, rows: list[dict[str, Any]]) -> str:
    canonical = json.dumps(
        {"start": start, "end": end, "time_field": time_field, "rows": rows},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def build_report(
    start: int, end: int, time_field: str, rows: list[dict[str, Any]], closed_at: float
) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "start_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
        "end_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)),
        "time_field": time_field,
        "closed_at": round(closed_at, 3),
        "records": sum(r["sessions"] for r in rows),
        "bytes": sum(r["bytes"] for r in rows),
        "packets": sum(r["packets"] for r in rows),
        "checksum": checksum(start, end, time_field, rows),
        "rows": rows,
    }


class WindowJob:
    """Closes due windows every ``interval_s`` and serves their reports.

    Lifecycle: ``start`` creates the table and starts the thread, ``stop`` ends it.
    ``run_once`` may also be called directly (tests move ``clock``); it is not meant to
    run concurrently with itself. A closed window's report never changes.
    """

    def __init__(
        self, store: Store, config: WindowsConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.config = config
        self._clock = clock
        self.started_at = clock()
        self.closed = 0
        self._next_start: int | None = None
        self._job = Every(self.config.interval_s, self.run_once, name="closing windows")
        ensure_tables(store)

    # --- closing ---------------------------------------------------------------------------

    def _first_start(self) -> int | None:
        if self._next_start is not None:
            return self._next_start
        row = self.store.query("SELECT max(window_end) AS e FROM windows").to_pylist()[0]
        if row["e"] is not None:
            self._next_start = int(row["e"])
            return self._next_start
        t = _time_expression(self.config.time_field)
        row = self.store.query(
            f"SELECT epoch_us(min({t})) // $length_us * $length AS s FROM records",
            {"length_us": self.config.length_s * 1_000_000, "length": self.config.length_s},
        ).to_pylist()[0]
        return None if row["s"] is None else int(row["s"])

    def run_once(self) -> list[dict[str, Any]]:
        """Close every window that is due now; return their reports, oldest first."""
        now = self._clock()
        grace, length = self.config.grace_s, self.config.length_s
        if now < self.started_at + grace:
            return []
        first = self._first_start()
        if first is None:
            return []
        count = min(int((now - grace - first) // length), self.config.max_windows_per_run)
        if count <= 0:
            return []
        end = first + count * length
        rows = compute_rows(self.store, self.config, first, end)
        reports = [
            build_report(s, s + length, self.config.time_field, rows.get(s, []), now)
            for s in range(first, end, length)
        ]
        execute_many(
            self.store,
            [
                (
                    "INSERT INTO windows VALUES (?, ?, to_timestamp(?), ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (
                        r["start"],
                        r["end"],
                        now,
                        r["records"],
                        r["bytes"],
                        r["packets"],
                        r["checksum"],
                        json.dumps(r, sort_keys=True),
                    ),
                )
                for r in reports
            ],
        )
        self._next_start = end
        self.closed += len(reports)
        for r in reports:
            log.info(
                "window %s closed: %d records, %d rows, %s",
                r["start_iso"],
                r["records"],
                len(r["rows"]),
                r["checksum"][:19],
            )
        return reports

    @property
    def last_error(self) -> str:
        return self._job.last_error

    def start(self) -> None:
        self._job.start()

    def stop(self) -> None:
        self._job.stop()

    # --- reading ---------------------------------------------------------------------------

    def reports(self, *, after: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        table = self.store.query(
            "SELECT report FROM windows WHERE window_start > $after"
            " ORDER BY window_start LIMIT $limit",
            {"after": -1 if after is None else after, "limit": limit},
        )
        return [json.loads(r) for r in table.column("report").to_pylist()]

    def report(self, start: int) -> dict[str, Any] | None:
        table = self.store.query(
            "SELECT report FROM windows WHERE window_start = $start", {"start": start}
        )
        return json.loads(table.column("report")[0].as_py()) if table.num_rows else None

    def late_records(self) -> int:
        """Records that arrived after the window they belong to had closed."""
        t = _time_expression(self.config.time_field)
        row = self.store.query(
            f"""SELECT count(*) AS n FROM (SELECT {t} AS t, ingested_at FROM records) r
                JOIN windows w ON epoch_us(r.t) >= w.window_start * 1000000
                AND epoch_us(r.t) < w.window_end * 1000000
                WHERE r.ingested_at > w.closed_at"""
        ).to_pylist()[0]
        return int(row["n"])

    def status(self) -> dict[str, Any]:
        last = self.store.query("SELECT max(window_start) AS s FROM windows").to_pylist()[0]["s"]
        return {
            "length_s": self.config.length_s,
            "grace_s": self.config.grace_s,
            "time_field": self.config.time_field,
            "last_closed": last,
            "next_start": self._next_start,
            "closed_since_start": self.closed,
            "last_error": self.last_error,
        }

    def router(self) -> Any:
        """``GET /api/windows?after=&limit=`` and ``GET /api/windows/{start}``."""
        from fastapi import APIRouter, HTTPException

        router = APIRouter()

        @router.get("/api/windows")
        def list_windows(after: int | None = None, limit: int = 100) -> dict[str, Any]:
            return {**self.status(), "windows": self.reports(after=after, limit=limit)}

        @router.get("/api/windows/{start}")
        def get_window(start: int) -> dict[str, Any]:
            report = self.report(start)
            if report is None:
                raise HTTPException(status_code=404, detail=f"window {start} is not closed")
            return report

        return router
