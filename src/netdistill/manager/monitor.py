"""The manager's view of its gatherers: heartbeats, silence alerts, Prometheus metrics
(SYSTEM.md §3, delivery step 6).

Gatherers post heartbeats (``gatherer/heartbeat.py``) to ``POST /api/heartbeat``. The
monitor keeps, per gatherer, the last heartbeat and when it arrived (the manager's
clock, not the gatherer's), and serves them on ``GET /api/gatherers``. A gatherer is
*silent* when nothing arrived for ``silence_intervals`` of its own heartbeat intervals;
the monitor then raises one ``gatherer_silent`` alert — one open alert per gatherer for
as long as it stays silent, never one per check — and clears it (``cleared_at``) when a
heartbeat arrives again. Alerts live in the ``alerts`` table (so they survive a restart
and ``netdistill query`` sees them), are logged, and are served by ``GET /api/alerts``.

``GET /metrics`` is the Prometheus text format (prometheus-client, a registry of the
monitor's own, filled at scrape time; the families are listed in ``metrics.py``):
gatherers (the local pipeline of ``run`` included), sources, sequence loss per exporter,
lookups, stages, windows, alerts, build info and the process. On the API port every
route needs the manager's bearer token or a console session, ``/metrics`` too. For a
scraper that has neither, ``manager.metrics_listen: 127.0.0.1:9108`` (or
``--metrics-listen``) opens a second listener that serves ``/metrics`` only, with no
authentication (``MetricsListener``); it is off by default, since metrics name the
deployment's gatherers, sources and exporters and a fixed default port would collide
between two managers on one host.

Other parts raise and clear alerts of their own kinds through ``alert(kind, subject,
detail)`` (one open alert per kind and subject; ``detail=None`` clears it): the report
windows raise ``window_incomplete`` when a window closes incomplete
(``manager/windows.py``). ``is_silent(name, since)`` is the silence rule for a gatherer
by name; one it never heard of counts as silent once the limit passed ``since``.

Gatherers are known from their heartbeats only: after a manager restart, one that never
comes back is not alerted on again, but its alert left open stays open.

Scheme::

    manager:
      monitor: {silence_intervals: 3, check_interval_s: 1.0}
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from netdistill.manager.jobs import Every
from netdistill.manager.tables import execute
from netdistill.store import Store

log = logging.getLogger(__name__)

SILENT = "gatherer_silent"

_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    id BIGINT PRIMARY KEY, raised_at TIMESTAMPTZ NOT NULL, kind VARCHAR NOT NULL,
    subject VARCHAR NOT NULL, detail VARCHAR, cleared_at TIMESTAMPTZ)
"""


