"""Plans as tables, billing periods, and which plan is in force when.

* ``plan_tables`` turns the ``rating:`` section into three small Arrow tables the rating
  SQL joins: ``billing_plans`` (plan, minimum charge in minor units), ``billing_prices``
  (one row per price: what it matches — category, metric, direction, local weekdays and
  hours — its unit size and its allowance in base units, and its position: the first
  matching price of a plan wins) and ``billing_tiers`` (graduated tiers in base units,
  rates as integers × 10^9).
* Billing periods run from ``billing_day`` 00:00 UTC of one month to the same day of the
  next (``bill_start``, ``bill_next``; ``bill_start_sql`` is the same rule in SQL).
* ``segments`` splits a billing period where the plan in force changes. At time ``t``
  an account is on the plan of its latest own assignment with ``from <= t``; without
  one, on its company's latest; without that, on ``default_plan`` (None: not rated).
  Each segment's share of the period (its length over the period's, in microseconds)
  pro-rates the allowances, tier bounds and the minimum charge (docs/rating.md).
  The assignment lists are scheme-sized, so this is plain Python; the roll-up rows are
  matched to segments in SQL.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from netdistill.billing.config import Assignment, RatingConfig
from netdistill.billing.money import rate_scaled, to_minor

INT128 = pa.decimal128(38, 0)


def bill_start(moment: datetime, day: int) -> datetime:
    moment = moment.astimezone(UTC)
    start = datetime(moment.year, moment.month, day, tzinfo=UTC)
    if start > moment:
        year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
        start = datetime(year, month, day, tzinfo=UTC)
    return start


def bill_next(start: datetime) -> datetime:
    return start + timedelta(days=calendar.monthrange(start.year, start.month)[1])


def bill_name(start: datetime) -> str:
    """``2026-11`` for the period starting on the billing day of November 2026."""
    return start.strftime("%Y-%m")


def bill_start_sql(column: str, day: int) -> str:
    first = f"(date_trunc('month', {column}) + INTERVAL {day - 1} DAY)"
    return (
        f"(CASE WHEN {first} <= {column} THEN {first}"
        f" ELSE {first} - INTERVAL 1 MONTH END)::TIMESTAMPTZ"
    )


def plan_tables(config: RatingConfig) -> dict[str, pa.Table]:
    plans, prices, tiers = [], [], []
    for plan_name, plan in config.plans.items():
        plans.append(
            {"plan": plan_name, "minimum_minor": to_minor(plan.minimum_charge, config.minor_units)}
        )
        for position, price in enumerate(plan.prices):
            size = price.unit_size
            when = price.when
            prices.append(
                {
                    "plan": plan_name,
                    "price": price.name,
                    "position": position,
                    "category": price.category,
                    "metric": price.measured,
                    "direction": price.direction,
                    "unit": price.unit,
                    "unit_size": size,
                    "included_base": int(price.included * size),
                    "days": when.day_numbers() if when else list(range(1, 8)),
                    "hours": when.hour_set() if when else list(range(24)),
                    "description": price.description,
                }
            )
            low = 0
            for number, tier in enumerate(price.all_tiers(), start=1):
                high = None if tier.up_to is None else int(tier.up_to * size)
                tiers.append(
                    {
                        "plan": plan_name,
                        "price": price.name,
                        "tier": number,
                        "from_base": low,
                        "to_base": high,
                        "rate": str(tier.rate),
                        "rate_scaled": rate_scaled(tier.rate),
                    }
                )
                low = high or 0
    return {
        "billing_plans": pa.Table.from_pylist(
            plans, pa.schema([("plan", pa.string()), ("minimum_minor", pa.int64())])
        ),
        "billing_prices": pa.Table.from_pylist(
            prices,
            pa.schema(
                [
                    ("plan", pa.string()),
                    ("price", pa.string()),
                    ("position", pa.int32()),
                    ("category", pa.string()),
                    ("metric", pa.string()),
                    ("direction", pa.string()),
                    ("unit", pa.string()),
                    ("unit_size", pa.int64()),
                    ("included_base", INT128),
                    ("days", pa.list_(pa.int32())),
                    ("hours", pa.list_(pa.int32())),
                    ("description", pa.string()),
                ]
            ),
        ),
        "billing_tiers": pa.Table.from_pylist(
            tiers,
            pa.schema(
                [
                    ("plan", pa.string()),
                    ("price", pa.string()),
                    ("tier", pa.int32()),
                    ("from_base", INT128),
                    ("to_base", INT128),
                    ("rate", pa.string()),
                    ("rate_scaled", INT128),
                ]
            ),
        ),
    }


@dataclass(frozen=True)
class Segment:
    start: datetime
    end: datetime
    plan: str | None


def _latest(assignments: Sequence[Assignment], moment: datetime) -> str | None:
    chosen: Assignment | None = None
    for item in assignments:  # scheme order breaks ties of equal `from`: the later wins
        if item.from_ <= moment and (chosen is None or item.from_ >= chosen.from_):
            chosen = item
    return chosen.plan if chosen else None


def segments(
    start: datetime,
    end: datetime,
    own: Sequence[Assignment],
    company: Sequence[Assignment],
    default: str | None,
) -> list[Segment]:
    """The billing period [start, end) cut where the plan in force changes."""
    cuts = sorted({start, *(a.from_ for a in [*own, *company] if start < a.from_ < end)})
    out: list[Segment] = []
    for index, cut in enumerate(cuts):
        plan = _latest(own, cut) or _latest(company, cut) or default
        stop = cuts[index + 1] if index + 1 < len(cuts) else end
        if out and out[-1].plan == plan:
            out[-1] = Segment(out[-1].start, stop, plan)
        else:
            out.append(Segment(cut, stop, plan))
    return out


def segment_table(
    config: RatingConfig, keys: Iterable[tuple[str | None, str | None, datetime]]
) -> pa.Table:
    """Segments of each (account or None, company or None, billing period start): the
    account's own (falling back to its company's) or, with account None, the company's."""
    by_account: dict[str, list[Assignment]] = {}
    by_company: dict[str, list[Assignment]] = {}
    for item in config.assignments:
        if item.account is not None:
            by_account.setdefault(item.account, []).append(item)
        else:
            by_company.setdefault(item.company or "", []).append(item)
    rows = []
    for account, company, start in keys:
        end = bill_next(start)
        own = by_account.get(account, []) if account is not None else []
        theirs = by_company.get(company or "", [])
        for seg in segments(start, end, own, theirs, config.default_plan):
            rows.append(
                {
                    "account_id": account,
                    "company": company,
                    "bill_start": start,
                    "seg_from": seg.start,
                    "seg_to": seg.end,
                    "plan": seg.plan,
                }
            )
    ts = pa.timestamp("us", tz="UTC")
    return pa.Table.from_pylist(
        rows,
        pa.schema(
            [
                ("account_id", pa.string()),
                ("company", pa.string()),
                ("bill_start", ts),
                ("seg_from", ts),
                ("seg_to", ts),
                ("plan", pa.string()),
            ]
        ),
    )


def assigned(config: RatingConfig) -> tuple[set[str], set[str]]:
    """(accounts, companies) that have assignments."""
    accounts = {a.account for a in config.assignments if a.account is not None}
    companies = {a.company for a in config.assignments if a.company is not None}
    return accounts, companies
