"""Secrets kept secret (issue 11, item 2), on a real ``netdistill run`` system.

A scheme holds distinct, recognisable secrets — inline, ``{file:}`` and ``{env:}`` —
in every kind of secret setting (RADIUS clients, the LDAP bind password, webhook and
export headers, a CoA secret, the demo NAS secret, a gatherer token). With three
versions stored, every GET route of ``app.openapi()`` (path parameters filled with real
names) and every console page is fetched as viewer, operator, admin session and the
manager's token: no inline secret reaches a viewer or an operator, no file or variable
value reaches anyone, and an admin sees the inline values where docs/security.md says.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netdistill.console.scheme_pages import SCREENS
from netdistill.manager.local import LocalSystem
from netdistill.scheme.load import load_scheme
from netdistill.scheme.versions import SECTIONS

ENV_NAME = "ND_TEST_BRAS_SECRET"
#: secrets written inline in the scheme (an admin may see these in the scheme views)
INLINE = {
    "radius client": "PLANT-radius-inline-7f3a",
    "ldap bind": "PLANT-ldap-bind-5c1e",
    "webhook token": "PLANT-webhook-token-91d2",
    "coa secret": "PLANT-coa-secret-44b0",
    "export header": "PLANT-export-header-0e6d",
    "demo nas": "PLANT-demo-nas-2b7c",
    "gatherer token": "PLANT-gatherer-token-6a1f",
    "snmp community": "PLANT-snmp-community-3f9d",
    "ldap bind v2": "PLANT-ldap-bind-v2-83aa",
}
#: values read from a file or the environment: nobody ever receives them
REFERENCED = {"radius file": "PLANT-radius-file-c0de", "radius env": "PLANT-radius-env-e11e"}

SCHEME = """\
manager:
  api_port: 0
  commit_interval_s: 0.05
  stages_interval_s: 0.2
sources:
  - name: nf
    type: netflow
    listen: ["127.0.0.1:0"]
  - name: bras
    type: radius
    listen: ["127.0.0.1:0"]
    clients:
      127.0.0.1: {secret: "PLANT-radius-inline-7f3a"}   # inline, quoted
      192.0.2.0/24: {secret: {file: bras.secret}}
      198.51.100.9:
        secret: {env: ND_TEST_BRAS_SECRET}
lookups:
  - name: LDAP
    type: ldap
    url: ldap://127.0.0.1:9
    bind_dn: cn=netdistill,dc=example,dc=org
    password: PLANT-ldap-bind-5c1e
    base_dn: dc=example,dc=org
    functions:
      - {name: Person, inputs: {uid: string}, filter: "(uid={uid})", outputs: {cn: string}}
  - name: SNMP
    type: snmp
    community: PLANT-snmp-community-3f9d
    agents: {192.0.2.1: {community: {file: bras.secret}}}
stages:
  - name: over-quota
    type: alert
    rule: usage_over_balance
    measure: sum(bytes)
    per: account_id
    balance: quota_bytes
    period: month
    actions:
      - webhook:
          url: "http://127.0.0.1:9/hook"
          headers: {Authorization: "Bearer PLANT-webhook-token-91d2"}
      - radius: {request: disconnect, secret: PLANT-coa-secret-44b0}
  - name: monthly
    type: rollup
    period: month
    account: account_id
    export:
      directory: exports
      url: "http://127.0.0.1:9/billing"
      headers:
        authorization: PLANT-export-header-0e6d
procedures:
  - {name: tag, trigger: bras, fields: {account_id: user_name}}
demo:
  radius_secret: PLANT-demo-nas-2b7c
gatherers:
  - name: pop1
    token: PLANT-gatherer-token-6a1f
