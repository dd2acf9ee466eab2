"""Every route of a live ``netdistill run`` (the demo scheme, devices off), read from its
own ``/openapi.json``, refused or allowed exactly as the role table below says.

First, the admin still holding the password generated at the first start is refused
every route but who-am-I, change-password and logout (403 "… must change the generated
password first"), and every page sends it to ``/password``; once changed, the same
session is an admin like any other.

For each route the test sends the same request as nobody, with a wrong bearer token,
as a viewer, an operator and an admin (console sessions with their CSRF token) and with
the manager's token, and expects:

* nobody or a wrong token → 401, except the routes listed in ``PUBLIC``;
* a session whose role is below the route's → 403;
* a session without its CSRF token on a route that changes something → 403;
* a gatherer's route (``TOKEN_ONLY``) → 401 for every session: only a gatherer's own
  credential or the manager's token may post there;
* the route's role or more → neither 401 nor 403, and no server error (an operator
  changing the scheme may get 403 "… needs admin" when the change touches the manager
  section, ``ADMIN_BY_CONTENT``).

The role a route needs comes from ``NEEDS`` (this file's own table, not the console's
code): admin under ``/api/users``, ``/api/audit`` and ``/api/licences``, viewer for reads and for
``/api/auth/*``, operator for every other change. Path parameters name things that do
not exist (``no-such-…``) and bodies are empty, so an allowed request is answered 404
or 422 rather than changing the run. Pages (not in the OpenAPI document) are checked
too: without a session they send to ``/login``, above one's role they answer 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import ARTIFACTS, DemoRun, demo_scheme

VIEWER, OPERATOR, ADMIN = 1, 2, 3
ROLE_NAMES = {VIEWER: "viewer", OPERATOR: "operator", ADMIN: "admin"}
SAFE = {"GET", "HEAD", "OPTIONS"}

#: routes anyone may call: logging in and out, the API description and its page
PUBLIC = {
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/logout"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
}
#: routes for gatherers: their own credential or the manager's token, never a session
TOKEN_ONLY = {("POST", "/api/heartbeat")}
#: data delivery into the store: the token only; every session is refused with 403
DELIVERY = {("POST", "/api/commit"), ("POST", "/api/quarantine")}
DELIVERY_REFUSAL = "this route delivers data for scripts and gatherers: use the token"
#: operator routes that want an admin when the change touches the manager section
#: (retention, ports …): an operator may get 403 "… needs admin" for such a body
ADMIN_BY_CONTENT = {("PUT", "/api/scheme"), ("POST", "/api/scheme/rollback/{version}")}
#: path prefixes only admins may use, whatever the method
ADMIN_ONLY = ("/api/users", "/api/audit", "/api/licences")

#: a value for path parameters (others get "no-such-thing"): nothing of that name exists
PATH_VALUES = {"name": "no-such-thing", "start": "0"}
#: values for required query parameters (others get "1")
QUERY_VALUES = {"field": "service", "origin": "no-such-gatherer", "sequence": "1"}

#: what a session that must change its generated password may still call
PASSWORD_CHANGE = {
    ("GET", "/api/auth/me"),
    ("POST", "/api/auth/password"),
    ("POST", "/api/auth/logout"),
}
FORCED = (
    "admin must change the generated password first "
    "(POST /api/auth/password, or the console's /password page)"
)

#: pages outside the OpenAPI document: (path, least role)
PAGES = [
    ("/", VIEWER),
    ("/explore", VIEWER),
    ("/password", VIEWER),
    ("/scheme", VIEWER),
    ("/scheme/stages", VIEWER),
    ("/scheme/retention", VIEWER),
    ("/invoices", VIEWER),
    ("/reports", VIEWER),
    ("/procedures", VIEWER),
    ("/fields", VIEWER),
    ("/procedures/demo-routers/builder", VIEWER),
    ("/users", ADMIN),
    ("/audit", ADMIN),
    ("/licences", ADMIN),
]
#: served to anyone
OPEN_FILES = [
    "/login",
    "/static/console.css",
    "/static/console.js",
    "/static/charts.js",
    "/static/favicon.svg",
    "/static/vendor/codemirror.bundle.js",
]


def needs(method: str, path: str) -> int:
    """The least role for a route, from this test's table."""
    if any(path == p or path.startswith(p + "/") for p in ADMIN_ONLY):
        return ADMIN
    if method in SAFE or path.startswith("/api/auth/"):
        return VIEWER
    return OPERATOR


