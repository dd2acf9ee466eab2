"""Balances and quotas that ``usage_over_balance`` alerts compare usage with (seed 003,
claims 7–9 and 16–18: an alert when a value passes a predetermined amount, which ceases
a service, and provides it again once the amount is raised).

One row per account in ``balances``: ``quota_bytes`` (bytes allowed per period of the
rule, e.g. a month) and ``prepaid_seconds`` (seconds bought so far; a top-up adds to it).
NULL means "no limit": an account without a row, or with NULL in the compared column, is
never alerted on. Every change — seeding from the scheme, ``PUT``, top-up — is written
with the new values in ``balance_changes`` (when, who, what), in the same transaction.

Seeding (``seed_balances``) inserts only accounts that have no row yet, so a change made
through the API survives a restart with the same scheme.

API (behind the manager's bearer token; mounted by the stage runner through
``AlertStage.router``):

* ``GET /api/balances`` — every row;
* ``PUT /api/balances/{account}`` ``{"quota_bytes": N, "prepaid_seconds": S}`` — sets
  the given columns (creates the row);
* ``POST /api/balances/{account}/topup`` ``{"bytes": N}`` and/or ``{"seconds": S}`` —
  adds to the quota / prepaid balance (404 for an unknown account).

Scheme (on any ``alert`` stage; CSV columns ``account_id,quota_bytes,prepaid_seconds``)::

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
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt

from netdistill.errors import SchemeError
from netdistill.store.duckdb import DuckDBStore, StoreWriter

COLUMNS = ("quota_bytes", "prepaid_seconds")

_DDL = """
CREATE TABLE IF NOT EXISTS balances (
    account_id VARCHAR PRIMARY KEY, quota_bytes BIGINT, prepaid_seconds DOUBLE,
    updated_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS balance_changes (
    changed_at TIMESTAMPTZ NOT NULL, account_id VARCHAR NOT NULL, who VARCHAR NOT NULL,
    change VARCHAR NOT NULL, quota_bytes BIGINT, prepaid_seconds DOUBLE)
"""


class BalanceSeed(BaseModel):
    """One account's starting balance in the scheme."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quota_bytes: NonNegativeInt | None = None
    prepaid_seconds: NonNegativeFloat | None = None


class BalanceSet(BalanceSeed):
    """Body of ``PUT /api/balances/{account}``: the columns given are set."""


class TopUp(BaseModel):
    """Body of ``POST /api/balances/{account}/topup``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bytes: NonNegativeInt = Field(0, description="added to quota_bytes")
    seconds: NonNegativeFloat = Field(0.0, description="added to prepaid_seconds")


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
        "SELECT quota_bytes, prepaid_seconds FROM balances WHERE account_id = ?", (account,)
    ).to_pylist()[0]
    tx.execute(
        "INSERT INTO balance_changes VALUES (to_timestamp(?), ?, ?, ?, ?, ?)",
        (
            tx.now,
            account,
            who,
            json.dumps(dict(change), sort_keys=True),
            row["quota_bytes"],
            row["prepaid_seconds"],
        ),
    )
    return {"account_id": account, **row}


def seed_balances(store: DuckDBStore, seeds: Mapping[str, BalanceSeed], who: str) -> int:
    """Insert the accounts of ``seeds`` that have no row yet; returns how many."""
    added = 0
    with store.transaction() as tx:
        for account, seed in seeds.items():
            known = tx.query("SELECT 1 FROM balances WHERE account_id = ?", (account,))
            if known.num_rows:
                continue
            tx.execute(
                "INSERT INTO balances VALUES (?, ?, ?, to_timestamp(?))",
                (account, seed.quota_bytes, seed.prepaid_seconds, tx.now),
            )
            _record_change(tx, account, who, {"seed": seed.model_dump()})
            added += 1
    return added


def set_balance(store: DuckDBStore, account: str, values: BalanceSet, who: str) -> dict[str, Any]:
    given = values.model_dump(exclude_unset=True)
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO balances VALUES (?, NULL, NULL, to_timestamp(?)) ON CONFLICT DO NOTHING",
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
            " updated_at = to_timestamp(?) WHERE account_id = ?",
            (amount.bytes, amount.bytes, amount.seconds, amount.seconds, tx.now, account),
        )
        return _record_change(tx, account, who, {"topup": amount.model_dump()})


def list_balances(store: DuckDBStore) -> list[dict[str, Any]]:
    return store.query(
        "SELECT account_id, quota_bytes, prepaid_seconds, epoch(updated_at) AS updated_at"
        " FROM balances ORDER BY account_id"
    ).to_pylist()


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
