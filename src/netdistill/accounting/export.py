"""Exports of closed periods to a billing system (seed 002, FIG. 7: the rolled-up record
"may be sent to a Business Support System (BSS) for the purposes of billing"; SYSTEM.md
§1 "accounting consumer / export").

A producer (the ``rollup`` stage) hands over one closed period at a time as a
``PeriodExport``: named parts (``accounts``, ``companies``), each a fixed column list and
its rows. Rendering is pure and deterministic — the same period always gives the same
bytes — which is what makes "exactly once" hold across crashes:

* target ``file``: ``<directory>/<rollup>/<period>.<part>.csv`` and ``.jsonl`` (one JSON
  object per line, the CSV's columns as keys). Each file is written to a temporary name,
  fsynced, renamed, and the directory fsynced. A crash between writing the files and
  recording the export leaves files that the next round rewrites byte for byte.
* target ``http``: one ``POST`` of the period as JSON (``render_body``) to ``url``, with
  ``Idempotency-Key: <rollup>/<period>`` and ``X-Netdistill-Sha256`` headers; any 2xx
  answer is success. A crash between the answer and the record sends the same body
  again with the same key, so a receiver that honours the key stores it once.

Every attempt is a row of the ``exports`` table (rollup, period, target, kind, sent_at,
rows, sha256, outcome, detail). The scheduled export of a (rollup, period, target) is
recorded ``ok`` exactly once (the insert checks, in its transaction, that no ``ok`` row
is there yet); failures are recorded too and retried with exponential back-off
(``retry_initial_s`` doubling up to ``retry_max_s``). ``resend`` renders the same
content again on demand and records it with kind ``resend``. ``sha256`` is the SHA-256
of the period's JSON body: one fingerprint of the content, equal for every target and
every resend.

Scheme (inside a rollup stage)::

    export:
      directory: exports          # relative: inside the data directory; null: no files
      formats: [csv, jsonl]
      url: https://billing.example/api/usage   # optional
      headers: {authorization: {file: billing.auth}}   # secrets: inline, {file:}, {env:}
      timeout_s: 10
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from netdistill.errors import ExportError
from netdistill.files import write_atomic
from netdistill.scheme.secrets import Secret, SecretError, reveal_all
from netdistill.store.duckdb import DuckDBStore

log = logging.getLogger(__name__)

FILE, HTTP = "file", "http"
SCHEDULED, RESEND = "scheduled", "resend"
Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")

_DDL = """
CREATE TABLE IF NOT EXISTS exports (
    rollup VARCHAR NOT NULL, period VARCHAR NOT NULL, target VARCHAR NOT NULL,
    kind VARCHAR NOT NULL, sent_at TIMESTAMPTZ NOT NULL, rows BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL, outcome VARCHAR NOT NULL, detail VARCHAR)
"""


class ExportConfig(BaseModel):
    """Where a rollup's closed periods go: files, an HTTP endpoint, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: str | None = Field(
        "exports", description="export files go to <directory>/<rollup>/; null: no files"
    )
    formats: list[Format] = Field(
        default_factory=lambda: list(FORMATS), description="file formats written"
    )
    url: str | None = Field(None, description="POST each period as JSON to this URL")
    headers: dict[str, Secret] = Field(
        default_factory=dict, description="extra HTTP headers; every value is a secret"
    )
    timeout_s: float = Field(10.0, gt=0, description="HTTP timeout of one POST")
    retry_initial_s: float = Field(5.0, gt=0, description="first wait after a failure")
    retry_max_s: float = Field(600.0, gt=0, description="longest wait between retries")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"url {value!r}: expected http:// or https://")
        return value

    def targets(self) -> list[str]:
        out = []
        if self.directory is not None and self.formats:
            out.append(FILE)
        if self.url is not None:
            out.append(HTTP)
        return out


@dataclass(frozen=True)
class Part:
    """One table of a period's export: its columns, in order, and its rows."""

    columns: list[str]
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class PeriodExport:
    rollup: str
    period: str
    period_start: str
    period_end: str
    closed_at: str
    parts: dict[str, Part] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(len(p.rows) for p in self.parts.values())


