r"""A document's canonical JSON (``documents.render``) for many documents at once, inside
the short transaction that issues them, without a Python object per document or line.

``documents.render`` (``json.dumps`` with sorted keys, no spaces, ASCII only) is the
definition; ``render_bodies`` writes the same bytes by assembling them in DuckDB from
pieces, each made once where it can be:

* text that repeats (the plan, price, category, … and segment of a line; the period,
  kind, currency and issue time of a document) is rendered by ``json.dumps`` itself, once
  per distinct combination, as runs of consecutive sorted keys (``'"category":"http",
  "direction":"any","kind":"usage"'``), and joined back;
* text per document (account, number, idempotency key, ``refers_to``) goes through
  ``json_texts``: printable ASCII without ``"`` or ``\`` (nearly all) is quoted by an
  Arrow kernel, anything else by ``json.dumps``;
* numbers per line or document — amounts (``minor_text``), quantities (``quantity_text``:
  the exact quotient rounded half to even to 9 decimals, as ``money.quantity_text``),
  line numbers — are formatted by DuckDB with integer arithmetic.

Hand-rolled because no library renders JSON in DuckDB byte-identical to Python's
(DuckDB's ``to_json`` keeps non-ASCII characters and the given key order), and rendering
each document in Python held the store's write lock for most of a 100,000-account round.
Equality with ``documents.render`` is checked on every read (``documents.load`` renders
again in Python and compares with the stored SHA-256) and by a property test.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from netdistill.billing.documents import iso
from netdistill.billing.money import half_even_sql

#: printable ASCII without '"' and '\': json.dumps writes it quoted and unchanged
_PLAIN = r"^[ !#-\[\]-~]*$"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def json_texts(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each string as ``json.dumps`` writes it (``null`` for null), vectorized for plain
    text."""
    values = pa.chunked_array([values]) if isinstance(values, pa.Array) else values
    values = values.combine_chunks().cast(pa.string())
    plain = pc.fill_null(pc.match_substring_regex(values, _PLAIN), False)
    quoted = pc.binary_join_element_wise('"', values, '"', "")
    out = pc.if_else(plain, quoted, pa.scalar("null"))
    odd = [i for i, (p, v) in enumerate(zip(plain.to_pylist(), values.is_valid().to_pylist(),
                                                strict=True)) if v and not p]  # fmt: skip
    if not odd:
        return out
    texts = out.to_pylist()
    for i in odd:
        texts[i] = _dumps(values[i].as_py())
    return pa.array(texts, pa.string())


def _runs(rows: list[dict[str, Any]], runs: Sequence[tuple[str, ...]]) -> dict[str, pa.Array]:
    """Per distinct row, each run of keys rendered as in the document (without braces)."""
    out: dict[str, list[str]] = {f"run{i}": [] for i in range(len(runs))}
    for row in rows:
        shown = {k: iso(v) if hasattr(v, "strftime") else v for k, v in row.items()}
        for i, keys in enumerate(runs):
            out[f"run{i}"].append(_dumps({k: shown[k] for k in keys})[1:-1])
    return {name: pa.array(values, pa.string()) for name, values in out.items()}


def minor_text(expr: str, minor_units: int) -> str:
    """SQL: integer minor units as ``money.minor_text`` writes them."""
    value = f"CAST(({expr}) AS HUGEINT)"
    if minor_units == 0:
        return f"CAST({value} AS VARCHAR)"
    scale = 10**minor_units
    return (
        f"((CASE WHEN {value} < 0 THEN '-' ELSE '' END) || CAST(abs({value}) // {scale} AS VARCHAR)"
        f" || '.' || lpad(CAST(abs({value}) % {scale} AS VARCHAR), {minor_units}, '0'))"
    )


def quantity_scaled(base: str, unit_size: str) -> str:
    """SQL: a base quantity in its unit × 10^9, rounded half to even (``quantity_text``
    writes it)."""
    b, u = f"CAST(({base}) AS HUGEINT)", f"CAST(({unit_size}) AS HUGEINT)"
    return (
        f"(CASE WHEN {b} < 0 THEN error('negative quantity on a document') ELSE "
        + half_even_sql(f"{b} * 1000000000", u)
        + " END)"
    )


def quantity_text(scaled: str) -> str:
    """SQL: ``quantity_scaled`` as ``money.quantity_text`` writes the quantity."""
    whole, part = f"CAST(({scaled}) // 1000000000 AS VARCHAR)", f"(({scaled}) % 1000000000)"
    return (
        f"(CASE WHEN {part} = 0 THEN {whole} ELSE {whole}"
        f" || '.' || rtrim(lpad(CAST({part} AS VARCHAR), 9, '0'), '0') END)"
    )


