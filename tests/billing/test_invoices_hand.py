"""Invoices against hand-computed figures, to the cent: graduated tiers, an allowance, a
mid-period plan change (pro-rated allowance, tier bound and minimum), a time-of-day rate,
a minimum charge, half-to-even rounding, late records before invoicing (a ``late`` line)
and after (a debit note with a debit and a credit line), prepaid money balances and the
money alert. Usage comes from records committed to a real DuckDB store and rolled up by
the real hourly rollup stage."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

from billing_support import GB, Clock, commit, open_store, record, rows, runner, t

SCHEME = """
stages:
  - {name: hourly, type: rollup, period: hour, company: company, grace_s: 0,
     export: {directory: null}}
  - name: money
    type: alert
    rule: usage_over_balance
    balance: prepaid_money
    balances: {a: {prepaid_money: "10.00"}, c: {prepaid_money: "0.30"}}
rating:
  rollups: [hourly]
  currency: EUR
  default_plan: basic
  plans:
    basic:
      minimum_charge: "5.00"
      prices:
        - {name: web-night, category: http, unit: GB, rate: "0.10", when: {hours: [22, 6]}}
        - {name: web, category: http, unit: GB, included: "1",
           tiers: [{up_to: "2", rate: "0.50"}, {rate: "0.25"}]}
        - {name: calls, category: voip, unit: minute, rate: "0.02"}
    gold:
      prices:
        - {name: web, category: http, unit: GB, rate: "0.20"}
        - {name: calls, category: voip, unit: minute, rate: "0.01"}
  assignments:
    - {account: b, plan: gold, from: "2026-11-16T00:00:00Z"}
  invoices: {directory: invoices}
"""

ON_TIME = [
    # a: 4.2 GB of day web, 0.125 GB of night web, 150 s of calls
    record("2026-11-03T10:10:00", "a", "http", bytes=1_500_000_000),
    record("2026-11-03T10:40:00", "a", "https", bytes=1_000_000_000),
    record("2026-11-20T14:05:00", "a", "http", bytes=1_700_000_000),
    record("2026-11-07T23:30:00", "a", "http", bytes=125_000_000),
    record("2026-11-05T11:00:00", "a", "sip", seconds=150.0),
    # b: 3 GB of web on basic (before the 16th), then 2 GB web and 90 s calls on gold
    record("2026-11-10T12:00:00", "b", "http", bytes=3 * GB),
    record("2026-11-20T12:00:00", "b", "http", bytes=2 * GB),
    record("2026-11-20T15:00:00", "b", "sip", seconds=90.0),
    # c: 2 GB of day web, and a service no price names (free)
    record("2026-11-04T09:00:00", "c", "http", bytes=2 * GB),
    record("2026-11-04T09:30:00", "c", "ssh", bytes=5 * GB),
]


def lines(store: Any, number: str) -> list[tuple[str, str, str, str, str, D]]:
    """(kind, price, tier, quantity, rate, amount) of an invoice's lines, in order."""
    found = rows(store, f"SELECT * FROM invoices WHERE number = '{number}'")
    assert found, number
    from netdistill.billing.documents import load

    doc = load(store, "number = $n", {"n": number})[0]
    assert doc["intact"]
    return [
        (x["kind"], x["price"], x["tier"], x["quantity"], x["rate"], D(x["amount"]))
        for x in doc["lines"]
    ]


def total(store: Any, number: str) -> D:
    return D(rows(store, f"SELECT total_minor FROM invoices WHERE number = '{number}'")[0][
        "total_minor"]) / 100  # fmt: skip


def money(store: Any, account: str) -> D:
    found = rows(store, f"SELECT prepaid_money FROM balances WHERE account_id = '{account}'")
    return D(found[0]["prepaid_money"])