# --- rendering (pure) ---------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A value as JSON and CSV show it: times as ISO-8601 UTC, decimals as floats."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S") + (
            f".{value.microsecond:06d}Z" if value.microsecond else "Z"
        )
    if isinstance(value, Decimal):
        return float(value)
    return value


def render_csv(part: Part) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(part.columns)
    for row in part.rows:
        writer.writerow(["" if row[c] is None else plain(row[c]) for c in part.columns])
    return buffer.getvalue().encode()


def render_jsonl(part: Part) -> bytes:
    lines = [
        json.dumps({c: plain(row[c]) for c in part.columns}, separators=(",", ":"))
        for row in part.rows
    ]
    return "".join(line + "\n" for line in lines).encode()


def render_files(export: PeriodExport, formats: Sequence[str]) -> dict[str, bytes]:
    """File name → content, for every part and format."""
    render = {"csv": render_csv, "jsonl": render_jsonl}
    return {
        f"{export.period}.{name}.{fmt}": render[fmt](part)
        for name, part in export.parts.items()
        for fmt in formats
    }


def render_body(export: PeriodExport) -> bytes:
    """The period as one JSON document (the HTTP body; its SHA-256 is the fingerprint)."""
    document: dict[str, Any] = {
        "rollup": export.rollup,
        "period": export.period,
        "period_start": export.period_start,
        "period_end": export.period_end,
        "closed_at": export.closed_at,
    }
    for name, part in export.parts.items():
        document[name] = [{c: plain(row[c]) for c in part.columns} for row in part.rows]
    return json.dumps(document, separators=(",", ":")).encode()


# --- the exporter --------------------------------------------------------------------------


def ensure_exports_table(store: DuckDBStore) -> None:
    with store.transaction() as tx:
        tx.execute(_DDL)