class MonitorConfig(BaseModel):
    """``manager.monitor``: when a gatherer counts as silent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    silence_intervals: PositiveInt = Field(
        3, description="missed heartbeat intervals before a gatherer is alerted on"
    )
    check_interval_s: float = Field(1.0, gt=0, description="how often silence is checked")


def ensure_tables(store: Store) -> None:
    execute(store, _DDL)


def raise_alert(store: Store, kind: str, subject: str, detail: str, now: float) -> bool:
    """Open an alert of ``kind`` about ``subject`` unless one is open already (other
    parts of the manager, e.g. licences, raise theirs here); True when it was raised.
    Callers serialize their own calls for one (kind, subject)."""
    ensure_tables(store)
    open_ = store.query(
        "SELECT id FROM alerts WHERE kind = $k AND subject = $s AND cleared_at IS NULL",
        {"k": kind, "s": subject},
    ).num_rows
    if open_:
        return False
    execute(
        store,
        "INSERT INTO alerts SELECT coalesce(max(id), 0) + 1, to_timestamp(?), ?, ?, ?, NULL"
        " FROM alerts",
        (now, kind, subject, detail),
    )
    log.warning("ALERT %s %s: %s", kind, subject, detail)
    return True


def clear_alert(store: Store, kind: str, subject: str, now: float) -> None:
    """Close the open alert of ``kind`` about ``subject``, if any."""
    ensure_tables(store)
    execute(
        store,
        "UPDATE alerts SET cleared_at = to_timestamp(?) WHERE kind = ? AND subject = ?"
        " AND cleared_at IS NULL",
        (now, kind, subject),
    )


@dataclass
class GathererState:
    name: str
    first_seen: float
    last_seen: float
    heartbeat: dict[str, Any]
    address: str = ""
    heartbeats: int = 0
    silent: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def interval_s(self) -> float:
        return float(self.heartbeat.get("interval_s") or 10.0)

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "up": not self.silent,
            "address": self.address,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "seconds_since_last": round(now - self.last_seen, 3),
            "heartbeats": self.heartbeats,
            "version": self.heartbeat.get("version"),
            "last_heartbeat": self.heartbeat,
        }


class Monitor:
    """Heartbeat state and silence alerts of one manager.

    ``receive`` is called from API threads, ``check`` from the monitor thread (or a
    test); both take the monitor's lock. ``status_fn`` is the manager's own status.
    """

    def __init__(
        self,
        store: Store,
        config: MonitorConfig | None = None,
        *,
        status_fn: Callable[[], dict[str, Any]] = dict,
        admin_token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.admin_token = admin_token
        #: checks a gatherer's own credential (``GathererAuth.check(request, name)``),
        #: set by the process that knows the scheme's gatherers; raises HTTPException
        self.gatherer_auth: Callable[[Any, str], None] | None = None
        #: what differs between a heartbeat and this manager (``manager/versions.py``)
        self.compare: Callable[[dict[str, Any]], list[str]] | None = None
        self.config = config or MonitorConfig()
        self.status_fn = status_fn
        self._clock = clock
        self._lock = threading.Lock()
        self._gatherers: dict[str, GathererState] = {}
        #: ``WindowJob.late_records`` (set by the manager), asked at most once a minute
        self.window_late_fn: Callable[[], int] | None = None
        self._window_late: tuple[float, int] | None = None
        self.registry = _registry(self)
        ensure_tables(store)
        rows = store.query(
            "SELECT id, subject FROM alerts WHERE kind = $kind AND cleared_at IS NULL",
            {"kind": SILENT},
        ).to_pylist()
        self._open: dict[str, int] = {r["subject"]: r["id"] for r in rows}
        self._job = Every(self.config.check_interval_s, self.check, name="silence check")

    # --- heartbeats and alerts -------------------------------------------------------------

    def receive(self, heartbeat: dict[str, Any], address: str = "") -> None:
        name = str(heartbeat.get("gatherer") or "")
        if not name:
            raise ValueError("a heartbeat needs a 'gatherer' name")
        now = self._clock()
        with self._lock:
            state = self._gatherers.get(name)
            if state is None:
                state = GathererState(name, now, now, heartbeat, address)
                self._gatherers[name] = state
                log.info("gatherer %s: first heartbeat from %s", name, address or "?")
            silent_for = now - state.last_seen
            state.last_seen, state.heartbeat, state.address = now, heartbeat, address
            state.heartbeats += 1
            state.silent = False
            alert = self._open.pop(name, None)
            if alert is not None:
                execute(
                    self.store,
                    "UPDATE alerts SET cleared_at = to_timestamp(?) WHERE id = ?",
                    (now, alert),
                )
                log.warning("gatherer %s is back after %.1f s of silence", name, silent_for)

    def check(self) -> list[str]:
        """Raise an alert for each gatherer that just fell silent; return their names."""
        now = self._clock()
        raised = []
        with self._lock:
            for state in self._gatherers.values():
                limit = self.config.silence_intervals * state.interval_s
                if now - state.last_seen <= limit:
                    continue
                state.silent = True
                if state.name in self._open:
                    continue
                detail = (
                    f"no heartbeat for {now - state.last_seen:.1f} s "
                    f"({self.config.silence_intervals} intervals of {state.interval_s:g} s); "
                    f"last from {state.address or '?'}"
                )
                # the id is taken in the INSERT: alert stages (stages/alerts.py) write
                # this table too, so an id counted here could already be used
                execute(
                    self.store,
                    "INSERT INTO alerts SELECT coalesce(max(id), 0) + 1, to_timestamp(?), ?,"
                    " ?, ?, NULL FROM alerts",
                    (now, SILENT, state.name, detail),
                )
                self._open[state.name] = self.store.query(
                    "SELECT max(id) AS m FROM alerts WHERE kind = $k AND subject = $s",
                    {"k": SILENT, "s": state.name},
                ).to_pylist()[0]["m"]
                raised.append(state.name)
                log.warning("ALERT gatherer %s is silent: %s", state.name, detail)
        return raised

    def is_silent(self, name: str, since: float) -> bool:
        """No heartbeat from ``name`` for its silence limit (counted from ``since`` for a
        gatherer never heard of; its interval then taken as 10 s)."""
        now = self._clock()
        with self._lock:
            state = self._gatherers.get(name)
            interval = state.interval_s if state is not None else 10.0
            last = state.last_seen if state is not None else since
        return now - last > self.config.silence_intervals * interval

    def alert(self, kind: str, subject: str, detail: str | None) -> None:
        """Raise (``detail``) or clear (None) the one alert of ``kind`` on ``subject``."""
        now = self._clock()
        with self._lock:
            rows = self.store.query(
                "SELECT id FROM alerts WHERE kind = $k AND subject = $s AND cleared_at IS NULL",
                {"k": kind, "s": subject},
            ).to_pylist()
            if detail is None:
                for row in rows:
                    execute(
                        self.store,
                        "UPDATE alerts SET cleared_at = to_timestamp(?) WHERE id = ?",
                        (now, row["id"]),
                    )
                return
            if rows:
                return
            execute(
                self.store,
                "INSERT INTO alerts SELECT coalesce(max(id), 0) + 1, to_timestamp(?), ?,"
                " ?, ?, NULL FROM alerts",
                (now, kind, subject, detail),
            )
            log.warning("ALERT %s %s: %s", kind, subject, detail)

    def gatherers(self) -> list[dict[str, Any]]:
        now = self._clock()
        with self._lock:
            out = [s.as_dict(now) for s in sorted(self._gatherers.values(), key=lambda s: s.name)]
        if self.compare is not None:
            for gatherer in out:
                gatherer["mismatches"] = self.compare(gatherer["last_heartbeat"])
        return out

    def alerts(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        where = "WHERE cleared_at IS NULL" if open_only else ""
        table = self.store.query(
            "SELECT id, epoch(raised_at) AS raised_at, kind, subject, detail,"
            f" epoch(cleared_at) AS cleared_at FROM alerts {where} ORDER BY id"
        )
        return table.to_pylist()

    def start(self) -> None:
        self._job.start()

    def stop(self) -> None:
        self._job.stop()

    # --- Prometheus ------------------------------------------------------------------------

    def collect(self) -> Iterator[Any]:
        """The metric families of one scrape (prometheus-client's collector protocol)."""
        from netdistill.manager.metrics import families

        now = self._clock()
        with self._lock:
            states = [
                (s.name, s.silent, s.last_seen, s.heartbeat) for s in self._gatherers.values()
            ]
        commits = self.store.query(
            "SELECT count(*) AS n, coalesce(sum(rows), 0)::BIGINT AS r FROM _commits"
        ).to_pylist()[0]
        yield from families(
            now=now,
            gatherers=states,
            commits=commits,
            status=self.status_fn(),
            open_alerts=len(self._open),
            window_late_records=self._late_records(),
        )

    def _late_records(self) -> int | None:
        """A join of records with windows: cached for 60 s, so a 15-s scrape stays cheap."""
        if self.window_late_fn is None:
            return None
        now = time.monotonic()
        if self._window_late is None or now - self._window_late[0] >= 60.0:
            try:
                self._window_late = (now, self.window_late_fn())
            except Exception:
                log.exception("counting late records failed")
                return None
        return self._window_late[1]

    def metrics_text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def _authorize_heartbeat(self, request: Request, gatherer: str) -> None:
        """The manager's own token, or the named gatherer's credential."""
        import hmac

        given = request.headers.get("authorization", "")
        if self.admin_token and hmac.compare_digest(
            given.encode(), f"Bearer {self.admin_token}".encode()
        ):
            return
        if self.gatherer_auth is not None:
            self.gatherer_auth(request, gatherer)
            return
        raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    def heartbeat_router(self) -> APIRouter:
        """``POST /api/heartbeat[?gatherer=G]``: with its own check (see above), so a
        gatherer needs only its own credential, not the manager's token."""
        router = APIRouter()

        @router.post("/api/heartbeat")
        def post_heartbeat(
            body: dict[str, Any], request: Request, gatherer: str | None = None
        ) -> dict[str, Any]:
            name = str(body.get("gatherer") or "")
            if gatherer is not None and gatherer != name:
                raise HTTPException(400, f"heartbeat of {name!r} posted as {gatherer!r}")
            self._authorize_heartbeat(request, name)
            try:
                self.receive(body, request.client.host if request.client else "")
            except ValueError as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from None
            return {"ok": True, "received_at": self._clock()}

        return router

    def router(self) -> APIRouter:
        """``GET /api/gatherers``, ``GET /api/alerts``, ``GET /metrics`` (behind the token)."""
        from prometheus_client import CONTENT_TYPE_LATEST

        router = APIRouter()

        @router.get("/api/gatherers")
        def get_gatherers() -> list[dict[str, Any]]:
            return self.gatherers()

        @router.get("/api/alerts")
        def get_alerts(open: bool = False) -> list[dict[str, Any]]:
            return self.alerts(open_only=open)

        @router.get("/metrics")
        def get_metrics() -> Response:
            return Response(self.metrics_text(), media_type=CONTENT_TYPE_LATEST)

        return router


def _registry(monitor: Monitor) -> Any:
    """The monitor's families, the process (CPU, memory, files), Python and its GC."""
    from prometheus_client import (
        GCCollector,
        PlatformCollector,
        ProcessCollector,
    )
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(monitor)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricsListener:
    """``manager.metrics_listen``: ``GET /metrics`` with no authentication on its own
    address, for Prometheus; every other path is 404. One daemon thread; ``stop`` closes
    the socket."""

    def __init__(self, monitor: Monitor, host: str, port: int) -> None:
        import socket

        from prometheus_client import CONTENT_TYPE_LATEST

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                body = monitor.metrics_text()
                self.send_response(200)
                self.send_header("content-type", CONTENT_TYPE_LATEST)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("metrics listener: " + format, *args)

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

        try:
            self._server = Server((host, port), Handler)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot serve metrics on {host}:{port}: {exc.strerror}"
            ) from None
        address = self._server.server_address
        bound_host, self.port = str(address[0]), int(address[1])
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{self.port}/metrics"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
