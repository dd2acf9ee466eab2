"""Console access: the first admin, argon2 hashes, sessions with expiry, CSRF, and the
role each route needs — refused without a session, with a wrong token, or with too
small a role."""

from __future__ import annotations

import hashlib

import pytest
from console_testkit import CHEAP_HASHER, TOKEN, make_kit

from netdistill.console.app import Console


@pytest.fixture
def kit(tmp_path):
    k = make_kit(tmp_path)
    yield k
    k.store.close()


def test_first_admin_created_once_with_an_argon2_hash(kit):
    assert len(kit.announced) == 1 and len(kit.admin_password) >= 16
    rows = kit.store.query("SELECT name, role, password_hash FROM users").to_pylist()
    assert [(r["name"], r["role"]) for r in rows] == [("admin", "admin")]
    assert rows[0]["password_hash"].startswith("$argon2id$")
    assert kit.admin_password not in rows[0]["password_hash"]
    again: list[str] = []
    Console(
        kit.store, token=TOKEN, announce=again.append, hasher=CHEAP_HASHER
    )  # a restart: nothing printed
    assert again == []
    assert kit.store.query("SELECT count(*) AS n FROM users").to_pylist()[0]["n"] == 1


def test_login_sets_an_http_only_cookie_whose_hash_only_is_stored(kit):
    anonymous = kit.anonymous()
    wrong = anonymous.post("/api/auth/login", json={"user": "admin", "password": "nope-nope"})
    assert wrong.status_code == 401
    nobody = anonymous.post("/api/auth/login", json={"user": "ghost", "password": "whatever1"})
    assert nobody.status_code == 401
    response = anonymous.post(
        "/api/auth/login", json={"user": "admin", "password": kit.admin_password}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["user"], body["role"], body["via"]) == ("admin", "admin", "session")
    assert body["expires_at"] == kit.clock.now + 3600
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=3600" in cookie
    session_id = anonymous.cookies["netdistill_session"]
    stored = kit.store.query("SELECT id_sha256, user_name, csrf_token FROM sessions").to_pylist()
    assert stored == [
        {
            "id_sha256": hashlib.sha256(session_id.encode()).hexdigest(),
            "user_name": "admin",
            "csrf_token": body["csrf_token"],
        }
    ]
    me = anonymous.get("/api/auth/me").json()
    assert (me["user"], me["role"], me["csrf_token"]) == ("admin", "admin", body["csrf_token"])


GUARDED_GETS = [
    "/api/status",
    "/api/fields",
    "/api/quarantine",
    "/api/auth/me",
    "/api/users",
    "/api/audit",
    "/api/dashboard/ingest",
    "/api/dashboard/traffic",
    "/api/dashboard/top",
    "/api/console/types",
    "/api/console/notation?expression=src_ip",
    "/api/lookups",
    "/api/procedures",
    "/api/procedures/routers",
    "/api/procedures/routers/options?field=service",
]
GUARDED_CHANGES = [
    ("POST", "/api/fields", {"name": "x", "type": "string"}),
    ("DELETE", "/api/fields/x", None),
    ("PATCH", "/api/fields/x", {"type": "string"}),
    ("POST", "/api/users", {"name": "x", "password": "12345678"}),
    ("PATCH", "/api/users/admin", {"role": "viewer"}),
    ("DELETE", "/api/users/admin", None),
    ("POST", "/api/auth/password", {"old_password": "a", "new_password": "b"}),
    ("POST", "/api/procedures/routers/disable", None),
    ("PUT", "/api/procedures/routers", {"trigger": "nf"}),
]