def routes(openapi: dict[str, Any]) -> list[tuple[str, str, str, dict[str, str], bool]]:
    """(method, template, concrete path, query, has body) for every operation."""
    out = []
    for template, operations in openapi["paths"].items():
        for method, operation in operations.items():
            path = re.sub(
                r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "no-such-thing"), template
            )
            query = {
                p["name"]: QUERY_VALUES.get(p["name"], "1")
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }
            out.append((method.upper(), template, path, query, "requestBody" in operation))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    tmp = tmp_path_factory.mktemp("access")
    scheme = demo_scheme(tmp / "scheme.yaml")
    with DemoRun(tmp / "data", scheme, demo=False) as demo:
        yield demo


def send(client: httpx.Client, method: str, path: str, query: dict[str, str], body: bool):
    return client.request(method, path, params=query, json={} if body else None)


def test_generated_password_refuses_every_route_but_changing_it(run: DemoRun) -> None:
    """Runs first (file order): the first admin, still on the generated password, is
    refused every guarded route, whatever its role; pages send it to /password."""
    if run.admin_password != run.generated_password:
        pytest.skip("the admin's password was changed by an earlier test")
    openapi = httpx.get(f"{run.api}/openapi.json", timeout=30).json()
    admin = run.session("admin", run.generated_password)
    checked = 0
    for method, template, path, query, body in routes(openapi):
        if (method, template) in PUBLIC | PASSWORD_CHANGE | TOKEN_ONLY | DELIVERY:
            continue
        response = send(admin, method, path, query, body)
        assert (response.status_code, response.json()) == (403, {"detail": FORCED}), path
        checked += 1
    assert checked >= 40
    assert admin.get("/api/auth/me").json()["must_change_password"] is True
    for path, _ in PAGES:
        if path == "/password":
            continue
        page = admin.get(path, follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, f"/password?next={path}")
    run.settle_admin()
    assert admin.get("/api/status").status_code == 200  # the same session, changed