"""


class Running:
    def __init__(self, system: LocalSystem, path: Path) -> None:
        self.system = system
        self.path = path
        self.url = system.manager.api_url
        self.token = httpx.Client(
            base_url=self.url,
            headers={"authorization": f"Bearer {system.manager.token}"},
            timeout=60,
        )

    def session(self, user: str, role: str) -> httpx.Client:
        password = "password-" + user
        self.system.manager.console.users.add(user, password, role)
        client = httpx.Client(base_url=self.url, timeout=60)
        answer = client.post("/api/auth/login", json={"user": user, "password": password})
        assert answer.status_code == 200, answer.text
        client.headers["x-csrf-token"] = answer.json()["csrf_token"]
        return client


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.setenv(ENV_NAME, REFERENCED["radius env"])
    (tmp_path / "bras.secret").write_text(REFERENCED["radius file"] + "\n")
    path = tmp_path / "scheme.yaml"
    path.write_text(SCHEME)
    system = LocalSystem(load_scheme(path), tmp_path / "data", demo=False, scheme_path=path)
    system.start()
    running = Running(system, path)
    try:
        yield running
    finally:
        running.token.close()
        system.stop()


def _make_versions(run: Running) -> None:
    """Version 2 (admin): a new LDAP password; version 3 (operator, section editor): a
    changed bind DN with every secret sent back as it was shown, ``***``."""
    text = run.path.read_text()
    changed = text.replace(INLINE["ldap bind"], INLINE["ldap bind v2"])
    answer = run.token.put("/api/scheme", json={"yaml": changed, "comment": "rotate"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 2
    operator = run.session("olga", "operator")
    shown = operator.get("/api/scheme/section/lookups").json()["yaml"]
    assert 'password: "***"' in shown
    edited = shown.replace("cn=netdistill,", "cn=nd,")
    answer = operator.put(
        "/api/scheme", json={"section": "lookups", "yaml": edited, "comment": "bind dn"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 3
    operator.close()


def _urls(run: Running, path: str, operation: dict[str, Any]) -> list[str]:
    """``path`` with its parameters filled with real names of this system."""
    versions = [v["version"] for v in run.token.get("/api/scheme/versions").json()]
    reports = [r["name"] for r in run.token.get("/api/reports").json()]
    candidates: dict[str, list[str]] = {
        "version": [str(v) for v in versions],
        "first/second": [f"{a}/diff/{b}" for a, b in itertools.permutations(versions, 2)],
        "period": ["2024-01", "2099-12"],
        "start": ["2024-01-01T00:00:00Z"],
    }
    if path.startswith("/api/scheme/section/"):
        candidates["name"] = list(SECTIONS)
    elif path.startswith("/api/reports/"):
        candidates["name"] = reports
    elif path.startswith("/api/procedures/"):
        candidates["name"] = ["tag"]
    required_query = {
        p["name"]: {"origin": "pop1", "field": "account_id"}[p["name"]]
        for p in operation.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    }
    if "{first}/diff/{second}" in path:
        urls = [path.replace("{first}/diff/{second}", x) for x in candidates["first/second"]]
    else:
        names = re.findall(r"\{(\w+)\}", path)
        for name in names:
            assert name in candidates, f"{path}: teach this test a value for {{{name}}}"
        urls = [path]
        for name in names:
            urls = [u.replace(f"{{{name}}}", v) for u in urls for v in candidates[name]]
    query = "&".join(f"{k}={v}" for k, v in required_query.items())
    extra = []
    if path.endswith("/run"):  # every output format of every report
        extra = ["format=json", "format=csv", "format=html"]
    out = []
    for url in urls:
        for more in extra or [""]:
            joined = "&".join(x for x in (query, more) if x)
            out.append(f"{url}?{joined}" if joined else url)
    return out


def _pages() -> list[str]:
    return [
        "/",
        "/login",
        "/procedures",
        "/procedures/tag/builder",
        "/fields",
        "/reports",
        "/users",
        "/audit",
        "/docs",
        "/scheme",
        *(f"/scheme/{screen}" for screen in SCREENS),
    ]


def _fetch_all(run: Running, client: httpx.Client) -> dict[str, tuple[int, str]]:
    openapi = run.token.get("/openapi.json")
    assert openapi.status_code == 200
    answers = {"/openapi.json": (openapi.status_code, openapi.text)}
    for path, operations in openapi.json()["paths"].items():
        if "get" not in operations:
            continue
        for url in _urls(run, path, operations["get"]):
            response = client.get(url)
            answers[url] = (response.status_code, response.text)
    for url in [*_pages(), "/api/plan?gatherer=pop1"]:
        response = client.get(url)
        answers[url] = (response.status_code, response.text)
    return answers


def _leaks(answers: dict[str, tuple[int, str]], values: dict[str, str]) -> list[str]:
    return [
        f"{url} ({status}) holds the {what} secret"
        for url, (status, body) in answers.items()
        for what, value in values.items()
        if value in body
    ]


def test_no_route_or_page_gives_a_secret_below_admin(run: Running) -> None:
    _make_versions(run)
    viewer, operator = run.session("vera", "viewer"), run.session("otto", "operator")
    admin = run.session("ada", "admin")
    everything = {**INLINE, **REFERENCED}
    seen_ok = {}
    for role, client in (("viewer", viewer), ("operator", operator)):
        answers = _fetch_all(run, client)
        assert _leaks(answers, everything) == [], role
        seen_ok[role] = {url for url, (status, _) in answers.items() if status == 200}
    # the routes really answered (a test that only saw 403s would prove nothing)
    for role in ("viewer", "operator"):
        for url in ("/api/scheme", "/api/scheme/versions/1", "/api/scheme/versions/1/diff/2",
                    "/api/scheme/section/sources", "/api/scheme/section/stages",
                    "/api/stages", "/api/lookups", "/scheme/sources", "/"):  # fmt: skip
            assert url in seen_ok[role], (role, url)

    for client in (admin, run.token):
        answers = _fetch_all(run, client)
        # what a file or a variable holds is never given, not even to admins
        assert _leaks(answers, REFERENCED) == []
        status, body = answers["/api/scheme"]
        assert status == 200
        for what in ("radius client", "coa secret", "export header", "demo nas", "snmp community"):
            assert INLINE[what] in body, what
        assert INLINE["ldap bind v2"] in body and INLINE["ldap bind"] not in body
        # the references, as written, in the text and in the parsed scheme
        assert "{secret: {file: bras.secret}}" in body
        assert '"secret":{"file":"bras.secret"}' in body.replace(" ", "")
        assert '"secret":{"env":"ND_TEST_BRAS_SECRET"}' in body.replace(" ", "")
        assert INLINE["ldap bind"] in answers["/api/scheme/versions/1"][1]
        assert INLINE["ldap bind v2"] in answers["/api/scheme/versions/1/diff/2"][1]
        assert INLINE["webhook token"] in answers["/api/scheme/section/stages"][1]
        # elsewhere (stage and lookup listings …) secrets are *** even for admins
        inline_leaks = _leaks(answers, INLINE)
        scheme_views = ("/api/scheme", "/api/scheme/versions/", "/api/scheme/section/")
        assert [x for x in inline_leaks if not x.startswith(scheme_views)] == []


def test_redacted_texts_keep_their_lines_and_references(run: Running) -> None:
    viewer = run.session("vera", "viewer")
    real = run.path.read_text()
    shown = viewer.get("/api/scheme").json()
    assert shown["yaml"].count("\n") == real.count("\n")
    assert '127.0.0.1: {secret: "***"}   # inline, quoted' in shown["yaml"]
    assert "192.0.2.0/24: {secret: {file: bras.secret}}" in shown["yaml"]
    assert "secret: {env: ND_TEST_BRAS_SECRET}" in shown["yaml"]
    assert 'headers: {Authorization: "***"}' in shown["yaml"]
    assert 'authorization: "***"' in shown["yaml"]
    clients = shown["scheme"]["sources"][1]["clients"]
    assert clients == {
        "127.0.0.1": {"secret": "***"},
        "192.0.2.0/24": {"secret": {"file": "bras.secret"}},
        "198.51.100.9": {"secret": {"env": ENV_NAME}},
    }
    assert shown["scheme"]["lookups"][0]["password"] == "***"
    assert shown["scheme"]["gatherers"][0]["token"] == "***"
    # the real text stays the operator's, in the versions table and in the file
    stored = run.system.store.query("SELECT yaml FROM scheme_versions").to_pylist()
    assert stored == [{"yaml": real}]


def _no_plant(text: str) -> bool:
    return "PLANT-" not in text


def test_saving_stars_back_keeps_every_secret_and_the_audit_log_holds_none(run: Running) -> None:
    operator = run.session("otto", "operator")
    real = run.path.read_text()
    section = operator.get("/api/scheme/section/sources").json()
    assert _no_plant(section["yaml"]) and section["yaml"].count('"***"') == 1
    new_client = "PLANT-new-client-9d41"
    edited = section["yaml"].replace(
        "      192.0.2.0/24:", f'      203.0.113.1: {{secret: "{new_client}"}}\n      192.0.2.0/24:'
    )
    answer = operator.put("/api/scheme", json={"section": "sources", "yaml": edited})
    assert answer.status_code == 200, answer.text
    assert _no_plant(answer.text)  # its diff and whole text are masked too
    assert answer.json()["summary"] == {
        "sources": {"added": [], "removed": [], "changed": ["bras"]}
    }
    expected = real.replace(
        "      192.0.2.0/24:", f'      203.0.113.1: {{secret: "{new_client}"}}\n      192.0.2.0/24:'
    )
    # the stars took the old value, as written (quotes and comment kept)
    assert run.path.read_text() == expected
    latest = run.system.store.query(
        "SELECT yaml FROM scheme_versions ORDER BY version DESC LIMIT 1"
    ).to_pylist()
    assert latest == [{"yaml": expected}]
    clients = run.system.scheme.sources[1].clients
    assert clients["127.0.0.1"].secret.reveal() == INLINE["radius client"]
    assert clients["203.0.113.1"].secret.reveal() == new_client
    assert clients["192.0.2.0/24"].secret.reveal() == REFERENCED["radius file"]

    # the whole scheme as a viewer sees it, edited and saved by an operator
    shown = operator.get("/api/scheme").json()["yaml"]
    assert _no_plant(shown)
    answer = operator.put(
        "/api/scheme",
        json={"yaml": shown.replace("period: month\n    actions", "period: day\n    actions")},
    )
    assert answer.status_code == 200, answer.text
    assert run.path.read_text() == expected.replace(
        "period: month\n    actions", "period: day\n    actions"
    )

    # "***" where the running scheme has no secret is refused, at its place
    stray = section["yaml"].replace(
        "      192.0.2.0/24:", '      203.0.113.2: {secret: "***"}\n      192.0.2.0/24:'
    )
    refused = operator.put("/api/scheme", json={"section": "sources", "yaml": stray})
    assert refused.status_code == 400
    line = expected.splitlines().index('      203.0.113.1: {secret: "PLANT-new-client-9d41"}') + 1
    assert refused.json()["detail"] == [
        f"{run.path}:{line}:29: sources.bras.clients.203.0.113.2.secret: '***' stands for the "
        "secret at this place in the running scheme, and there is none: write the secret "
        "itself, {file: …} or {env: …}"
    ]
    assert _no_plant(refused.text)
    checked = operator.post("/api/scheme/validate", json={"section": "sources", "yaml": stray})
    assert checked.json()["ok"] is False and _no_plant(checked.text)

    # nothing secret went into the audit log, which logged the saves
    rows = run.system.store.query("SELECT user_name, action, detail FROM audit_log").to_pylist()
    saves = [r for r in rows if r["action"] == "PUT /api/scheme" and r["user_name"] == "otto"]
    assert len(saves) == 2
    assert '\\"***\\"' in saves[0]["detail"]  # the section text, masked in place
    assert [r for r in rows if not _no_plant(r["detail"])] == []
