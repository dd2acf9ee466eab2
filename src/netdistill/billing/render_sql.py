r"""A document's canonical JSON (``documents.render``) built by DuckDB, for many documents
at once, inside the short transaction that issues them.

``documents.render`` (Python: ``json.dumps`` with sorted keys, no spaces, ASCII only) is
the definition; this module writes the same bytes with SQL string functions so that the
issuing transaction stores ``body`` and its SHA-256 (DuckDB's ``sha256``) without a
Python object per document or line: at 100,000 invoices Python rendering took most of
the round, and the store's write lock was held for all of it. Hand-rolled because no
library renders JSON *in DuckDB* byte-identical to Python's: DuckDB's ``to_json`` keeps
non-ASCII characters as they are and orders keys as given.

Equality with ``documents.render`` is checked on every read (``documents.load`` renders
again in Python and compares with the stored SHA-256: a difference shows as
``intact: false``) and by tests over awkward text (quotes, backslashes, control
characters, accents, characters beyond the BMP, which Python writes as surrogate pairs)
and units whose size is not a power of ten. Pieces:

* ``json_text``: a JSON string the way ``json.dumps(ensure_ascii=True)`` writes it —
  ``\"``, ``\\``, ``\n``, ``\r``, ``\t``, ``\b``, ``\f``, every other character outside
  ``' '..'~'`` as ``\uXXXX`` (lower-case hex; a surrogate pair above U+FFFF); ``null``
  for NULL. Printable ASCII text (nearly all) takes a fast path: one regex match.
* ``iso``: ``documents.iso`` (``2026-11-01T00:00:00Z``, ``.ffffffZ`` when there are
  microseconds), in UTC.
* ``minor_text``: ``money.minor_text`` (``-12.34``).
* ``quantity_text``: ``money.quantity_text`` — the exact quotient, rounded half to even
  to 9 decimals, trailing zeros dropped. Quantities on documents are never negative;
  a negative one stops the round with an error rather than render differently.
"""

from __future__ import annotations

from netdistill.billing.money import half_even_sql

_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
          "\f": "\\f"}  # fmt: skip


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def json_text(expr: str) -> str:
    """SQL: ``expr`` (VARCHAR) as a JSON value, byte-identical to ``json.dumps``."""
    shorts = " ".join(
        f"WHEN c = chr({ord(char)}) THEN {_lit(escaped)}" for char, escaped in _SHORT.items()
    )
    char = (
        f"CASE {shorts} WHEN unicode(c) BETWEEN 32 AND 126 THEN c"
        " WHEN unicode(c) < 65536 THEN printf('\\u%04x', unicode(c))"
        " ELSE printf('\\u%04x\\u%04x', 55296 + ((unicode(c) - 65536) >> 10),"
        " 56320 + ((unicode(c) - 65536) & 1023)) END"
    )
    return (
        f"(CASE WHEN ({expr}) IS NULL THEN 'null'"
        f" WHEN regexp_full_match({expr}, '[ !#-\\[\\]-~]*') THEN '\"' || ({expr}) || '\"'"
        f" ELSE '\"' || array_to_string(list_transform(string_split({expr}, ''),"
        f" lambda c: {char}), '') || '\"' END)"
    )


def iso(expr: str) -> str:
    """SQL: a TIMESTAMPTZ as ``documents.iso`` writes it (the session time zone is UTC)."""
    micro = f"(((epoch_us({expr}) % 1000000) + 1000000) % 1000000)"
    return (
        f"(strftime({expr}, '%Y-%m-%dT%H:%M:%S') || CASE WHEN {micro} = 0 THEN 'Z'"
        f" ELSE '.' || lpad(CAST({micro} AS VARCHAR), 6, '0') || 'Z' END)"
    )


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


#: line fields that take few distinct values (from the plans, the periods): rendered once
#: per distinct combination and joined back, in three runs between the per-line fields
_SHARED = (
    ("category", "direction", "kind"),
    ("metric", "plan", "price"),
    ("rate", "segment_from", "segment_to", "tier", "unit"),
)


def _field(name: str, column: str) -> str:
    if name.startswith("segment_"):
        return f"'\"' || {iso(column)} || '\"'"
    return json_text(column)


def lines_json(table: str, minor_units: int) -> str:
    """SQL: ``SELECT number, lines`` with ``lines`` the comma-joined line objects of each
    document in ``table`` (``invoice_lines`` columns and ``q9``, the ``quantity_scaled``),
    in line order, keys sorted as ``render`` sorts them:

        amount, [category, direction, kind], line, [metric, plan, price], quantity,
        [rate, segment_from, segment_to, tier, unit]
    """
    shared = [c for run in _SHARED for c in run]
    runs = [
        " || ',' || ".join(f"'\"{c}\":' || {_field(c, f's.{c}')}" for c in run) + f" AS run{i}"
        for i, run in enumerate(_SHARED)
    ]
    line = (
        '\'{"amount":"\' || ' + minor_text("l.amount_minor", minor_units) + " || '\",' || s.run0"
        " || ',\"line\":' || CAST(l.line AS VARCHAR) || ',' || s.run1"
        ' || \',"quantity":"\' || ' + quantity_text("l.q9") + " || '\",' || s.run2 || '}'"
    )
    return f"""
        WITH s AS (
            SELECT s.*, {", ".join(runs)}
            FROM (SELECT DISTINCT {", ".join(shared)} FROM {table}) s
        )
        SELECT l.number, string_agg({line}, ',' ORDER BY l.line) AS lines
        FROM {table} l JOIN s USING ({", ".join(shared)})
        GROUP BY l.number
    """


def document_json(prefix: str, lines: str, minor_units: int) -> str:
    """SQL: one document (``invoices`` columns of alias ``prefix``; ``lines`` the
    comma-joined line objects in line order, or NULL), keys sorted as ``render`` sorts."""
    p = prefix
    fields = [
        ("account_id", json_text(f"{p}.account_id")),
        ("bill_period", json_text(f"{p}.bill_period")),
        ("currency", json_text(f"{p}.currency")),
        ("idempotency_key", json_text(f"{p}.idempotency_key")),
        ("issued_at", f"'\"' || {iso(f'{p}.issued_at')} || '\"'"),
        ("kind", json_text(f"{p}.kind")),
        ("lines", f"'[' || coalesce({lines}, '') || ']'"),
        ("number", json_text(f"{p}.number")),
        ("period_end", f"'\"' || {iso(f'{p}.period_end')} || '\"'"),
        ("period_start", f"'\"' || {iso(f'{p}.period_start')} || '\"'"),
        ("refers_to", json_text(f"{p}.refers_to")),
        ("total", f"'\"' || {minor_text(f'{p}.total_minor', minor_units)} || '\"'"),
    ]
    return _object(fields)


def _object(fields: list[tuple[str, str]]) -> str:
    assert [name for name, _ in fields] == sorted(name for name, _ in fields)
    parts = [f"'{'{' if i == 0 else ','}\"{name}\":' || {value}" for i, (name, value) in
             enumerate(fields)]  # fmt: skip
    return "(" + " || ".join(parts) + " || '}')"
