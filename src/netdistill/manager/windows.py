"""Aggregate reports per time window: what each flow aggregation process hands to the
accounting module (seed 000, claims 1–2; SYSTEM.md §3, delivery step 5).

Windows are ``length_s`` long and keyed by their start (Unix seconds).

A window is closed — its report computed, stored in the ``windows`` table and served by
the API — when it is **complete** on this manager: every gatherer feeding it has
delivered everything it received before the window's end + ``grace_s`` (watermarks,
``manager/watermarks.py``; ``grace_s`` covers devices that report a record after its
time, e.g. a NetFlow exporter's timeouts). A gatherer that is silent, or that lags more
than ``max_wait_s`` past that, or that lost entries for this manager, does not hold it
forever: the window then closes marked **incomplete**, naming the gatherer and why, and
an alert ``window_incomplete`` is raised (``manager/monitor.py``; cleared when a window
closes complete again). With no gatherer feeding it, the manager's clock is used: end +
``grace_s``, and never before ``grace_s`` after the manager started.

The series starts at the window holding the earliest record (by ``time_field``) and is
contiguous from then on: an empty window still gets a report with no rows, so a
consumer can tell "nothing happened" from "not produced".

A report groups the window's records by ``account`` and ``service``, where ``account``
is the first non-empty of ``account_id``, ``user_name``, ``src_ip`` (else ``''``), and
sums bytes, packets, sessions (records) and duration. The record's time is
``end_time`` (``start_time`` when that is missing), or the other way round with
``time_field: start_time``. Durations are summed as integer microseconds, so the sum
does not depend on row order: two managers that received the same batches produce
byte-identical rows, and the ``checksum`` (SHA-256 of the canonical JSON of window
and rows — not of ``closed_at``, version or completeness) says so.

Late records and corrections: a record stored after its window closed (a gatherer that
was silent comes back; a device that held it back; a re-sent dead letter; a record a
manager stage such as a merge wrote later) is counted for its window (``late_records``
in the report, the status, ``/metrics`` and the ``audit_windows`` report). The window is
then **re-issued**: its report is computed again with a new ``version`` (1, 2, …) that
``supersedes`` the previous checksum, as soon as it may close again by the rule above —
and likewise an incomplete window whose missing gatherers are back. Each issued version
gets the next ``revision`` of this manager (``GET /api/windows/revisions?after=R``), so
the accounting consumer finds corrections of windows it already delivered. Only the
newest version of a window is kept here; the consumer keeps every version it delivered.

How a record is found late: each version is computed from the records with
``record_id <= max_record_id`` (ids increase with every commit, so that is one
snapshot); every run counts the records with a larger id than the last run saw whose
time is in an already closed window (``late_pending`` until the window is re-issued;
the last id seen is kept in ``window_state``, so a restart neither misses nor recounts).

The SQL runs in DuckDB over ``records`` once per job run for every due window at once;
the Python loop that follows runs per aggregate row, not per record.

Scheme::

    manager:
      windows: {length_s: 300, grace_s: 60, time_field: end_time, max_wait_s: 600}
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from netdistill.manager.jobs import Every
from netdistill.manager.tables import execute, execute_many
from netdistill.manager.watermarks import Verdict, Watermarks
from netdistill.store import Store

log = logging.getLogger(__name__)

_DDL = """
CREATE TABLE IF NOT EXISTS windows (
    window_start BIGINT PRIMARY KEY, window_end BIGINT NOT NULL,
    closed_at TIMESTAMPTZ NOT NULL, records BIGINT NOT NULL, bytes UBIGINT NOT NULL,
    packets UBIGINT NOT NULL, checksum VARCHAR NOT NULL, report VARCHAR NOT NULL);
ALTER TABLE windows ADD COLUMN IF NOT EXISTS version INTEGER DEFAULT 1;
ALTER TABLE windows ADD COLUMN IF NOT EXISTS revision BIGINT DEFAULT 0;
ALTER TABLE windows ADD COLUMN IF NOT EXISTS incomplete VARCHAR DEFAULT '';
ALTER TABLE windows ADD COLUMN IF NOT EXISTS late_records BIGINT DEFAULT 0;
ALTER TABLE windows ADD COLUMN IF NOT EXISTS late_pending BIGINT DEFAULT 0;
ALTER TABLE windows ADD COLUMN IF NOT EXISTS max_record_id BIGINT;
CREATE TABLE IF NOT EXISTS window_state (name VARCHAR PRIMARY KEY, value BIGINT NOT NULL);
"""


class WindowsConfig(BaseModel):
    """``manager.windows``: the aggregate report windows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    length_s: PositiveInt = Field(300, description="window length; windows start at multiples")
    grace_s: float = Field(60.0, ge=0, description="wait after a window's end before closing it")
    time_field: Literal["end_time", "start_time"] = Field(
        "end_time", description="which record time places a record in a window"
    )
    max_wait_s: float = Field(
        600.0,
        ge=0,
        description="longest a window waits past end + grace for a gatherer that still "
        "sends heartbeats but lags; then it closes incomplete, naming it",
    )
    interval_s: float = Field(1.0, gt=0, description="how often the job looks for due windows")
    max_windows_per_run: PositiveInt = Field(1000, description="bound of one catch-up step")


