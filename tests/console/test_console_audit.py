"""The audit log: every change made through the API, by any router, with who, what and
the request (secrets redacted); reads, refused requests and data delivery are not in it."""

from __future__ import annotations

import pytest
from console_testkit import make_kit


@pytest.fixture
def kit(tmp_path):
    k = make_kit(tmp_path)
    yield k
    k.store.close()


def test_changes_are_audited_with_who_and_what(kit):
    operator = kit.user("otto", "operator")
    admin = kit.user("ada", "admin")
    token = kit.bearer()
    before = len(kit.audit())
    assert (
        operator.post("/api/fields", json={"name": "region", "type": "string"}).status_code == 200
    )
    assert operator.patch("/api/fields/region", json={"type": "int64"}).status_code == 200
    assert operator.delete("/api/fields/region").status_code == 200
    assert operator.post("/api/procedures/routers/disable").status_code == 200
    assert admin.post(
        "/api/users", json={"name": "eve", "password": "secret-pw-1", "role": "viewer"}
    ).json() == {"added": "eve", "role": "viewer"}
    assert token.delete("/api/users/eve").status_code == 200
    # not audited: reads, refused changes, a failed change, data delivery (but a query is)
    assert operator.get("/api/fields").status_code == 200
    assert operator.get("/api/audit").status_code == 403
    assert (
        operator.post("/api/users", json={"name": "x", "password": "12345678"}).status_code == 403
    )
    assert operator.delete("/api/fields/nosuch").status_code == 400
    assert token.post("/api/query", json={"sql": "SELECT 1"}).status_code == 200
    entries = kit.audit()[before:]
    assert [(e["user_name"], e["action"]) for e in entries] == [
        ("otto", "POST /api/fields"),
        ("otto", "PATCH /api/fields/region"),
        ("otto", "DELETE /api/fields/region"),
        ("otto", "POST /api/procedures/routers/disable"),
        ("ada", "POST /api/users"),
        ("token", "DELETE /api/users/eve"),
        ("token", "query"),
    ]
    import json

    details = [json.loads(e["detail"]) for e in entries]
    assert details[0] == {"status": 200, "query": {}, "body": {"name": "region", "type": "string"}}
    assert details[1]["body"] == {"type": "int64"}
    assert details[2]["body"] is None
    assert details[4]["body"] == {"name": "eve", "password": "***", "role": "viewer"}
    assert "secret-pw-1" not in json.dumps([e["detail"] for e in kit.audit()])


def test_logins_and_failed_logins_are_audited(kit):
    anonymous = kit.anonymous()
    before = len(kit.audit())
    assert (
        anonymous.post(
            "/api/auth/login", json={"user": "admin", "password": "guess-guess"}
        ).status_code
        == 401
    )
    client, _ = kit.login("admin", kit.admin_password)
    assert client.post("/api/auth/logout").status_code == 200
    entries = kit.audit()[before:]
    assert [(e["user_name"], e["action"]) for e in entries] == [
        ("admin", "login_failed"),
        ("admin", "POST /api/auth/login"),
        ("admin", "POST /api/auth/logout"),
    ]
    assert '"password": "***"' in entries[0]["detail"]


def test_audit_api_is_for_admins_and_newest_first(kit):
    operator = kit.user("otto", "operator")
    operator.post("/api/fields", json={"name": "region", "type": "string"})
    admin = kit.user("ada", "admin")
    token = kit.bearer()
    newest = token.get("/api/audit", params={"limit": 2}).json()
    assert [(e["user_name"], e["action"]) for e in newest] == [
        ("ada", "POST /api/auth/login"),
        ("otto", "POST /api/fields"),
    ]
    assert newest[1]["detail"]["body"] == {"name": "region", "type": "string"}
    assert newest[0]["id"] > newest[1]["id"]
    mine = admin.get("/api/audit", params={"user": "otto"}).json()
    assert [e["action"] for e in mine] == ["POST /api/fields", "POST /api/auth/login"]
    assert operator.get("/api/audit").status_code == 403
    assert kit.user("vera", "viewer").get("/api/audit").status_code == 403
