"""The licence tables in the store (their DDL lives here, in one place).

* ``licences`` — the licence files installed, as text, with who installed them and
  when: verified again each time they are read, so a row edited in the store counts
  for nothing;
* ``licence_admitted`` — the gatherers and exporters admitted under a limit, with when
  each was first seen: the first N stay the licensed ones across restarts;
* ``licence_installation`` — this installation's id (made at the first start), which
  a licence may be bound to.

Writes go through ``manager/tables.py`` (the store's connection, under its lock).
"""

from __future__ import annotations

import uuid
from typing import Any

from netdistill.manager.tables import execute
from netdistill.store import Store

_DDL = (
    """CREATE TABLE IF NOT EXISTS licences (
        licence_id VARCHAR PRIMARY KEY, text VARCHAR NOT NULL,
        installed_at TIMESTAMPTZ NOT NULL, installed_by VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS licence_admitted (
        item VARCHAR NOT NULL, subject VARCHAR NOT NULL, first_seen TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (item, subject))""",
    """CREATE TABLE IF NOT EXISTS licence_installation (
        install_id VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL)""",
)


def ensure_tables(store: Store) -> None:
    for ddl in _DDL:
        execute(store, ddl)


def install_id(store: Store, now: float) -> str:
    """This installation's id, made (a random UUID) on the first call."""
    rows = store.query("SELECT install_id FROM licence_installation LIMIT 1").to_pylist()
    if rows:
        return str(rows[0]["install_id"])
    made = str(uuid.uuid4())
    execute(store, "INSERT INTO licence_installation VALUES (?, to_timestamp(?))", (made, now))
    return made


def installed(store: Store) -> list[dict[str, Any]]:
    return list(
        store.query(
            "SELECT licence_id, text, epoch(installed_at) AS installed_at, installed_by "
            "FROM licences ORDER BY installed_at, licence_id"
        ).to_pylist()
    )


def put_licence(store: Store, licence_id: str, text: str, user: str, now: float) -> None:
    execute(
        store,
        "INSERT OR REPLACE INTO licences VALUES (?, ?, to_timestamp(?), ?)",
        (licence_id, text, now, user),
    )


def delete_licence(store: Store, licence_id: str) -> None:
    execute(store, "DELETE FROM licences WHERE licence_id = ?", (licence_id,))


def admitted(store: Store) -> list[dict[str, Any]]:
    return list(
        store.query(
            "SELECT item, subject, epoch(first_seen) AS first_seen FROM licence_admitted "
            "ORDER BY item, first_seen, subject"
        ).to_pylist()
    )


def admit(store: Store, item: str, subject: str, now: float) -> None:
    execute(
        store,
        "INSERT INTO licence_admitted VALUES (?, ?, to_timestamp(?)) ON CONFLICT DO NOTHING",
        (item, subject, now),
    )


def forget(store: Store, item: str, subject: str) -> None:
    execute(store, "DELETE FROM licence_admitted WHERE item = ? AND subject = ?", (item, subject))
