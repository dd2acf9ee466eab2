"""The central side: store what POPs forward, and sum the POPs' roll-up periods.

``StageReceiver.commit`` takes one ``STAGE_OUTPUT`` entry of an authenticated POP
(``manager/ingest.py`` hands it over) and stores it in **one transaction with the
``(origin, seq)`` marker** in ``_commits``, like a records batch: a resend after a lost
acknowledgement stores nothing. What goes where:

* a roll-up period of the POP's rollup ``R`` → ``rollup_R_pops`` (the POP's account rows,
  with a ``pop`` column) and ``rollup_R_pop_periods`` (the POP's period row: records,
  bytes, accounts, when it closed there). Only a rollup ``R`` of this manager whose
  ``pops`` lists the POP takes them, and only with the same period unit and the same
  columns (categories, company); anything else is refused for good (422) naming both.
  A (pop, period) stored before is not stored again (a second guard beside the marker);
* aggregate rows (``output: table``) → ``pop_agg_<stage>``: the POP's columns after a
  ``pop`` column, created at the first entry; other columns later are refused;
* aggregate records (``output: records``) → ``records``, read by field name and type as a
  gatherer's batch is (``wire.decode_records``), with field ``pop`` set (the field is
  added to the registry at the first such entry).

``PopRollup`` is what a central ``rollup`` stage with ``pops:`` does each round instead of
reading records: period P closes once **every** listed POP has delivered P or a later
period (a POP closes its periods in order and sends them in order, so a later one means
it has sent all it ever will for P; a POP that started later than P simply has no rows
for P). The central rows are the sums over the POPs of their account rows, grouped by
(period, account[, company]); seconds are summed as integer microseconds, so the central
roll-up equals the sum of the POPs' roll-ups exactly. Company rows count distinct
accounts. The central periods are then exported and rated like any roll-up's.

The DDL of the tables above is here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from netdistill.delivery.wire import decode_records, decode_table
from netdistill.errors import BatchRefused
from netdistill.hierarchy.outbox import decode_meta
from netdistill.records.batch import FieldSpec
from netdistill.stages.aggregate import create_table_sql
from netdistill.stages.base import save_watermark
from netdistill.stages.rollup_store import METRICS, period_name, period_next, table_names
from netdistill.store import ensure_fields
from netdistill.store.duckdb import DuckDBStore, StoreWriter

log = logging.getLogger(__name__)

POP_FIELD = FieldSpec("pop", "string", "the point of presence that forwarded the record")


def pop_table_names(rollup: str) -> tuple[str, str]:
    """(account rows, period rows) received from the POPs for ``rollup``."""
    return f"rollup_{rollup}_pops", f"rollup_{rollup}_pop_periods"


def pop_table_ddl(config: Any) -> list[str]:
    rows, periods = pop_table_names(config.name)
    types = {"bytes": "UBIGINT", "seconds": "DOUBLE", "records": "BIGINT"}
    metrics = ", ".join(
        f"{c}_{m} {types[m]} NOT NULL" for c in config.all_categories() for m in METRICS
    )
    keys = "account_id VARCHAR NOT NULL" + (", company VARCHAR NOT NULL" if config.company else "")
    key = "pop, period, account_id" + (", company" if config.company else "")
    return [
        f'CREATE TABLE IF NOT EXISTS "{rows}" (pop VARCHAR NOT NULL, period VARCHAR NOT NULL,'
        " period_start TIMESTAMPTZ NOT NULL, period_end TIMESTAMPTZ NOT NULL,"
        f" {keys}, {metrics}, PRIMARY KEY ({key}))",
        f'CREATE TABLE IF NOT EXISTS "{periods}" (pop VARCHAR NOT NULL, period VARCHAR NOT NULL,'
        " period_start TIMESTAMPTZ NOT NULL, period_end TIMESTAMPTZ NOT NULL,"
        " records BIGINT NOT NULL, bytes UBIGINT NOT NULL, accounts BIGINT NOT NULL,"
        " closed_at TIMESTAMPTZ, received_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (pop, period))",
    ]


def ensure_pop_tables(store: DuckDBStore, config: Any) -> None:
    with store.transaction() as tx:
        for statement in pop_table_ddl(config):
            tx.execute(statement)


def _time(value: Any) -> datetime:
    return datetime.fromtimestamp(float(value), tz=UTC)


class StageReceiver:
    """Commits ``STAGE_OUTPUT`` entries (see the module docstring); ``scheme()`` is the
    manager's current scheme (its rollups with ``pops``)."""

    def __init__(self, store: DuckDBStore, scheme: Callable[[], Any]) -> None:
        self.store = store
        self._scheme = scheme
        self.entries: dict[str, int] = {}
        self.duplicates: dict[str, int] = {}

    def _rollup(self, pop: str, name: str) -> Any:
        for stage in self._scheme().stages:
            if stage.name == name and stage.type == "rollup" and pop in (stage.pops or ()):
                return stage
        return None

    def commit(self, pop: str, origin: str, seq: int, payload: bytes) -> int:
        """Store one entry; returns the rows stored (0 for a resend)."""
        try:
            table = decode_table(payload)
        except pa.ArrowInvalid as exc:
            raise BatchRefused(f"entry {seq}: the payload is not an Arrow IPC stream: {exc}",
                               seq=seq) from None  # fmt: skip
        meta = decode_meta(table)
        kind, stage = meta.get("type"), str(meta.get("stage", ""))
        output = meta.get("output")
        if kind == "aggregate" and output == "records" and "pop" not in self.store.fields:
            ensure_fields(self.store, [POP_FIELD], source=f"POP {pop}")
        if kind == "aggregate" and output == "records":
            table = decode_records(payload, self.store.fields, seq=seq)
        with self.store.transaction() as tx:
            done = tx.query(
                "SELECT rows FROM _commits WHERE origin = ? AND sequence = ?", (origin, seq)
            ).to_pylist()
            if done:
                self.duplicates[pop] = self.duplicates.get(pop, 0) + 1
                return 0
            if kind == "rollup":
                rows = self._rollup_period(tx, pop, stage, meta, table, seq)
            elif kind == "aggregate" and output == "table":
                rows = self._aggregate_table(tx, pop, stage, table, seq)
            elif kind == "aggregate" and output == "records":
                pops = pa.array([pop] * table.num_rows, pa.string())
                if "pop" in table.schema.names:
                    table = table.drop_columns(["pop"])
                rows = tx.insert_records(table.append_column("pop", pops))
            else:
                raise BatchRefused(
                    f"entry {seq}: stage output of unknown type {kind!r}/{output!r} "
                    f"(stage {stage!r})",
                    seq=seq,
                )
            tx.execute(
                "INSERT INTO _commits VALUES (?, ?, ?, to_timestamp(?))",
                (origin, seq, rows, tx.now),
            )
        self.entries[pop] = self.entries.get(pop, 0) + 1
        return rows

    def _rollup_period(
        self, tx: StoreWriter, pop: str, name: str, meta: dict[str, Any], table: pa.Table, seq: int
    ) -> int:
        config = self._rollup(pop, name)
        if config is None:
            raise BatchRefused(
                f"entry {seq}: POP {pop!r} forwards rollup {name!r}, but this manager has no "
                f"rollup {name!r} whose pops list {pop!r}; add one (docs/hierarchy.md)",
                seq=seq,
            )
        columns = list(meta.get("columns") or table.schema.names)
        if meta.get("unit") != config.period or columns != config.account_columns():
            raise BatchRefused(
                f"entry {seq}: rollup {name!r} of POP {pop!r} has period {meta.get('unit')!r} "
                f"and columns {', '.join(columns)}; this manager's has period "
                f"{config.period!r} and columns {', '.join(config.account_columns())}",
                seq=seq,
            )
        rows_table, periods_table = pop_table_names(name)
        period = str(meta["period"])
        known = tx.query(
            f'SELECT count(*) AS n FROM "{periods_table}" WHERE pop = ? AND period = ?',
            (pop, period),
        ).column("n")[0]
        if known.as_py():
            log.warning("POP %s sent rollup %s period %s again: kept the first", pop, name, period)
            return 0
        tx.execute(
            f'INSERT INTO "{periods_table}" VALUES (?, ?, ?, ?, ?, ?, ?, ?, to_timestamp(?))',
            (
                pop,
                period,
                _time(meta["period_start"]),
                _time(meta["period_end"]),
                int(meta.get("records", 0)),
                int(meta.get("bytes", 0)),
                int(meta.get("accounts", 0)),
                _time(meta["closed_at"]) if meta.get("closed_at") is not None else None,
                tx.now,
            ),
        )
        rows = table.select(config.account_columns())
        tx.insert_arrow(rows_table, rows.append_column("pop", pa.array([pop] * rows.num_rows)))
        return rows.num_rows

    def _aggregate_table(
        self, tx: StoreWriter, pop: str, name: str, table: pa.Table, seq: int
    ) -> int:
        target = f"pop_agg_{name}"
        rows = table.replace_schema_metadata(None)
        rows = pa.Table.from_arrays(
            [pa.array([pop] * rows.num_rows, pa.string()), *rows.columns],
            names=["pop", *rows.schema.names],
        )
        tx.execute(create_table_sql(target, rows.schema))
        found = (
            tx.query(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
                " ORDER BY ordinal_position",
                (target,),
            )
            .column("column_name")
            .to_pylist()
        )
        if found != rows.schema.names:
            raise BatchRefused(
                f"entry {seq}: aggregate {name!r} of POP {pop!r} has columns "
                f"{', '.join(rows.schema.names)}; table {target} has {', '.join(found)}",
                seq=seq,
            )
        tx.insert_arrow(target, rows)
        return rows.num_rows

    def status(self) -> dict[str, Any]:
        return {"entries": dict(self.entries), "duplicates_ignored": dict(self.duplicates)}


