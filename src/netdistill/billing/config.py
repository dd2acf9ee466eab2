"""The scheme's ``rating:`` section: the currency, the price plans, who is on which plan
since when, and how invoices are numbered and exported (docs/rating.md).

Every model is frozen and rejects unknown keys. Money, rates and quantities are exact
``Decimal`` values given as strings or integers (``money.exact_decimal``: YAML floats are
refused). ``check_in_scheme`` checks the section against the rollups it rates: they
exist, they have the categories the prices name, and their periods are fine enough for
the time-of-day and weekday rates (hours need ``period: hour``; weekdays ``day`` or
``hour``) and for the billing day (a billing day other than 1 needs ``day`` or ``hour``).

Sample::

    rating:
      rollups: [hourly]               # rollup stages rated; {rollup: x, direction: in}
      currency: EUR
      minor_units: 2
      billing_day: 1                  # billing periods start on this day, 00:00 UTC
      timezone: Europe/Berlin         # of the hours and weekdays in `when`
      default_plan: basic
      plans:
        basic:
          minimum_charge: "5.00"      # per billing period, pro-rated on a plan change
          prices:
            - {name: web, category: http, unit: GB, included: "10",
               tiers: [{up_to: "100", rate: "0.50"}, {rate: "0.25"}]}
            - {name: web-night, category: http, unit: GB, rate: "0.10",
               when: {hours: [22, 6]}}          # listed first wins; see docs
            - {name: calls, category: voip, metric: seconds, unit: minute, rate: "0.02"}
      assignments:
        - {account: a1, plan: gold, from: "2026-11-15T00:00:00Z"}
        - {company: Acme, plan: business, from: "2026-01-01T00:00:00Z"}
      invoices: {prefix: INV-, digits: 8, directory: invoices, formats: [csv, json]}
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from netdistill.billing.money import UNITS, exact_decimal, rate_scaled, to_minor

Direction = Literal["any", "in", "out"]
Metric = Literal["bytes", "seconds", "records"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Model):
    """One step of a graduated price: units beyond the allowance up to ``up_to`` (in the
    price's unit, counted from the first billable unit) cost ``rate`` each."""

    up_to: Decimal | None = None
    rate: Decimal

    @field_validator("up_to", "rate", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        if value is None:
            return None
        result = exact_decimal(value, "tier value")
        if result < 0:
            raise ValueError(f"{value!r}: must not be negative")
        return result

    @field_validator("rate")
    @classmethod
    def _places(cls, value: Decimal) -> Decimal:
        rate_scaled(value)
        return value


class When(_Model):
    """When a price applies: local weekdays and/or hours ``[from, to)`` (``[22, 6]``
    wraps midnight), in the section's ``timezone``, taken at the start of a roll-up
    period."""

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None
    hours: tuple[int, int] | None = None

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not (0 <= value[0] <= 23 and 0 <= value[1] <= 24):
            raise ValueError(f"hours {list(value)}: [from, to) with 0 <= from <= 23, to <= 24")
        if value is not None and value[0] == value[1]:
            raise ValueError(f"hours {list(value)}: an empty window; leave `hours` out")
        return value

    def hour_set(self) -> list[int]:
        if self.hours is None:
            return list(range(24))
        start, end = self.hours
        return list(range(start, end)) if start < end else [*range(start, 24), *range(0, end)]

    def day_numbers(self) -> list[int]:
        """ISO weekdays, Monday = 1."""
        return [DAYS.index(d) + 1 for d in (self.days or DAYS)]


class Price(_Model):
    """What one kind of usage costs: a roll-up category's bytes, seconds or records in
    one direction, at some times; an allowance included per billing period; graduated
    tiers beyond it (or one ``rate``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,62}$")
    category: str = Field(description="a rollup category, 'other' or 'total'")
    unit: str = Field(description="GB, MB, minute, session … (docs/rating.md)")
    metric: Metric | None = Field(None, description="default: the unit's")
    direction: Direction = "any"
    included: Decimal = Field(Decimal(0), description="units free per billing period")
    rate: Decimal | None = None
    tiers: list[Tier] | None = None
    when: When | None = None
    description: str = ""

    @field_validator("included", "rate", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        if value is None:
            return None
        result = exact_decimal(value, "value")
        if result < 0:
            raise ValueError(f"{value!r}: must not be negative")
        return result

    @model_validator(mode="after")
    def _check(self) -> Price:
        if self.unit not in UNITS:
            raise ValueError(f"unit {self.unit!r}: expected one of {', '.join(UNITS)}")
        metric = UNITS[self.unit][0]
        if self.metric is not None and self.metric != metric:
            raise ValueError(f"unit {self.unit!r} measures {metric}, not {self.metric}")
        if (self.rate is None) == (self.tiers is None):
            raise ValueError(f"price {self.name!r}: give either `rate` or `tiers`")
        if self.rate is not None:
            rate_scaled(self.rate)
        tiers = self.all_tiers()
        if not tiers or tiers[-1].up_to is not None:
            raise ValueError(f"price {self.name!r}: the last tier has no up_to (it is open)")
        if any(t.up_to is None for t in tiers[:-1]):
            raise ValueError(f"price {self.name!r}: only the last tier is open (no up_to)")
        bounds = [t.up_to for t in tiers[:-1] if t.up_to is not None]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError(f"price {self.name!r}: tiers' up_to must increase, last one open")
        size = UNITS[self.unit][1]
        for value in (self.included, *[b for b in bounds if b is not None]):
            if (value * size) != int(value * size):
                raise ValueError(
                    f"price {self.name!r}: {value} {self.unit} is not whole base units"
                )
        return self

    @property
    def measured(self) -> Metric:
        return UNITS[self.unit][0]  # type: ignore[return-value]

    @property
    def unit_size(self) -> int:
        return UNITS[self.unit][1]

    def all_tiers(self) -> list[Tier]:
        return list(self.tiers) if self.tiers is not None else [Tier(rate=self.rate or Decimal(0))]


class Plan(_Model):
    minimum_charge: Decimal = Field(Decimal(0), description="per billing period")
    prices: list[Price] = Field(default_factory=list)
    description: str = ""

    @field_validator("minimum_charge", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        result = exact_decimal(value, "minimum_charge")
        if result < 0:
            raise ValueError(f"minimum_charge {value!r}: must not be negative")
        return result

    @model_validator(mode="after")
    def _unique(self) -> Plan:
        names = [p.name for p in self.prices]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two prices are named {name!r}")
        return self


class Assignment(_Model):
    """From ``from`` on, ``account`` (or every account of ``company`` that has no
    assignment of its own in force) is on ``plan``."""

    account: str | None = None
    company: str | None = None
    plan: str
    from_: datetime = Field(alias="from")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("from_")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError(f"from {value.isoformat()}: give a time zone (e.g. Z)")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _one(self) -> Assignment:
        if (self.account is None) == (self.company is None):
            raise ValueError("an assignment names either an account or a company")
        return self


class RatedRollup(_Model):
    rollup: str
    direction: Direction = "any"


class InvoicesConfig(_Model):
    prefix: str = Field("INV-", pattern=r"^[A-Za-z0-9_-]{0,16}$")
    digits: int = Field(8, ge=1, le=18, description="zero-padded sequence width")
    directory: str | None = Field("invoices", description="relative to the data directory")
    formats: list[Literal["csv", "json"]] = Field(
        default_factory=lambda: ["csv", "json"]  # type: ignore[arg-type]
    )


class RatingConfig(_Model):
    """The ``rating:`` section (see the module docstring)."""

    rollups: list[RatedRollup | str]
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    minor_units: int = Field(2, ge=0, le=6)
    billing_day: int = Field(1, ge=1, le=28)
    timezone: str = "UTC"
    default_plan: str | None = None
    plans: dict[str, Plan]
    assignments: list[Assignment] = Field(default_factory=list)
    invoices: InvoicesConfig = Field(default_factory=InvoicesConfig)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {value!r}: not a known IANA time zone") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> RatingConfig:
        names = [r.rollup for r in self.rated()]
        if not names or len(set(names)) != len(names):
            raise ValueError("rollups: name each rated rollup once")
        known = set(self.plans)
        for plan_name, plan in self.plans.items():
            to_minor(plan.minimum_charge, self.minor_units)  # exact in the currency
            if not plan_name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"plan {plan_name!r}: letters, digits, - and _ only")
        for name in [self.default_plan, *[a.plan for a in self.assignments]]:
            if name is not None and name not in known:
                raise ValueError(f"plan {name!r} is not defined in plans ({', '.join(known)})")
        return self

    def rated(self) -> list[RatedRollup]:
        return [RatedRollup(rollup=r) if isinstance(r, str) else r for r in self.rollups]

    def minimum_minor(self, plan: str) -> int:
        return to_minor(self.plans[plan].minimum_charge, self.minor_units)

    def check_in_scheme(self, scheme: Any) -> None:
        """The rated rollups exist and fit the prices (see the module docstring)."""
        rollups = {s.name: s for s in scheme.stages if s.type == "rollup"}
        needs_hours = any(p.when and p.when.hours for pl in self.plans.values() for p in pl.prices)
        needs_days = any(p.when and p.when.days for pl in self.plans.values() for p in pl.prices)
        categories: set[str] = set()
        for rated in self.rated():
            stage = rollups.get(rated.rollup)
            if stage is None:
                raise ValueError(
                    f"rating: rollups: {rated.rollup!r} is not a rollup stage of this scheme "
                    f"(rollups: {', '.join(rollups) or 'none'})"
                )
            categories |= set(stage.all_categories())
            hourly = needs_hours or (needs_days and self.timezone != "UTC")
            if hourly and stage.period != "hour":
                raise ValueError(
                    f"rating: prices with `when: hours` (or weekdays in a timezone other "
                    f"than UTC) need hourly roll-up periods; rollup {rated.rollup!r} has "
                    f"period {stage.period!r}"
                )
            if (needs_days or self.billing_day != 1) and stage.period == "month":
                raise ValueError(
                    f"rating: weekday rates and a billing_day other than 1 need daily or "
                    f"hourly roll-up periods; rollup {rated.rollup!r} is monthly"
                )
        for plan_name, plan in self.plans.items():
            for price in plan.prices:
                if price.category not in categories:
                    raise ValueError(
                        f"rating: plan {plan_name!r} price {price.name!r}: category "
                        f"{price.category!r} is not one of the rated rollups' "
                        f"({', '.join(sorted(categories))})"
                    )