#: line and head keys in ``render``'s order: runs of shared keys between per-row keys
LINE_RUNS = [
    ("category", "direction", "kind"),
    ("metric", "plan", "price"),
    ("rate", "segment_from", "segment_to", "tier", "unit"),
]
HEAD_RUNS = [("bill_period", "currency"), ("issued_at", "kind"), ("period_end", "period_start")]


def render_bodies(tx: Any, lines: str, docs: str, minor_units: int) -> str:
    """Create TEMP table ``billing_bodies (number, body)``: the canonical JSON of each
    document of table ``docs`` (``invoices`` columns but sha256 and body) with its lines
    of table ``lines`` (``invoice_lines`` columns and ``q9``, the ``quantity_scaled``).
    Returns its name."""
    shared = [k for run in LINE_RUNS for k in run]
    combos = tx.query(f"SELECT DISTINCT {', '.join(shared)} FROM {lines}").to_pylist()
    table = pa.table(
        {
            **{k: pa.array([c[k] for c in combos]) for k in shared},
            **_runs(combos, LINE_RUNS),
        }
    ) if combos else None  # fmt: skip
    tx.execute(
        "CREATE OR REPLACE TEMP TABLE billing_line_runs AS SELECT "
        + ", ".join(f"{k}" for k in shared)
        + f", '' AS run0, '' AS run1, '' AS run2 FROM {lines} LIMIT 0"
    )
    if table is not None:
        tx.insert_arrow("billing_line_runs", table)
    head_keys = [k for run in HEAD_RUNS for k in run]
    heads = tx.query(f"SELECT DISTINCT {', '.join(head_keys)} FROM {docs}").to_pylist()
    tx.execute(
        "CREATE OR REPLACE TEMP TABLE billing_head_runs AS SELECT "
        + ", ".join(head_keys)
        + f", '' AS run0, '' AS run1, '' AS run2 FROM {docs} LIMIT 0"
    )
    if heads:
        tx.insert_arrow(
            "billing_head_runs",
            pa.table(
                {
                    **{k: pa.array([h[k] for h in heads]) for k in head_keys},
                    **_runs(heads, HEAD_RUNS),
                }
            ),
        )
    texts = tx.query(f"SELECT number, account_id, idempotency_key, refers_to FROM {docs}")
    tx.execute(
        "CREATE OR REPLACE TEMP TABLE billing_doc_texts (number VARCHAR, account VARCHAR,"
        " number_json VARCHAR, key VARCHAR, refers VARCHAR)"
    )
    tx.insert_arrow(
        "billing_doc_texts",
        pa.table(
            {
                "number": texts.column("number"),
                "account": json_texts(texts.column("account_id")),
                "number_json": json_texts(texts.column("number")),
                "key": json_texts(texts.column("idempotency_key")),
                "refers": json_texts(texts.column("refers_to")),
            }
        ),
    )
    line = (
        '\'{"amount":"\' || ' + minor_text("l.amount_minor", minor_units) + " || '\",' || r.run0"
        " || ',\"line\":' || CAST(l.line AS VARCHAR) || ',' || r.run1"
        ' || \',"quantity":"\' || ' + quantity_text("l.q9") + " || '\",' || r.run2 || '}'"
    )
    head = (
        "'{\"account_id\":' || t.account || ',' || h.run0 || ',\"idempotency_key\":' || t.key"
        " || ',' || h.run1 || ',\"lines\":[' || coalesce(l.lines, '') || '],\"number\":'"
        " || t.number_json || ',' || h.run2 || ',\"refers_to\":' || t.refers"
        ' || \',"total":"\' || ' + minor_text("d.total_minor", minor_units) + " || '\"}'"
    )
    tx.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE billing_bodies AS
        WITH l AS (
            SELECT l.number, string_agg({line}, ',' ORDER BY l.line) AS lines
            FROM {lines} l JOIN billing_line_runs r USING ({", ".join(shared)})
            GROUP BY l.number
        )
        SELECT d.number, {head} AS body
        FROM {docs} d JOIN billing_doc_texts t USING (number)
        JOIN billing_head_runs h USING ({", ".join(head_keys)})
        LEFT JOIN l USING (number)
        """
    )
    return "billing_bodies"
