"""The accounting consumer: each window's aggregate report, exactly once, in order, from
the primary manager — or from the secondary while the primary is in error (seed 000,
claims 1–2: "determining an error relating to the first flow aggregation process, and
causing aggregate reports from the second … to be sent to the accounting module in
place of" the first's; SYSTEM.md §3, delivery step 5).

Error detection (``decide``): the primary is in error after ``failures`` failed health
checks in a row (``GET /api/status``), or when it answers but the next window is still
missing ``stall_s`` after the window's end + grace while the secondary has it. The
consumer then takes the reports from the secondary. It goes back when the primary is
healthy and caught up: it has the next window, and its report of the last delivered
window has the same checksum as the one delivered (so a primary that restarted and has
not yet received what it missed is not trusted early).

Which manager's report of the next window is delivered is then decided by
``choice.choose``: never one that manager marks incomplete while the other has it
complete; on a checksum mismatch the one with more records (and why, in the log and in
the file's ``choice``); an incomplete one only when the other cannot do better.
Windows already delivered may be re-issued by a manager (late records, completion):
``choice.correction`` decides, and the correction is delivered as a file of its own.

Delivery into ``out_dir`` (the durable cursor makes restarts neither skip nor repeat):

* ``window-<start>.json`` — the report as the manager produced it, plus
  ``delivered_from`` / ``delivered_from_url`` / ``delivered_at`` (and ``choice`` when it
  was not the plain one); written to a temporary file, fsynced, renamed. Files appear
  strictly in window order, one per window.
* ``window-<start>-correction-<n>.json`` — the n-th correction of that window: the
  re-issued report, with ``supersedes`` naming the file and checksum it replaces and
  ``correction`` (n) and its reason; the newest file of a window is its final version.
  The files are the record of what was delivered: at start the consumer reads them, so
  a correction is delivered once, whatever crashes.
* ``cursor.json`` — the last delivered window (start, checksum), advanced after the
  file is in place; at start the newest ``window-*.json`` wins over a cursor left behind
  by a crash between the two steps, so that window is not delivered again.
* ``switches.log`` — one JSON line per switch (time, from, to, reason, next window),
  also logged as a warning; ``status.json`` — the current source and both managers'
  health, rewritten every poll.

A window missing on both managers stops delivery there (in order means no skipping);
it is logged once and shows in ``status.json`` as ``waiting_for``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from netdistill.accounting.choice import choose, correction
from netdistill.accounting.config import AccountingConfig, ManagerEndpoint
from netdistill.files import write_atomic

log = logging.getLogger(__name__)

PRIMARY, SECONDARY = "primary", "secondary"
OTHER = {PRIMARY: SECONDARY, SECONDARY: PRIMARY}
_WINDOW_FILE = re.compile(r"^window-(\d+)\.json$")
_CORRECTION_FILE = re.compile(r"^window-(\d+)-correction-(\d+)\.json$")


class Endpoint:
    """One manager as the consumer sees it: health and the windows after the cursor."""

    def __init__(self, role: str, config: ManagerEndpoint, timeout_s: float) -> None:
        self.role = role
        self.config = config
        self.url = config.url.rstrip("/")
        self.failures = 0
        self.last_error = ""
        self.last_ok: float | None = None
        self.windows: dict[int, dict[str, Any]] = {}
        #: reports re-issued since the revision asked for (``poll``'s ``revision``)
        self.revised: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}
        self._http = httpx.Client(timeout=timeout_s, verify=config.verify)

    def _headers(self) -> dict[str, str]:
        token = self.config.token
        if self.config.token_file is not None:
            try:
                text = self.config.token_file.read_text()
            except OSError:
                text = ""
            token = text.strip()
            if text.lstrip().startswith("{"):
                token = str(json.loads(text).get("token", ""))
        return {"authorization": f"Bearer {token}"} if token else {}

    def _get(self, path: str, **params: Any) -> Any:
        response = self._http.get(f"{self.url}{path}", params=params, headers=self._headers())
        response.raise_for_status()
        return response.json()

    def poll(self, after: int | None, revision: int = 0) -> None:
        """Health check, then the windows from ``after`` (inclusive) on, and those
        issued after ``revision`` (corrections)."""
        try:
            self._get("/api/status")
            listing = self._get("/api/windows", after=-1 if after is None else after - 1)
            revised = self._get("/api/windows/revisions", after=revision, limit=1000)
        except (httpx.HTTPError, ValueError) as exc:
            self.failures += 1
            self.last_error = str(exc) or type(exc).__name__
            self.windows, self.revised = {}, []
            return
        self.failures, self.last_error, self.last_ok = 0, "", time.time()
        self.windows = {int(w["start"]): w for w in listing.pop("windows")}
        self.revised = list(revised.get("windows") or [])
        self.info = listing

    def status(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_ok": self.last_ok,
            "last_closed": self.info.get("last_closed"),
        }

    def close(self) -> None:
        self._http.close()


@dataclass
class Cursor:
    last_start: int | None = None
    last_checksum: str | None = None
    length_s: int | None = None
    source: str = PRIMARY
    delivered: int = 0
    switches: int = 0
    corrections: int = 0
    #: per role, the last revision of that manager looked at for corrections
    revisions: dict[str, int] = field(default_factory=dict)


def decide(
    current: str,
    primary: Endpoint,
    secondary: Endpoint,
    cursor: Cursor,
    next_start: dict[str, int | None],
    *,
    failures: int,
    stall_s: float,
    now: float,
) -> tuple[str, str | None]:
    """The source to take the next window from, and why it changed (None: no change)."""
    p_next = next_start[PRIMARY]
    s_next = next_start[SECONDARY]
    p_has = p_next is not None and p_next in primary.windows
    s_has = s_next is not None and s_next in secondary.windows
    if current == PRIMARY:
        if primary.failures >= failures and secondary.failures == 0:
            return SECONDARY, (
                f"primary failed {primary.failures} health checks in a row: {primary.last_error}"
            )
        if primary.failures == 0 and not p_has and s_has and p_next is not None:
            length = int(primary.info.get("length_s") or cursor.length_s or 0)
            deadline = p_next + length + float(primary.info.get("grace_s") or 0) + stall_s
            if now > deadline:
                return SECONDARY, (
                    f"window {p_next} missing on the primary {now - deadline + stall_s:.1f} s "
                    "after its end + grace"
                )
        return PRIMARY, None
    if primary.failures == 0 and p_has:
        agrees = cursor.last_start is None or (
            (primary.windows.get(cursor.last_start) or {}).get("checksum") == cursor.last_checksum
        )
        if agrees:
            return PRIMARY, f"primary healthy and caught up (has window {p_next})"
    if secondary.failures >= failures and primary.failures == 0:
        return PRIMARY, (
            f"secondary failed {secondary.failures} health checks in a row: {secondary.last_error}"
        )
    return SECONDARY, None


@dataclass
class Consumer:
    """Polls both managers every ``poll_s`` and delivers due windows into ``out_dir``.

    ``step`` does one poll and delivers what it can; ``run`` loops until ``stop``.
    Not thread-safe: one consumer per ``out_dir`` (the cursor is its state).
    """

    config: AccountingConfig
    clock: Callable[[], float] = time.time
    cursor: Cursor = field(init=False)
    endpoints: dict[str, Endpoint] = field(init=False)
    waiting_for: int | None = field(default=None, init=False)
    #: per window start, the last delivered report and its file (read from out_dir)
    delivered: dict[int, dict[str, Any]] = field(default_factory=dict, init=False)
    _incomplete_since: dict[int, float] = field(default_factory=dict, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        c = self.config
        self.out = c.out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.endpoints = {
            PRIMARY: Endpoint(PRIMARY, c.primary, c.timeout_s),
            SECONDARY: Endpoint(SECONDARY, c.secondary, c.timeout_s),
        }
        self.cursor = self._load_cursor()
        self.delivered = self._load_delivered()

    # --- durable state ---------------------------------------------------------------------

    def _load_cursor(self) -> Cursor:
        path = self.out / "cursor.json"
        cursor = Cursor(**json.loads(path.read_text())) if path.exists() else Cursor()
        if cursor.last_start is None and self.config.start_after is not None:
            cursor.last_start = self.config.start_after
        files = sorted(
            (int(m.group(1)), p)
            for p in self.out.glob("window-*.json")
            if (m := _WINDOW_FILE.match(p.name))
        )
        if files and (cursor.last_start is None or files[-1][0] > cursor.last_start):
            start, newest = files[-1]  # delivered, but the cursor was not advanced
            report = json.loads(newest.read_text())
            cursor.last_start, cursor.last_checksum = start, report["checksum"]
            cursor.length_s = int(report["end"]) - start
            cursor.delivered += 1
            log.warning("cursor behind %s: resuming after it", newest.name)
        return cursor

    def _load_delivered(self) -> dict[int, dict[str, Any]]:
        """The last delivered version of every window, from the files (the truth)."""
        newest: dict[int, tuple[int, Any]] = {}
        for path in self.out.glob("window-*.json"):
            if m := _WINDOW_FILE.match(path.name):
                key = (int(m.group(1)), 0)
            elif m := _CORRECTION_FILE.match(path.name):
                key = (int(m.group(1)), int(m.group(2)))
            else:
                continue
            if key[0] not in newest or newest[key[0]][0] < key[1]:
                newest[key[0]] = (key[1], path)
        out = {}
        for start, (n, path) in newest.items():
            report = json.loads(path.read_text())
            out[start] = {
                "checksum": report.get("checksum"),
                "complete": report.get("complete", True),
                "records": report.get("records"),
                "file": path.name,
                "corrections": n,
            }
        return out

    def _save_cursor(self) -> None:
        write_atomic(self.out / "cursor.json", json.dumps(self.cursor.__dict__, indent=1))

    def _deliver(self, report: dict[str, Any], role: str, choice: str | None = None) -> None:
        start = int(report["start"])
        endpoint = self.endpoints[role]
        body = {
            **report,
            "delivered_from": role,
            "delivered_from_url": endpoint.url,
            "delivered_at": round(self.clock(), 3),
            **({"choice": choice} if choice else {}),
        }
        name = f"window-{start}.json"
        write_atomic(self.out / name, json.dumps(body, indent=1))
        self.delivered[start] = {
            "checksum": report.get("checksum"),
            "complete": report.get("complete", True),
            "records": report.get("records"),
            "file": name,
            "corrections": 0,
        }
        self.cursor.last_start, self.cursor.last_checksum = start, report["checksum"]
        self.cursor.length_s = int(report["end"]) - start
        self.cursor.delivered += 1
        self._save_cursor()
        log.info("window %s delivered from the %s (%s)", report.get("start_iso"), role, start)

    def _deliver_correction(self, report: dict[str, Any], role: str, why: str) -> None:
        start = int(report["start"])
        previous = self.delivered[start]
        n = int(previous["corrections"]) + 1
        name = f"window-{start}-correction-{n}.json"
        body = {
            **report,
            "delivered_from": role,
            "delivered_from_url": self.endpoints[role].url,
            "delivered_at": round(self.clock(), 3),
            "correction": n,
            "correction_reason": why,
            "supersedes": {"file": previous["file"], "checksum": previous["checksum"]},
        }
        write_atomic(self.out / name, json.dumps(body, indent=1))
        self.delivered[start] = {
            "checksum": report.get("checksum"),
            "complete": report.get("complete", True),
            "records": report.get("records"),
            "file": name,
            "corrections": n,
        }
        if start == self.cursor.last_start:
            self.cursor.last_checksum = report["checksum"]
        self.cursor.corrections += 1
        log.warning(
            "window %s: correction %d delivered from the %s (%s), superseding %s",
            report.get("start_iso"),
            n,
            role,
            why,
            previous["file"],
        )

    def _corrections(self) -> int:
        """Deliver the re-issued reports of windows already delivered."""
        done = 0
        for role, endpoint in self.endpoints.items():
            for report in endpoint.revised:
                start = int(report["start"])
                if self.cursor.last_start is not None and start <= self.cursor.last_start:
                    why = correction(report, self.delivered.get(start))
                    if why is not None:
                        self._deliver_correction(report, role, why)
                        done += 1
                revision = int(report.get("revision") or 0)
                if revision > self.cursor.revisions.get(role, 0):
                    self.cursor.revisions[role] = revision
        if done or any(e.revised for e in self.endpoints.values()):
            self._save_cursor()
        return done

    def _switch(self, to: str, reason: str, next_start: int | None) -> None:
        line = {
            "at": round(self.clock(), 3),
            "from": self.cursor.source,
            "to": to,
            "reason": reason,
            "next_window": next_start,
        }
        with open(self.out / "switches.log", "a") as handle:
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        log.warning("switching from the %s to the %s: %s", self.cursor.source, to, reason)
        self.cursor.source = to
        self.cursor.switches += 1
        self._save_cursor()

    def _write_status(self) -> None:
        status = {
            "source": self.cursor.source,
            "source_url": self.endpoints[self.cursor.source].url,
            "last_delivered": self.cursor.last_start,
            "delivered": self.cursor.delivered,
            "corrections": self.cursor.corrections,
            "switches": self.cursor.switches,
            "waiting_for": self.waiting_for,
            "primary": self.endpoints[PRIMARY].status(),
            "secondary": self.endpoints[SECONDARY].status(),
            "updated_at": round(self.clock(), 3),
        }
        write_atomic(self.out / "status.json", json.dumps(status, indent=1))

    # --- the loop --------------------------------------------------------------------------

    def _next_start(self, endpoint: Endpoint) -> int | None:
        if self.cursor.last_start is None:
            return min(endpoint.windows, default=None)
        length = self.cursor.length_s or endpoint.info.get("length_s")
        return None if length is None else self.cursor.last_start + int(length)

    def step(self) -> int:
        """One poll of both managers; returns how many windows were delivered."""
        for role, endpoint in self.endpoints.items():
            endpoint.poll(self.cursor.last_start, self.cursor.revisions.get(role, 0))
        delivered = 0
        while True:
            nexts = {role: self._next_start(e) for role, e in self.endpoints.items()}
            role, reason = decide(
                self.cursor.source,
                self.endpoints[PRIMARY],
                self.endpoints[SECONDARY],
                self.cursor,
                nexts,
                failures=self.config.failures,
                stall_s=self.config.stall_s,
                now=self.clock(),
            )
            if reason is not None:
                self._switch(role, reason, nexts[role])
            start = nexts[role]
            report = self.endpoints[role].windows.get(start) if start is not None else None
            other = self.endpoints[OTHER[role]]
            chosen: str | None = role
            why: str | None = None
            if report is not None and start is not None:
                since = self._incomplete_since.setdefault(start, self.clock())
                chosen, why = choose(
                    role,
                    OTHER[role],
                    report,
                    other.windows.get(start),
                    other_healthy=other.failures == 0,
                    waited_s=self.clock() - since,
                    stall_s=self.config.stall_s,
                )
                if chosen is None:
                    report = None
                else:
                    report = self.endpoints[chosen].windows[start]
                    if why:
                        log.warning("window %s: %s", report.get("start_iso"), why)
            if report is None or start is None:
                if start is not None and self.waiting_for != start:
                    self.waiting_for = start
                break
            self._deliver(report, chosen or role, why)
            self._incomplete_since.pop(start, None)
            self.waiting_for = None
            delivered += 1
        self._corrections()
        self._write_status()
        return delivered

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("accounting step failed; will try again")
            self._stop.wait(self.config.poll_s)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        for endpoint in self.endpoints.values():
            endpoint.close()


def serve_accounting(**settings: Any) -> None:
    """``netdistill accounting``: run until SIGTERM or Ctrl-C."""
    import signal

    consumer = Consumer(AccountingConfig(**settings))
    previous = signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
    log.warning(
        "accounting: primary %s, secondary %s, delivering into %s (now on the %s)",
        consumer.endpoints[PRIMARY].url,
        consumer.endpoints[SECONDARY].url,
        consumer.out,
        consumer.cursor.source,
    )
    try:
        consumer.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        consumer.close()