def test_hand_computed_invoices(tmp_path: Path) -> None:
    clock = Clock(t("2026-11-25T00:00:01"))
    store = open_store(tmp_path, clock)
    commit(store, ON_TIME, 1)
    stages = runner(store, tmp_path, clock, SCHEME)
    assert [s.name for s in stages.stages] == ["hourly", "rating", "money"]

    counts = stages.run_once()
    assert stages.errors == {}
    assert counts["rating"]["invoices"] == 0  # November is not over
    # a's usage so far, priced: web 1.00 + 0.30, night 0.01, calls 0.05 = 1.36
    assert money(store, "a") == D("8.64")
    # c: 2 GB web = 1 GB included + 1 GB × 0.50 = 0.50 > 0.30 prepaid: the alert fires
    assert money(store, "c") == D("-0.20")
    alerts = rows(store, "SELECT subject, detail FROM alerts WHERE kind = 'money'")
    assert [a["subject"] for a in alerts] == ["c"]

    # a late record of an hour already rated (b's calls on gold, 20th 15:00-16:00)
    commit(store, [record("2026-11-20T15:10:00", "b", "sip", seconds=120.0)], 2)
    counts = stages.run_once()["rating"]
    assert counts["late_rows"] == 1 and counts["periods_rated"] == 0

    clock.set(t("2026-12-01T00:00:01"))
    counts = stages.run_once()["rating"]
    assert counts["invoices"] == 3 and counts["notes"] == 0
    assert [r["number"] for r in rows(store, "SELECT number FROM invoices ORDER BY seq")] == [
        "INV-00000001",
        "INV-00000002",
        "INV-00000003",
    ]

    # --- a, basic all month ------------------------------------------------------------
    assert lines(store, "INV-00000001") == [
        # night web: 0.125 GB × 0.10 = 0.0125 → half to even → 0.01 (half-up would say 0.02)
        ("usage", "web-night", "1", "0.125", "0.10", D("0.01")),
        # day web 4.2 GB: the first 1 GB is included …
        ("included", "web", "included", "1", "0", D("0.00")),
        # … then tier 1: 2 GB × 0.50 = 1.00 …
        ("usage", "web", "1", "2", "0.50", D("1.00")),
        # … tier 2: 4.2 − 1 − 2 = 1.2 GB × 0.25 = 0.30
        ("usage", "web", "2", "1.2", "0.25", D("0.30")),
        # calls: 150 s = 2.5 minutes × 0.02 = 0.05
        ("usage", "calls", "1", "2.5", "0.02", D("0.05")),
        # minimum 5.00 − (0.01 + 1.00 + 0.30 + 0.05 = 1.36) = 3.64
        ("minimum", "minimum", "minimum", "1", "", D("3.64")),
    ]
    assert total(store, "INV-00000001") == D("5.00")

    # --- b, basic until the 16th (15 of 30 days: half), gold after -------------------------
    assert lines(store, "INV-00000002") == [
        # basic, pro-rated by 1/2: 0.5 GB included of the 3 GB …
        ("included", "web", "included", "0.5", "0", D("0.00")),
        # … tier 1 bound 2 GB × 1/2 = 1 GB at 0.50 = 0.50 …
        ("usage", "web", "1", "1", "0.50", D("0.50")),
        # … tier 2: 3 − 0.5 − 1 = 1.5 GB × 0.25 = 0.375 → half to even → 0.38
        ("usage", "web", "2", "1.5", "0.25", D("0.38")),
        # minimum 5.00 × 1/2 = 2.50 − 0.88 = 1.62
        ("minimum", "minimum", "minimum", "1", "", D("1.62")),
        # gold: 2 GB × 0.20 = 0.40
        ("usage", "web", "1", "2", "0.20", D("0.40")),
        # calls on time: 90 s = 1.5 min × 0.01 = 0.015 → half to even → 0.02
        ("usage", "calls", "1", "1.5", "0.01", D("0.02")),
        # late 120 s: 210 s = 3.5 min × 0.01 = 0.035 → 0.04; 0.04 − 0.02 = 0.02
        ("late", "calls", "late", "2", "", D("0.02")),
    ]
    assert total(store, "INV-00000002") == D("2.94")  # 0.50+0.38+1.62+0.40+0.02+0.02

    # --- c: 0.50 of web, the ssh usage is free (no price), minimum tops up to 5.00 ---------
    assert lines(store, "INV-00000003") == [
        ("included", "web", "included", "1", "0", D("0.00")),
        ("usage", "web", "1", "1", "0.50", D("0.50")),
        ("minimum", "minimum", "minimum", "1", "", D("4.50")),
    ]
    assert total(store, "INV-00000003") == D("5.00")
    # prepaid: a 10.00 − 1.36 − 3.64 = 5.00; c 0.30 − 0.50 − 4.50 = −4.70
    assert money(store, "a") == D("5.00")
    assert money(store, "c") == D("-4.70")

    # --- a late record after the invoice: a debit note referring to it ---------------------
    commit(store, [record("2026-11-20T14:30:00", "a", "http", bytes=20 * GB)], 3)
    counts = stages.run_once()["rating"]
    assert counts["notes"] == 1 and counts["invoices"] == 0
    note = rows(store, "SELECT * FROM invoices WHERE seq = 4")[0]
    assert (note["number"], note["kind"], note["refers_to"], note["account_id"]) == (
        "INV-00000004",
        "debit_note",
        "INV-00000001",
        "a",
    )
    assert lines(store, "INV-00000004") == [
        # day web now 24.2 GB: 1.00 + (24.2 − 3) × 0.25 = 1.00 + 5.30 = 6.30; was 1.30: +5.00
        ("late", "web", "late", "20", "", D("5.00")),
        # usage 6.30 + 0.01 + 0.05 = 6.36 ≥ 5.00: the 3.64 top-up is credited back
        ("minimum", "minimum", "minimum", "1", "", D("-3.64")),
    ]
    assert total(store, "INV-00000004") == D("1.36")
    assert money(store, "a") == D("3.64")  # 5.00 − 5.00 + 3.64
    # the invoice itself did not change
    assert total(store, "INV-00000001") == D("5.00")
    # nothing more to do
    again = stages.run_once()["rating"]
    assert (again["invoices"], again["notes"], again["late_rows"]) == (0, 0, 0)
    files = sorted(p.name for p in (tmp_path / "invoices").iterdir())
    assert files == [
        "00000001-00000003.invoices.csv",
        "00000001-00000003.jsonl",
        "00000001-00000003.lines.csv",
        "00000004-00000004.invoices.csv",
        "00000004-00000004.jsonl",
        "00000004-00000004.lines.csv",
    ]
    store.close()
