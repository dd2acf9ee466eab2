"""The first admin's generated password must be changed before anything else: the API
refuses that session every route but who-am-I, change-password and logout (whatever the
role), every page sends it to ``/password``, the generated password cannot be chosen
again, and once changed the same session may do everything an admin may. Users' times
are answered in UTC to the second."""

from __future__ import annotations

import re

import pytest
from console_testkit import T0, make_kit

from netdistill.console.app import Console
from netdistill.console.users import utc_seconds
from netdistill.manager.tables import execute

REFUSAL = (
    "admin must change the generated password first "
    "(POST /api/auth/password, or the console's /password page)"
)


@pytest.fixture
def kit(tmp_path):
    k = make_kit(tmp_path)
    yield k
    k.store.close()


def test_generated_password_must_be_changed_before_anything_else(kit):
    admin, csrf = kit.login("admin", kit.admin_password)
    admin.headers["x-csrf-token"] = csrf
    assert (
        kit.anonymous()
        .post("/api/auth/login", json={"user": "admin", "password": kit.admin_password})
        .json()["must_change_password"]
    )
    me = admin.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["must_change_password"] is True
    # reads and changes alike are refused, admin routes too
    for method, path, body in [
        ("GET", "/api/status", None),
        ("GET", "/api/users", None),
        ("GET", "/api/explore/fields", None),
        ("GET", "/api/dashboard/top", None),
        ("POST", "/api/users", {"name": "eve", "password": "12345678"}),
        ("POST", "/api/fields", {"name": "region", "type": "string"}),
        ("PATCH", "/api/users/admin", {"password": "another-one-1"}),
    ]:
        refused = admin.request(method, path, json=body)
        assert (refused.status_code, refused.json()) == (403, {"detail": REFUSAL}), path
    assert [u["name"] for u in kit.bearer().get("/api/users").json()] == ["admin"]
    assert kit.store.fields.get("region") is None
    # pages go to the change page, which is served
    for path in ["/", "/explore", "/users", "/reports"]:
        page = admin.get(path, follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, f"/password?next={path}")
    form = admin.get("/password")
    assert form.status_code == 200 and 'data-testid="password-form"' in form.text
    # the generated password is not a new one
    same = admin.post(
        "/api/auth/password",
        json={"old_password": kit.admin_password, "new_password": kit.admin_password},
    )
    assert same.json() == {"detail": "choose a new password, not the generated one"}
    assert admin.get("/api/status").status_code == 403
    changed = admin.post(
        "/api/auth/password",
        json={"old_password": kit.admin_password, "new_password": "admin-chosen-1"},
    )
    assert changed.json() == {"changed": "admin"}
    # the same session now may do everything
    assert admin.get("/api/status").status_code == 200
    assert admin.get("/", follow_redirects=False).status_code == 200
    assert admin.get("/api/auth/me").json()["must_change_password"] is False
    assert admin.post("/api/users", json={"name": "eve", "password": "12345678"}).status_code == 200
    assert kit.console.users.authenticate("admin", kit.admin_password) is None
    # the manager's token was never held back, and other users never were
    assert kit.bearer().get("/api/status").status_code == 200
    viewer = kit.user("vera", "viewer")
    assert viewer.get("/api/status").status_code == 200
    # a restart does not bring the flag back
    Console(kit.store, token="t", announce=lambda _: None)
    assert kit.console.users.must_change_password("admin") is False


def test_a_store_made_before_the_flag_gets_the_column_false(tmp_path):
    kit = make_kit(tmp_path)
    kit.store.close()
    from netdistill.store.duckdb import DuckDBStore

    store = DuckDBStore(tmp_path / "records.duckdb")
    execute(store, "ALTER TABLE users DROP COLUMN must_change_password")
    Console(store, token="t", announce=lambda _: None)
    rows = store.query("SELECT name, must_change_password FROM users").to_pylist()
    assert rows == [{"name": "admin", "must_change_password": False}]
    store.close()


def test_user_times_in_utc_to_the_second(kit):
    kit.clock.now = T0 + 0.123456  # 2027-01-15T08:00:00.123456Z
    kit.console.users.add("vera", "password-xxxx", "viewer")
    users = {u["name"]: u for u in kit.bearer().get("/api/users").json()}
    assert users["vera"]["created_at"] == "2027-01-15T08:00:00Z"
    assert users["vera"]["updated_at"] == "2027-01-15T08:00:00Z"
    assert users["admin"]["must_change_password"] is True
    for user in users.values():
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", user["created_at"])
    from datetime import datetime, timedelta, timezone

    paris = datetime(2027, 1, 15, 9, 0, 0, 999999, tzinfo=timezone(timedelta(hours=1)))
    assert utc_seconds(paris) == "2027-01-15T08:00:00Z"
