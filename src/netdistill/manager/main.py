"""Wiring of the manager process: store, API server, aging job.

``Manager`` receives what it uses (an open store, a status provider, a clock) and owns
the threads it starts; ``stop`` ends them and closes nothing it was given.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import uvicorn
from fastapi import APIRouter, HTTPException, Request
from starlette.requests import Request as StarletteRequest

from netdistill import __version__
from netdistill.console.app import Console
from netdistill.errors import LicenceError
from netdistill.licence.api import ReadOnlyGuard, licences_router
from netdistill.licence.book import LicenceBook
from netdistill.manager.api import create_app
from netdistill.manager.discovery import (
    ManagerInfo,
    remove_manager_info,
    write_manager_info,
)
from netdistill.manager.jobs import Every
from netdistill.manager.monitor import MetricsListener, Monitor
from netdistill.manager.versions import REFUSAL_HEADER, VERSION_HEADER, GathererVersions
from netdistill.manager.watermarks import Watermarks
from netdistill.manager.windows import WindowJob
from netdistill.reports.api import reports_router
from netdistill.scheme.models import ManagerConfig
from netdistill.stages.runner import StageRunner, stages_router
from netdistill.store import Store

log = logging.getLogger(__name__)


#: margin added to the longest ``forward.max_lag_s`` to make the retry horizon
RETRY_MARGIN_S = 86400.0


def retry_horizon_s(forward_max_lag_s: Sequence[float]) -> float:
    """How long after its commit a batch may still be resent by a gatherer.

    A gatherer resends an entry until this manager acknowledges it; an entry this manager
    committed but whose answer was lost is resent at the next try. A gatherer skips the
    entries older than its ``forward.max_lag_s`` for a manager that is that far behind
    (while another keeps up), so ``max_lag_s`` bounds how long an unacknowledged entry is
    offered; the horizon is the longest ``max_lag_s`` of the scheme's gatherers (the
    default's when none is set) plus ``RETRY_MARGIN_S``. Not covered: a gatherer that was
    down, or that no manager acknowledged, for longer than that, holding a batch this
    manager committed just before (docs/delivery.md, limits)."""
    from netdistill.gatherer.config import ForwardConfig

    return max([ForwardConfig().max_lag_s, *forward_max_lag_s]) + RETRY_MARGIN_S


class AgingJob:
    """Deletes records older than the retention, and the ``_commits`` idempotency keys
    older than the retry horizon (``retry_horizon_s``), every ``interval_s``."""

    def __init__(
        self,
        store: Store,
        *,
        retention_s: float,
        interval_s: float,
        commit_horizon_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.retention_s = retention_s
        self.interval_s = interval_s
        self.commit_horizon_s = (
            retry_horizon_s([]) if commit_horizon_s is None else commit_horizon_s
        )
        self._clock = clock
        self.deleted = 0
        self.pruned_commits = 0
        self.last_run: float | None = None
        self._job = Every(interval_s, self.run_once, name="aging")

    def run_once(self) -> int:
        deleted = self.store.age(self.retention_s)
        self.deleted += deleted
        pruned = self.store.prune_commits(self._clock() - self.commit_horizon_s)
        self.pruned_commits += pruned
        self.last_run = self._clock()
        if deleted:
            log.info(
                "aging deleted %d records older than %.1f days", deleted, self.retention_s / 86400
            )
        if pruned:
            log.info(
                "aging forgot %d commit keys older than %.1f days (retry horizon)",
                pruned,
                self.commit_horizon_s / 86400,
            )
        return deleted

    def start(self) -> None:
        self._job.start()

    def stop(self) -> None:
        self._job.stop()

    def configure(self, *, retention_s: float, interval_s: float) -> None:
        """A new retention takes effect at the next round; a new interval restarts the job."""
        self.retention_s = retention_s
        if interval_s != self.interval_s:
            self._job.stop()
            self.interval_s = interval_s
            self._job = Every(interval_s, self.run_once, name="aging")
            self._job.start()


class _CurrentStages:
    """The manager's stage runner of the moment, for the stages API."""

    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager.stages, name)


