"""Wiring of the ``netdistill gatherer`` process: plan → sources → spool → forwarders.

The gatherer fetches its part of the flow plan from a manager (``GET /api/plan``), keeps
the last one in ``<data-dir>/plan.json`` (so it starts and collects while every manager
is down), and polls for a new version. Each source runs in its own ``Pipeline`` whose
sink is the spool, so a changed plan stops only the sources that changed: a stopped
pipeline drains what its source received into the spool first, then the new source
starts; nothing is lost or doubled. One ``Forwarder`` per manager sends the spool on.
Every second the status is written to ``<data-dir>/gatherer-status.json``.

A manager may refuse the gatherer itself for good (403 with ``X-Netdistill-Refusal``:
the licence has no room for it, or it is older than ``manager.min_gatherer_version``;
``delivery/ack.py``). The refusal is logged as an error with the manager's message and
shown in the status (``refused``). Refused by every manager when it starts, the gatherer
does not start (``GathererRefused``: ``netdistill gatherer`` exits with status 3 and the
message, and the status file says why); refused later, it keeps collecting into its
spool and asks again every ``refused_retry_s``, so nothing is lost while an operator
installs a licence or upgrades it.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
from pydantic import TypeAdapter

from netdistill import __version__
from netdistill.delivery.ack import REFUSAL_HEADER, VERSION_HEADER
from netdistill.delivery.arrow import quarantine_to_table
from netdistill.delivery.entry import QUARANTINE, RECORDS
from netdistill.delivery.pipeline import Pipeline
from netdistill.delivery.wire import encode_records, encode_table
from netdistill.errors import GathererRefused, SpoolFull
from netdistill.gatherer.config import ForwardConfig, SpoolConfig
from netdistill.gatherer.deadletter import DeadLetters
from netdistill.gatherer.forward import Forwarder, destination_name
from netdistill.gatherer.spool import Spool
from netdistill.gatherer.totals import ReceivedTotals
from netdistill.gatherer.upgrade import Format1Entries
from netdistill.gatherer.watermark import WatermarkLog
from netdistill.records.batch import FieldSpec, Quarantined
from netdistill.records.fields import STANDARD_FIELDS
from netdistill.scheme.diff import NamedDiff
from netdistill.scheme.models import SourceConfig
from netdistill.sources.base import SourceContext, build_source
from netdistill.sources.quarantine import QuarantineLimits

log = logging.getLogger(__name__)


#: the registry types of the standard fields (the same on every manager)
STANDARD_TYPES = {f.name: f.type for f in STANDARD_FIELDS}


class SpoolSink:
    """The gatherer pipeline's sink: a batch is received once it is in the spool.

    Records are encoded here, once (wire format 2, ``delivery/wire.py``: columns by field
    name, each with its registry type: the standard fields' and those its source
    declares); the forwarders send the spooled bytes as they are, so every manager
    reads the same names and types, whatever ids its registry gives them. With the
    ``block`` policy a full spool makes ``commit`` wait up to ``wait_s`` and then raise
    ``SpoolFull``: the pipeline keeps the batch and stops polling that source until
    there is room."""

    def __init__(self, spool: Spool, gatherer: str, *, wait_s: float = 1.0) -> None:
        self.spool = spool
        self.gatherer = gatherer
        #: source name → column name → registry type
        self.types: dict[str, dict[str, str]] = {}
        self.wait_s = wait_s

    def declare(self, source: str, specs: Sequence[FieldSpec]) -> None:
        """The registry types of ``source``'s columns: the standard ones and ``specs``."""
        self.types[source] = {**STANDARD_TYPES, **{s.name: s.type for s in specs}}

    def _append(self, kind: int, origin: str, origin_seq: int, rows: int, payload: bytes) -> int:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                return self.spool.append(kind, origin, origin_seq, rows, payload)
            except SpoolFull:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def commit(self, batch: pa.Table, *, origin: str, sequence: int) -> int:
        declared = self.types.get(origin.partition("/")[2], STANDARD_TYPES)
        payload = encode_records(batch, declared)
        self._append(RECORDS, origin, sequence, batch.num_rows, payload)
        return batch.num_rows

    def commit_quarantine(self, items: Sequence[Quarantined]) -> int:
        if not items:
            return 0
        payload = encode_table(quarantine_to_table(items))
        self._append(QUARANTINE, f"{self.gatherer}/{items[0].source}", 0, 0, payload)
        return len(items)

    def last_sequence(self, origin: str) -> int:
        return self.spool.last_origin_seq(origin)


def source_filters(items: list[dict[str, Any]]) -> Any:
    """The pipeline's process hook for a source's filters from the plan (None: none)."""
    if not items:
        return None
    from netdistill.enhance.plan import Enhancer
    from netdistill.stages.filter import Filter

    return Enhancer([], {}, filters=[Filter.from_plan(item) for item in items])


