"""Balances and quotas that ``usage_over_balance`` alerts compare usage with (seed 003,
claims 7–9 and 16–18: an alert when a value passes a predetermined amount, which ceases
a service, and provides it again once the amount is raised).

One row per account in ``balances``: ``quota_bytes`` (bytes allowed per period of the
rule, e.g. a month), ``prepaid_seconds`` (seconds bought so far; a top-up adds to it) and
``prepaid_money`` (the money left, an exact ``DECIMAL(38, 9)``: a top-up adds to it, and
the rating stage subtracts what rated usage costs, ``decrement_money``; docs/rating.md).
NULL means "no limit": an account without a row, or with NULL in the compared column, is
never alerted on. Every change — seeding from the scheme, ``PUT``, top-up — is written
with the new values in ``balance_changes`` (when, who, what), in the same transaction.

Seeding (``seed_balances``) inserts only accounts that have no row yet, so a change made
through the API survives a restart with the same scheme.

API (behind the manager's bearer token; mounted by the stage runner through
``AlertStage.router``):

* ``GET /api/balances`` — every row;
* ``PUT /api/balances/{account}`` ``{"quota_bytes": N, "prepaid_seconds": S,
  "prepaid_money": "12.50"}`` — sets the given columns (creates the row);
* ``POST /api/balances/{account}/topup`` ``{"bytes": N}``, ``{"seconds": S}`` and/or
  ``{"money": "10.00"}`` — adds to the quota / prepaid balances (404 for an unknown
  account). Money is a decimal string (a JSON number is refused: it is a binary float),
  and is answered as a string.

Scheme (on any ``alert`` stage; CSV columns ``account_id,quota_bytes,prepaid_seconds``
and optionally ``prepaid_money``)::

    stages:
      - name: over-quota
        type: alert
        rule: usage_over_balance
        balances: {alice: {quota_bytes: 10000000000}, bob: {prepaid_seconds: 3600}}
        balances_csv: balances.csv      # relative to the data directory
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    field_validator,
)

from netdistill.errors import SchemeError
from netdistill.store.duckdb import DuckDBStore, StoreWriter

COLUMNS = ("quota_bytes", "prepaid_seconds", "prepaid_money")

_DDL = """
CREATE TABLE IF NOT EXISTS balances (
    account_id VARCHAR PRIMARY KEY, quota_bytes BIGINT, prepaid_seconds DOUBLE,
    updated_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS balance_changes (
    changed_at TIMESTAMPTZ NOT NULL, account_id VARCHAR NOT NULL, who VARCHAR NOT NULL,
    change VARCHAR NOT NULL, quota_bytes BIGINT, prepaid_seconds DOUBLE);
ALTER TABLE balances ADD COLUMN IF NOT EXISTS prepaid_money DECIMAL(38, 9);
ALTER TABLE balance_changes ADD COLUMN IF NOT EXISTS prepaid_money DECIMAL(38, 9)
"""


def _money(value: object) -> Decimal | None:
    """Money as an exact decimal: a string or an integer, never a (binary) float."""
    if value is None:
        return None
    if isinstance(value, float | bool) or not isinstance(value, int | str | Decimal):
        raise ValueError(f'money {value!r}: give it as a decimal string, e.g. "12.50"')
    try:
        result = Decimal(str(value).strip())
    except ArithmeticError:
        raise ValueError(f"money {value!r}: not a decimal number") from None
    if not result.is_finite() or result.as_tuple().exponent < -9:  # type: ignore[operator]
        raise ValueError(f"money {value!r}: a finite number with at most 9 decimals")
    return result


class BalanceSeed(BaseModel):
    """One account's starting balance in the scheme."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quota_bytes: NonNegativeInt | None = None
    prepaid_seconds: NonNegativeFloat | None = None
    prepaid_money: Decimal | None = None

    @field_validator("prepaid_money", mode="before")
    @classmethod
    def _exact(cls, value: object) -> Decimal | None:
        return _money(value)


class BalanceSet(BalanceSeed):
    """Body of ``PUT /api/balances/{account}``: the columns given are set."""


class TopUp(BaseModel):
    """Body of ``POST /api/balances/{account}/topup``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bytes: NonNegativeInt = Field(0, description="added to quota_bytes")
    seconds: NonNegativeFloat = Field(0.0, description="added to prepaid_seconds")
    money: Decimal = Field(Decimal(0), description="added to prepaid_money (a string)")

    @field_validator("money", mode="before")
    @classmethod
    def _exact(cls, value: object) -> Decimal:
        result = _money(value)
        if result is None or result < 0:
            raise ValueError(f"money {value!r}: a non-negative decimal string")
        return result


def ensure_tables(store: DuckDBStore) -> None:
    with store.transaction() as tx:
        tx.execute(_DDL)


def read_csv(path: Path) -> dict[str, BalanceSeed]:
    """``account_id,quota_bytes,prepaid_seconds`` rows (empty cell: no limit)."""
    seeds: dict[str, BalanceSeed] = {}
    try:
        with path.open(newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                account = (row.get("account_id") or "").strip()
                if not account:
                    raise SchemeError([f"{path}:{line}: no account_id"])
                try:
                    seeds[account] = BalanceSeed(
                        **{c: row[c].strip() for c in COLUMNS if (row.get(c) or "").strip()}
                    )
                except ValueError as exc:
                    raise SchemeError([f"{path}:{line}: {exc}"]) from None
    except OSError as exc:
        raise SchemeError([f"cannot read balances file {path}: {exc}"]) from None
    return seeds


def _record_change(
    tx: StoreWriter, account: str, who: str, change: Mapping[str, Any]
) -> dict[str, Any]:
    row = tx.query(
        "SELECT quota_bytes, prepaid_seconds, prepaid_money FROM balances WHERE account_id = ?",
        (account,),
    ).to_pylist()[0]
    tx.execute(
        "INSERT INTO balance_changes (changed_at, account_id, who, change, quota_bytes,"
        " prepaid_seconds, prepaid_money) VALUES (to_timestamp(?), ?, ?, ?, ?, ?, ?)",
        (
            tx.now,
            account,
            who,
            json.dumps(dict(change), sort_keys=True, default=str),
            row["quota_bytes"],
            row["prepaid_seconds"],
            row["prepaid_money"],
        ),
    )
    return _shown({"account_id": account, **row})


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A balance row for JSON: money as a normalized decimal string (never a float)."""
    money = row.get("prepaid_money")
    return {**row, "prepaid_money": None if money is None else _text(money)}


def _text(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def seed_balances(store: DuckDBStore, seeds: Mapping[str, BalanceSeed], who: str) -> int:
    """Insert the accounts of ``seeds`` that have no row yet; returns how many."""
    added = 0
    with store.transaction() as tx:
        for account, seed in seeds.items():
            known = tx.query("SELECT 1 FROM balances WHERE account_id = ?", (account,))
            if known.num_rows:
                continue
            tx.execute(
                "INSERT INTO balances (account_id, quota_bytes, prepaid_seconds, prepaid_money,"
                " updated_at) VALUES (?, ?, ?, ?, to_timestamp(?))",
                (account, seed.quota_bytes, seed.prepaid_seconds, seed.prepaid_money, tx.now),
            )
            _record_change(tx, account, who, {"seed": seed.model_dump(exclude_none=True)})
            added += 1
    return added


def set_balance(store: DuckDBStore, account: str, values: BalanceSet, who: str) -> dict[str, Any]:
    given = values.model_dump(exclude_unset=True)
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO balances (account_id, updated_at) VALUES (?, to_timestamp(?))"
            " ON CONFLICT DO NOTHING",
            (account, tx.now),
        )
        for column, value in given.items():
            tx.execute(
                f"UPDATE balances SET {column} = ?, updated_at = to_timestamp(?)"
                " WHERE account_id = ?",
                (value, tx.now, account),
            )
        return _record_change(tx, account, who, {"set": given})


def top_up(store: DuckDBStore, account: str, amount: TopUp, who: str) -> dict[str, Any]:
    """Add to the account's quota and prepaid seconds; ``KeyError`` if it has no row."""
    with store.transaction() as tx:
        if not tx.query("SELECT 1 FROM balances WHERE account_id = ?", (account,)).num_rows:
            raise KeyError(account)
        tx.execute(
            "UPDATE balances SET"
            " quota_bytes = CASE WHEN ? > 0 THEN coalesce(quota_bytes, 0) + ?"
            " ELSE quota_bytes END,"
            " prepaid_seconds = CASE WHEN ? > 0 THEN coalesce(prepaid_seconds, 0) + ?"
            " ELSE prepaid_seconds END,"
            " prepaid_money = CASE WHEN ? > 0 THEN coalesce(prepaid_money, 0) + ?"
            " ELSE prepaid_money END,"
            " updated_at = to_timestamp(?) WHERE account_id = ?",
            (
                amount.bytes,
                amount.bytes,
                amount.seconds,
                amount.seconds,
                amount.money,
                amount.money,
                tx.now,
                account,
            ),
        )
        given = amount.model_dump()
        if not amount.money:
            given.pop("money")
        return _record_change(tx, account, who, {"topup": given})


def decrement_money(tx: StoreWriter, deltas: str, minor_units: int, who: str) -> None:
    """Subtract ``delta`` minor units (rows of table ``deltas``: account_id, delta) from
    the ``prepaid_money`` of accounts that have one, exactly (DECIMAL arithmetic), with
    one ``balance_changes`` row per account changed."""
    unit = f"CAST('{Decimal(1).scaleb(-minor_units)}' AS DECIMAL(18, {minor_units}))"
    summed = f"(SELECT account_id, sum(delta) AS delta FROM {deltas} GROUP BY ALL)"
    tx.execute(
        f"UPDATE balances b SET prepaid_money = CAST(b.prepaid_money"
        f" - CAST(d.delta AS DECIMAL(38, 0)) * {unit} AS DECIMAL(38, 9)),"
        f" updated_at = to_timestamp(?) FROM {summed} d"
        " WHERE b.account_id = d.account_id AND b.prepaid_money IS NOT NULL AND d.delta <> 0",
        (tx.now,),
    )
    tx.execute(
        "INSERT INTO balance_changes (changed_at, account_id, who, change, quota_bytes,"
        " prepaid_seconds, prepaid_money)"
        f" SELECT to_timestamp(?), b.account_id, ?, '{{\"charged_minor\": ' || d.delta || '}}',"
        f" b.quota_bytes, b.prepaid_seconds, b.prepaid_money FROM balances b JOIN {summed} d"
        " USING (account_id) WHERE b.prepaid_money IS NOT NULL AND d.delta <> 0",
        (tx.now, who),
    )


def list_balances(store: DuckDBStore) -> list[dict[str, Any]]:
    return [
        _shown(row)
        for row in store.query(
            "SELECT account_id, quota_bytes, prepaid_seconds, prepaid_money,"
            " epoch(updated_at) AS updated_at FROM balances ORDER BY account_id"
        ).to_pylist()
    ]


def balances_router(store: DuckDBStore) -> APIRouter:
    """The balance routes (see the module doc); ``who`` is ``api`` and the client."""
    router = APIRouter()

    def who(request: Request) -> str:
        return f"api:{request.client.host}" if request.client else "api"

    @router.get("/api/balances")
    def get_balances() -> list[dict[str, Any]]:
        return list_balances(store)

    @router.put("/api/balances/{account}")
    def put_balance(account: str, body: BalanceSet, request: Request) -> dict[str, Any]:
        return set_balance(store, account, body, who(request))

    @router.post("/api/balances/{account}/topup")
    def post_topup(account: str, body: TopUp, request: Request) -> dict[str, Any]:
        try:
            return top_up(store, account, body, who(request))
        except KeyError:
            raise HTTPException(404, f"no balance for account {account!r}") from None

    return router