def test_every_route_refused_or_allowed_by_role(run: DemoRun) -> None:
    run.settle_admin()
    token = run.client()
    openapi = httpx.get(f"{run.api}/openapi.json", timeout=30).json()
    table = routes(openapi)
    templates = {(m, t) for m, t, *_ in table}
    # the console's own routes and the reports API are all described
    for expected in [
        ("POST", "/api/auth/login"),
        ("GET", "/api/users"),
        ("DELETE", "/api/users/{name}"),
        ("GET", "/api/audit"),
        ("GET", "/api/dashboard/ingest"),
        ("PUT", "/api/procedures/{name}"),
        ("GET", "/api/reports/{name}/run"),
        ("POST", "/api/fields"),
        ("GET", "/api/licences"),
        ("POST", "/api/licences"),
        ("DELETE", "/api/licences/{licence_id}"),
        ("GET", "/api/licences/admitted"),
        ("DELETE", "/api/licences/admitted"),
        ("GET", "/api/explore/fields"),
        ("GET", "/api/explore/series"),
        ("GET", "/api/explore/top"),
        ("GET", "/api/explore/records"),
    ]:
        assert expected in templates
    assert ("POST", "/api/auth/login") in PUBLIC and len(table) >= 40

    for name, role in [("vera", "viewer"), ("otto", "operator")]:
        added = token.post("/api/users", json={"name": name, "password": "pass-" + name + "-1"})
        assert added.status_code == 200, added.text
        assert token.patch(f"/api/users/{name}", json={"role": role}).status_code == 200
    sessions = {
        VIEWER: run.session("vera", "pass-vera-1"),
        OPERATOR: run.session("otto", "pass-otto-1"),
        ADMIN: run.session("admin", run.admin_password),
    }
    nobody = httpx.Client(base_url=run.api, timeout=30)
    wrong = httpx.Client(base_url=run.api, headers={"authorization": "Bearer wrong"}, timeout=30)
    # an admin session without its CSRF token
    no_csrf = httpx.Client(base_url=run.api, cookies=sessions[ADMIN].cookies, timeout=30)

    seen: list[tuple[str, str, str, int]] = []
    for method, template, path, query, body in table:
        if (method, template) == ("POST", "/api/auth/logout"):
            continue  # checked last: it would end the sessions used here
        need = needs(method, template)
        public = (method, template) in PUBLIC
        for who, client in [("nobody", nobody), ("wrong token", wrong)]:
            status = send(client, method, path, query, body).status_code
            seen.append((method, template, who, status))
            if public:
                assert status not in (401, 403), (method, path)
            else:
                assert status == 401, (who, method, path, status)
        for role, client in sessions.items():
            response = send(client, method, path, query, body)
            seen.append((method, template, ROLE_NAMES[role], response.status_code))
            if (method, template) in TOKEN_ONLY:
                assert response.status_code == 401, (ROLE_NAMES[role], method, path)
            elif (method, template) in DELIVERY:
                assert response.status_code == 403, (ROLE_NAMES[role], method, path)
                assert response.json()["detail"] == DELIVERY_REFUSAL
            elif role < need and not public:
                assert response.status_code == 403, (ROLE_NAMES[role], method, path)
                assert response.json()["detail"] == (
                    f"{client_user(role)} is {ROLE_NAMES[role]}; this needs {ROLE_NAMES[need]}"
                )
            elif (method, template) in ADMIN_BY_CONTENT and role < ADMIN:
                assert response.status_code != 401, (ROLE_NAMES[role], method, path)
                if response.status_code == 403:
                    assert response.json()["detail"].endswith("needs admin"), response.text
            else:
                assert response.status_code not in (401, 403), (role, method, path, response.text)
                assert response.status_code < 500, (role, method, path, response.text)
        allowed = send(token, method, path, query, body).status_code
        assert allowed not in (401, 403) and allowed < 500, (method, path, allowed)
        if method not in SAFE and not public and (method, template) not in TOKEN_ONLY | DELIVERY:
            refused = send(no_csrf, method, path, query, body)
            assert refused.status_code == 403, (method, path)
            assert refused.json()["detail"] == "missing or wrong X-CSRF-Token"

    # reads the viewer may make answer 200 with a real body (not only "not refused")
    for path in [
        "/api/status",
        "/api/fields",
        "/api/procedures",
        "/api/reports",
        "/api/auth/me",
        "/api/explore/fields",
        "/api/explore/series",
        "/api/explore/top",
        "/api/explore/records",
    ]:
        assert sessions[VIEWER].get(path).status_code == 200, path
    assert sessions[VIEWER].get("/api/auth/me").json()["role"] == "viewer"
    # logout is public and ends only the caller's own session
    assert nobody.post("/api/auth/logout").json() == {"ok": True}
    assert sessions[OPERATOR].post("/api/auth/logout").json() == {"ok": True}
    assert sessions[OPERATOR].get("/api/status").status_code == 401
    assert sessions[VIEWER].get("/api/status").status_code == 200
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    statuses = ARTIFACTS / "api-access.tsv"
    statuses.write_text("".join("\t".join(map(str, row)) + "\n" for row in seen))
    print(f"{len(table)} routes, {len(seen)} requests checked; statuses in {statuses}")


def client_user(role: int) -> str:
    return {VIEWER: "vera", OPERATOR: "otto", ADMIN: "admin"}[role]


def test_pages_and_files(run: DemoRun, tmp_path: Path) -> None:
    run.settle_admin()
    token = run.client()
    token.post("/api/users", json={"name": "vicky", "password": "pass-vicky-1"})
    viewer = run.session("vicky", "pass-vicky-1")
    admin = run.session("admin", run.admin_password)
    nobody = httpx.Client(base_url=run.api, timeout=30)
    for path, need in PAGES:
        response = nobody.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/login?next={path}"
        seen = viewer.get(path)
        if need > VIEWER:
            assert seen.status_code == 403, path
            assert 'data-testid="denied"' in seen.text
            assert f"{path} needs the <b>admin</b> role; you are viewer." in seen.text
        else:
            assert seen.status_code == 200, path
        assert admin.get(path).status_code == 200, path
    for path in OPEN_FILES:
        assert nobody.get(path).status_code == 200, path
    assert nobody.get("/static/no-such-file.js").status_code == 404
    # the manager's token counts as admin on pages too
    assert token.get("/users", follow_redirects=False).status_code == 200