def ensure_tables(store: Store) -> None:
    execute(store, _DDL)


def _time_expression(time_field: str) -> str:
    other = "start_time" if time_field == "end_time" else "end_time"
    return f"coalesce({time_field}, {other})"


def compute_rows(
    store: Store, config: WindowsConfig, first_start: int, end: int, max_record_id: int
) -> dict[int, list[dict[str, Any]]]:
    """Aggregate rows of every window in [first_start, end), keyed by window start, over
    the records with ``record_id <= max_record_id``."""
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
        WHERE {t} >= to_timestamp($lo) AND {t} < to_timestamp($hi) AND record_id <= $max_id
        GROUP BY ALL
        ORDER BY window_start, account, service
    """
    params = {
        "length_us": length * 1_000_000,
        "length": length,
        "lo": first_start,
        "hi": end,
        "max_id": max_record_id,
    }
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
    start: int,
    end: int,
    time_field: str,
    rows: list[dict[str, Any]],
    closed_at: float,
    *,
    version: int = 1,
    incomplete: Sequence[dict[str, Any]] = (),
    late_records: int = 0,
    supersedes: str | None = None,
    revision: int = 0,
) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "start_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
        "end_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)),
        "time_field": time_field,
        "closed_at": round(closed_at, 3),
        "version": version,
        "revision": revision,
        "complete": not incomplete,
        "incomplete": list(incomplete),
        "late_records": late_records,
        "supersedes": supersedes,
        "records": sum(r["sessions"] for r in rows),
        "bytes": sum(r["bytes"] for r in rows),
        "packets": sum(r["packets"] for r in rows),
        "checksum": checksum(start, end, time_field, rows),
        "rows": rows,
    }


def _never_silent(name: str, since: float) -> bool:
    return False


class WindowJob:
    """Closes windows once complete (or incomplete, see the module docstring), re-issues
    corrected ones, and serves their reports.

    Lifecycle: ``start`` creates the tables and starts the thread, ``stop`` ends it.
    ``run_once`` may also be called directly (tests move ``clock``); it is not meant to
    run concurrently with itself. The wiring sets ``feeders`` (the gatherers the scheme
    gives sources), ``silent`` (the monitor's judgement) and ``alert`` (raise or clear
    an alert: ``Monitor.alert``).
    """

    def __init__(
        self,
        store: Store,
        config: WindowsConfig,
        *,
        clock: Callable[[], float] = time.time,
        watermarks: Watermarks | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self._clock = clock
        self.started_at = clock()
        self.closed = 0
        self.corrections = 0
        self.watermarks = watermarks or Watermarks(clock)
        self.feeders: Callable[[], set[str]] = set
        self.silent: Callable[[str, float], bool] = _never_silent
        self.alert: Callable[[str, str, str | None], None] | None = None
        self._next_start: int | None = None
        self._seen: int | None = None
        self._waiting: dict[str, Any] = {}
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

    def _last_seen(self) -> int:
        if self._seen is None:
            rows = self.store.query(
                "SELECT value FROM window_state WHERE name = 'late_seen_record_id'"
            ).to_pylist()
            if rows:
                self._seen = int(rows[0]["value"])
            else:  # a store from before issue 13: what the newest window was made from
                row = self.store.query(
                    "SELECT coalesce(max(max_record_id), (SELECT coalesce(max(record_id), 0)"
                    " FROM records)) AS m FROM windows"
                ).to_pylist()[0]
                self._seen = int(row["m"] or 0)
        return self._seen

    def _verdict(self, start: int, end: int, now: float, feeders: set[str]) -> Verdict:
        if not feeders and not self.watermarks.names():
            due = now >= end + self.config.grace_s and now >= self.started_at + self.config.grace_s
            return Verdict("complete" if due else "wait")
        return self.watermarks.verdict(
            start,
            end,
            grace_s=self.config.grace_s,
            max_wait_s=self.config.max_wait_s,
            feeders=feeders,
            silent=self.silent,
            now=now,
        )

    def run_once(self) -> list[dict[str, Any]]:
        """Count late records, close every window that may close now, re-issue the
        corrected ones; return the reports issued, new windows first, oldest first."""
        now = self._clock()
        newest = self.store.query("SELECT coalesce(max(record_id), 0) AS m FROM records")
        max_id = int(newest.to_pylist()[0]["m"])
        late = self._count_late(max_id)
        issued = self._close_new(now, max_id, late)
        issued += self._reissue(now, max_id)
        return issued

    def _count_late(self, max_id: int) -> dict[int, int]:
        """Records committed since the last run whose window is already closed."""
        seen = self._last_seen()
        if max_id <= seen:
            return {}
        late: dict[int, int] = {}
        if self._first_start() is not None and self._next_start is not None:
            t = _time_expression(self.config.time_field)
            length = self.config.length_s
            rows = self.store.query(
                f"""SELECT (epoch_us({t}) // $length_us) * $length AS w, count(*) AS n
                    FROM records WHERE record_id > $seen AND record_id <= $max_id
                    AND {t} < to_timestamp($closed_end)
                    AND {t} >= (SELECT to_timestamp(min(window_start)) FROM windows)
                    GROUP BY ALL""",
                {
                    "length_us": length * 1_000_000,
                    "length": length,
                    "seen": seen,
                    "max_id": max_id,
                    "closed_end": self._next_start,
                },
            ).to_pylist()
            late = {int(r["w"]): int(r["n"]) for r in rows}
        statements: list[tuple[str, Sequence[object]]] = [
            (
                "UPDATE windows SET late_pending = late_pending + ?,"
                " late_records = late_records + ? WHERE window_start = ?",
                (n, n, start),
            )
            for start, n in late.items()
        ]
        statements.append(
            (
                "INSERT INTO window_state VALUES ('late_seen_record_id', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (max_id,),
            )
        )
        execute_many(self.store, statements)
        self._seen = max_id
        for start, n in sorted(late.items()):
            log.warning(
                "window %s: %d late record(s) arrived after it closed; it will be re-issued",
                start,
                n,
            )
        return late

    def _next_revision(self) -> int:
        row = self.store.query("SELECT coalesce(max(revision), 0) AS r FROM windows").to_pylist()
        return int(row[0]["r"]) + 1

    def _close_new(self, now: float, max_id: int, late: dict[int, int]) -> list[dict[str, Any]]:
        first = self._first_start()
        if first is None:
            return []
        length = self.config.length_s
        feeders = set(self.feeders())
        closing: list[tuple[int, Verdict]] = []
        start = first
        while len(closing) < self.config.max_windows_per_run and start + length <= now:
            verdict = self._verdict(start, start + length, now, feeders)
            if verdict.state == "wait":
                break
            closing.append((start, verdict))
            start += length
        if not closing:
            return []
        end = closing[-1][0] + length
        rows = compute_rows(self.store, self.config, first, end, max_id)
        revision = self._next_revision()
        reports = [
            build_report(
                s,
                s + length,
                self.config.time_field,
                rows.get(s, []),
                now,
                incomplete=v.missing,
                revision=revision + i,
            )
            for i, (s, v) in enumerate(closing)
        ]
        execute_many(
            self.store,
            [
                (
                    "INSERT INTO windows (window_start, window_end, closed_at, records, bytes,"
                    " packets, checksum, report, version, revision, incomplete, late_records,"
                    " late_pending, max_record_id)"
                    " VALUES (?, ?, to_timestamp(?), ?, ?, ?, ?, ?, 1, ?, ?, 0, 0, ?)"
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
                        r["revision"],
                        json.dumps(r["incomplete"]) if r["incomplete"] else "",
                        max_id,
                    ),
                )
                for r in reports
            ],
        )
        self._next_start = end
        self.closed += len(reports)
        for r in reports:
            self._log_issued(r)
        return reports

    def _log_issued(self, report: dict[str, Any]) -> None:
        what = "closed" if report["version"] == 1 else f"re-issued as version {report['version']}"
        state = "complete" if report["complete"] else "INCOMPLETE"
        log.log(
            logging.INFO if report["complete"] else logging.WARNING,
            "window %s %s (%s): %d records, %d rows, %s%s",
            report["start_iso"],
            what,
            state,
            report["records"],
            len(report["rows"]),
            report["checksum"][:19],
            "".join(f"; {m['gatherer']}: {m['reason']}" for m in report["incomplete"]),
        )
        if self.alert is None:
            return
        if report["complete"]:
            self.alert("window_incomplete", "*", None)
        else:
            names = ", ".join(f"{m['gatherer']} ({m['reason']})" for m in report["incomplete"])
            self.alert(
                "window_incomplete",
                "*",
                f"window {report['start_iso']} closed incomplete: {names}",
            )

    def _reissue(self, now: float, max_id: int) -> list[dict[str, Any]]:
        """Re-issue the closed windows with late records, or that were incomplete, once
        they may close again and something changed."""
        candidates = self.store.query(
            "SELECT window_start, window_end, version, checksum, incomplete, late_records,"
            " late_pending FROM windows WHERE late_pending > 0 OR incomplete <> ''"
            " ORDER BY window_start LIMIT $limit",
            {"limit": self.config.max_windows_per_run},
        ).to_pylist()
        feeders = set(self.feeders())
        issued = []
        for row in candidates:
            start, end = int(row["window_start"]), int(row["window_end"])
            verdict = self._verdict(start, end, now, feeders)
            if verdict.state == "wait":
                continue
            before = json.loads(row["incomplete"]) if row["incomplete"] else []
            if not row["late_pending"] and [m["gatherer"] for m in before] == [
                m["gatherer"] for m in verdict.missing
            ]:
                continue  # still incomplete for the same gatherers, nothing new
            rows = compute_rows(self.store, self.config, start, end, max_id).get(start, [])
            report = build_report(
                start,
                end,
                self.config.time_field,
                rows,
                now,
                version=int(row["version"]) + 1,
                incomplete=verdict.missing,
                late_records=int(row["late_records"]),
                supersedes=str(row["checksum"]),
                revision=self._next_revision(),
            )
            execute_many(
                self.store,
                [
                    (
                        "UPDATE windows SET closed_at = to_timestamp(?), records = ?, bytes = ?,"
                        " packets = ?, checksum = ?, report = ?, version = ?, revision = ?,"
                        " incomplete = ?, late_pending = 0, max_record_id = ?"
                        " WHERE window_start = ?",
                        (
                            now,
                            report["records"],
                            report["bytes"],
                            report["packets"],
                            report["checksum"],
                            json.dumps(report, sort_keys=True),
                            report["version"],
                            report["revision"],
                            json.dumps(report["incomplete"]) if report["incomplete"] else "",
                            max_id,
                            start,
                        ),
                    )
                ],
            )
            self.corrections += 1
            self._log_issued(report)
            issued.append(report)
        return issued

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

    def revisions(self, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """The windows whose current version was issued after revision ``after``."""
        table = self.store.query(
            "SELECT report FROM windows WHERE revision > $after ORDER BY revision LIMIT $limit",
            {"after": after, "limit": limit},
        )
        return [json.loads(r) for r in table.column("report").to_pylist()]

    def report(self, start: int) -> dict[str, Any] | None:
        table = self.store.query(
            "SELECT report FROM windows WHERE window_start = $start", {"start": start}
        )
        return json.loads(table.column("report")[0].as_py()) if table.num_rows else None

    def late_records(self) -> int:
        """Records stored after the window they belong to had closed (all windows)."""
        row = self.store.query(
            "SELECT coalesce(sum(late_records), 0)::BIGINT AS n FROM windows"
        ).to_pylist()[0]
        return int(row["n"])

    def status(self) -> dict[str, Any]:
        row = self.store.query(
            "SELECT max(window_start) AS last, coalesce(sum(late_records), 0)::BIGINT AS late,"
            " count(*) FILTER (WHERE incomplete <> '') AS incomplete,"
            " count(*) FILTER (WHERE version > 1) AS corrected FROM windows"
        ).to_pylist()[0]
        recent = self.store.query(
            "SELECT window_start AS start, version, late_records, late_pending, incomplete"
            " FROM windows WHERE late_records > 0 OR incomplete <> ''"
            " ORDER BY window_start DESC LIMIT 20"
        ).to_pylist()
        return {
            "length_s": self.config.length_s,
            "grace_s": self.config.grace_s,
            "max_wait_s": self.config.max_wait_s,
            "time_field": self.config.time_field,
            "last_closed": row["last"],
            "next_start": self._next_start,
            "closed_since_start": self.closed,
            "corrections_since_start": self.corrections,
            "late_records": int(row["late"]),
            "incomplete_windows": int(row["incomplete"]),
            "corrected_windows": int(row["corrected"]),
            "late_or_incomplete": [
                {**r, "incomplete": json.loads(r["incomplete"]) if r["incomplete"] else []}
                for r in recent
            ],
            "watermarks": self.watermarks.status(),
            "last_error": self.last_error,
        }

    def router(self) -> Any:
        """``GET /api/windows?after=&limit=``, ``GET /api/windows/revisions?after=&limit=``
        and ``GET /api/windows/{start}``."""
        from fastapi import APIRouter, HTTPException

        router = APIRouter()

        @router.get("/api/windows")
        def list_windows(after: int | None = None, limit: int = 100) -> dict[str, Any]:
            return {**self.status(), "windows": self.reports(after=after, limit=limit)}

        @router.get("/api/windows/revisions")
        def list_revisions(after: int = 0, limit: int = 100) -> dict[str, Any]:
            return {"windows": self.revisions(after=after, limit=limit)}

        @router.get("/api/windows/{start}")
        def get_window(start: int) -> dict[str, Any]:
            report = self.report(start)
            if report is None:
                raise HTTPException(status_code=404, detail=f"window {start} is not closed")
            return report

        return router
