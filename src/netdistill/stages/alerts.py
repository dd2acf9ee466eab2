"""The ``alert`` stage: rules over usage, balances, gatherers and the quarantine, whose
alerts cease a service and provide it again (seed 003, claims 6–9 and 15–18: an alert
on an event, on a value passing a predetermined amount, that says a service should be
ceased or provided).

Rules (``rule``):

* ``usage_over_balance`` — per ``per`` value (an account), ``measure`` (``sum(bytes)``,
  ``sum(duration_s)``, ``count(*)``-like ``count(field)``, ``max(field)``) over the
  records of this ``period`` (``day``/``month`` in UTC, by ``coalesce(end_time,
  start_time)``, or ``all``) that match ``where`` (the expression language of
  ``expr/``), compared with the account's ``balance`` column in ``balances``
  (``balances.py``). Firing while usage > balance; an account without a balance never
  fires. A top-up or a new period ends it. Each round runs one DuckDB ``GROUP BY``
  (per account and the fields ``where`` reads), then filters and sums those groups.
  With ``balance: prepaid_money`` the balance is money the rating stage has already
  decremented by what rated usage costs (docs/rating.md): the rule fires while an
  account's ``prepaid_money`` is below zero, and ``measure``, ``where`` and ``period``
  do not apply.
* ``gatherer_silent`` — follows the monitor's ``gatherer_silent`` alerts
  (``manager/monitor.py``): runs ``actions`` when the monitor raises one and
  ``restore`` when it clears it. This rule writes no alerts of its own.
* ``quarantine_growing`` — firing while at least ``threshold`` inputs were quarantined
  in the last ``window_s`` seconds (subject ``quarantine``).

De-duplication and durability: alerts live in the ``alerts`` table shared with the
monitor (``kind`` = the stage's name), at most one open alert per (stage, subject) for as
long as the condition holds. Only transitions act: raising queues one task per entry
of ``actions``, clearing queues one per entry of ``restore`` (and cancels the raise's
tasks still pending). Alerts, cleared times and tasks are written in one transaction
per round, so a restart neither loses nor re-fires them. Tasks then run outside the
transaction (network I/O); each attempt's outcome is one row of ``alert_actions``
(alert id, action, transition, attempt, started/finished, ok/failed, detail). A failed
task is retried after ``retry_s``, doubling each time, at most ``max_attempts`` times.

Scheme::

    stages:
      - name: over-quota
        type: alert
        rule: usage_over_balance
        measure: sum(bytes)
        where: "service != 'voip'"
        balance: quota_bytes
        period: month
        per: account_id
        balances: {alice: {quota_bytes: 50000000000}}
        actions: [{radius: {request: disconnect, secret: s3cret}}, {log: {}}]
        restore: [{radius: {request: coa, secret: s3cret, attributes: {Filter-Id: std}}}]
      - {name: quarantine, type: alert, rule: quarantine_growing, threshold: 100,
         window_s: 60, actions: [{webhook: {url: "http://127.0.0.1:9000/hook"}}]}
"""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl
from fastapi import APIRouter
from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from netdistill.errors import ExprError
from netdistill.expr import compile_predicate, parse
from netdistill.expr.parse import Field as ExprField
from netdistill.manager.monitor import SILENT
from netdistill.manager.monitor import ensure_tables as ensure_alerts_table
from netdistill.stages import balances as balance_store
from netdistill.stages.actions import Action, ActionEntry, AlertEvent, Outcome, build_action
from netdistill.stages.base import StageConfigBase, StageContext, load_watermark, save_watermark
from netdistill.store.duckdb import StoreWriter

log = logging.getLogger(__name__)

_MEASURE = re.compile(r"^\s*(sum|count|max|min)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$")
#: how the per-group partial results of the GROUP BY combine
_COMBINE = {"sum": "sum", "count": "sum", "max": "max", "min": "min"}

