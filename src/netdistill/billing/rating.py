"""The rating round: closed roll-up periods → priced quantities → invoices and notes.

``RatingStage`` is a manager stage (``stages/base.py`` contract) built from the scheme's
``rating:`` section; ``StageRunner`` runs it right after the last rollup it rates, so a
period closed in a round is rated in the same round.

A round is **several short store transactions**, so that record commits (which take the
same write lock) wait for one of them at most, never for the round:

1. *open* (one transaction): every roll-up period closed since (a row of
   ``rollup_<name>_periods`` not yet in ``billing_rated``) is marked rated in this round,
   once — (rollup, period) is the key; the round's record range (the last record id now)
   and its **chunks** — account-id bounds cutting the work into about ``chunk_rows`` rows
   each, read before the transaction — are saved in the stage state (``open``);
2. *one transaction per chunk*, in account order: for the accounts in it, the account
   rows of the periods rated in this round and the late records of every rated period
   in the round's record range (``usage.py``) are matched to the plan in force
   (``plans.segments``) and to the first price of that plan whose category, metric,
   direction, weekdays and hours fit the roll-up period's start (in the section's
   ``timezone``) and added to ``billing_usage``; the touched rows are priced again
   (``lines.rated_sql``) and each account's prepaid money balance
   (``balances.prepaid_money``) goes down by the increase; billing periods now fully
   rated are invoiced for these accounts and their late usage of invoiced periods becomes
   notes (``issue.py``); the chunk is recorded done in the stage state, and the last one
   saves the new watermark and closes the round.

What is atomic, and why that is enough: each transaction. Rating and invoicing are per
account (an account's usage, price, balance and documents never depend on another
account's), so a chunk is a complete unit: it rates its accounts and issues their
documents, and records itself done, together. A failure rolls back the transaction it
happens in; the next round **resumes** the open round at that chunk, with the same record
range, rated periods and bounds, so nothing is rated twice or skipped. Numbers stay
gap-free: each chunk takes the next numbers of ``billing_sequence`` in the transaction
that inserts the documents. What a reader can see between two chunks is a consistent
state: some accounts invoiced for the period, the others not yet.

Between transactions the round pauses ``PAUSE_S``: the store's lock is not fair, and
without it this thread would take the lock again before a waiting commit woke up.
Invoice files are written after the chunks, from the stored documents, and recorded in
``invoice_exports`` (one batch per chunk; rewritten with the same bytes after a crash in
between).

Usage no price matches is free; usage of an account with no plan (no assignment and no
``default_plan``) is counted as ``unrated`` in the status and logged, not charged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from netdistill.billing import tables
from netdistill.billing.config import RatingConfig
from netdistill.billing.issue import issue_due
from netdistill.billing.lines import rated_sql
from netdistill.billing.plans import assigned, bill_start_sql, plan_tables, segment_table
from netdistill.billing.usage import in_range, late_usage_sql, quote, rollup_usage_sql
from netdistill.stages import balances as balance_store
from netdistill.stages.base import save_watermark
from netdistill.stages.rollup_store import table_names

log = logging.getLogger(__name__)

NAME = "rating"

#: rows of work (roll-up rows to rate, usage rows to invoice) per transaction of a round
CHUNK_ROWS = 20_000
#: pause between the transactions of a round (lets waiting record commits take the lock)
PAUSE_S = 0.02


def insert_rating_stage(
    stages: list[Any], context: Any, run_round: Callable[[], dict[str, Any]] | None = None
) -> list[Any]:
    """``stages`` with the rating stage after the last rollup it rates (none without a
    ``rating:`` section or when those rollups are disabled). ``run_round`` runs one
    round of every stage (the runner's, under its lock): ``POST /api/billing/run``."""
    config = getattr(context.scheme, "rating", None)
    if config is None:
        return stages
    names = {r.rollup for r in config.rated()}
    positions = [i for i, s in enumerate(stages) if s.name in names]
    if len(positions) != len(names):
        log.warning("rating: a rated rollup is disabled; rating does not run")
        return stages
    out = list(stages)
    out.insert(max(positions) + 1, RatingStage(config, context, run_round))
    return out


class RatingStage:
    """See the module docstring. ``run_once`` may be called from the stages thread and
    from ``POST /api/billing/run``; a lock makes them take turns."""

    def __init__(
        self,
        config: RatingConfig,
        context: Any,
        run_round: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.run_round = run_round
        self.name = NAME
        self.context = context
        self.store = context.store
        by_name = {s.name: s for s in context.scheme.stages if s.type == "rollup"}
        self.rollups = [(r, by_name[r.rollup]) for r in config.rated()]
        self.pairs = sorted(
            {(p.category, p.measured) for plan in config.plans.values() for p in plan.prices}
        )
        self.chunk_rows = CHUNK_ROWS
        self.totals: dict[str, int] = {}
        self.last_counts: dict[str, int] = {}
        self._lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------

    def ensure_tables(self) -> None:
        tables.ensure_tables(self.store)
        balance_store.ensure_tables(self.store)
        with self.store.transaction() as tx:
            for name, table in plan_tables(self.config).items():
                tx.execute(f"DELETE FROM {name}")
                tx.insert_arrow(name, table)

    def _after_writes(self, tx: Any) -> None:
        """Called last inside each transaction of a round (tests fail a round here)."""

    # --- one round -------------------------------------------------------------------------

    def run_billing(self) -> dict[str, Any]:
        """A round now: through the runner (the rollups close what is due first), or of
        this stage alone when it runs without one."""
        if self.run_round is None:
            return self.run_once(self.context.clock())
        counts = self.run_round()
        if NAME not in counts:
            raise RuntimeError("the rating round failed; see GET /api/stages")
        return dict(counts[NAME])

    def run_once(self, now: float) -> dict[str, int]:
        with self._lock:
            counts = self._round()
            counts.update(self.export_pending())
        for key, value in counts.items():
            self.totals[key] = self.totals.get(key, 0) + value
        self.last_counts = counts
        return counts

    def _round(self) -> dict[str, int]:
        """One round in short transactions (see the module docstring): open it (or
        resume the one a failure left open), then rate and issue chunk by chunk."""
        counts = {
            "periods_rated": 0,
            "usage_rows": 0,
            "late_rows": 0,
            "unrated_rows": 0,
            "invoices": 0,
            "notes": 0,
        }
        pending = self._state()[1].get("open")
        if pending is None:
            pending = self._open(self._bounds())
            counts["periods_rated"] = int(pending["periods"])
        bounds: list[str] = list(pending["bounds"])
        for chunk in range(int(pending["done"]), len(bounds) + 1):
            low = bounds[chunk - 1] if chunk > 0 else None
            high = bounds[chunk] if chunk < len(bounds) else None
            for key, value in self._chunk(pending, chunk, (low, high)).items():
                counts[key] += value
            # the store's lock is not fair: without a pause this thread takes it again
            # before a waiting commit wakes up, and the commit waits for the whole round
            time.sleep(PAUSE_S)
        if counts["unrated_rows"]:
            log.warning("rating: %d usage rows have no plan (no assignment, no default_plan)",
                        counts["unrated_rows"])  # fmt: skip
        return counts

    def _state(self, tx: Any = None) -> tuple[int, dict[str, Any]]:
        """(watermark, state) of the stage, in ``tx`` or as committed."""
        sql = "SELECT watermark, state FROM _stage_state WHERE stage = ?"
        found = (
            tx.query(sql, (NAME,)) if tx is not None else self.store.query(sql.replace("?", "$s"),
                                                                             {"s": NAME})
        ).to_pylist()  # fmt: skip
        if not found:
            return 0, {}
        return int(found[0]["watermark"]), json.loads(found[0]["state"] or "{}")

    def _bounds(self) -> list[str]:
        """Account ids cutting the round into chunks of about ``chunk_rows`` rows of work
        (roll-up rows not rated yet, usage rows of billing periods not invoiced yet): a
        read outside the write lock. Any bounds are correct (chunks cover every account);
        these only balance the transactions."""
        parts = []
        for _rated, rollup in self.rollups:
            accounts, periods = table_names(rollup.name)[1], f"rollup_{rollup.name}_periods"
            unrated = (
                f'SELECT p.period FROM "{periods}" p WHERE NOT EXISTS (SELECT 1 FROM'
                f" billing_rated r WHERE r.rollup = {quote(rollup.name)} AND r.period = p.period)"
            )
            parts.append(
                f'SELECT a.account_id FROM "{accounts}" a WHERE a.period IN ({unrated})'
                f' AND a.period_start >= (SELECT min(p.period_start) FROM "{periods}" p'
                f" WHERE p.period IN ({unrated}))"
            )
        parts.append(
            "SELECT account_id FROM billing_usage WHERE bill_start >= (SELECT coalesce("
            "max(period_start), TIMESTAMPTZ '1970-01-01') FROM invoices WHERE kind = 'invoice')"
        )
        found = self.store.query(
            f"""
            WITH w AS (
                SELECT account_id, count(*) AS n FROM ({" UNION ALL ".join(parts)}) GROUP BY ALL
            ), c AS (
                SELECT account_id, n, sum(n) OVER (ORDER BY account_id) AS cum FROM w
            )
            SELECT min(account_id) AS bound FROM c
            GROUP BY (cum - n) // {max(1, int(self.chunk_rows))} ORDER BY bound
            """
        )
        return [str(b) for b in found.column("bound").to_pylist()[1:]]

    def _open(self, bounds: list[str]) -> dict[str, Any]:
        """Open a round: mark the closed roll-up periods rated and fix what the round
        reads (its record range and the chunk bounds) in the stage state."""
        with self.store.transaction() as tx:
            previous, state = self._state(tx)
            if state.get("open") is not None:  # opened meanwhile: continue that one
                return dict(state["open"])
            rating_round = int(state.get("round", 0)) + 1
            high_value = tx.query("SELECT max(record_id) AS m FROM records").column("m")[0]
            high = max(previous, int(high_value.as_py() or 0))
            for _rated, rollup in self.rollups:
                periods = f"rollup_{rollup.name}_periods"
                tx.execute(
                    f"INSERT INTO billing_rated SELECT {quote(rollup.name)}, p.period,"
                    " p.period_start, p.period_end, p.high_record_id, ?, to_timestamp(?)"
                    f' FROM "{periods}" p WHERE NOT EXISTS (SELECT 1 FROM billing_rated r'
                    f" WHERE r.rollup = {quote(rollup.name)} AND r.period = p.period)",
                    (rating_round, tx.now),
                )
            lows = tx.query(
                "SELECT count(*) AS n, min(coalesce(high_record_id, ?)) AS m FROM billing_rated"
                " WHERE rated_round = ?",
                (high, rating_round),
            ).to_pylist()[0]
            pending = {
                "round": rating_round,
                "previous": previous,
                "high": high,
                "scan_low": min(previous, int(lows["m"])) if lows["n"] else previous,
                "periods": int(lows["n"]),
                "bounds": bounds,
                "done": 0,
            }
            save_watermark(tx, NAME, previous, {"round": rating_round - 1, "open": pending})
            self._after_writes(tx)
        return pending

    def _chunk(
        self, pending: dict[str, Any], chunk: int, accounts: tuple[str | None, str | None]
    ) -> dict[str, int]:
        """Rate and issue the accounts in ``accounts`` for the open round, in one
        transaction that also records the chunk as done (or, for the last, closes the
        round): a chunk is done exactly once."""
        rating_round, previous, high = pending["round"], pending["previous"], pending["high"]
        last = chunk == len(pending["bounds"])
        with self.store.transaction() as tx:
            state = self._state(tx)[1].get("open") or {}
            if state.get("round") != rating_round or state.get("done") != chunk:
                raise RuntimeError(f"rating round {rating_round}: chunk {chunk} is not next")
            parts: list[str] = []
            for rated, rollup in self.rollups:
                parts += rollup_usage_sql(
                    rollup, rated.direction, self.pairs, rating_round, accounts
                )
                if rollup.pops:  # a central rollup of POPs: no records of its own are late
                    continue
                parts.append(
                    late_usage_sql(
                        rollup,
                        rated.direction,
                        self.pairs,
                        self.context.scheme,
                        rating_round=rating_round,
                        previous_high=previous,
                        high=high,
                        scan_low=pending["scan_low"],
                        accounts=accounts,
                    )
                )
            tx.execute(
                "CREATE OR REPLACE TEMP TABLE billing_work AS SELECT row_number() OVER () AS rid,"
                f" * FROM ({' UNION ALL '.join(f'({p})' for p in parts)})"
            )
            work = tx.query(
                "SELECT count(*) FILTER (WHERE origin = 'usage') AS usage,"
                " count(*) FILTER (WHERE origin = 'late') AS late FROM billing_work"
            ).to_pylist()[0]
            counts = {"usage_rows": int(work["usage"]), "late_rows": int(work["late"])}
            counts["unrated_rows"] = (
                self._accumulate(tx, rating_round, accounts) if work["usage"] or work["late"] else 0
            )
            issued = issue_due(tx, self.config, self._rated_until(tx), accounts)
            if issued.minimum_by_account:
                self._decrement(
                    tx,
                    pa.table(
                        {
                            "account_id": list(issued.minimum_by_account),
                            "delta": list(issued.minimum_by_account.values()),
                        }
                    ),
                    "minimum charge",
                )
            counts.update(invoices=issued.invoices, notes=issued.notes)
            if last:
                save_watermark(tx, NAME, high, {"round": rating_round})
            else:
                opened = {**pending, "done": chunk + 1}
                save_watermark(tx, NAME, previous, {"round": rating_round - 1, "open": opened})
            self._after_writes(tx)
        return counts

    def _rated_until(self, tx: Any) -> Any:
        ends = []
        for rated, _rollup in self.rollups:
            value = (
                tx.query(
                    "SELECT max(period_end) AS e FROM billing_rated WHERE rollup = ?",
                    (rated.rollup,),
                )
                .column("e")[0]
                .as_py()
            )
            if value is None:
                return None
            ends.append(value)
        return min(ends)

    def _accumulate(self, tx: Any, rating_round: int, chunk: tuple[str | None, str | None]) -> int:
        """Add billing_work to billing_usage; re-price the touched rows; returns the
        number of rows without a plan."""
        bill_start = bill_start_sql("period_start", self.config.billing_day)
        accounts, companies = assigned(self.config)
        keys: list[tuple[str | None, str | None, Any]] = []
        if accounts or companies:
            tx.execute("CREATE OR REPLACE TEMP TABLE billing_assigned (kind VARCHAR, name VARCHAR)")
            tx.insert_arrow(
                "billing_assigned",
                pa.table(
                    {
                        "kind": ["account"] * len(accounts) + ["company"] * len(companies),
                        "name": sorted(accounts) + sorted(companies),
                    }
                ),
            )
            found = tx.query(
                f"SELECT DISTINCT account_id, company, {bill_start} AS bill_start FROM billing_work"
                " WHERE account_id IN (SELECT name FROM billing_assigned WHERE kind = 'account')"
                " OR company IN (SELECT name FROM billing_assigned WHERE kind = 'company')"
            ).to_pylist()
            for row in found:
                if row["account_id"] in accounts:
                    keys.append((row["account_id"], row["company"], row["bill_start"]))
                if row["company"] in companies:
                    keys.append((None, row["company"], row["bill_start"]))
        tx.execute(
            "CREATE OR REPLACE TEMP TABLE billing_segments (account_id VARCHAR, company VARCHAR,"
            " bill_start TIMESTAMPTZ, seg_from TIMESTAMPTZ, seg_to TIMESTAMPTZ, plan VARCHAR)"
        )
        tx.insert_arrow("billing_segments", segment_table(self.config, sorted(set(keys), key=str)))
        default = quote(self.config.default_plan) if self.config.default_plan else "NULL"
        tz = quote(self.config.timezone)
        tx.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE billing_planned AS
            WITH w AS (SELECT w.*, {bill_start} AS bill_start FROM billing_work w)
            SELECT w.*,
                   CASE WHEN sa.seg_from IS NOT NULL THEN sa.plan
                        WHEN sc.seg_from IS NOT NULL THEN sc.plan ELSE {default} END AS plan,
                   coalesce(sa.seg_from, sc.seg_from, w.bill_start) AS seg_from,
                   coalesce(sa.seg_to, sc.seg_to, w.bill_start + INTERVAL 1 MONTH) AS seg_to
            FROM w
            LEFT JOIN billing_segments sa ON sa.account_id = w.account_id
                 AND sa.company = w.company AND sa.bill_start = w.bill_start
                 AND w.period_start >= sa.seg_from AND w.period_start < sa.seg_to
            LEFT JOIN billing_segments sc ON sc.account_id IS NULL AND sc.company = w.company
                 AND sc.bill_start = w.bill_start
                 AND w.period_start >= sc.seg_from AND w.period_start < sc.seg_to
            """
        )
        unrated = int(
            tx.query("SELECT count(*) AS n FROM billing_planned WHERE plan IS NULL")
            .column("n")[0]
            .as_py()
        )
        tx.execute(
            f"""
            INSERT INTO billing_usage
            WITH m AS (
                SELECT s.*, p.price FROM billing_planned s JOIN billing_prices p
                  ON p.plan = s.plan AND p.category = s.category AND p.metric = s.metric
                 AND (p.direction = 'any' OR p.direction = s.direction)
                 AND list_contains(p.days, CAST(isodow(timezone({tz}, s.period_start)) AS INTEGER))
                 AND list_contains(p.hours, CAST(hour(timezone({tz}, s.period_start)) AS INTEGER))
                QUALIFY row_number() OVER (PARTITION BY s.rid ORDER BY p.position) = 1
            )
            SELECT account_id, company, bill_start, bill_start + INTERVAL 1 MONTH, seg_from,
                   seg_to, plan, price,
                   coalesce(sum(q) FILTER (WHERE origin = 'usage'), 0),
                   coalesce(sum(q) FILTER (WHERE origin = 'late'), 0), 0, 0, {int(rating_round)}
            FROM m GROUP BY account_id, company, bill_start, seg_from, seg_to, plan, price
            ON CONFLICT (account_id, company, bill_start, seg_from, plan, price) DO UPDATE SET
                quantity = quantity + excluded.quantity,
                late_quantity = late_quantity + excluded.late_quantity,
                touched_round = excluded.touched_round
            """
        )
        keys_sql = "account_id, company, bill_start, seg_from, plan, price"
        tx.execute(
            "CREATE OR REPLACE TEMP TABLE billing_rerated AS "
            + rated_sql(
                f"u.touched_round = {int(rating_round)} AND {in_range('u.account_id', chunk)}",
                self.config.minor_units,
            )
        )
        tx.execute(
            "CREATE OR REPLACE TEMP TABLE billing_delta AS"
            " SELECT r.account_id, CAST(sum(r.rated_minor - u.rated_minor) AS BIGINT) AS delta"
            f" FROM billing_rerated r JOIN billing_usage u USING ({keys_sql}) GROUP BY ALL"
        )
        tx.execute(
            "UPDATE billing_usage u SET rated_minor = r.rated_minor FROM billing_rerated r"
            " WHERE u.account_id = r.account_id AND u.company = r.company"
            " AND u.bill_start = r.bill_start AND u.seg_from = r.seg_from AND u.plan = r.plan"
            " AND u.price = r.price"
        )
        self._decrement(tx, None, "rating")
        return unrated

    def _decrement(self, tx: Any, deltas: pa.Table | None, why: str) -> None:
        """Lower prepaid money balances by ``deltas`` (account_id, delta in minor units;
        default the round's ``billing_delta``)."""
        if deltas is not None:
            tx.execute(
                "CREATE OR REPLACE TEMP TABLE billing_delta (account_id VARCHAR, delta BIGINT)"
            )
            tx.insert_arrow("billing_delta", deltas)
        balance_store.decrement_money(tx, "billing_delta", self.config.minor_units, why)

    # --- invoice files ---------------------------------------------------------------------

    def export_pending(self) -> dict[str, int]:
        from netdistill.billing.export import write_pending

        directory = self.config.invoices.directory
        target = None
        if directory is not None:
            path = Path(directory)
            target = path if path.is_absolute() else Path(self.context.data_dir) / path
        return write_pending(self.store, target, self.config.invoices.formats)

    # --- reading ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "type": "rating",
            "currency": self.config.currency,
            "rollups": [r.rollup for r in self.config.rated()],
            "last_round": self.last_counts,
            "since_start": self.totals,
        }

    def router(self) -> Any:
        from netdistill.billing.api import billing_router

        return billing_router(self.store, self)
