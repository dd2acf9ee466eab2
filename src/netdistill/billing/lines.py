"""The price of quantities, in SQL: graduated tiers, pro-rated allowances, the rounding
rule (``money.py``), over many ``billing_usage`` rows at once.

``tier_sql(where, quantities)`` gives one row per (usage row, tier) with, for each named
quantity expression ``X``, ``X_in`` (base units of ``X`` that fall in the tier) and
``X_amount`` (their price in minor units, rounded half to even). For a usage row in a
plan segment of length ``s`` in a billing period of length ``b`` (microseconds):

* ``allowance = half_even(included × s, b)`` base units are free;
* tier ``k`` covers billable units (those beyond the allowance) in
  ``[half_even(from_k × s, b), half_even(to_k × s, b))`` — graduated: each unit costs the
  rate of the tier it falls in, not the last tier's rate for all;
* ``X_amount = half_even(X_in × rate × 10^9 × 10^minor_units, unit_size × 10^9)``.

With ``s = b`` (no plan change) nothing is scaled.
"""

from __future__ import annotations

from netdistill.billing.money import RATE_SCALE, half_even_sql


def tier_sql(where: str, quantities: dict[str, str], minor_units: int) -> str:
    scale = 10**minor_units
    columns = []
    for name, expr in quantities.items():
        billable = f"greatest(({expr}) - allowance, 0)"
        within = f"greatest(least({billable} - lo, coalesce(hi - lo, {billable})), 0)"
        columns.append(f"{within} AS {name}_in")
    amounts = [
        f"{half_even_sql(f'{name}_in * rate_scaled * {scale}', f'unit_size * {RATE_SCALE}')}"
        f" AS {name}_amount"
        for name in quantities
    ]
    return f"""
        WITH u AS (
            SELECT u.*, p.position, p.category, p.metric, p.direction, p.unit, p.unit_size,
                   p.included_base,
                   CAST(epoch_us(u.seg_to) - epoch_us(u.seg_from) AS HUGEINT) AS seg_len,
                   CAST(epoch_us(u.bill_end) - epoch_us(u.bill_start) AS HUGEINT) AS bill_len
            FROM billing_usage u JOIN billing_prices p USING (plan, price)
            WHERE {where}
        ), a AS (
            SELECT u.*, {half_even_sql("included_base * seg_len", "bill_len")} AS allowance
            FROM u
        ), t AS (
            SELECT a.*, tr.tier, tr.rate, tr.rate_scaled,
                   {half_even_sql("tr.from_base * seg_len", "bill_len")} AS lo,
                   CASE WHEN tr.to_base IS NULL THEN NULL
                        ELSE {half_even_sql("tr.to_base * seg_len", "bill_len")} END AS hi
            FROM a JOIN billing_tiers tr USING (plan, price)
        ), q AS (
            SELECT t.*, {", ".join(columns)} FROM t
        )
        SELECT q.*, {", ".join(amounts)} FROM q
    """


def rated_sql(where: str, minor_units: int) -> str:
    """Per usage row: what its whole quantity (on time + late) costs now."""
    inner = tier_sql(where, {"all": "quantity + late_quantity"}, minor_units)
    return f"""
        SELECT account_id, company, bill_start, seg_from, plan, price,
               CAST(sum(all_amount) AS BIGINT) AS rated_minor
        FROM ({inner}) GROUP BY ALL
    """