_DDL = """
CREATE TABLE IF NOT EXISTS alert_tasks (
    rule VARCHAR NOT NULL, alert_id BIGINT NOT NULL, transition VARCHAR NOT NULL,
    action_index INTEGER NOT NULL, action VARCHAR NOT NULL, subject VARCHAR NOT NULL,
    detail VARCHAR, event_at DOUBLE NOT NULL, attempts INTEGER NOT NULL, next_at DOUBLE NOT NULL,
    state VARCHAR NOT NULL, PRIMARY KEY (rule, alert_id, transition, action_index));
CREATE TABLE IF NOT EXISTS alert_actions (
    id BIGINT PRIMARY KEY, alert_id BIGINT NOT NULL, rule VARCHAR NOT NULL,
    action VARCHAR NOT NULL, action_index INTEGER NOT NULL, transition VARCHAR NOT NULL,
    attempt INTEGER NOT NULL, started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL, outcome VARCHAR NOT NULL, detail VARCHAR)
"""


class AlertConfig(StageConfigBase):
    type: Literal["alert"] = "alert"
    placement: ClassVar[str] = "manager"

    rule: Literal["usage_over_balance", "gatherer_silent", "quarantine_growing"]
    measure: str = Field("sum(bytes)", description="sum|count|max|min(field) per account")
    where: str = Field("", description="which records count (expression language)")
    balance: Literal["quota_bytes", "prepaid_seconds", "prepaid_money"] = "quota_bytes"
    period: Literal["day", "month", "all"] = "month"
    per: str = Field("account_id", pattern=r"^[a-z][a-z0-9_]*$")
    threshold: PositiveInt = Field(100, description="quarantine_growing: inputs in window_s")
    window_s: PositiveFloat = 60.0
    actions: list[ActionEntry] = Field(default_factory=list, description="run when raised")
    restore: list[ActionEntry] = Field(default_factory=list, description="run when cleared")
    max_attempts: PositiveInt = 5
    retry_s: PositiveFloat = Field(10.0, description="first retry delay; doubles each time")
    balances: dict[str, balance_store.BalanceSeed] = Field(default_factory=dict)
    balances_csv: str | None = Field(None, description="relative to the data directory")

    @field_validator("name")
    @classmethod
    def _not_the_monitor(cls, value: str) -> str:
        if value == SILENT:
            raise ValueError(f"{SILENT!r} is the monitor's alert kind; name the stage otherwise")
        return value

    @field_validator("measure")
    @classmethod
    def _check_measure(cls, value: str) -> str:
        if not _MEASURE.match(value):
            raise ValueError(f"measure {value!r}: expected sum|count|max|min(field)")
        return value

    @field_validator("where")
    @classmethod
    def _check_where(cls, value: str) -> str:
        if value.strip():
            try:
                parse(value)
            except ExprError as exc:
                raise ValueError(f"where {value!r}: {exc}") from None
        return value