class Manager:
    """The manager's API and jobs around an open store."""

    def __init__(
        self,
        store: Store,
        config: ManagerConfig,
        *,
        data_dir: Path,
        status: Callable[[], dict[str, Any]] | None = None,
        routers: Sequence[APIRouter] = (),
        stages: StageRunner | None = None,
        licence_keys: Mapping[str, Any] | None = None,
    ) -> None:
        """``licence_keys``: the keys licences are verified with, for tests only (the
        default, None, is the vendor's built-in keys; no option or setting reaches it)."""
        self.routers = list(routers)
        #: routers behind the API guard (bearer token or a console session)
        self.guarded: list[APIRouter] = []
        self.stages = stages
        self.store = store
        self.config = config
        self.data_dir = data_dir
        self.started_at = time.time()
        self._extra_status = status or (lambda: {})
        self.token = secrets.token_urlsafe(24)
        self.aging = AgingJob(
            store, retention_s=config.retention_days * 86400, interval_s=config.aging_interval_s
        )
        #: how far each gatherer delivered everything here (marks, the local pipeline)
        self.watermarks = Watermarks()
        self.windows = WindowJob(store, config.windows, watermarks=self.watermarks)
        self.monitor = Monitor(store, config.monitor, status_fn=self.status, admin_token=self.token)
        self.windows.silent = self.monitor.is_silent
        self.windows.alert = self.monitor.alert
        self.console = Console(store, token=self.token, query_limits=lambda: self.config.query)
        self.monitor.window_late_fn = self.windows.late_records
        # licences (licence/book.py) and gatherer versions (manager/versions.py)
        self.licences = (
            LicenceBook(store)
            if licence_keys is None
            else LicenceBook(store, trusted_keys=licence_keys)
        )
        self.versions = GathererVersions(lambda: self.config.min_gatherer_version)
        self.monitor.compare = self.versions.compare
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.api_url = ""
        self.metrics: MetricsListener | None = None

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 1),
            "store": str(getattr(self.store, "path", "")),
            "aging": {
                "retention_days": self.config.retention_days,
                "deleted": self.aging.deleted,
                "last_run": self.aging.last_run,
                "commit_horizon_s": self.aging.commit_horizon_s,
                "pruned_commits": self.aging.pruned_commits,
            },
            "windows": self.windows.status(),
            "licence": self.licences.status(),
            "gatherers": self.versions.status(self.monitor.gatherers()),
            **({"stages": self.stages.status()} if self.stages is not None else {}),
            **self._extra_status(),
        }

    def admit_gatherer(self, request: Request, gatherer: str) -> None:
        """A gatherer's credential was accepted: refuse it for good (403 with
        ``X-Netdistill-Refusal``) when it is older than ``min_gatherer_version`` or the
        licence has no room for it."""
        refusal = self.versions.check(gatherer, request.headers.get(VERSION_HEADER))
        if refusal:
            raise HTTPException(403, detail=refusal, headers={REFUSAL_HEADER: "version"})
        try:
            self.licences.admit_gatherer(gatherer)
        except LicenceError as exc:
            raise HTTPException(403, detail=str(exc), headers={REFUSAL_HEADER: "licence"}) from None

    def start(self) -> None:
        app = create_app(
            self.store,
            token=self.token,
            status=self.status,
            quarantine_payload_bytes=lambda: self.config.quarantine.payload_bytes,
            routers=[*self.routers, self.monitor.heartbeat_router()],
            guarded=[
                self.monitor.router(),
                self.windows.router(),
                reports_router(self.store, limits=lambda: self.config.query),
                # through the current runner, which a scheme change replaces
                *(
                    [stages_router(cast(StageRunner, _CurrentStages(self)))]
                    if self.stages is not None
                    else []
                ),
                licences_router(self.licences),
                *self.guarded,
            ],
            access=self.console.access.authorize,
            query_limits=lambda: self.config.query,
        )
        # before the console's middleware, so it runs inside it
        app.add_middleware(
            ReadOnlyGuard,
            book=self.licences,
            authenticated=lambda scope: (
                self.console.access.principal(StarletteRequest(scope)) is not None
            ),
        )
        self.console.mount(app)
        family = socket.AF_INET6 if ":" in self.config.api_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.api_host, self.config.api_port))
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno,
                f"cannot serve the API on {self.config.api_host}:{self.config.api_port}: "
                f"{exc.strerror} (choose another with --ui-port)",
            ) from None
        sock.listen(128)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        tls = self.config.tls
        self.api_url = f"{'https' if tls else 'http'}://{shown}:{port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            log_config=None,  # uvicorn's records go through the CLI's handler (json too)
            access_log=False,
            lifespan="off",
            # uvicorn believes X-Forwarded-* from 127.0.0.1 unless told otherwise: a local
            # user could then pose as any address (login limits are per address)
            proxy_headers=bool(self.config.trusted_proxies),
            forwarded_allow_ips=list(self.config.trusted_proxies) or None,
            ssl_certfile=tls.cert if tls else None,
            ssl_keyfile=tls.key if tls else None,
            ssl_keyfile_password=(
                tls.key_password.reveal() if tls and tls.key_password is not None else None
            ),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="api", daemon=True
        )
        self._thread.start()
        deadline = time.time() + 10
        while not self._server.started and time.time() < deadline:
            time.sleep(0.01)
        if self.config.metrics_listen:
            from netdistill.sources.listen import parse_listen_address

            try:
                host, port = parse_listen_address(self.config.metrics_listen, default_port=9108)
            except ValueError as exc:
                raise OSError(f"manager.metrics_listen: {exc}") from None
            self.metrics = MetricsListener(self.monitor, host, port)
            self.metrics.start()
        write_manager_info(
            self.data_dir,
            ManagerInfo(os.getpid(), self.api_url, self.token, ca=tls.cert if tls else None),
        )
        self.aging.run_once()
        self.aging.start()
        self.windows.start()
        self.monitor.start()
        self.licences.check()
        self.licences.start()
        if self.stages is not None:
            self.stages.start()

    def _stages_routers(self) -> list[APIRouter]:
        """The stages API, through the runner of the moment (a scheme change replaces it)."""
        if self.stages is None:
            return []
        return [stages_router(cast(StageRunner, _CurrentStages(self)))]

    def reconfigure(self, config: ManagerConfig, stages: StageRunner | None) -> None:
        """Take a new scheme's manager settings and stage runner live (the API socket,
        windows and monitor stay as started: changing them needs a restart)."""
        self.config = config
        self.aging.configure(
            retention_s=config.retention_days * 86400, interval_s=config.aging_interval_s
        )
        if stages is not self.stages:
            if self.stages is not None:
                self.stages.stop()
            self.stages = stages
            if stages is not None and self._thread is not None:
                stages.start()

    def stop(self) -> None:
        remove_manager_info(self.data_dir, os.getpid())
        if self.metrics is not None:
            self.metrics.stop()
        self.aging.stop()
        if self.stages is not None:
            self.stages.stop()
        self.windows.stop()
        self.monitor.stop()
        self.licences.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
