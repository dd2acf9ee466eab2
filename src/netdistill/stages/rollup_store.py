"""Where a rollup's results live and how they are computed: period arithmetic (UTC
calendar months, days, hours), the one GROUPING SETS query that closes periods, the
tables ``rollup_<name>_periods|accounts|companies`` and ``_rollups`` (each rollup's
config, so that ``netdistill export`` works on a store without the scheme), and reading
closed periods back for the API, the CLI and the exporter. The stage that drives this is
``stages/rollup.py``; its docstring describes the record columns.
"""

from __future__ import annotations

import calendar
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from netdistill.accounting.export import Exporter, Part, PeriodExport, export_history, plain
from netdistill.errors import ExportError, StoreError
from netdistill.stages.base import InputSpec

if TYPE_CHECKING:
    from netdistill.stages.rollup import RollupConfig

PERIOD_FORMATS = {"month": "%Y-%m", "day": "%Y-%m-%d", "hour": "%Y-%m-%dT%H"}
METRICS = ("bytes", "seconds", "records")

REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS _rollups (
    name VARCHAR PRIMARY KEY, config VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL)
"""


# --- periods ---------------------------------------------------------------------------------


def period_floor(unit: str, moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    if unit == "month":
        return datetime(moment.year, moment.month, 1, tzinfo=UTC)
    if unit == "day":
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def period_next(unit: str, start: datetime) -> datetime:
    if unit == "month":
        days = calendar.monthrange(start.year, start.month)[1]
        return start + timedelta(days=days)
    return start + (timedelta(days=1) if unit == "day" else timedelta(hours=1))


def period_name(unit: str, start: datetime) -> str:
    return start.strftime(PERIOD_FORMATS[unit])


def table_names(rollup: str) -> tuple[str, str, str]:
    """(periods, accounts, companies) table names of ``rollup``."""
    return (f"rollup_{rollup}_periods", f"rollup_{rollup}_accounts", f"rollup_{rollup}_companies")


# --- SQL -------------------------------------------------------------------------------------


def time_expression(config: RollupConfig) -> str:
    other = "start_time" if config.time_field == "end_time" else "end_time"
    return f"coalesce({config.time_field}, {other})"


def _quote(service: str) -> str:
    return "'" + service.lower().replace("'", "''") + "'"  # names are validated; still


def rollup_sql(config: RollupConfig, spec: InputSpec) -> str:
    """One GROUPING SETS query: account rows and (with ``company``) company rows of every
    period in [$lo, $hi), over records up to $high."""
    listed = [s for services in config.categories.values() for s in services]
    conditions = {
        c: f"s IN ({', '.join(_quote(s) for s in services)})" if services else "false"
        for c, services in config.categories.items()
    }
    conditions["other"] = f"s NOT IN ({', '.join(_quote(s) for s in listed)})" if listed else "true"
    conditions["total"] = "true"
    metrics = []
    for category, condition in conditions.items():
        metrics += [
            f"CAST(coalesce(sum(bytes) FILTER (WHERE {condition}), 0) AS UBIGINT)"
            f" AS {category}_bytes",
            f"coalesce(sum(duration_us) FILTER (WHERE {condition}), 0) / 1e6 AS {category}_seconds",
            f"count(*) FILTER (WHERE {condition}) AS {category}_records",
        ]
    company = f"coalesce(CAST(\"{config.company}\" AS VARCHAR), '')" if config.company else "''"
    sets = "(period_start, company, account_id)"
    if config.company:
        sets += ", (period_start, company)"
    fmt = PERIOD_FORMATS[config.period]
    t = time_expression(config)
    metric_sql = ",\n               ".join(metrics)
    return f"""
        WITH r AS (
            SELECT date_trunc('{config.period}', {t}) AS period_start,
                   coalesce(CAST("{config.account}" AS VARCHAR), '') AS account_id,
                   {company} AS company,
                   lower(coalesce(service, '')) AS s,
                   bytes,
                   CAST(round(duration_s * 1e6) AS BIGINT) AS duration_us
            FROM records
            WHERE record_id <= $high AND {t} >= to_timestamp($lo) AND {t} < to_timestamp($hi)
              AND ({spec.where})
        )
        SELECT strftime(period_start, '{fmt}') AS period, period_start,
               period_start + INTERVAL 1 {config.period} AS period_end,
               account_id, company, grouping(account_id) = 1 AS is_company,
               count(DISTINCT account_id) AS accounts,
               {metric_sql}
        FROM r
        GROUP BY GROUPING SETS ({sets})
        ORDER BY period_start, company, account_id NULLS FIRST
    """


def table_ddl(config: RollupConfig, rollup: str) -> list[str]:
    periods, accounts, companies = table_names(rollup)
    types = {"bytes": "UBIGINT", "seconds": "DOUBLE", "records": "BIGINT"}
    metrics = ", ".join(
        f"{c}_{m} {types[m]} NOT NULL" for c in config.all_categories() for m in METRICS
    )
    head = (
        "period VARCHAR NOT NULL, period_start TIMESTAMPTZ NOT NULL, "
        "period_end TIMESTAMPTZ NOT NULL"
    )
    out = [
        f'CREATE TABLE IF NOT EXISTS "{periods}" (period VARCHAR PRIMARY KEY,'
        " period_start TIMESTAMPTZ NOT NULL, period_end TIMESTAMPTZ NOT NULL,"
        " closed_at TIMESTAMPTZ NOT NULL, records BIGINT NOT NULL, bytes UBIGINT NOT NULL,"
        " accounts BIGINT NOT NULL, companies BIGINT NOT NULL)",
        # the last record_id counted: later records of the period's time are late (rating)
        f'ALTER TABLE "{periods}" ADD COLUMN IF NOT EXISTS high_record_id BIGINT',
    ]
    if config.company:
        out.append(
            f'CREATE TABLE IF NOT EXISTS "{accounts}" ({head}, account_id VARCHAR NOT NULL,'
            f" company VARCHAR NOT NULL, {metrics}, PRIMARY KEY (period, account_id, company))"
        )
        out.append(
            f'CREATE TABLE IF NOT EXISTS "{companies}" ({head}, company VARCHAR NOT NULL,'
            f" accounts BIGINT NOT NULL, {metrics}, PRIMARY KEY (period, company))"
        )
    else:
        out.append(
            f'CREATE TABLE IF NOT EXISTS "{accounts}" ({head}, account_id VARCHAR NOT NULL,'
            f" {metrics}, PRIMARY KEY (period, account_id))"
        )
    return out


# --- reading closed periods (the stage, the API and the CLI without a manager) -------------


def load_config(store: Any, rollup: str) -> RollupConfig:
    """The config a rollup last ran with, as recorded in the store."""
    try:
        table = store.query("SELECT config FROM _rollups WHERE name = $n", {"n": rollup})
    except StoreError:
        table = pa.table({"config": pa.array([], pa.string())})
    if not table.num_rows:
        raise ExportError(f"no rollup named {rollup!r} in this store")
    from netdistill.scheme.secrets import withheld_secrets_allowed
    from netdistill.stages.rollup import RollupConfig

    with withheld_secrets_allowed():  # inline header secrets were stored as "***"
        return RollupConfig.model_validate(json.loads(table.column("config")[0].as_py()))


def rollup_names(store: Any) -> list[str]:
    try:
        return [
            str(n)
            for n in store.query("SELECT name FROM _rollups ORDER BY name")
            .column("name")
            .to_pylist()
        ]
    except StoreError:
        return []


def closed_periods(store: Any, rollup: str) -> list[dict[str, Any]]:
    """The period rows of ``rollup``, oldest first, with their export history."""
    periods = table_names(rollup)[0]
    rows = store.query(f'SELECT * FROM "{periods}" ORDER BY period_start').to_pylist()
    history: dict[str, list[dict[str, Any]]] = {}
    for item in export_history(store, rollup):
        history.setdefault(item["period"], []).append(item)
    return [
        {**{k: plain(v) for k, v in row.items()}, "exports": history.get(row["period"], [])}
        for row in rows
    ]


def load_period(store: Any, config: RollupConfig, period: str) -> PeriodExport:
    """A closed period's account (and company) records, ordered by company, account."""
    periods, accounts, companies = table_names(config.name)
    found = store.query(f'SELECT * FROM "{periods}" WHERE period = $p', {"p": period})
    if not found.num_rows:
        raise ExportError(f"rollup {config.name!r}: period {period!r} is not closed")
    head = found.to_pylist()[0]
    order = "company, account_id" if config.company else "account_id"
    parts = {
        "accounts": Part(
            config.account_columns(),
            store.query(
                f'SELECT * FROM "{accounts}" WHERE period = $p ORDER BY {order}', {"p": period}
            ).to_pylist(),
        )
    }
    if config.company:
        parts["companies"] = Part(
            config.company_columns(),
            store.query(
                f'SELECT * FROM "{companies}" WHERE period = $p ORDER BY company', {"p": period}
            ).to_pylist(),
        )
    return PeriodExport(
        config.name,
        period,
        plain(head["period_start"]),
        plain(head["period_end"]),
        plain(head["closed_at"]),
        parts,
    )


def make_exporter(store: Any, config: RollupConfig, data_dir: Any, clock: Any) -> Exporter:
    periods = table_names(config.name)[0]
    return Exporter(
        store,
        config.name,
        config.export,
        data_dir,
        load=lambda period: load_period(store, config, period),
        closed_periods=lambda: [
            str(p)
            for p in store.query(f'SELECT period FROM "{periods}" ORDER BY period_start')
            .column("period")
            .to_pylist()
        ],
        clock=clock,
    )