def test_every_route_refuses_a_request_without_credentials(kit):
    anonymous = kit.anonymous()
    for path in GUARDED_GETS:
        assert anonymous.get(path).status_code == 401, path
    for method, path, body in GUARDED_CHANGES:
        assert anonymous.request(method, path, json=body).status_code == 401, path
    # a wrong bearer token is refused even beside a valid session cookie
    admin, _ = kit.login("admin", kit.admin_password)
    admin.headers["authorization"] = "Bearer wrong"
    assert admin.get("/api/status").status_code == 401
    # nothing refused was audited: only the first admin and the login
    assert [(e["user_name"], e["action"]) for e in kit.audit()] == [
        ("console", "create_first_admin"),
        ("admin", "POST /api/auth/login"),
    ]


def test_roles_viewer_operator_admin(kit):
    viewer = kit.user("vera", "viewer")
    operator = kit.user("otto", "operator")
    admin = kit.user("ada", "admin")
    token = kit.bearer()
    for path in GUARDED_GETS:
        expected = 403 if path in ("/api/users", "/api/audit") else 200
        assert viewer.get(path).status_code == expected, path
        assert operator.get(path).status_code == expected, path
        assert admin.get(path).status_code == 200, path
        assert token.get(path).status_code == 200, path
    new_field = {"name": "region", "type": "string"}
    refused = viewer.post("/api/fields", json=new_field)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "vera is viewer; this needs operator"
    assert operator.post("/api/fields", json=new_field).json() == {"added": "region"}
    assert operator.post("/api/users", json={"name": "eve", "password": "12345678"}).json() == {
        "detail": "otto is operator; this needs admin"
    }
    added = admin.post("/api/users", json={"name": "eve", "password": "12345678"})
    assert added.json() == {"added": "eve", "role": "viewer"}
    # the manager's token counts as admin and needs no CSRF token
    assert token.patch("/api/users/eve", json={"role": "operator"}).json() == {
        "changed": "eve",
        "role": "operator",
    }
    assert [u["name"] for u in admin.get("/api/users").json()] == [
        "ada",
        "admin",
        "eve",
        "otto",
        "vera",
    ]
    assert "region" in [f["name"] for f in token.get("/api/fields").json()]


def test_csrf_token_required_for_session_changes(kit):
    operator = kit.user("otto", "operator")
    csrf = operator.headers.pop("x-csrf-token")
    missing = operator.post("/api/fields", json={"name": "a1", "type": "string"})
    assert (missing.status_code, missing.json()["detail"]) == (403, "missing or wrong X-CSRF-Token")
    wrong = operator.post(
        "/api/fields", json={"name": "a1", "type": "string"}, headers={"x-csrf-token": "x" + csrf}
    )
    assert wrong.status_code == 403
    right = operator.post(
        "/api/fields", json={"name": "a1", "type": "string"}, headers={"x-csrf-token": csrf}
    )
    assert right.status_code == 200
    assert operator.get("/api/fields").status_code == 200  # reading needs no CSRF token
    assert [f.name for f in kit.store.fields].count("a1") == 1


def test_sessions_expire_when_idle_and_at_their_end(kit):
    viewer = kit.user("vera", "viewer")
    kit.clock.now += 599
    assert viewer.get("/api/status").status_code == 200  # touches the session
    kit.clock.now += 599
    assert viewer.get("/api/status").status_code == 200
    kit.clock.now += 600  # idle for 600 s: over
    assert viewer.get("/api/status").status_code == 401
    assert kit.store.query("SELECT count(*) AS n FROM sessions").to_pylist()[0]["n"] == 0
    viewer, _ = kit.login("vera", "password-xxxx")
    for _ in range(6):  # busy, but 3600 s after login the session ends all the same
        kit.clock.now += 500
        assert viewer.get("/api/status").status_code == 200
    kit.clock.now += 599  # 3599 s after login
    assert viewer.get("/api/status").status_code == 200
    kit.clock.now += 1
    assert viewer.get("/api/status").status_code == 401