def export_history(store: Any, rollup: str, period: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``exports`` for ``rollup`` (and ``period``), oldest first."""
    where = "rollup = $rollup" + (" AND period = $period" if period is not None else "")
    params: dict[str, object] = {"rollup": rollup}
    if period is not None:
        params["period"] = period
    table = store.query(
        "SELECT period, target, kind, sent_at, rows, sha256, outcome, detail FROM exports"
        f" WHERE {where} ORDER BY sent_at, period, target",
        params,
    )
    return [{k: plain(v) for k, v in row.items()} for row in table.to_pylist()]


class Exporter:
    """Exports one rollup's closed periods to its targets.

    ``load(period)`` gives a closed period's content (``ExportError`` when it is not
    closed); ``closed_periods()`` lists them, oldest first. ``run_pending`` and
    ``resend`` may be called from different threads (the stages job, the API): one lock
    serializes sending, and the store serializes the records.
    """

    def __init__(
        self,
        store: DuckDBStore,
        rollup: str,
        config: ExportConfig,
        data_dir: Path,
        *,
        load: Callable[[str], PeriodExport],
        closed_periods: Callable[[], list[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.rollup = rollup
        self.config = config
        directory = Path(config.directory) if config.directory is not None else None
        self.directory = (
            None
            if directory is None
            else (directory if directory.is_absolute() else data_dir / directory) / rollup
        )
        self.load = load
        self.closed_periods = closed_periods
        self.clock = clock
        self.sent = 0
        self.failed = 0
        #: (period, target) → (failures in a row, earliest next attempt)
        self._retry: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()

    # --- sending ---------------------------------------------------------------------------

    def _write_files(self, export: PeriodExport) -> None:
        assert self.directory is not None
        for name, data in render_files(export, self.config.formats).items():
            write_atomic(self.directory / name, data)

    def _post(self, export: PeriodExport, body: bytes, sha256: str) -> None:
        assert self.config.url is not None
        headers = {
            "content-type": "application/json",
            "idempotency-key": f"{export.rollup}/{export.period}",
            "x-netdistill-sha256": sha256,
            **reveal_all(self.config.headers),
        }
        response = httpx.post(
            self.config.url, content=body, headers=headers, timeout=self.config.timeout_s
        )
        if not 200 <= response.status_code < 300:
            raise ExportError(f"{self.config.url} answered {response.status_code}")

    def _record(
        self, export: PeriodExport, target: str, kind: str, sha256: str, outcome: str, detail: str
    ) -> None:
        """Add the attempt to ``exports``; a scheduled ``ok`` only if none is there yet
        (checked by the insert itself, inside the store's write lock)."""
        once = kind == SCHEDULED and outcome == "ok"
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO exports SELECT ?, ?, ?, ?, to_timestamp(?), ?, ?, ?, ?"
                + (
                    " WHERE NOT EXISTS (SELECT 1 FROM exports WHERE rollup = ? AND period = ?"
                    " AND target = ? AND kind = 'scheduled' AND outcome = 'ok')"
                    if once
                    else ""
                ),
                (
                    self.rollup,
                    export.period,
                    target,
                    kind,
                    tx.now,
                    export.rows,
                    sha256,
                    outcome,
                    detail,
                    *((self.rollup, export.period, target) if once else ()),
                ),
            )

    def send(self, period: str, target: str, kind: str) -> dict[str, Any]:
        """Export ``period`` to ``target`` now and record the attempt; returns the record."""
        if target not in self.config.targets():
            raise ExportError(
                f"rollup {self.rollup!r} has no {target} export "
                f"(configured: {', '.join(self.config.targets()) or 'none'})"
            )
        export = self.load(period)
        body = render_body(export)
        sha256 = hashlib.sha256(body).hexdigest()
        outcome, detail = "ok", ""
        try:
            if target == FILE:
                self._write_files(export)
            else:
                self._post(export, body, sha256)
        except (OSError, httpx.HTTPError, ExportError, SecretError) as exc:
            outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
        self._record(export, target, kind, sha256, outcome, detail)
        if outcome == "ok":
            self.sent += 1
        else:
            self.failed += 1
            log.warning(
                "rollup %s period %s %s export failed: %s", self.rollup, period, target, detail
            )
        return {
            "period": period,
            "target": target,
            "kind": kind,
            "rows": export.rows,
            "sha256": sha256,
            "outcome": outcome,
            "detail": detail,
        }

    def pending(self) -> list[tuple[str, str]]:
        """(period, target) pairs closed but not yet exported ``ok``, oldest first."""
        targets = self.config.targets()
        if not targets:
            return []
        done = {
            (r["period"], r["target"])
            for r in self.store.query(
                "SELECT DISTINCT period, target FROM exports WHERE rollup = $rollup"
                " AND kind = 'scheduled' AND outcome = 'ok'",
                {"rollup": self.rollup},
            ).to_pylist()
        }
        return [
            (period, target)
            for period in self.closed_periods()
            for target in targets
            if (period, target) not in done
        ]

    def run_pending(self) -> dict[str, int]:
        """Export every pending (period, target), oldest first. A target whose export
        failed waits its back-off, and its later periods wait with it: a billing system
        receives periods in order, and a dead endpoint costs one timeout per round."""
        sent = failed = 0
        with self._lock:
            now = self.clock()
            blocked: set[str] = set()
            for key in self.pending():
                period, target = key
                if target in blocked:
                    continue
                failures, next_try = self._retry.get(key, (0, 0.0))
                if now < next_try:
                    blocked.add(target)
                    continue
                result = self.send(period, target, SCHEDULED)
                if result["outcome"] == "ok":
                    self._retry.pop(key, None)
                    sent += 1
                else:
                    wait = min(self.config.retry_max_s, self.config.retry_initial_s * 2**failures)
                    self._retry[key] = (failures + 1, now + wait)
                    blocked.add(target)
                    failed += 1
        return {"exported": sent, "export_failures": failed}

    def resend(self, period: str, target: str | None = None) -> list[dict[str, Any]]:
        """Send ``period`` again to ``target`` (default: every configured target)."""
        targets = [target] if target else self.config.targets()
        if not targets:
            raise ExportError(f"rollup {self.rollup!r} has no export configured")
        with self._lock:
            return [self.send(period, t, RESEND) for t in targets]

    def status(self) -> dict[str, Any]:
        return {
            "targets": self.config.targets(),
            "directory": str(self.directory) if self.directory else None,
            "url": self.config.url,
            "sent_since_start": self.sent,
            "failed_since_start": self.failed,
            "retrying": sorted(f"{p}/{t}" for p, t in self._retry),
        }
