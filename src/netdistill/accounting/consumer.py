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

Delivery into ``out_dir`` (the durable cursor makes restarts neither skip nor repeat):

* ``window-<start>.json`` — the report as the manager produced it, plus
  ``delivered_from`` / ``delivered_from_url`` / ``delivered_at``; written to a temporary
  file, fsynced, renamed. Files appear strictly in window order, one per window.
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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from netdistill.accounting.config import AccountingConfig, ManagerEndpoint
from netdistill.files import write_atomic

log = logging.getLogger(__name__)

PRIMARY, SECONDARY = "primary", "secondary"


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

    def poll(self, after: int | None) -> None:
        """Health check, then the windows from ``after`` (inclusive) on."""
        try:
            self._get("/api/status")
            listing = self._get("/api/windows", after=-1 if after is None else after - 1)
        except (httpx.HTTPError, ValueError) as exc:
            self.failures += 1
            self.last_error = str(exc) or type(exc).__name__
            self.windows = {}
            return
        self.failures, self.last_error, self.last_ok = 0, "", time.time()
        self.windows = {int(w["start"]): w for w in listing.pop("windows")}
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

    # --- durable state ---------------------------------------------------------------------

    def _load_cursor(self) -> Cursor:
        path = self.out / "cursor.json"
        cursor = Cursor(**json.loads(path.read_text())) if path.exists() else Cursor()
        if cursor.last_start is None and self.config.start_after is not None:
            cursor.last_start = self.config.start_after
        files = sorted(
            (int(p.stem.removeprefix("window-")), p) for p in self.out.glob("window-*.json")
        )
        if files and (cursor.last_start is None or files[-1][0] > cursor.last_start):
            start, newest = files[-1]  # delivered, but the cursor was not advanced
            report = json.loads(newest.read_text())
            cursor.last_start, cursor.last_checksum = start, report["checksum"]
            cursor.length_s = int(report["end"]) - start
            cursor.delivered += 1
            log.warning("cursor behind %s: resuming after it", newest.name)
        return cursor

    def _save_cursor(self) -> None:
        write_atomic(self.out / "cursor.json", json.dumps(self.cursor.__dict__, indent=1))

    def _deliver(self, report: dict[str, Any], role: str) -> None:
        start = int(report["start"])
        endpoint = self.endpoints[role]
        body = {
            **report,
            "delivered_from": role,
            "delivered_from_url": endpoint.url,
            "delivered_at": round(self.clock(), 3),
        }
        write_atomic(self.out / f"window-{start}.json", json.dumps(body, indent=1))
        self.cursor.last_start, self.cursor.last_checksum = start, report["checksum"]
        self.cursor.length_s = int(report["end"]) - start
        self.cursor.delivered += 1
        self._save_cursor()
        log.info("window %s delivered from the %s (%s)", report.get("start_iso"), role, start)

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
        for endpoint in self.endpoints.values():
            endpoint.poll(self.cursor.last_start)
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
            if report is None:
                if start is not None and self.waiting_for != start:
                    self.waiting_for = start
                break
            self._deliver(report, role)
            self.waiting_for = None
            delivered += 1
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