def test_logout_password_and_role_changes_end_sessions(kit):
    viewer = kit.user("vera", "viewer")
    assert viewer.post("/api/auth/logout").json() == {"ok": True}
    assert viewer.get("/api/status").status_code == 401
    viewer, csrf = kit.login("vera", "password-xxxx")
    viewer.headers["x-csrf-token"] = csrf
    bad = viewer.post(
        "/api/auth/password", json={"old_password": "wrong-one", "new_password": "new-pass-1"}
    )
    assert bad.status_code == 403
    short = viewer.post(
        "/api/auth/password", json={"old_password": "password-xxxx", "new_password": "short"}
    )
    assert short.json() == {"detail": "a password needs at least 8 characters"}
    changed = viewer.post(
        "/api/auth/password", json={"old_password": "password-xxxx", "new_password": "new-pass-1"}
    )
    assert changed.json() == {"changed": "vera"}
    assert kit.console.users.authenticate("vera", "password-xxxx") is None
    viewer, _ = kit.login("vera", "new-pass-1")
    assert kit.bearer().patch("/api/users/vera", json={"role": "operator"}).status_code == 200
    assert viewer.get("/api/status").status_code == 401  # the role change ended it


def test_the_last_admin_stays(kit):
    token = kit.bearer()
    demote = token.patch("/api/users/admin", json={"role": "viewer"})
    assert demote.json() == {"detail": "'admin' is the last admin; make another admin first"}
    assert token.delete("/api/users/admin").status_code == 400
    assert token.delete("/api/users/ghost").status_code == 404
    bad = token.post("/api/users", json={"name": "a b", "password": "12345678"})
    assert bad.status_code == 400
    role = token.post("/api/users", json={"name": "ab", "password": "12345678", "role": "boss"})
    assert role.json() == {"detail": "unknown role 'boss' (one of viewer, operator, admin)"}
    assert token.post("/api/users", json={"name": "ab", "password": "12345678"}).status_code == 200
    assert token.post("/api/users", json={"name": "ab", "password": "12345678"}).json() == {
        "detail": "user 'ab' exists"
    }
    assert kit.store.query("SELECT name, role FROM users ORDER BY name").to_pylist() == [
        {"name": "ab", "role": "viewer"},
        {"name": "admin", "role": "admin"},
    ]


def test_pages_need_a_session_and_the_role(kit):
    anonymous = kit.anonymous()
    for path in ["/", "/procedures", "/fields", "/users", "/audit", "/reports"]:
        response = anonymous.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/login?next={path}"
    login = anonymous.get("/login")
    assert login.status_code == 200 and 'data-testid="login-form"' in login.text
    viewer = kit.user("vera", "viewer")
    page = viewer.get("/")
    assert page.status_code == 200
    assert 'data-testid="chart-traffic"' in page.text
    assert f'<meta name="csrf-token" content="{viewer.headers["x-csrf-token"]}">' in page.text
    assert 'href="/users"' not in page.text  # not offered to a viewer
    denied = viewer.get("/users")
    assert denied.status_code == 403 and 'data-testid="denied"' in denied.text
    admin = kit.user("ada", "admin")
    assert admin.get("/users").status_code == 200 and 'href="/users"' in admin.get("/").text
    builder = viewer.get("/procedures/routers/builder?field=site")
    assert 'data-procedure="routers"' in builder.text and 'data-field="site"' in builder.text


def test_api_docs_served_offline(kit):
    anonymous = kit.anonymous()
    docs = anonymous.get("/docs")
    assert docs.status_code == 200
    assert "/static/vendor/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()
    bundle = anonymous.get("/static/vendor/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 1_000_000
    chart = anonymous.get("/static/vendor/chart.umd.min.js")
    assert chart.status_code == 200 and b"Chart.js v4" in chart.content[:200]
    assert anonymous.get("/redoc").status_code == 404
    paths = anonymous.get("/openapi.json").json()["paths"]
    for path in [
        "/api/auth/login",
        "/api/users",
        "/api/users/{name}",
        "/api/audit",
        "/api/dashboard/top",
        "/api/dashboard/traffic",
        "/api/dashboard/ingest",
        "/api/console/notation",
        "/api/procedures/{name}/options",
    ]:
        assert path in paths, path
