"""Wiring of the ``netdistill manager`` process: store, plan, gatherer delivery, API.

Like ``manager/local.py`` for ``netdistill run``, but remote gatherers deliver through
``POST /api/ingest`` and fetch their part of the plan at ``GET /api/plan``. Sources the
scheme places on gatherer ``local`` (the default of a source's ``gatherer:``) run in this
process and commit straight to the store. The scheme's procedures run here, on every
batch before it is committed, whichever gatherer sent it (gatherers forward raw source
records). ``reload`` (SIGHUP, ``POST /api/scheme/reload``) re-reads the scheme and keeps
it as a scheme version when it changed (user ``sighup`` or the API caller); gatherers
pick up their new part by polling; procedure and stage changes take effect when the
manager restarts. A change through the console (``PUT /api/scheme``,
``console/scheme_api.py``) is applied live by ``apply_scheme``: the fields of every
source of the new scheme (on any gatherer) are created first, the local sources that
changed restart, the enhancer and the stages are rebuilt, the aging job is retuned, and
gatherers get their new part of the plan at their next poll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netdistill.console.scheme_api import SchemeEditor, scheme_router
from netdistill.console.scheme_pages import scheme_pages_router
from netdistill.delivery.pipeline import Pipeline
from netdistill.enhance.config import check_procedures_change
from netdistill.enhance.plan import build_enhancer
from netdistill.hierarchy.link import UpstreamLink
from netdistill.hierarchy.receive import StageReceiver
from netdistill.licence.admit import AdmittingSink, Exporters
from netdistill.manager.auth import GathererAuth
from netdistill.manager.ingest import Ingest, ingest_router
from netdistill.manager.main import Manager, retry_horizon_s
from netdistill.manager.plan import PlanService, ensure_scheme_fields, plan_router
from netdistill.scheme.diff import SchemeDiff
from netdistill.scheme.models import Scheme
from netdistill.sources.base import SourceContext, build_source
from netdistill.stages.runner import StageRunner
from netdistill.store import ensure_fields
from netdistill.store.duckdb import DuckDBStore

log = logging.getLogger(__name__)


@dataclass
class ManagerProcess:
    scheme_path: Path
    data_dir: Path
    store: DuckDBStore = field(init=False)
    plan: PlanService = field(init=False)
    manager: Manager = field(init=False)
    local: Pipeline | None = field(default=None, init=False)
    upstream: UpstreamLink | None = field(default=None, init=False)
    #: licence keys for tests (None: the vendor's built-in ones; no option reaches it)
    licence_keys: Any = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        from netdistill.scheme.load import load_scheme

        scheme = load_scheme(self.scheme_path)  # errors before anything opens
        self.scheme = scheme
        self.store = DuckDBStore(self.data_dir / scheme.store.path)
        self.plan = PlanService(self.scheme_path, self.store)
        self.auth = GathererAuth(lambda: self.plan.scheme, self.scheme_path.parent)
        # procedures run here, on the manager, for every source (a gatherer's included)
        self.enhancer = build_enhancer(scheme, self.store)
        # --- hierarchy (docs/hierarchy.md): the one place POP and central parts are wired.
        # As a central manager, POPs deliver stage output through /api/ingest (received
        # here); as a POP, chosen stages write their output to the upstream outbox in
        # their own transactions, and the link spools and forwards it to the parent.
        self.receiver = StageReceiver(self.store, lambda: self.plan.scheme)
        if scheme.upstream is not None:
            self.upstream = UpstreamLink(
                self.store,
                scheme.upstream,
                data_dir=self.data_dir,
                base_dir=self.scheme_path.parent,
            )
        self.ingest = Ingest(
            self.store,
            self.enhancer,
            quarantine_payload_bytes=scheme.manager.quarantine.payload_bytes,
            stage_output=self.receiver.commit,
        )
        stages = StageRunner.for_scheme(
            self.store, scheme, self.data_dir, self.enhancer, outbox=self._outbox()
        )
        self.manager = Manager(
            self.store,
            scheme.manager,
            data_dir=self.data_dir,
            status=self._status,
            stages=stages,
            licence_keys=self.licence_keys,
        )
        # licences and gatherer versions (licence/, manager/versions.py)
        self.auth.admit = self.manager.admit_gatherer
        self.exporters = Exporters(lambda: self.manager.licences, lambda: self.plan.scheme)
        self.ingest.admit = self.exporters
        self._set_horizon(scheme)
        self.ingest.on_mark = self.manager.watermarks.mark
        self.manager.windows.feeders = self._feeders
        self.manager.routers += [
            ingest_router(self.ingest, self.auth),
            plan_router(
                self.plan,
                self.auth,
                admin_token=self.manager.token,
                access=self.manager.console.access.authorize,
            ),
        ]
        self.editor = SchemeEditor(
            self.store,
            text=self.scheme_path.read_text(encoding="utf-8"),
            apply=self.apply_scheme,
            path=self.scheme_path,
        )
        self.plan.on_reload = self.editor.reloaded
        self.manager.guarded.append(scheme_router(self.editor))
        self.manager.routers.append(scheme_pages_router(self.manager.console.access))
        local = [s for s in scheme.sources if s.gatherer == "local"]
        if local:
            self._start_local([self._new_source(s, scheme) for s in local], scheme)
        self._start_monitor()
        self.manager.start()
        if self.upstream is not None:
            self.upstream.start()

    def _outbox(self) -> Any:
        return self.upstream.outbox if self.upstream is not None else None

    def _new_source(self, config: Any, scheme: Scheme) -> Any:
        context = SourceContext(self.data_dir / "state", scheme.manager.queue_datagrams)
        source = build_source(config, context)
        ensure_fields(self.store, source.fields, source=source.name)
        return source

    def _start_local(self, sources: list[Any], scheme: Scheme) -> None:
        config = scheme.manager
        self.local = Pipeline(
            sources,
            AdmittingSink(self.store, self.exporters),
            gatherer="local",
            interval_s=config.commit_interval_s,
            max_datagrams=config.max_batch_datagrams,
            process=self.enhancer,
            quarantine=config.quarantine,
            on_watermark=self.manager.watermarks.local,
        )
        self.local.start()

    def apply_scheme(self, new: Scheme) -> None:
        """Move the running manager to ``new`` (see the module docstring); raises
        ``ProcedureChangeError`` before touching anything if an enabled procedure's
        definition changed."""
        old = self.scheme
        check_procedures_change(old.procedures, new.procedures)
        # every source's fields, a gatherer's too, before anything changes (FieldError)
        ensure_scheme_fields(self.store, new)
        diff = SchemeDiff(old, new)
        local = diff.sources_on("local")  # the sources this process runs itself
        remove, add = local.to_stop, local.to_start
        flow = diff.flow_changed
        stages = self.manager.stages
        previous = self.enhancer
        if flow:
            enhancer = build_enhancer(new, self.store)
            added = [self._new_source(config, new) for config in add]
            self.enhancer = enhancer
            self.ingest.process = enhancer
            if self.local is not None:
                self.local.change_sources(remove, added, enhancer)
                self.manager.watermarks.forget_local(remove)
            elif added:
                self._start_local(added, new)
            stages = StageRunner.for_scheme(
                self.store, new, self.data_dir, enhancer, outbox=self._outbox()
            )
        if self.local is not None:
            self.local.interval_s = new.manager.commit_interval_s
            self.local.max_datagrams = new.manager.max_batch_datagrams
            self.local.configure_quarantine(new.manager.quarantine)
        self.ingest.quarantine_payload_bytes = new.manager.quarantine.payload_bytes
        self.manager.reconfigure(new.manager, stages)  # stops the old runner
        self._set_horizon(new)
        if flow and previous is not None:
            previous.close()
        self.plan.replace(new)
        self.scheme = new

    def _feeders(self) -> set[str]:
        """The gatherers a report window waits for: those the scheme gives sources."""
        return {
            s.gatherer
            for s in self.scheme.sources
            if s.gatherer == "local"
            or any(g.name == s.gatherer and not g.revoked for g in self.scheme.gatherers)
        }

    def _set_horizon(self, scheme: Scheme) -> None:
        """The aging job keeps ``_commits`` keys for the gatherers' longest retry."""
        lags = [g.forward.max_lag_s for g in scheme.gatherers]
        self.manager.aging.commit_horizon_s = retry_horizon_s(lags)

    def _start_monitor(self) -> None:
        """Gatherers post heartbeats with their own credential (as for ingest)."""
        self.manager.monitor.gatherer_auth = self.auth.check

    def reload(self) -> None:
        """SIGHUP (refused while an expired licence makes the manager read-only)."""
        if self.manager.licences.read_only():
            log.error("reload refused: %s", self.manager.licences.read_only())
            return
        try:
            self.plan.reload(user="sighup")
        except Exception as exc:
            log.error("reload failed, keeping the running scheme: %s", exc)

    def _status(self) -> dict[str, Any]:
        return {
            "ingest": self.ingest.status(),
            "scheme": {
                "path": str(self.scheme_path),
                "reloads": self.plan.reloads,
                "last_reload_error": self.plan.last_reload_error,
            },
            "refused_gatherers": self.auth.refused,
            "pops": self.receiver.status(),
            **({"upstream": self.upstream.status()} if self.upstream is not None else {}),
            **(self.local.status() if self.local is not None else {}),
        }

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()
        self.manager.stop()
        if self.upstream is not None:  # after the stages: their last output is spooled
            self.upstream.stop()
        if self.enhancer is not None:
            self.enhancer.close()
        self.store.close()


def serve_manager(scheme_path: Path, data_dir: Path, *, licence_keys: Any = None) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP reloads the scheme. ``licence_keys``: for tests
    only (see ``ManagerProcess``)."""
    import signal
    import sys
    import threading

    process = ManagerProcess(scheme_path, data_dir, licence_keys=licence_keys)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: process.reload())
    process.start()
    try:
        print(f"manager API on {process.manager.api_url}", file=sys.stderr, flush=True)
        if process.manager.metrics is not None:
            print(f"metrics on {process.manager.metrics.url}", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        process.stop()
