"""The billing tables (created by ``ensure_tables``; the rating stage is their only writer).

* ``billing_plans``, ``billing_prices``, ``billing_tiers`` — the scheme's plans as tables
  (``plans.plan_tables``), rewritten when the stage starts. A round's working sets
  (the usage rows read, plan segments, documents being issued) are TEMP tables of the
  round's transactions.
* ``billing_rated`` — every roll-up period rated, once: (rollup, period) is its key;
  ``high_record_id`` is the last record the roll-up counted in it (later records of its
  time are late), ``rated_round`` the round that rated it.
* ``billing_usage`` — quantities in base units per (account, company, billing period,
  plan segment, price): ``quantity`` from roll-up rows, ``late_quantity`` from late
  records, ``billed_late`` the part of it already on an issued invoice or note, and
  ``rated_minor`` the amount the quantity costs now (what prepaid balances were
  decremented by).
* ``invoices`` and ``invoice_lines`` — issued documents (invoices, credit and debit
  notes), never updated or deleted; ``invoices.body`` is the JSON rendered at issue
  (what the files carry; its SHA-256 is ``sha256``); ``billing_sequence`` — the last
  number given out; ``invoice_exports`` — the export files written.
"""

from __future__ import annotations

from typing import Any

DDL = """
CREATE TABLE IF NOT EXISTS billing_plans (plan VARCHAR PRIMARY KEY, minimum_minor BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS billing_prices (
    plan VARCHAR NOT NULL, price VARCHAR NOT NULL, position INTEGER NOT NULL,
    category VARCHAR NOT NULL, metric VARCHAR NOT NULL, direction VARCHAR NOT NULL,
    unit VARCHAR NOT NULL, unit_size BIGINT NOT NULL, included_base HUGEINT NOT NULL,
    days INTEGER[] NOT NULL, hours INTEGER[] NOT NULL, description VARCHAR,
    PRIMARY KEY (plan, price));
CREATE TABLE IF NOT EXISTS billing_tiers (
    plan VARCHAR NOT NULL, price VARCHAR NOT NULL, tier INTEGER NOT NULL,
    from_base HUGEINT NOT NULL, to_base HUGEINT, rate VARCHAR NOT NULL,
    rate_scaled HUGEINT NOT NULL, PRIMARY KEY (plan, price, tier));
CREATE TABLE IF NOT EXISTS billing_rated (
    rollup VARCHAR NOT NULL, period VARCHAR NOT NULL, period_start TIMESTAMPTZ NOT NULL,
    period_end TIMESTAMPTZ NOT NULL, high_record_id BIGINT, rated_round BIGINT NOT NULL,
    rated_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (rollup, period));
CREATE TABLE IF NOT EXISTS billing_usage (
    account_id VARCHAR NOT NULL, company VARCHAR NOT NULL, bill_start TIMESTAMPTZ NOT NULL,
    bill_end TIMESTAMPTZ NOT NULL, seg_from TIMESTAMPTZ NOT NULL, seg_to TIMESTAMPTZ NOT NULL,
    plan VARCHAR NOT NULL, price VARCHAR NOT NULL, quantity HUGEINT NOT NULL,
    late_quantity HUGEINT NOT NULL, billed_late HUGEINT NOT NULL, rated_minor BIGINT NOT NULL,
    touched_round BIGINT NOT NULL,
    PRIMARY KEY (account_id, company, bill_start, seg_from, plan, price));
CREATE TABLE IF NOT EXISTS billing_sequence (name VARCHAR PRIMARY KEY, last BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS invoices (
    number VARCHAR PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, kind VARCHAR NOT NULL,
    account_id VARCHAR NOT NULL, bill_period VARCHAR NOT NULL,
    period_start TIMESTAMPTZ NOT NULL, period_end TIMESTAMPTZ NOT NULL,
    issued_at TIMESTAMPTZ NOT NULL, currency VARCHAR NOT NULL, minor_units INTEGER NOT NULL,
    total_minor BIGINT NOT NULL, refers_to VARCHAR, idempotency_key VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL, body VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS invoice_lines (
    number VARCHAR NOT NULL, line INTEGER NOT NULL, kind VARCHAR NOT NULL,
    plan VARCHAR NOT NULL, price VARCHAR NOT NULL, category VARCHAR NOT NULL,
    metric VARCHAR NOT NULL, direction VARCHAR NOT NULL, tier VARCHAR NOT NULL,
    segment_from TIMESTAMPTZ NOT NULL, segment_to TIMESTAMPTZ NOT NULL,
    base_quantity HUGEINT NOT NULL, unit VARCHAR NOT NULL, unit_size BIGINT NOT NULL,
    rate VARCHAR NOT NULL, amount_minor BIGINT NOT NULL, PRIMARY KEY (number, line));
CREATE TABLE IF NOT EXISTS invoice_exports (
    batch VARCHAR PRIMARY KEY, first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL,
    written_at TIMESTAMPTZ, files VARCHAR)
"""

#: tables a reader may see (invoices are reports: viewers read them)
REPORT_TABLES = ("invoices", "invoice_lines", "billing_usage", "billing_rated")


def ensure_tables(store: Any) -> None:
    with store.transaction() as tx:
        tx.execute(DDL)
