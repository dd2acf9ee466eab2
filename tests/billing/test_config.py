"""The ``rating:`` section: errors name the problem (floats for money, rollups that do
not exist or are too coarse for the prices, unknown plans and categories, bad tiers),
and the segment arithmetic of plan changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from netdistill.billing.config import Assignment
from netdistill.billing.plans import Segment, bill_next, bill_start, segments
from netdistill.errors import SchemeError
from netdistill.scheme.load import parse_scheme

BASE = """
stages:
  - {{name: hourly, type: rollup, period: {period}}}
rating:
  rollups: [{rollup}]
  default_plan: {default}
  plans:
    basic:
      prices:
        - {price}
"""
GOOD = "{name: web, category: http, unit: GB, rate: '0.05'}"


def scheme(period: str = "hour", rollup: str = "hourly", default: str = "basic",
           price: str = GOOD) -> str:  # fmt: skip
    return BASE.format(period=period, rollup=rollup, default=default, price=price)


def test_good_scheme_validates() -> None:
    parsed = parse_scheme(scheme())
    assert parsed.rating is not None and parsed.rating.currency == "EUR"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (scheme(price="{name: web, category: http, unit: GB, rate: 0.05}"), "write it as a string"),
        (scheme(rollup="nope"), "'nope' is not a rollup stage"),
        (scheme(default="silver"), "plan 'silver' is not defined"),
        (scheme(price="{name: w, category: chat, unit: GB, rate: '1'}"), "category 'chat'"),
        (
            scheme(
                price="{name: w, category: http, unit: GB, rate: '1', when: {hours: [22, 6]}}",
                period="day",
            ),
            "need hourly roll-up periods",
        ),
        (scheme(price="{name: w, category: http, unit: parsec, rate: '1'}"), "unit 'parsec'"),
        (
            scheme(price="{name: w, category: http, unit: GB, metric: seconds, rate: '1'}"),
            "measures bytes",
        ),
        (
            scheme(price="{name: w, category: http, unit: GB, tiers: [{rate: '1'}, {rate: '2'}]}"),
            "only the last tier is open",
        ),
        (
            scheme(price="{name: w, category: http, unit: GB, rate: '0.0000000001'}"),
            "at most 9 decimal places",
        ),
        (
            scheme(price="{name: w, category: http, unit: B, included: '0.5', rate: '1'}"),
            "not whole base units",
        ),
    ],
)
def test_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(SchemeError) as caught:
        parse_scheme(text)
    assert message in str(caught.value)


def utc(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC)


def test_billing_periods_and_segments() -> None:
    assert bill_start(datetime(2026, 11, 14, 23, tzinfo=UTC), 15) == utc(15, 10)
    assert bill_start(utc(15), 15) == utc(15) and bill_next(utc(15)) == utc(15, 12)
    own = [
        Assignment.model_validate({"account": "a", "plan": "gold", "from": "2026-11-10T00:00:00Z"})
    ]
    company = [
        Assignment.model_validate({"company": "c", "plan": "biz", "from": "2026-11-05T00:00:00Z"}),
        Assignment.model_validate({"company": "c", "plan": "biz2", "from": "2026-11-20T00:00:00Z"}),
    ]  # fmt: skip
    # default until the 5th, the company's plan until the account's own from the 10th;
    # the company's change on the 20th does not matter to an account with its own plan
    assert segments(utc(1), utc(1, 12), own, company, "basic") == [
        Segment(utc(1), utc(5), "basic"),
        Segment(utc(5), utc(10), "biz"),
        Segment(utc(10), utc(1, 12), "gold"),
    ]
    assert segments(utc(1), utc(1, 12), [], company, None) == [
        Segment(utc(1), utc(5), None),
        Segment(utc(5), utc(20), "biz"),
        Segment(utc(20), utc(1, 12), "biz2"),
    ]
