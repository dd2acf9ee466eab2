"""Balances: seeded from the scheme and a CSV file without overwriting API changes on a
restart, changed through the API (PUT, top-up) with every change recorded; and the
alert stage's config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from alert_support import make_runner, rows
from fastapi.testclient import TestClient
from pydantic import ValidationError

from netdistill.errors import NetdistillError
from netdistill.manager.api import create_app
from netdistill.scheme.models import Scheme
from netdistill.stages.runner import stages_router
from netdistill.store.duckdb import DuckDBStore

AUTH = {"authorization": "Bearer t0k"}


def stage(**extra: object) -> dict[str, object]:
    return {"name": "over-quota", "type": "alert", "rule": "usage_over_balance", **extra}


def test_seed_api_and_restart(tmp_path: Path) -> None:
    (tmp_path / "balances.csv").write_text(
        "account_id,quota_bytes,prepaid_seconds\nbob,2000,\ncarol,,90.5\n"
    )
    config = stage(balances={"alice": {"quota_bytes": 1000}}, balances_csv="balances.csv")
    runner, _clock = make_runner(tmp_path, [config])
    client = TestClient(create_app(runner.context.store, token="t0k", status=dict,
                                   guarded=[stages_router(runner)]))  # fmt: skip
    assert client.get("/api/balances").status_code == 401
    listed = client.get("/api/balances", headers=AUTH).json()
    assert [(b["account_id"], b["quota_bytes"], b["prepaid_seconds"]) for b in listed] == [
        ("alice", 1000, None),
        ("bob", 2000, None),
        ("carol", None, 90.5),
    ]
    put = client.put("/api/balances/alice", json={"prepaid_seconds": 60}, headers=AUTH)
    assert put.json() == {
        "account_id": "alice",
        "quota_bytes": 1000,
        "prepaid_seconds": 60.0,
        "prepaid_money": None,
    }
    new = client.put("/api/balances/dave", json={"quota_bytes": 5}, headers=AUTH)
    assert new.json() == {
        "account_id": "dave",
        "quota_bytes": 5,
        "prepaid_seconds": None,
        "prepaid_money": None,
    }
    topup = client.post("/api/balances/carol/topup", json={"seconds": 9.5}, headers=AUTH)
    assert topup.json() == {
        "account_id": "carol",
        "quota_bytes": None,
        "prepaid_seconds": 100.0,
        "prepaid_money": None,
    }
    missing = client.post("/api/balances/nobody/topup", json={"bytes": 1}, headers=AUTH)
    assert missing.status_code == 404
    bad = client.post("/api/balances/carol/topup", json={"bytes": -1}, headers=AUTH)
    assert bad.status_code == 422
    store = runner.context.store
    changes = rows(store, "SELECT account_id, who, change FROM balance_changes")
    assert [(c["account_id"], c["who"], c["change"]) for c in changes[3:]] == [
        ("alice", "api:testclient", '{"set": {"prepaid_seconds": 60.0}}'),
        ("dave", "api:testclient", '{"set": {"quota_bytes": 5}}'),
        ("carol", "api:testclient", '{"topup": {"bytes": 0, "seconds": 9.5}}'),
    ]
    # money: exact decimal strings in and out; a JSON number (a binary float) is refused
    money = client.put("/api/balances/erin", json={"prepaid_money": "1.10"}, headers=AUTH)
    assert money.json()["prepaid_money"] == "1.1"
    more = client.post("/api/balances/erin/topup", json={"money": "0.20"}, headers=AUTH)
    assert more.json()["prepaid_money"] == "1.3"
    floats = client.post("/api/balances/erin/topup", json={"money": 0.2}, headers=AUTH)
    assert floats.status_code == 422
    store.close()

    # restart with the same scheme: the seed does not undo the API's changes
    reopened = DuckDBStore(tmp_path / "records.duckdb")
    _again, _clock = make_runner(tmp_path, [config], store=reopened)
    assert rows(reopened, "SELECT account_id, quota_bytes, prepaid_seconds FROM balances"
                " ORDER BY account_id") == [
        {"account_id": "alice", "quota_bytes": 1000, "prepaid_seconds": 60.0},
        {"account_id": "bob", "quota_bytes": 2000, "prepaid_seconds": None},
        {"account_id": "carol", "quota_bytes": None, "prepaid_seconds": 100.0},
        {"account_id": "dave", "quota_bytes": 5, "prepaid_seconds": None},
        {"account_id": "erin", "quota_bytes": None, "prepaid_seconds": None},
    ]  # fmt: skip
    assert rows(reopened, "SELECT count(*) AS n FROM balance_changes") == [{"n": 8}]


def test_the_balances_api_is_mounted_once(tmp_path: Path) -> None:
    runner, _clock = make_runner(tmp_path, [stage(), stage(name="voip")])
    routes = [[getattr(r, "path", "") for r in s.router().routes] for s in runner.stages]
    assert routes == [
        ["/api/balances", "/api/balances/{account}", "/api/balances/{account}/topup"],
        [],
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (stage(measure="avg(bytes)"), "expected sum|count|max|min(field)"),
        (stage(where="service = "), "where 'service = '"),
        (stage(actions=[{"log": {}, "webhook": {"url": "http://127.0.0.1:1/"}}]),
         "exactly one of log, webhook, command, radius (got log, webhook)"),
        (stage(actions=[{"mail": {}}]), "mail"),
        (stage(actions=[{"radius": {"request": "kick", "secret": "s"}}]), "'disconnect' or 'coa'"),
        (stage(rule="over_limit"), "usage_over_balance"),
        (stage(name="gatherer_silent"), "the monitor's alert kind"),
    ],
)  # fmt: skip
def test_config_errors_name_the_problem(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        Scheme.model_validate({"stages": [entry]})
    assert message in str(error.value)


def test_unknown_radius_attribute_and_field(tmp_path: Path) -> None:
    radius = {"request": "coa", "secret": "s", "attributes": {"Filter-Idd": "x"}}
    with pytest.raises(NetdistillError, match="'Filter-Idd' is not in netdistill's RADIUS"):
        make_runner(tmp_path / "a", [stage(actions=[{"radius": radius}])])
    with pytest.raises(ValueError, match="records have no field 'customer'"):
        make_runner(tmp_path / "b", [stage(per="customer")])


def test_defaults_validate() -> None:
    from netdistill.stages.actions import ActionEntry
    from netdistill.stages.alerts import AlertConfig

    config = AlertConfig(name="q", rule="quarantine_growing")
    assert (config.measure, config.period, config.per, config.max_attempts) == (
        "sum(bytes)", "month", "account_id", 5
    )  # fmt: skip
    entry = ActionEntry.model_validate({"radius": {"request": "coa", "secret": "s"}})
    assert entry.kind == "radius" and entry.radius is not None and entry.radius.port == 3799
