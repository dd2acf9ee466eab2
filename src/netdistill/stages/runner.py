"""Runs the manager's stages (merge, aggregate, rollup, alert) every
``manager.stages_interval_s``, in scheme order, from one thread.

Scheme order matters and is the operator's: a merge placed before an aggregate settles
records before the aggregate counts them. Each stage's ``run_once`` is one transaction
(``stages/base.py``); a failing stage is logged, shown in the status and tried again next
round, and does not stop the stages after it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import APIRouter, HTTPException

from netdistill.manager.jobs import Every
from netdistill.stages.base import ManagerStage, StageContext, ensure_state_table
from netdistill.stages.registry import STAGES
from netdistill.timing import DurationHistogram

log = logging.getLogger(__name__)


class StageRunner:
    def __init__(self, context: StageContext, *, interval_s: float = 1.0) -> None:
        self.context = context
        self.stages: list[ManagerStage] = [
            STAGES.runtime_class(config.type)(config, context)
            for config in context.scheme.stages
            if config.enabled and type(config).placement == "manager"
        ]
        # the scheme's `rating:` section runs as a stage right after the rollups it rates
        from netdistill.billing.rating import insert_rating_stage

        self.stages = insert_rating_stage(self.stages, context, self.run_once)
        self.errors: dict[str, str] = {}
        self.rounds = 0
        self.round_seconds = {stage.name: DurationHistogram() for stage in self.stages}
        self.last_round_s: dict[str, float] = {}
        self._lock = threading.Lock()  # run_once from the job and from the API/tests
        self._job = Every(interval_s, self.run_once, name="stages")
        ensure_state_table(context.store)
        for stage in self.stages:
            stage.ensure_tables()

    @classmethod
    def for_scheme(
        cls, store: Any, scheme: Any, data_dir: Any, enhancer: Any = None, outbox: Any = None
    ) -> StageRunner:
        """The runner of ``scheme``'s stages; ``enhancer`` (the pipeline's) enriches what
        a stage with ``output: records`` produces; ``outbox`` takes the output a POP
        forwards to its parent (``hierarchy/outbox.py``)."""
        context = StageContext(store, scheme, data_dir, outbox=outbox)
        if enhancer is not None:
            context.enhance = enhancer
        return cls(context, interval_s=scheme.manager.stages_interval_s)

    def run_once(self) -> dict[str, dict[str, int]]:
        """One round of every stage; returns each stage's counts."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            now = self.context.clock()
            for stage in self.stages:
                started = time.perf_counter()
                try:
                    out[stage.name] = stage.run_once(now)
                    self.errors.pop(stage.name, None)
                except Exception as exc:
                    self.errors[stage.name] = f"{type(exc).__name__}: {exc}"
                    log.exception("stage %s failed; will try again", stage.name)
                elapsed = time.perf_counter() - started
                self.last_round_s[stage.name] = elapsed
                self.round_seconds[stage.name].observe(elapsed)
            self.rounds += 1
        return out

    def get(self, name: str) -> Any:
        return next(s for s in self.stages if s.name == name)

    def start(self) -> None:
        if self.stages:
            self._job.start()

    def stop(self) -> None:
        if self.stages:
            self._job.stop()

    def status(self) -> dict[str, Any]:
        stages = [
            {
                **stage.status(),
                "name": stage.name,
                "error": self.errors.get(stage.name, ""),
                "last_round_s": self.last_round_s.get(stage.name),
                "round_seconds": self.round_seconds[stage.name].snapshot(),
            }
            for stage in self.stages
        ]
        if any(isinstance(s.get("watermark"), int) for s in stages):
            high = self.context.store.query(
                "SELECT coalesce(max(record_id), 0) AS m FROM records"
            ).to_pylist()[0]["m"]
            for s in stages:
                if isinstance(s.get("watermark"), int):
                    s["lag_records"] = max(0, int(high) - s["watermark"])
        return {"rounds": self.rounds, "stages": stages}


def stages_router(runner: StageRunner) -> APIRouter:
    """``GET /api/stages`` (status of every manager stage) and ``POST /api/stages/run``
    (one round now, e.g. after a top-up, rather than at the next interval)."""
    router = APIRouter()

    @router.get("/api/stages")
    def get_stages() -> dict[str, Any]:
        return runner.status()

    @router.post("/api/stages/run")
    def run_stages() -> dict[str, Any]:
        counts = runner.run_once()
        if runner.errors:
            raise HTTPException(status_code=500, detail={"counts": counts, **runner.errors})
        return {"counts": counts}

    for stage in runner.stages:  # a stage's own API (rollup periods, …), when it has one
        if hasattr(stage, "router"):
            router.include_router(stage.router())
    return router
