"""The usage a rating round reads, as rows (rollup, direction, period_start, account,
company, category, metric, origin, q) with ``q`` an integer of base units (bytes, µs,
records): ``origin = 'usage'`` from the account rows of roll-up periods rated in this
round, ``origin = 'late'`` from records that reached a rated period after the roll-up
had counted it (record_id above the period's ``high_record_id``), read from ``records``
with the roll-up's own rules (its input, account and company fields, time field and
categories), so that late usage is classified exactly as the roll-up would have.

Only the (category, metric) pairs some price names are read. Names in the SQL come from
the validated scheme; the roll-up input's parameters are inlined as quoted literals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netdistill.stages.base import InputSpec, resolve_input
from netdistill.stages.rollup_store import table_names, time_expression


def quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def in_range(column: str, accounts: tuple[str | None, str | None]) -> str:
    """SQL: ``column`` within the account range ``[low, high)`` (None: unbounded)."""
    low, high = accounts
    parts = ["true"]
    if low is not None:
        parts.append(f"{column} >= {quote(low)}")
    if high is not None:
        parts.append(f"{column} < {quote(high)}")
    return " AND ".join(parts)


def _inline(spec: InputSpec) -> str:
    where = spec.where
    for name in sorted(spec.params, key=len, reverse=True):
        where = where.replace(f"${name}", quote(str(spec.params[name])))
    return where


def _value(metric: str, column: str) -> str:
    if metric == "seconds":  # the roll-up summed integer µs and divided by 10^6
        return f"CAST(round({column} * 1000000) AS HUGEINT)"
    return f"CAST({column} AS HUGEINT)"


def rollup_usage_sql(
    rollup: Any,
    direction: str,
    pairs: Sequence[tuple[str, str]],
    rating_round: int,
    accounts: tuple[str | None, str | None] = (None, None),
) -> list[str]:
    """SELECTs of the on-time usage of the roll-up periods rated in ``rating_round``, of
    the accounts in ``accounts`` (``[low, high)``)."""
    table = table_names(rollup.name)[1]
    company = "a.company" if rollup.company else "''"
    out = []
    for category, metric in pairs:
        value = _value(metric, f'a."{category}_{metric}"')
        out.append(
            f"SELECT {quote(rollup.name)} AS rollup, {quote(direction)} AS direction,"
            f" a.period_start, a.account_id, {company} AS company, {quote(category)} AS category,"
            f" {quote(metric)} AS metric, 'usage' AS origin, {value} AS q"
            f' FROM "{table}" a JOIN billing_rated r ON r.rollup = {quote(rollup.name)}'
            f" AND r.period = a.period AND r.rated_round = {int(rating_round)}"
            f" WHERE {value} <> 0 AND {in_range('a.account_id', accounts)}"
        )
    return out


def late_usage_sql(
    rollup: Any,
    direction: str,
    pairs: Sequence[tuple[str, str]],
    scheme: Any,
    *,
    rating_round: int,
    previous_high: int,
    high: int,
    scan_low: int,
    accounts: tuple[str | None, str | None] = (None, None),
) -> str:
    """One SELECT of the late usage of ``rollup``'s rated periods among records
    ``(previous_high, high]`` (and, for periods rated this round, every record above the
    period's ``high_record_id``); ``scan_low`` bounds the scan (no lower bound is below
    it); of the accounts in ``accounts`` (``[low, high)``), filtered before the join."""
    spec = resolve_input(rollup.input, scheme) if rollup.input else InputSpec("true", {})
    t = time_expression(rollup)
    account = f"coalesce(CAST(rec.\"{rollup.account}\" AS VARCHAR), '')"
    company = f"coalesce(CAST(rec.\"{rollup.company}\" AS VARCHAR), '')" if rollup.company else "''"
    listed = [s.lower() for services in rollup.categories.values() for s in services]
    conditions = {
        c: f"s IN ({', '.join(quote(s.lower()) for s in services)})" if services else "false"
        for c, services in rollup.categories.items()
    }
    conditions["other"] = f"s NOT IN ({', '.join(quote(s) for s in listed)})" if listed else "true"
    conditions["total"] = "true"
    sources = {"bytes": "bytes", "seconds": "duration_us", "records": "1"}
    selects = [
        f"SELECT rollup, direction, period_start, account_id, company, {quote(c)} AS category,"
        f" {quote(m)} AS metric, 'late' AS origin,"
        f" CAST(coalesce(sum({sources[m]}) FILTER (WHERE {conditions[c]}), 0) AS HUGEINT) AS q"
        " FROM late GROUP BY ALL"
        for c, m in pairs
    ]
    lower = (
        f"CASE WHEN p.rated_round = {int(rating_round)} THEN coalesce(p.high_record_id, {high})"
        f" ELSE greatest(coalesce(p.high_record_id, 0), {int(previous_high)}) END"
    )
    return f"""
        WITH late AS (
            SELECT {quote(rollup.name)} AS rollup, {quote(direction)} AS direction,
                   p.period_start,
                   {account} AS account_id,
                   {company} AS company, lower(coalesce(rec.service, '')) AS s, rec.bytes,
                   CAST(round(rec.duration_s * 1e6) AS BIGINT) AS duration_us
            FROM records rec JOIN billing_rated p ON p.rollup = {quote(rollup.name)}
                 AND {t} >= p.period_start AND {t} < p.period_end
            WHERE rec.record_id <= {int(high)} AND rec.record_id > {int(scan_low)}
              AND rec.record_id > {lower}
              AND ({_inline(spec)})
              AND {in_range(account, accounts)}
        )
        SELECT * FROM ({" UNION ALL ".join(selects)}) WHERE q <> 0
    """