# --- the central roll-up -------------------------------------------------------------------


class PopRollup:
    """One round of a central ``rollup`` stage with ``pops`` (see the module docstring)."""

    def __init__(self, stage: Any) -> None:
        self.stage = stage
        self.config = stage.config
        self.store: DuckDBStore = stage.store
        self.waiting_for: list[str] = []

    def ensure_tables(self) -> None:
        ensure_pop_tables(self.store, self.config)

    def _marks(self) -> tuple[str, dict[str, object]]:
        params = {f"pop{i}": p for i, p in enumerate(self.config.pops)}
        return ", ".join(f"${k}" for k in params), params

    def due(self) -> list[datetime]:
        """Starts of the periods every POP has delivered (or passed), oldest first."""
        marks, params = self._marks()
        _, periods = pop_table_names(self.config.name)
        delivered = self.store.query(
            f'SELECT pop, min(period_start) AS first, max(period_start) AS last FROM "{periods}"'
            f" WHERE pop IN ({marks}) GROUP BY pop",
            params,
        ).to_pylist()
        got = {row["pop"] for row in delivered}
        self.waiting_for = [p for p in self.config.pops if p not in got]
        if self.waiting_for:
            return []
        until = min(row["last"] for row in delivered)
        first = self.stage._closed_until() or min(row["first"] for row in delivered)
        starts: list[datetime] = []
        start = first
        while start <= until and len(starts) < self.config.max_periods_per_run:
            starts.append(start)
            start = period_next(self.config.period, start)
        return starts

    def run_once(self, now: float) -> dict[str, int]:
        starts = self.due()
        if starts:
            self._close(starts)
        counts = {"periods_closed": len(starts), "late_records": 0}
        counts.update(self.stage.exporter.run_pending())
        self.stage.last_counts = counts
        return counts

    def _sums(self, lo: datetime, hi: datetime) -> tuple[pa.Table, pa.Table | None]:
        config = self.config
        rows_table, _ = pop_table_names(config.name)
        marks, params = self._marks()
        params = {**params, "lo": lo, "hi": hi}
        metrics = []
        for column in config.metric_columns():
            if column.endswith("_seconds"):  # exact: integer µs, as the POPs summed them
                metrics.append(f"sum(CAST(round({column} * 1e6) AS BIGINT)) / 1e6 AS {column}")
            elif column.endswith("_bytes"):
                metrics.append(f"CAST(sum({column}) AS UBIGINT) AS {column}")
            else:
                metrics.append(f"CAST(sum({column}) AS BIGINT) AS {column}")
        where = f"pop IN ({marks}) AND period_start >= $lo AND period_start < $hi"
        keys = "account_id, company" if config.company else "account_id"
        accounts = self.store.query(
            f"SELECT period, period_start, period_end, {keys}, {', '.join(metrics)}"
            f' FROM "{rows_table}" WHERE {where} GROUP BY ALL ORDER BY period_start, {keys}',
            params,
        ).select(config.account_columns())
        companies = None
        if config.company:
            companies = self.store.query(
                "SELECT period, period_start, period_end, company,"
                f" count(DISTINCT account_id) AS accounts, {', '.join(metrics)}"
                f' FROM "{rows_table}" WHERE {where} GROUP BY ALL ORDER BY period_start, company',
                params,
            ).select(config.company_columns())
        return accounts, companies

    def _close(self, starts: list[datetime]) -> None:
        config = self.config
        periods_table, accounts_table, companies_table = table_names(config.name)
        accounts, companies = self._sums(starts[0], period_next(config.period, starts[-1]))
        by_period: dict[str, dict[str, int]] = {}
        for row in accounts.select(["period", "total_records", "total_bytes"]).to_pylist():
            item = by_period.setdefault(row["period"], {"records": 0, "bytes": 0, "accounts": 0})
            item["records"] += int(row["total_records"])
            item["bytes"] += int(row["total_bytes"])
            item["accounts"] += 1
        company_counts: dict[str, int] = {}
        if companies is not None:
            for name in companies.column("period").to_pylist():
                company_counts[name] = company_counts.get(name, 0) + 1
        with self.store.transaction() as tx:
            for start in starts:
                name = period_name(config.period, start)
                item = by_period.get(name, {"records": 0, "bytes": 0, "accounts": 0})
                tx.execute(
                    f'INSERT INTO "{periods_table}" (period, period_start, period_end, closed_at,'
                    " records, bytes, accounts, companies, high_record_id)"
                    " VALUES (?, ?, ?, to_timestamp(?), ?, ?, ?, ?, NULL)",
                    (
                        name,
                        start,
                        period_next(config.period, start),
                        tx.now,
                        item["records"],
                        item["bytes"],
                        item["accounts"],
                        company_counts.get(name, 0),
                    ),
                )
            tx.insert_arrow(accounts_table, accounts)
            if companies is not None:
                tx.insert_arrow(companies_table, companies)
            save_watermark(tx, config.name, 0, {"pops": list(config.pops)})
        self.stage.closed += len(starts)
        log.info(
            "rollup %s: periods %s … %s closed from POPs %s",
            config.name,
            period_name(config.period, starts[0]),
            period_name(config.period, starts[-1]),
            ", ".join(config.pops),
        )