def period_start(now: float, period: str) -> float | None:
    """Start of the UTC day/month holding ``now``; None for ``all``."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    if period == "month":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    return None


def _fields_read(node: Any) -> set[str]:
    """Names of the record fields an expression tree reads."""
    if isinstance(node, ExprField):
        return {node.name}
    found: set[str] = set()
    if dataclasses.is_dataclass(node):
        for item in dataclasses.fields(node):
            value = getattr(node, item.name)
            values = value if isinstance(value, tuple) else (value,)
            for child in values:
                found |= _fields_read(child)
    return found


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


class AlertStage:
    """See the module doc. Driven by ``StageRunner`` from one thread."""

    def __init__(self, config: AlertConfig, context: StageContext) -> None:
        self.config = config
        self.name = config.name
        self.context = context
        self.store = context.store
        self.actions: list[Action] = [build_action(a, context) for a in config.actions]
        self.restore: list[Action] = [build_action(a, context) for a in config.restore]
        self.counts = {"raised": 0, "cleared": 0, "actions_ok": 0, "actions_failed": 0}
        types = {f.name: f.type for f in self.store.fields}
        self._predicate: pl.Expr | None = None
        self._where_fields: list[str] = []
        if config.rule == "usage_over_balance":
            function, field = _MEASURE.match(config.measure).groups()  # type: ignore[union-attr]
            for name in (field, config.per):
                if name not in types:
                    raise ValueError(f"stage {self.name!r}: records have no field {name!r}")
            self._function, self._field = function, field
            if config.where.strip():
                self._predicate = compile_predicate(config.where, types)
                self._where_fields = sorted(_fields_read(parse(config.where)) - {config.per})

    # --- lifecycle -------------------------------------------------------------------------

    def ensure_tables(self) -> None:
        ensure_alerts_table(self.store)
        balance_store.ensure_tables(self.store)
        with self.store.transaction() as tx:
            tx.execute(_DDL)
        seeds = dict(self.config.balances)
        if self.config.balances_csv:
            path = Path(self.config.balances_csv)
            seeds.update(
                balance_store.read_csv(path if path.is_absolute() else self.context.data_dir / path)
            )
        if seeds:
            balance_store.seed_balances(self.store, seeds, f"scheme:{self.name}")

    def router(self) -> APIRouter:
        """The balances API, mounted once: by the first alert stage of the scheme (the
        others give an empty router)."""
        first = next(s for s in self.context.scheme.stages if s.type == "alert" and s.enabled)
        if first.name != self.name:
            return APIRouter()
        return balance_store.balances_router(self.store)

    def status(self) -> dict[str, Any]:
        open_alerts = (
            self.store.query(
                "SELECT count(*) AS n FROM alerts WHERE kind = $k AND cleared_at IS NULL",
                {"k": SILENT if self.config.rule == "gatherer_silent" else self.name},
            )
            .column("n")[0]
            .as_py()
        )
        return {"type": "alert", "rule": self.config.rule, "open": open_alerts, **self.counts}

    # --- one round -------------------------------------------------------------------------

    def run_once(self, now: float) -> dict[str, int]:
        if self.config.rule == "gatherer_silent":
            raised, cleared = self._follow_monitor(now)
        else:
            firing = (
                self._usage(now)
                if self.config.rule == "usage_over_balance"
                else self._quarantine(now)
            )
            raised, cleared = self._transitions(firing, now)
        ok, failed = self._run_due_tasks(now)
        return {"raised": raised, "cleared": cleared, "actions_ok": ok, "actions_failed": failed}

    def _usage(self, now: float) -> dict[str, str]:
        """subject → detail for every account whose usage this period passes its balance."""
        cfg = self.config
        if cfg.balance == "prepaid_money":
            return self._money_spent()
        since = period_start(now, cfg.period)
        keys = [cfg.per, *self._where_fields]
        partial = "count" if self._function == "count" else self._function
        select = ", ".join(f'"{k}"' for k in keys)
        where = f'"{cfg.per}" IS NOT NULL'
        params: dict[str, object] = {}
        if since is not None:
            where += " AND coalesce(end_time, start_time) >= to_timestamp($since)"
            params["since"] = since
        groups = self.store.query(
            f'SELECT {select}, {partial}("{self._field}")::DOUBLE AS usage FROM records'
            f" WHERE {where} GROUP BY ALL",
            params,
        )
        frame = pl.from_arrow(groups)
        assert isinstance(frame, pl.DataFrame)
        if self._predicate is not None:
            frame = frame.filter(self._predicate)
        combine = getattr(pl.col("usage"), _COMBINE[self._function])
        usage = frame.group_by(cfg.per).agg(combine()).rename({cfg.per: "account_id"})
        limits = pl.from_arrow(
            self.store.query(
                f"SELECT account_id, {cfg.balance}::DOUBLE AS balance FROM balances"
                f" WHERE {cfg.balance} IS NOT NULL"
            )
        )
        assert isinstance(limits, pl.DataFrame)
        over = (
            usage.with_columns(pl.col("account_id").cast(pl.String))
            .join(limits, on="account_id")
            .filter(pl.col("usage") > pl.col("balance"))
        )
        start = datetime.fromtimestamp(since, UTC).isoformat() if since is not None else "ever"
        return {
            row["account_id"]: f"{cfg.measure} = {_number(row['usage'])} over {cfg.balance}"
            f" {_number(row['balance'])} since {start}"
            for row in over.iter_rows(named=True)
        }

    def _money_spent(self) -> dict[str, str]:
        """Accounts whose prepaid money, decremented by rating, is below zero."""
        rows = self.store.query(
            "SELECT account_id, CAST(prepaid_money AS VARCHAR) AS money FROM balances"
            " WHERE prepaid_money < 0"
        ).to_pylist()
        return {
            r["account_id"]: f"prepaid_money = {Decimal(r['money']).normalize():f} is below zero"
            for r in rows
        }

    def _quarantine(self, now: float) -> dict[str, str]:
        count = (
            self.store.query(
                "SELECT count(*) AS n FROM quarantine WHERE received_at > to_timestamp($t)",
                {"t": now - self.config.window_s},
            )
            .column("n")[0]
            .as_py()
        )
        if count < self.config.threshold:
            return {}
        return {
            "quarantine": f"{count} inputs quarantined in the last {self.config.window_s:g} s"
            f" (threshold {self.config.threshold})"
        }

    def _transitions(self, firing: dict[str, str], now: float) -> tuple[int, int]:
        """Raise an alert for each newly firing subject, clear those that stopped."""
        with self.store.transaction() as tx:
            open_alerts = {
                r["subject"]: r["id"]
                for r in tx.query(
                    "SELECT id, subject FROM alerts WHERE kind = ? AND cleared_at IS NULL",
                    (self.name,),
                ).to_pylist()
            }
            raised = sorted(set(firing) - set(open_alerts))
            cleared = sorted(set(open_alerts) - set(firing))
            for subject in raised:
                alert_id = tx.query(
                    "SELECT coalesce(max(id), 0) + 1 AS id FROM alerts"
                ).to_pylist()[0]["id"]
                tx.execute(
                    "INSERT INTO alerts VALUES (?, to_timestamp(?), ?, ?, ?, NULL)",
                    (alert_id, now, self.name, subject, firing[subject]),
                )
                self._queue(tx, alert_id, "raised", subject, firing[subject], now)
                log.warning("ALERT %s raised for %s: %s", self.name, subject, firing[subject])
            for subject in cleared:
                alert_id = open_alerts[subject]
                tx.execute(
                    "UPDATE alerts SET cleared_at = to_timestamp(?) WHERE id = ?", (now, alert_id)
                )
                self._queue(tx, alert_id, "cleared", subject, "condition no longer holds", now)
                log.warning("ALERT %s cleared for %s", self.name, subject)
        self.counts["raised"] += len(raised)
        self.counts["cleared"] += len(cleared)
        return len(raised), len(cleared)

    def _follow_monitor(self, now: float) -> tuple[int, int]:
        """Act on the monitor's gatherer_silent alerts raised or cleared since last round.

        State (``_stage_state``): the highest alert id handled and the ids raised whose
        clearing is still awaited. The first round takes only the open alerts, so adding
        the rule does not replay history."""
        watermark, state = load_watermark(self.store, self.name)
        first = not state
        awaited: list[int] = list(state.get("open", []))
        with self.store.transaction() as tx:
            if first:
                rows = tx.query(
                    "SELECT id, subject, detail FROM alerts WHERE kind = ? AND cleared_at IS NULL"
                    " ORDER BY id",
                    (SILENT,),
                ).to_pylist()
            else:
                rows = tx.query(
                    "SELECT id, subject, detail FROM alerts WHERE kind = ? AND id > ? ORDER BY id",
                    (SILENT, watermark),
                ).to_pylist()
            for row in rows:
                self._queue(tx, row["id"], "raised", row["subject"], row["detail"] or "", now)
                awaited.append(row["id"])
                watermark = max(watermark, row["id"])
            done = []
            if awaited:
                marks = ", ".join("?" for _ in awaited)
                done = tx.query(
                    f"SELECT id, subject FROM alerts WHERE id IN ({marks})"
                    " AND cleared_at IS NOT NULL ORDER BY id",
                    awaited,
                ).to_pylist()
            for row in done:
                self._queue(tx, row["id"], "cleared", row["subject"], "heartbeats again", now)
                awaited.remove(row["id"])
            save_watermark(tx, self.name, watermark, {"open": awaited})
        self.counts["raised"] += len(rows)
        self.counts["cleared"] += len(done)
        return len(rows), len(done)

    # --- tasks -----------------------------------------------------------------------------

    def _queue(
        self, tx: StoreWriter, alert_id: int, transition: str, subject: str, detail: str, now: float
    ) -> None:
        if transition == "cleared":
            tx.execute(
                "UPDATE alert_tasks SET state = 'cancelled' WHERE rule = ? AND alert_id = ?"
                " AND transition = 'raised' AND state = 'pending'",
                (self.name, alert_id),
            )
        actions = self.actions if transition == "raised" else self.restore
        for index, action in enumerate(actions):
            tx.execute(
                "INSERT INTO alert_tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 'pending')"
                " ON CONFLICT DO NOTHING",
                (self.name, alert_id, transition, index, action.kind, subject, detail, now, now),
            )

    def _run_due_tasks(self, now: float) -> tuple[int, int]:
        due = self.store.query(
            "SELECT * FROM alert_tasks WHERE rule = $r AND state = 'pending' AND next_at <= $t"
            " ORDER BY alert_id, transition DESC, action_index",
            {"r": self.name, "t": now},
        ).to_pylist()
        ok = failed = 0
        per = self.config.per if self.config.rule == "usage_over_balance" else ""
        for task in due:
            actions = self.actions if task["transition"] == "raised" else self.restore
            event = AlertEvent(
                rule=self.name,
                alert_id=task["alert_id"],
                subject=task["subject"],
                state=task["transition"],
                detail=task["detail"] or "",
                at=task["event_at"],
                per=per,
            )
            started = self.context.clock()
            try:
                outcome = actions[task["action_index"]].run(event)
            except Exception as exc:  # an action's bug must not stop the others
                log.exception("alert %s: action %s failed", self.name, task["action"])
                outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
            finished = self.context.clock()
            self._record(task, outcome, started, finished, now)
            ok += outcome.ok
            failed += not outcome.ok
        self.counts["actions_ok"] += ok
        self.counts["actions_failed"] += failed
        return ok, failed

    def _record(
        self, task: dict[str, Any], outcome: Outcome, started: float, finished: float, now: float
    ) -> None:
        attempt = task["attempts"] + 1
        if outcome.ok:
            state, next_at = "ok", now
        elif attempt >= self.config.max_attempts:
            state, next_at = "failed", now
        else:
            state, next_at = "pending", now + self.config.retry_s * 2 ** (attempt - 1)
        key = (self.name, task["alert_id"], task["transition"], task["action_index"])
        with self.store.transaction() as tx:
            action_id = tx.query(
                "SELECT coalesce(max(id), 0) + 1 AS id FROM alert_actions"
            ).to_pylist()[0]["id"]
            tx.execute(
                "INSERT INTO alert_actions VALUES (?, ?, ?, ?, ?, ?, ?, to_timestamp(?),"
                " to_timestamp(?), ?, ?)",
                (
                    action_id,
                    task["alert_id"],
                    self.name,
                    task["action"],
                    task["action_index"],
                    task["transition"],
                    attempt,
                    started,
                    finished,
                    "ok" if outcome.ok else "failed",
                    outcome.detail,
                ),
            )
            tx.execute(
                "UPDATE alert_tasks SET attempts = ?, next_at = ?, state = ? WHERE rule = ?"
                " AND alert_id = ? AND transition = ? AND action_index = ?"
                " AND state = 'pending'",
                (attempt, next_at, state, *key),
            )
        if not outcome.ok:
            log.warning(
                "alert %s: %s action %s (attempt %d) failed: %s",
                self.name,
                task["transition"],
                task["action"],
                attempt,
                outcome.detail,
            )
