"""Issuing invoices, credit notes and debit notes, inside a chunk's transaction.

A billing period is **due** once every rated rollup has rated all its periods up to the
billing period's end. Then, for the accounts of a chunk of the round (``rating.py``), in
the chunk's transaction:

* every account with usage in it and no invoice for it gets an **invoice**: per plan
  segment and price an ``included`` line (units of the allowance used, amount 0), one
  ``usage`` line per tier used (quantity, rate, amount), a ``late`` line for usage that
  reached the period after it was rated (its amount is what the late quantity adds on top
  of the on-time quantity, through the same tiers), and a ``minimum`` line topping the
  segment up to its (pro-rated) minimum charge; accounts assigned a plan with a minimum
  charge and no usage get an invoice with the minimum line alone;
* an account whose invoice is issued and whose period received more late usage since gets
  a **note** referring to it: the ``late`` lines of the new quantity, and a ``minimum``
  line with the change of the top-up (usually a credit: the late usage now covers part of
  the minimum). A note whose total is negative is a ``credit_note``, else a ``debit_note``.

Numbers come from one gap-free sequence (``billing_sequence``), allocated in the same
transaction that inserts the documents: a failed chunk allocates nothing. Each document
is stored with its canonical JSON (``body``) and its SHA-256, made in the same
statements (``render_sql.render_bodies``: per distinct text, not per document, in
Python; assembled by DuckDB), so the transaction stays short. Documents are
never updated or deleted (``documents.verify``); nothing in netdistill has a path that
changes one, and the API refuses (405) any attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from netdistill.billing.config import RatingConfig
from netdistill.billing.lines import tier_sql
from netdistill.billing.money import half_even_sql
from netdistill.billing.plans import assigned, segment_table
from netdistill.billing.render_sql import quantity_scaled, render_bodies
from netdistill.billing.usage import in_range, quote

SEQUENCE = "invoices"


@dataclass
class Issued:
    invoices: int = 0
    notes: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    minimum_by_account: dict[str, int] | None = None


def _min_only_accounts(
    tx: Any, config: RatingConfig, accounts: tuple[str | None, str | None]
) -> None:
    """Add invoices for accounts assigned a plan with a minimum charge that have no usage
    in a period being invoiced now (their segments go to ``billing_minseg``)."""
    assigned_accounts, _ = assigned(config)
    periods = [
        row["bill_start"]
        for row in tx.query(
            "SELECT DISTINCT bill_start FROM billing_issue WHERE doc = 'invoice'"
        ).to_pylist()
    ]
    if not assigned_accounts or not periods:
        return
    keys = [(account, None, start) for account in sorted(assigned_accounts) for start in periods]
    segs = segment_table(config, keys)
    minimum = {p: config.minimum_minor(p) for p in config.plans}
    keep = [
        i
        for i, plan in enumerate(segs.column("plan").to_pylist())
        if plan is not None and minimum[plan] > 0
    ]
    if not keep:
        return
    tx.execute(
        "CREATE OR REPLACE TEMP TABLE billing_minonly AS SELECT * FROM billing_minseg LIMIT 0"
    )
    tx.insert_arrow("billing_minonly", segs.take(keep).drop_columns(["company"]))
    tx.execute(
        f"""
        DELETE FROM billing_minonly m WHERE NOT ({in_range("m.account_id", accounts)}) OR EXISTS (
            SELECT 1 FROM invoices i WHERE i.kind = 'invoice' AND i.account_id = m.account_id
              AND i.period_start = m.bill_start)
          OR EXISTS (SELECT 1 FROM billing_usage u WHERE u.account_id = m.account_id
              AND u.bill_start = m.bill_start)
        """
    )
    tx.execute(
        """
        INSERT INTO billing_issue
        SELECT DISTINCT account_id, bill_start,
               bill_start + INTERVAL 1 MONTH, 'invoice', NULL FROM billing_minonly
        """
    )
    tx.execute(
        "INSERT INTO billing_minseg SELECT account_id, bill_start, seg_from, seg_to, plan"
        " FROM billing_minonly"
    )


def issue_due(
    tx: Any,
    config: RatingConfig,
    rated_until: datetime | None,
    accounts: tuple[str | None, str | None] = (None, None),
) -> Issued:
    """Issue what is due for the accounts in ``accounts`` (``[low, high)``, see the
    module docstring), numbered after the sequence's last number."""
    result = Issued(minimum_by_account={})
    if rated_until is None:
        return result
    tx.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE billing_issue AS
        SELECT DISTINCT u.account_id, u.bill_start, u.bill_end,
               CASE WHEN i.number IS NULL THEN 'invoice' ELSE 'note' END AS doc,
               i.number AS refers_to
        FROM billing_usage u
        LEFT JOIN invoices i ON i.kind = 'invoice' AND i.account_id = u.account_id
             AND i.period_start = u.bill_start
        WHERE u.bill_end <= ? AND (i.number IS NULL OR u.late_quantity > u.billed_late)
          AND {in_range("u.account_id", accounts)}
        """,
        (rated_until,),
    )
    tx.execute(
        """
        CREATE OR REPLACE TEMP TABLE billing_minseg AS
        SELECT DISTINCT u.account_id, u.bill_start, u.seg_from, u.seg_to, u.plan
        FROM billing_usage u JOIN billing_issue b USING (account_id, bill_start)
        """
    )
    _min_only_accounts(tx, config, accounts)
    count = tx.query("SELECT count(*) AS n FROM billing_issue").column("n")[0].as_py()
    if not count:
        return result
    minor = config.minor_units
    tiers = tier_sql(
        "(u.account_id, u.bill_start) IN (SELECT account_id, bill_start FROM billing_issue)",
        {"on": "quantity", "all": "quantity + late_quantity", "billed": "quantity + billed_late"},
        minor,
    )
    line_columns = (
        "account_id, bill_start, kind, plan, price, category, metric, direction, tier,"
        " seg_from, seg_to, base_quantity, unit, unit_size, rate, amount_minor, position,"
        " tier_order"
    )
    seg_len = "CAST(epoch_us(m.seg_to) - epoch_us(m.seg_from) AS HUGEINT)"
    bill_len = "CAST(epoch_us(b.bill_end) - epoch_us(b.bill_start) AS HUGEINT)"
    tx.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE billing_doc_lines AS
        WITH d AS (
            SELECT t.*, b.doc FROM ({tiers}) t JOIN billing_issue b USING (account_id, bill_start)
        ), usage_lines AS (
            SELECT account_id, bill_start, 'usage' AS kind, plan, price, category, metric,
                   direction, CAST(tier AS VARCHAR) AS tier, seg_from, seg_to,
                   on_in AS base_quantity, unit, unit_size, rate,
                   CAST(on_amount AS BIGINT) AS amount_minor, position, tier AS tier_order
            FROM d WHERE doc = 'invoice' AND on_in > 0
        ), included AS (
            SELECT account_id, bill_start, 'included' AS kind, plan, price, category, metric,
                   direction, 'included' AS tier, seg_from, seg_to,
                   least(quantity, allowance) AS base_quantity, unit, unit_size, '0' AS rate,
                   CAST(0 AS BIGINT) AS amount_minor, position, 0 AS tier_order
            FROM d WHERE doc = 'invoice' AND tier = 1 AND allowance > 0 AND quantity > 0
        ), late AS (
            SELECT account_id, bill_start, 'late' AS kind, plan, price, category, metric,
                   direction, 'late' AS tier, seg_from, seg_to,
                   any_value(late_quantity - billed_late) AS base_quantity, unit, unit_size,
                   '' AS rate, CAST(sum(all_amount) - sum(billed_amount) AS BIGINT) AS amount_minor,
                   position, 1000 AS tier_order
            FROM d WHERE late_quantity > billed_late
            GROUP BY account_id, company, bill_start, plan, price, category, metric, direction,
                     seg_from, seg_to, unit, unit_size, position
        ), priced AS (
            SELECT * FROM usage_lines UNION ALL SELECT * FROM included UNION ALL SELECT * FROM late
        ), seg_new AS (
            SELECT account_id, bill_start, seg_from, plan, sum(amount_minor) AS s
            FROM priced GROUP BY ALL
        ), seg_issued AS (
            SELECT i.account_id, i.period_start AS bill_start, l.segment_from AS seg_from, l.plan,
                   sum(l.amount_minor) FILTER (WHERE l.kind <> 'minimum') AS used,
                   sum(l.amount_minor) FILTER (WHERE l.kind = 'minimum') AS topped
            FROM invoice_lines l JOIN invoices i USING (number)
            WHERE (i.account_id, i.period_start) IN (
                SELECT account_id, bill_start FROM billing_issue WHERE doc = 'note')
            GROUP BY ALL
        ), minimum AS (
            SELECT m.account_id, m.bill_start, 'minimum' AS kind, m.plan, 'minimum' AS price,
                   '' AS category, '' AS metric, '' AS direction, 'minimum' AS tier,
                   m.seg_from, m.seg_to, CAST(1 AS HUGEINT) AS base_quantity, 'charge' AS unit,
                   1 AS unit_size, '' AS rate,
                   CAST(greatest({half_even_sql(f"bp.minimum_minor * {seg_len}", bill_len)}
                        - coalesce(si.used, 0) - coalesce(sn.s, 0), 0)
                        - coalesce(si.topped, 0) AS BIGINT) AS amount_minor,
                   1000000 AS position, 0 AS tier_order
            FROM billing_minseg m JOIN billing_issue b USING (account_id, bill_start)
            JOIN billing_plans bp USING (plan)
            LEFT JOIN seg_new sn USING (account_id, bill_start, seg_from, plan)
            LEFT JOIN seg_issued si USING (account_id, bill_start, seg_from, plan)
            WHERE bp.minimum_minor > 0
        )
        SELECT {line_columns} FROM priced
        UNION ALL SELECT {line_columns} FROM minimum WHERE amount_minor <> 0
        """
    )
    last = tx.query("SELECT last FROM billing_sequence WHERE name = ?", (SEQUENCE,)).to_pylist()
    start = int(last[0]["last"]) if last else 0
    if not last:
        tx.execute("INSERT INTO billing_sequence VALUES (?, 0)", (SEQUENCE,))
    digits = config.invoices.digits
    tx.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE billing_docs AS
        WITH totals AS (
            SELECT b.account_id, b.bill_start, b.bill_end, b.doc, b.refers_to,
                   CAST(coalesce(sum(l.amount_minor), 0) AS BIGINT) AS total_minor
            FROM billing_issue b LEFT JOIN billing_doc_lines l USING (account_id, bill_start)
            GROUP BY ALL
        )
        SELECT *, {start} + row_number() OVER (ORDER BY bill_start, account_id) AS seq
        FROM totals
        """
    )
    _insert_documents(tx, config)
    tx.execute(
        "UPDATE billing_usage u SET billed_late = late_quantity FROM billing_issue b"
        " WHERE u.account_id = b.account_id AND u.bill_start = b.bill_start"
    )
    n = count
    tx.execute("UPDATE billing_sequence SET last = ? WHERE name = ?", (start + n, SEQUENCE))
    tx.execute(
        "INSERT INTO invoice_exports VALUES (?, ?, ?, NULL, NULL)",
        (f"{start + 1:0{digits}d}-{start + n:0{digits}d}", start + 1, start + n),
    )
    result.invoices = int(
        tx.query("SELECT count(*) AS n FROM billing_docs WHERE doc = 'invoice'")
        .column("n")[0]
        .as_py()
    )
    result.notes = n - result.invoices
    result.first_seq, result.last_seq = start + 1, start + n
    for row in tx.query(
        "SELECT account_id, sum(amount_minor) AS m FROM billing_doc_lines"
        " WHERE kind = 'minimum' GROUP BY ALL"
    ).to_pylist():
        result.minimum_by_account[row["account_id"]] = int(row["m"])  # type: ignore[index]
    return result


def _insert_documents(tx: Any, config: RatingConfig) -> None:
    """Insert the documents of ``billing_docs`` with their lines (``billing_doc_lines``),
    each with its canonical JSON and SHA-256 rendered by DuckDB (``render_sql``: the
    bytes ``documents.render`` gives), in a few statements whatever their number."""
    prefix, digits, minor = config.invoices.prefix, config.invoices.digits, config.minor_units
    number = f"{quote(prefix)} || lpad(CAST(d.seq AS VARCHAR), {int(digits)}, '0')"
    tx.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE billing_new_lines AS
        SELECT {number} AS number,
               CAST(row_number() OVER (PARTITION BY d.seq ORDER BY l.seg_from, l.position,
                    l.tier_order, l.price) AS INTEGER) AS line,
               l.kind, l.plan, l.price, l.category, l.metric, l.direction, l.tier,
               l.seg_from AS segment_from, l.seg_to AS segment_to, l.base_quantity, l.unit,
               CAST(l.unit_size AS BIGINT) AS unit_size, l.rate, l.amount_minor,
               {quantity_scaled("l.base_quantity", "l.unit_size")} AS q9
        FROM billing_doc_lines l JOIN billing_docs d USING (account_id, bill_start)
        """
    )
    tx.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE billing_new_docs AS
        SELECT {number} AS number, d.seq,
               CASE WHEN d.doc = 'invoice' THEN 'invoice'
                    WHEN d.total_minor < 0 THEN 'credit_note' ELSE 'debit_note' END AS kind,
               d.account_id, strftime(d.bill_start, '%Y-%m') AS bill_period,
               d.bill_start AS period_start, d.bill_end AS period_end,
               to_timestamp(?) AS issued_at, {quote(config.currency)} AS currency,
               CAST({int(minor)} AS INTEGER) AS minor_units, d.total_minor, d.refers_to,
               'invoice/' || {number} AS idempotency_key
        FROM billing_docs d
        """,
        (tx.now,),
    )
    bodies = render_bodies(tx, "billing_new_lines", "billing_new_docs", minor)
    tx.execute(
        f"""
        INSERT INTO invoices (number, seq, kind, account_id, bill_period, period_start,
                              period_end, issued_at, currency, minor_units, total_minor,
                              refers_to, idempotency_key, sha256, body)
        SELECT d.number, d.seq, d.kind, d.account_id, d.bill_period, d.period_start,
               d.period_end, d.issued_at, d.currency, d.minor_units, d.total_minor,
               d.refers_to, d.idempotency_key, sha256(b.body), b.body
        FROM billing_new_docs d JOIN {bodies} b USING (number) ORDER BY d.seq
        """
    )
    tx.execute(
        "INSERT INTO invoice_lines SELECT number, line, kind, plan, price, category, metric,"
        " direction, tier, segment_from, segment_to, base_quantity, unit, unit_size, rate,"
        " amount_minor FROM billing_new_lines ORDER BY number, line"
    )
