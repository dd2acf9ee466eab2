"""The canonical JSON assembled in DuckDB when documents are issued (``render_sql``) is
byte for byte what ``documents.render`` gives in Python, for awkward text (quotes,
backslashes, control characters, accents, characters beyond the BMP), every unit size
(powers of ten, KiB, minutes, hours, TB beyond 9 decimals), negative amounts, and
timestamps with and without microseconds. Run through a real store transaction (the
hardened connection the round uses)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from billing_support import Clock, open_store, t
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netdistill.billing.documents import document, render
from netdistill.billing.render_sql import quantity_scaled, render_bodies

UNIT_SIZES = [1, 1000, 10**6, 10**9, 10**12, 2**10, 2**30, 60 * 10**6, 3600 * 10**6]
#: text: ASCII (JSON escapes '"', '\\' and control characters), or with the characters
#: JSON escapes as \\uXXXX drawn often
TEXT = st.text(
    st.sampled_from('"\\\n\x01\x7f a~') | st.characters(max_codepoint=127), max_size=8
) | st.text(
    st.sampled_from('"\\/\n\t\x01\x7f é\u2028\U0001f600a1')
    | st.characters(exclude_categories=["Cs"]),
    max_size=8,
)
MOMENT = st.integers(0, 10**6 * 3600 * 24 * 60).map(
    lambda us: t("2026-11-01T00:00:00") + timedelta(microseconds=us)
)
LINE = st.fixed_dictionaries(
    {
        "kind": TEXT, "plan": TEXT, "price": TEXT, "category": TEXT, "metric": TEXT,
        "direction": TEXT, "tier": TEXT, "unit": TEXT, "rate": TEXT,
        "segment_from": MOMENT, "segment_to": MOMENT,
        "base_quantity": st.integers(0, 10**22), "unit_size": st.sampled_from(UNIT_SIZES),
        "amount_minor": st.integers(-(10**15), 10**15),
    }
)  # fmt: skip
DOC: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "account_id": TEXT, "currency": TEXT, "refers_to": st.none() | TEXT,
        "kind": TEXT, "total_minor": st.integers(-(10**15), 10**15),
        "period_start": MOMENT, "issued_at": MOMENT, "lines": st.lists(LINE, max_size=4),
    }
)  # fmt: skip


def python_bodies(docs: list[dict[str, Any]], minor: int) -> list[bytes]:
    out = []
    for i, doc in enumerate(docs):
        head = {
            **{k: v for k, v in doc.items() if k != "lines"},
            "number": f"N{i}",
            "bill_period": doc["period_start"].strftime("%Y-%m"),
            "period_end": doc["period_start"] + timedelta(days=30),
            "minor_units": minor,
        }
        lines = [{**line, "line": n + 1} for n, line in enumerate(doc["lines"])]
        out.append(render(document(head, lines)))
    return out


def sql_bodies(tx: Any, docs: list[dict[str, Any]], minor: int) -> list[str]:
    ts = pa.timestamp("us", tz="UTC")
    lines = [
        {**line, "number": f"N{i}", "line": n + 1}
        for i, doc in enumerate(docs)
        for n, line in enumerate(doc["lines"])
    ]
    columns = ["kind", "plan", "price", "category", "metric", "direction", "tier", "unit", "rate"]
    line_table = pa.table(
        {
            "number": pa.array([r["number"] for r in lines], pa.string()),
            "line": pa.array([r["line"] for r in lines], pa.int32()),
            **{c: pa.array([r[c] for r in lines], pa.string()) for c in columns},
            "segment_from": pa.array([r["segment_from"] for r in lines], ts),
            "segment_to": pa.array([r["segment_to"] for r in lines], ts),
            "base_quantity": pa.array([str(r["base_quantity"]) for r in lines], pa.string()),
            "unit_size": pa.array([r["unit_size"] for r in lines], pa.int64()),
            "amount_minor": pa.array([r["amount_minor"] for r in lines], pa.int64()),
        }
    )
    head_table = pa.table(
        {
            "number": pa.array([f"N{i}" for i in range(len(docs))], pa.string()),
            "seq": pa.array(range(len(docs)), pa.int64()),
            **{
                c: pa.array([d[c] for d in docs], pa.string())
                for c in ("account_id", "currency", "refers_to", "kind")
            },
            "total_minor": pa.array([d["total_minor"] for d in docs], pa.int64()),
            "period_start": pa.array([d["period_start"] for d in docs], ts),
            "issued_at": pa.array([d["issued_at"] for d in docs], ts),
        }
    )
    tx.execute(
        "CREATE OR REPLACE TEMP TABLE t_lines_in (number VARCHAR, line INTEGER, kind VARCHAR,"
        " plan VARCHAR, price VARCHAR, category VARCHAR, metric VARCHAR, direction VARCHAR,"
        " tier VARCHAR, unit VARCHAR, rate VARCHAR, segment_from TIMESTAMPTZ,"
        " segment_to TIMESTAMPTZ, base_quantity VARCHAR, unit_size BIGINT, amount_minor BIGINT)"
    )
    tx.insert_arrow("t_lines_in", line_table)
    tx.execute(
        "CREATE OR REPLACE TEMP TABLE t_lines AS SELECT * REPLACE"
        " (CAST(base_quantity AS HUGEINT) AS base_quantity),"
        f" {quantity_scaled('CAST(base_quantity AS HUGEINT)', 'unit_size')} AS q9 FROM t_lines_in"
    )
    tx.execute(
        "CREATE OR REPLACE TEMP TABLE t_docs (number VARCHAR, seq BIGINT, account_id VARCHAR,"
        " currency VARCHAR, refers_to VARCHAR, kind VARCHAR, total_minor BIGINT,"
        " period_start TIMESTAMPTZ, issued_at TIMESTAMPTZ)"
    )
    tx.insert_arrow("t_docs", head_table)
    tx.execute(
        "CREATE OR REPLACE TEMP TABLE t_heads AS SELECT *, strftime(period_start, '%Y-%m')"
        " AS bill_period, period_start + INTERVAL 30 DAY AS period_end,"
        " 'invoice/' || number AS idempotency_key FROM t_docs"
    )
    bodies = render_bodies(tx, "t_lines", "t_heads", minor)
    found = tx.query(f"SELECT b.body FROM {bodies} b JOIN t_heads USING (number) ORDER BY seq")
    return [str(v) for v in found.column("body").to_pylist()]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    opened = open_store(tmp_path_factory.mktemp("render"), Clock(datetime(2026, 12, 1, tzinfo=UTC)))
    yield opened
    opened.close()


def test_awkward_text_and_units_by_hand(store: Any) -> None:
    line: dict[str, Any] = {
        "kind": "usage", "plan": 'pl"an\\', "price": "wéb\n\t\x01\x7f", "category": "😀x",
        "metric": "bytes", "direction": "", "tier": "1", "unit": "KiB", "rate": "0.37",
        "segment_from": t("2026-11-01T00:00:00"),
        "segment_to": t("2026-11-16T00:00:00") + timedelta(microseconds=7),
        "base_quantity": 1536, "unit_size": 1024, "amount_minor": -5,
    }  # fmt: skip
    docs: list[dict[str, Any]] = [
        {
            "account_id": "Müller \u2028 \u00e9\U0001f600",
            "currency": "EUR",
            "refers_to": None,
            "kind": "invoice",
            "total_minor": -5,
            "period_start": t("2026-11-01T00:00:00"),
            "issued_at": t("2026-12-01T00:00:01"),
            "lines": [
                line,
                {**line, "unit_size": 60 * 10**6, "base_quantity": 10**6, "unit": "minute"},
            ],
        },
        {
            "account_id": 'quote" back\\slash',
            "currency": "JPY",
            "refers_to": "N0",
            "kind": "credit_note",
            "total_minor": 0,
            "period_start": t("2026-11-01T00:00:00"),
            "issued_at": t("2026-12-01T00:00:01"),
            "lines": [],
        },
    ]
    with store.transaction() as tx:
        for minor in (0, 2, 3):
            expected = python_bodies(docs, minor)
            assert [b.encode() for b in sql_bodies(tx, docs, minor)] == expected
    body = python_bodies(docs, 2)[0]
    assert b'"quantity":"1.5"' in body and b'"quantity":"0.016666667"' in body
    assert b"M\\u00fcller \\u2028 \\u00e9\\ud83d\\ude00" in body
    with store.transaction() as tx:  # DuckDB's sha256 of the body is Python's
        digest = tx.query("SELECT sha256(?) AS h", (body.decode(),)).column("h")[0].as_py()
    assert digest == hashlib.sha256(body).hexdigest()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(docs=st.lists(DOC, min_size=1, max_size=5), minor=st.sampled_from([0, 2, 3]))
def test_sql_rendering_equals_python_rendering(
    store: Any, docs: list[dict[str, Any]], minor: int
) -> None:
    with store.transaction() as tx:
        assert [b.encode() for b in sql_bodies(tx, docs, minor)] == python_bodies(docs, minor)
