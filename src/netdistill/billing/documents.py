"""Issued documents as data: rendering (pure, deterministic), reading back, verifying.

A document is an invoice, a credit note or a debit note. Its JSON form (``render``) is
the same bytes whenever it is rendered — on issue, in an export file, through the API —
and ``sha256`` is the SHA-256 of those bytes, stored when it was issued. ``verify``
renders a stored document again and compares: an issued document that was changed in
the store by any path is reported (``intact: false``), and the API and the console show
it. Amounts in JSON and CSV are decimal strings in the currency (``"12.34"``), never
floats; quantities are decimal strings in the line's unit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from netdistill.billing.money import minor_text, quantity_text

INVOICE_COLUMNS = [
    "number",
    "kind",
    "account_id",
    "bill_period",
    "period_start",
    "period_end",
    "issued_at",
    "currency",
    "total",
    "refers_to",
    "idempotency_key",
    "sha256",
]
LINE_COLUMNS = [
    "number",
    "line",
    "kind",
    "plan",
    "price",
    "category",
    "metric",
    "direction",
    "tier",
    "segment_from",
    "segment_to",
    "quantity",
    "unit",
    "rate",
    "amount",
]


@lru_cache(maxsize=65536)
def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{value.microsecond:06d}Z" if value.microsecond else "Z"
    )


def idempotency_key(number: str) -> str:
    return f"invoice/{number}"


def document(head: dict[str, Any], lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The JSON-ready form of one document (without its sha256)."""
    minor = int(head["minor_units"])
    return {
        "number": head["number"],
        "kind": head["kind"],
        "account_id": head["account_id"],
        "bill_period": head["bill_period"],
        "period_start": iso(head["period_start"]),
        "period_end": iso(head["period_end"]),
        "issued_at": iso(head["issued_at"]),
        "currency": head["currency"],
        "total": minor_text(int(head["total_minor"]), minor),
        "refers_to": head["refers_to"],
        "idempotency_key": idempotency_key(head["number"]),
        "lines": [
            {
                "line": int(line["line"]),
                "kind": line["kind"],
                "plan": line["plan"],
                "price": line["price"],
                "category": line["category"],
                "metric": line["metric"],
                "direction": line["direction"],
                "tier": line["tier"],
                "segment_from": iso(line["segment_from"]),
                "segment_to": iso(line["segment_to"]),
                "quantity": quantity_text(int(line["base_quantity"]), int(line["unit_size"])),
                "unit": line["unit"],
                "rate": line["rate"],
                "amount": minor_text(int(line["amount_minor"]), minor),
            }
            for line in sorted(lines, key=lambda item: int(item["line"]))
        ],
    }


def render(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k not in ("sha256", "intact")}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def fingerprint(doc: dict[str, Any]) -> str:
    return hashlib.sha256(render(doc)).hexdigest()


def group_lines(lines: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        out.setdefault(line["number"], []).append(line)
    return out


def load(
    store: Any, where: str, params: dict[str, object], limit: int = 1000
) -> list[dict[str, Any]]:
    """Stored documents matching ``where`` (on ``invoices``), in number order, each with
    its lines, ``sha256`` as stored and ``intact`` (does it still render to it)."""
    heads = store.query(
        f"SELECT * EXCLUDE (body) FROM invoices WHERE {where} ORDER BY seq LIMIT {int(limit)}",
        params,
    ).to_pylist()
    if not heads:
        return []
    lo, hi = heads[0]["seq"], heads[-1]["seq"]
    lines = group_lines(
        store.query(
            "SELECT l.* FROM invoice_lines l JOIN invoices i USING (number)"
            " WHERE i.seq BETWEEN $lo AND $hi ORDER BY l.number, l.line",
            {"lo": lo, "hi": hi},
        ).to_pylist()
    )
    out = []
    for head in heads:
        doc = document(head, lines.get(head["number"], []))
        doc["sha256"] = head["sha256"]
        doc["intact"] = fingerprint(doc) == head["sha256"]
        out.append(doc)
    return out


def to_csv(docs: Sequence[dict[str, Any]]) -> tuple[bytes, bytes]:
    """(invoices.csv, lines.csv) of ``docs``."""
    heads, lines = io.StringIO(), io.StringIO()
    head_writer = csv.DictWriter(heads, INVOICE_COLUMNS, extrasaction="ignore", lineterminator="\n")
    line_writer = csv.DictWriter(lines, LINE_COLUMNS, lineterminator="\n")
    head_writer.writeheader()
    line_writer.writeheader()
    for doc in docs:
        head_writer.writerow({**doc, "refers_to": doc["refers_to"] or ""})
        for line in doc["lines"]:
            line_writer.writerow({"number": doc["number"], **line})
    return heads.getvalue().encode(), lines.getvalue().encode()


def to_jsonl(docs: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps({**json.loads(render(doc)), "sha256": doc["sha256"]}, sort_keys=True).encode()
        + b"\n"
        for doc in docs
    )
