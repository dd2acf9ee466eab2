"""``netdistill run``: the manager, its embedded store and a local gatherer in one process.

Wiring only: the scheme decides the sources, the manager owns the store and the API,
the pipeline moves batches from the sources to the store, and the demo exporters (when
the scheme has a ``demo`` section) send synthetic NetFlow v9 and IPFIX on loopback.
Stopping commits everything received before it returns: nothing is lost.

``apply_scheme`` takes a new scheme live (``PUT /api/scheme``, ``console/scheme_api.py``):
only the sources that changed are stopped (after committing what they received) and
started again, the enhancer and the stage runner are rebuilt (stages keep their state
in the store), and the aging job takes the new retention.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from netdistill.console.scheme_api import SchemeEditor, scheme_router
from netdistill.console.scheme_pages import scheme_pages_router
from netdistill.delivery.pipeline import Pipeline
from netdistill.enhance.api import ProcedureBook, procedures_router
from netdistill.enhance.config import check_procedures_change
from netdistill.enhance.plan import build_enhancer
from netdistill.licence.admit import AdmittingSink, Exporters
from netdistill.manager.main import Manager
from netdistill.scheme.diff import SchemeDiff
from netdistill.scheme.load import demo_scheme_path, parse_scheme
from netdistill.scheme.models import Scheme
from netdistill.sources.base import SourceContext, build_source
from netdistill.stages.runner import StageRunner
from netdistill.store import ensure_fields
from netdistill.store.duckdb import DuckDBStore

log = logging.getLogger(__name__)


@dataclass
class LocalSystem:
    scheme: Scheme
    data_dir: Path
    demo: bool = True
    #: the scheme file, rewritten by a change through the console (None: the demo)
    scheme_path: Path | None = None
    store: DuckDBStore = field(init=False)
    manager: Manager = field(init=False)
    pipeline: Pipeline = field(init=False)
    exporters: list[Any] = field(default_factory=list)
    _stopped: bool = field(default=False, init=False)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = DuckDBStore(self.data_dir / self.scheme.store.path)
        config = self.scheme.manager
        context = SourceContext(self.data_dir / "state", config.queue_datagrams)
        sources = [build_source(self._resolved(s), context) for s in self.scheme.sources]
        for source in sources:
            ensure_fields(self.store, source.fields, source=source.name)
        enhancer = build_enhancer(self.scheme, self.store)
        # exporters admitted by the licence (licence/admit.py) before the store
        exporters = Exporters(lambda: self.manager.licences, lambda: self.scheme)
        self.pipeline = Pipeline(
            sources,
            AdmittingSink(self.store, exporters),
            gatherer="local",
            interval_s=config.commit_interval_s,
            max_datagrams=config.max_batch_datagrams,
            process=enhancer,
            quarantine=config.quarantine,
        )
        stages = StageRunner.for_scheme(self.store, self.scheme, self.data_dir, enhancer)
        self.enhancer = enhancer
        self.manager = Manager(
            self.store,
            config,
            data_dir=self.data_dir,
            status=self.pipeline.status,
            stages=stages,
        )
        # report windows close once the local sources delivered past them (windows.py)
        self.pipeline.on_watermark = self.manager.watermarks.local
        self.manager.windows.feeders = lambda: {"local"} if self.pipeline.sources else set()
        # behind the API guard, so console sessions can use it too
        self.procedures = ProcedureBook.from_scheme(self.scheme, on_change=self._procedures_changed)
        self.manager.guarded.append(procedures_router(self.procedures))
        self.editor = SchemeEditor(
            self.store, text=self._starting_text(), apply=self.apply_scheme, path=self.scheme_path
        )
        self.manager.guarded.append(scheme_router(self.editor))
        self.manager.routers.append(scheme_pages_router(self.manager.console.access))
        try:
            self.pipeline.start()
            self.manager.start()
            if self.demo and self.scheme.demo is not None:
                self._start_demo(sources)
        except BaseException:
            self.stop()
            raise

    def _starting_text(self) -> str:
        """Version 1's text: the scheme file, the demo, or (changed by command-line
        options) the running scheme written out."""
        if self.scheme_path is not None:
            return self.scheme_path.read_text(encoding="utf-8")
        demo = demo_scheme_path().read_text(encoding="utf-8")
        if parse_scheme(demo) == self.scheme:
            return demo
        data = self.scheme.model_dump(
            mode="json", exclude_unset=True, context={"secrets": "reference"}
        )
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def _procedures_changed(self, procedures: list[Any]) -> None:
        """A change on the procedures page: rebuild the enhancer from the running scheme
        (the old one's lookups are left to finish the batch in flight)."""
        self.scheme = self.scheme.model_copy(update={"procedures": procedures})
        self.enhancer = build_enhancer(self.scheme, self.store)
        self.pipeline.process = self.enhancer

    def _new_source(self, config: Any, manager: Any) -> Any:
        context = SourceContext(self.data_dir / "state", manager.queue_datagrams)
        source = build_source(self._resolved(config), context)
        ensure_fields(self.store, source.fields, source=source.name)
        return source

    def apply_scheme(self, new: Scheme) -> None:
        """Move the running system to ``new`` (see the module docstring); raises
        ``ProcedureChangeError`` before touching anything if an enabled procedure's
        definition changed."""
        old = self.scheme
        check_procedures_change(old.procedures, new.procedures)
        diff = SchemeDiff(old, new)
        sources = diff.all_sources  # ``run`` runs every source, whatever its gatherer
        add = sources.to_start
        previous = None
        flow = diff.flow_changed
        stages = self.manager.stages
        if flow:
            enhancer = build_enhancer(new, self.store)
            added = [self._new_source(config, new.manager) for config in add]
            previous = self.pipeline.process
            self.pipeline.change_sources(sources.to_stop, added, enhancer)
            self.manager.watermarks.forget_local(sources.to_stop)
            self.enhancer = enhancer
            stages = StageRunner.for_scheme(self.store, new, self.data_dir, enhancer)
        self.pipeline.interval_s = new.manager.commit_interval_s
        self.pipeline.max_datagrams = new.manager.max_batch_datagrams
        self.pipeline.configure_quarantine(new.manager.quarantine)
        self.manager.reconfigure(new.manager, stages)  # stops the old runner
        if previous is not None:  # nothing uses the old lookups any more
            previous.close()
        self.scheme = new
        # the procedures page follows the new scheme (its router holds this book)
        fresh = ProcedureBook.from_scheme(new, on_change=self._procedures_changed)
        self.procedures.__dict__.update(fresh.__dict__)
        log.warning("scheme applied live: %d source(s) restarted", len(add))

    def _resolved(self, config: Any) -> Any:
        """A file source's relative paths are relative to the data directory."""
        if config.type != "file":
            return config
        paths = [p if Path(p).is_absolute() else str(self.data_dir / p) for p in config.paths]
        return config.model_copy(update={"paths": paths})

    def _start_demo(self, sources: list[Any]) -> None:
        from netdistill.demo_devices import DemoFirewall, DemoNas, DemoProxy, demo_hosts

        demo = self.scheme.demo
        assert demo is not None
        first: dict[str, Any] = {}
        for source in sources:
            first.setdefault(source.config.type, source)
        if "netflow" in first:
            self._start_routers(first["netflow"].bound[0])
        hosts = demo_hosts([spec.seed for spec in demo.exporters] or [1])
        devices: list[Any] = []
        if demo.nas and "radius" in first:
            nas = _loopback(first["radius"].bound[0])
            devices.append(DemoNas(nas, demo.radius_secret.reveal(), hosts))
        udp = (
            [(h, p) for kind, h, p in first["syslog"].bound if kind == "udp"]
            if "syslog" in first
            else []
        )
        if demo.firewall and udp:
            devices.append(DemoFirewall(_loopback(udp[0]), hosts))
        files = first.get("file")
        if demo.proxy and files is not None and files.config.format == "squid":
            firewall = _loopback(udp[0]) if udp else None
            devices.append(DemoProxy(Path(files.config.paths[0]), hosts, firewall=firewall))
        for device in devices:
            device.start()
            self.exporters.append(device)

    def _start_routers(self, target: tuple[str, int]) -> None:
        from netdistill.demo import DemoExporter

        host, port = _loopback(target)
        assert self.scheme.demo is not None
        for index, spec in enumerate(self.scheme.demo.exporters):
            exporter = DemoExporter(
                (host, port),
                spec.protocol,
                domain_id=spec.observation_domain,
                # Each demo router sends from its own loopback address (127.0.0.11, .12 …)
                # so the collector sees distinct devices, as it would in a network.
                source_address=f"127.0.0.{11 + index}" if ":" not in host else "::1",
                rate_fps=spec.flows_per_second,
                seed=spec.seed,
            )
            exporter.start()
            self.exporters.append(exporter)

    def stop(self) -> None:
        """Stop in dependency order; safe to call more than once."""
        for exporter in self.exporters:
            exporter.stop()
        self.exporters.clear()
        if self._stopped:
            return
        self._stopped = True
        if hasattr(self, "pipeline"):
            self.pipeline.stop()
        if hasattr(self, "manager"):
            self.manager.stop()
        if hasattr(self, "store"):
            self.store.close()

    def summary(self) -> dict[str, Any]:
        status = self.pipeline.status()
        sources = status["sources"]
        dropped: dict[str, int] = {}
        datagrams = 0
        for source in sources:  # type: ignore[attr-defined]
            datagrams += source["datagrams"]
            for reason, n in source["dropped"].items():
                if n:
                    dropped[reason] = dropped.get(reason, 0) + n
        return {
            "records": status["committed_records"],
            "datagrams": datagrams,
            "dropped": dropped,
            "errors": status["errors"],
            "time": time.time(),
        }


def _loopback(bound: tuple[str, int]) -> tuple[str, int]:
    """Where a demo device sends to reach a socket bound to ``bound``."""
    host, port = bound
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return host, port