class Gatherer:
    """The gatherer process's parts; ``start``/``stop`` own every thread it starts."""

    def __init__(
        self,
        name: str,
        managers: Sequence[str],
        *,
        token: str,
        data_dir: Path,
        ca: str | None = None,
    ) -> None:
        self.name = name
        self.managers = [m.rstrip("/") for m in managers]
        self.token = token
        self.data_dir = Path(data_dir)
        self.verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        self.plan: dict[str, Any] = {}
        #: source → ((its config, its filters) as the plan gave them, its pipeline)
        self.pipelines: dict[str, tuple[tuple[dict[str, Any], Any], Pipeline]] = {}
        self.forwarders: list[Forwarder] = []
        self.format1: Format1Entries | None = None
        self.plan_errors = 0
        self.last_plan_error = ""
        #: manager URL → its refusal of this gatherer (plan fetch), while it refuses
        self.refusals: dict[str, GathererRefused] = {}
        self.heartbeat: Any = None
        self.started_at = time.time()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._source_adapter: TypeAdapter[Any] = TypeAdapter(SourceConfig)
        #: per-source received counters across restarts (``totals.py``)
        self.totals = ReceivedTotals(self.data_dir / "state" / "received.json")
        #: how far in time each source has spooled everything (``watermark.py``)
        self.watermarks = WatermarkLog()
        #: batches a manager refused for good (``deadletter.py``)
        self.dead_letters = DeadLetters(self.data_dir / "dead-letter")

    # --- plan ------------------------------------------------------------------------------

    def fetch_plan(self) -> dict[str, Any] | None:
        for url in self.managers:
            try:
                response = httpx.get(
                    f"{url}/api/plan",
                    params={"gatherer": self.name},
                    headers={
                        "authorization": f"Bearer {self.token}",
                        VERSION_HEADER: __version__,
                    },
                    verify=self.verify,
                    timeout=10.0,
                )
            except httpx.HTTPError as exc:
                self.last_plan_error = f"{url}: {type(exc).__name__}: {exc}"
                continue
            refusal = response.headers.get(REFUSAL_HEADER)
            if response.status_code == 403 and refusal:
                self._refused(url, refusal, response)
                continue
            if url in self.refusals:
                log.warning("manager %s accepts this gatherer again", url)
                del self.refusals[url]
            if response.status_code == 200:
                plan: dict[str, Any] = response.json()
                return plan
            self.last_plan_error = f"{url}: {response.status_code} {response.text[:200]}"
            if response.status_code in (401, 403):
                log.error("manager %s refused this gatherer: %s", url, response.text[:200])
        self.plan_errors += 1
        return None

    def _refused(self, url: str, reason: str, response: httpx.Response) -> None:
        try:
            detail = str(response.json().get("detail") or "")
        except ValueError:
            detail = response.text[:300]
        refusal = GathererRefused(detail, reason=reason, manager=url)
        if url not in self.refusals or str(self.refusals[url]) != detail:
            log.error("manager %s REFUSES this gatherer (%s): %s", url, reason, detail)
        self.refusals[url] = refusal
        self.last_plan_error = f"{url}: refused ({reason}): {detail}"

    def refused_by_all(self) -> GathererRefused | None:
        """The refusal to stop with when every manager refuses this gatherer."""
        if not self.managers or any(url not in self.refusals for url in self.managers):
            return None
        messages = "; ".join(f"{url}: {self.refusals[url]}" for url in self.managers)
        reasons = {r.reason for r in self.refusals.values()}
        return GathererRefused(
            f"every manager refused gatherer {self.name!r}: {messages}",
            reason=", ".join(sorted(reasons)),
        )

    def _cached_plan(self) -> dict[str, Any] | None:
        try:
            plan: dict[str, Any] = json.loads((self.data_dir / "plan.json").read_text())
            return plan
        except (OSError, ValueError):
            return None

    def _save_plan(self, plan: dict[str, Any]) -> None:
        tmp = self.data_dir / "plan.json.tmp"
        tmp.write_text(json.dumps(plan))
        os.replace(tmp, self.data_dir / "plan.json")

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, *, wait_for_plan_s: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        old_plan = self._cached_plan()  # before a new plan replaces it (gatherer/upgrade.py)
        plan = self.fetch_plan()
        refused = self.refused_by_all()
        if refused is None:
            plan = plan or old_plan
        deadline = time.monotonic() + wait_for_plan_s
        while (
            plan is None
            and refused is None
            and time.monotonic() < deadline
            and not self._stop.is_set()
        ):
            time.sleep(0.5)
            plan = self.fetch_plan()
            refused = self.refused_by_all()
        if refused is not None:
            self._write_refused_status(refused)
            raise refused
        if plan is None:
            raise RuntimeError(f"no plan from any manager: {self.last_plan_error}")
        settings = plan.get("settings") or {}
        spool_config = SpoolConfig.model_validate(settings.get("spool") or {})
        self.forward_config = ForwardConfig.model_validate(settings.get("forward") or {})
        max_lag_bytes = self.forward_config.max_lag_bytes or spool_config.max_bytes // 2
        self.spool = Spool(
            self.data_dir / "spool",
            [destination_name(m) for m in self.managers],
            max_bytes=spool_config.max_bytes,
            segment_bytes=spool_config.segment_bytes,
            policy=spool_config.policy,
            fsync=spool_config.fsync,
            lag_limits={
                destination_name(m): (max_lag_bytes, self.forward_config.max_lag_s)
                for m in self.managers
            },
        )
        self.sink = SpoolSink(self.spool, self.name)
        self.format1 = Format1Entries.at_start(
            self.spool.directory, self.spool.next_seq(), old_plan
        )
        for url in self.managers:
            forwarder = Forwarder(
                self.spool,
                url,
                gatherer=self.name,
                token=self.token,
                config=self.forward_config,
                verify=self.verify,
                convert=self.format1.convert if self.format1 is not None else None,
                dead_letters=self.dead_letters,
                watermarks=self.watermarks,
            )
            forwarder.start()
            self.forwarders.append(forwarder)
        self.apply(plan)
        for target, name in ((self._poll_plan, "plan"), (self._write_status, "status")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        try:
            from netdistill.gatherer.heartbeat import HeartbeatSender
        except ImportError:
            return
        self.heartbeat = HeartbeatSender(
            self.managers,
            self.name,
            self.token,
            self.status,
            self.forward_config.heartbeat_interval_s,
            verify=self.verify,
        )
        self.heartbeat.start()

    def apply(self, plan: dict[str, Any]) -> None:
        """Make the running sources those of ``plan``: stop (draining into the spool)
        the ones removed or changed, start the new ones, leave the others running."""
        with self._lock:
            settings = plan.get("settings") or {}
            wanted = {s["name"]: s for s in plan.get("sources", [])}
            # a source's filters (stages/filter.py) run here, before the spool
            filters = {
                name: [f for f in plan.get("filters", []) if f["input"] == name] for name in wanted
            }
            running = {name: config for name, (config, _) in self.pipelines.items()}
            diff = NamedDiff.of(running, {n: (raw, filters[n]) for n, raw in wanted.items()})
            for name in diff.to_stop:
                pipeline = self.pipelines.pop(name)[1]
                pipeline.stop()
                self.watermarks.stopped(name, self.spool.next_seq())
                for source in pipeline.sources:
                    self.totals.stopped(source.name, source.counters)
                log.warning("source %s stopped (plan %s)", name, plan.get("version"))
            # manager.quarantine: the cap applies here, before the spool
            quarantine = QuarantineLimits.model_validate(settings.get("quarantine") or {})
            for _, running_pipeline in self.pipelines.values():
                running_pipeline.configure_quarantine(quarantine)
            for raw, _ in diff.to_start:
                name = raw["name"]
                config = self._source_adapter.validate_python(raw)
                context = SourceContext(
                    self.data_dir / "state", int(settings.get("queue_datagrams", 500_000))
                )
                source = build_source(config, context)
                self.sink.declare(name, source.fields)
                pipeline = Pipeline(
                    [source],
                    self.sink,
                    gatherer=self.name,
                    interval_s=float(settings.get("commit_interval_s", 0.5)),
                    max_datagrams=int(settings.get("max_batch_datagrams", 20_000)),
                    process=source_filters(filters[name]),
                    quarantine=quarantine,
                    on_watermark=self._watermark,
                )
                pipeline.start()
                self.pipelines[name] = ((raw, filters[name]), pipeline)
                log.warning("source %s started (plan %s)", name, plan.get("version"))
            self.plan = plan
            self._save_plan(plan)

    def _watermark(self, source: str, began: float) -> None:
        """A pipeline spooled everything ``source`` received before ``began``."""
        self.watermarks.advance(source, self.spool.next_seq(), began)

    def _poll_plan(self) -> None:
        while not self._stop.wait(self.forward_config.plan_poll_s):
            plan = self.fetch_plan()
            if plan is not None and plan.get("version") != self.plan.get("version"):
                try:
                    self.apply(plan)
                except Exception:
                    log.exception("applying plan %s failed", plan.get("version"))

    def _write_refused_status(self, refused: GathererRefused) -> None:
        """The status file of a gatherer that does not start: why."""
        status = {
            "gatherer": self.name,
            "version": __version__,
            "started": False,
            "refused": self._refused_status(),
            "alerts": [str(refused)],
        }
        path = self.data_dir / "gatherer-status.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        os.replace(tmp, path)

    def _refused_status(self) -> list[dict[str, str]]:
        """Every manager's refusal of this gatherer (plan fetch or delivery)."""
        out = [
            {"manager": url, "reason": r.reason, "message": str(r)}
            for url, r in self.refusals.items()
        ]
        seen = {r["manager"] for r in out}
        for forwarder in self.forwarders:
            if forwarder.refused_gatherer and forwarder.url not in seen:
                out.append(
                    {"manager": forwarder.url, "reason": "", "message": forwarder.refused_gatherer}
                )
        return out

    def _write_status(self) -> None:
        path = self.data_dir / "gatherer-status.json"
        while not self._stop.wait(1.0):
            try:
                with self._lock:
                    self.totals.save(self._running_counters())
                cursors = [self.spool.cursor(f.spool_destination) for f in self.forwarders]
                self.watermarks.prune(min(cursors, default=0))
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self.status(), default=str))
                os.replace(tmp, path)
            except Exception:
                log.exception("writing the status file failed")

    def stop(self) -> None:
        self._stop.set()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        with self._lock:
            for _, pipeline in self.pipelines.values():
                pipeline.stop()
            self.totals.save(self._running_counters())
        for thread in self._threads:
            thread.join(timeout=15)
        for forwarder in self.forwarders:
            forwarder.stop()
        if hasattr(self, "spool"):
            (self.data_dir / "gatherer-status.json").write_text(json.dumps(self.status()))
            self.spool.close()

    # --- status ----------------------------------------------------------------------------

    def _running_counters(self) -> dict[str, Any]:
        return {s.name: s.counters for _, p in list(self.pipelines.values()) for s in p.sources}

    def status(self) -> dict[str, Any]:
        pipelines = [p.status() for _, p in list(self.pipelines.values())]
        spool = self.spool.status()
        forwarders = self._forwarder_status()
        dead_letter = self.dead_letters.summary()
        return {
            "gatherer": self.name,
            "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 1),
            "plan_version": self.plan.get("version"),
            "plan_errors": self.plan_errors,
            "last_plan_error": self.last_plan_error,
            # managers refusing this gatherer for good (licence, version)
            "refused": self._refused_status(),
            "committed_records": sum(int(p["committed_records"]) for p in pipelines),  # type: ignore[call-overload]
            "errors": sum(int(p["errors"]) for p in pipelines),  # type: ignore[call-overload]
            "last_error": next((p["last_error"] for p in pipelines if p["last_error"]), ""),
            "sources": [s for p in pipelines for s in p["sources"]],  # type: ignore[attr-defined]
            "filters": [f for p in pipelines for f in p["filters"]],  # type: ignore[attr-defined]
            # since the first start, across restarts and plan changes
            "received_totals": self.totals.current(self._running_counters()),
            "spool": {
                **spool,
                "depth_batches": max(
                    (f["pending_batches"] for f in self._forwarder_status()), default=0
                ),
                "depth_bytes": spool["bytes"],
                "dropped": {"spool_full": spool["dropped_records"]}
                if spool["dropped_records"]
                else {},
            },
            "watermarks": self.watermarks.spooled(),
            "dead_letter": dead_letter,
            "alerts": (["spool full"] if spool["full"] else [])
            + [
                f"manager {r['manager']} refuses this gatherer: {r['message']}"
                for r in self._refused_status()
            ]
            + [
                f"manager {f['url']} is behind: {f['not_delivered_records']} records not "
                "delivered to it (lag limit)"
                for f in forwarders
                if f["behind"]
            ]
            + (
                [
                    f"{dead_letter['batches']} batch(es) refused for good in the dead-letter "
                    "area (netdistill gatherer dead-letter list)"
                ]
                if dead_letter["batches"]
                else []
            ),
            "managers": forwarders,
            **(self.format1.status() if self.format1 is not None else {}),
        }

    def _forwarder_status(self) -> list[dict[str, Any]]:
        return [f.status() for f in self.forwarders]


def serve_gatherer(gatherer: Gatherer) -> None:
    """Run until SIGTERM/SIGINT; stopping drains every source into the spool."""
    import signal
    import sys

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    gatherer.start()
    try:
        print(
            f"gatherer {gatherer.name}: plan {gatherer.plan.get('version')}, "
            f"{len(gatherer.pipelines)} source(s), managers {', '.join(gatherer.managers)}",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            pass
    finally:
        gatherer.stop()
