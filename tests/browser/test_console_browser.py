"""The console in a real browser: Debian's Chromium, driven by Playwright, against a live
``netdistill run`` of the demo (synthetic routers, NAS, firewall and proxy on free
loopback ports). What a newcomer does, in order:

1. the admin logs in with the password the first start printed, is made to choose a
   new one on the forced change page (the API refuses anything else meanwhile), lands on
   the dashboard asked for and watches it fill: every demo source in the ingest table,
   the traffic chart, the top accounts (only the demo's customers);
2. the admin adds a viewer and an operator on the users screen;
3. the operator builds ``user_name`` of a disabled copy of the demo procedure in three
   steps with Continue/Continue/End — the seed's chain
   ``RADIUS.User(Customers.MatchEither(src_ip, dst_ip).matched_ip, start_time).user_name``
   — saves it, and the procedures API then holds exactly that expression;
4. the viewer downloads reports as CSV: the built-in network activity (its header), and
   a saved report of the router and RADIUS records stored up to a fixed record id, whose
   rows must equal the API's JSON for the same parameters and a plain GROUP BY through
   the query API (live records keep arriving and merges replace the proxy's and the
   firewall's, so only such a bounded report can be compared exactly);
5. the viewer is refused the users screen (403 page) and a field change (403 from the
   API, nothing changed), and is offered no form to change fields.

Screenshots of each step, and of every open page on a failure, go to
``test-artifacts/browser/<test>/`` (the path is printed).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from browser_support import Artifacts, DemoRun, demo_scheme, launch_chromium, require_browser

CHAIN = "RADIUS.User(Customers.MatchEither(src_ip, dst_ip).matched_ip, start_time).user_name"
DEMO_SOURCES = ["demo-firewall", "demo-netflow", "demo-proxy", "demo-radius"]
DEMO_ACCOUNTS = {"acme", "globex", "initech", "umbrella"}  # the demo's Customers table
ROUTER_SERVICES = {"web", "quic", "dns", "mail", "voip", "ssh", "ntp", "other"}
#: the demo procedure, disabled and without user_name: the operator's drawing board
COPY = {
    "name": "routers-draft",
    "trigger": "demo-netflow",
    "description": "a disabled copy of demo-routers to build on",
    "enabled": False,
    "add_fields": {"company": "string", "site": "string"},
    "fields": {
        "service": "Apps.Classify(protocol, src_port, dst_port).category",
        "account_id": "Customers.MatchEither(src_ip, dst_ip).account_id",
    },
}
#: sources whose records are only ever added: the demo's merge stage replaces the
#: proxy's and the firewall's records with merged ones (new ids) as partners arrive
APPEND_ONLY = "source IN ('demo-netflow', 'demo-radius')"
#: a report bounded by a record id, so its rows stay still while the demo runs
STORED_UPTO = {
    "name": "stored_upto",
    "title": "Records stored per source, up to a record id",
    "sql": "SELECT source, count(*) AS records, sum(bytes) AS bytes FROM records "
    f"WHERE ingested_at >= $from AND ingested_at < $to AND record_id <= $upto AND {APPEND_ONLY} "
    "GROUP BY source ORDER BY source",
    "columns": ["source", "records", "bytes"],
}
TIMEOUT_MS = 30_000


def query(run: DemoRun, sql: str) -> list[dict[str, object]]:
    """A query through the running manager's API (it holds the store)."""
    response = run.client().post("/api/query", json={"sql": sql})
    assert response.status_code == 200, response.text
    return list(pa.ipc.open_stream(response.content).read_all().to_pylist())


def minute(t: dt.datetime) -> str:
    """The value of a datetime-local input (UTC, to the minute)."""
    return t.strftime("%Y-%m-%dT%H:%M")


def log_in(page: Any, run: DemoRun, user: str, password: str) -> None:
    page.goto(f"{run.api}/")
    page.wait_for_url("**/login?next=/")
    page.get_by_test_id("login-user").fill(user)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{run.api}/")
    assert page.get_by_test_id("me-user").text_content() == user


def first_admin_login(page: Any, run: DemoRun, artifacts: Artifacts) -> None:
    """The generated password, then the forced change page, then the dashboard."""
    from playwright.sync_api import expect

    page.goto(f"{run.api}/")
    page.wait_for_url("**/login?next=/")
    page.get_by_test_id("login-user").fill("admin")
    page.get_by_test_id("login-password").fill(run.generated_password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(re.compile(r".*/password\?next=(/|%2F)$"))
    expect(page.get_by_test_id("password-forced")).to_be_visible()
    artifacts.shot(page, "forced-password-change")
    # meanwhile the API refuses this session anything else
    refused = page.evaluate(
        "() => nd.api('GET', '/api/status').then(() => null, (e) => [e.status, e.message])"
    )
    assert refused == [
        403,
        "admin must change the generated password first "
        "(POST /api/auth/password, or the console's /password page)",
    ]
    page.goto(f"{run.api}/explore")  # every page leads back to the change
    page.wait_for_url("**/password?next=/explore")
    page.goto(f"{run.api}/password?next=/")
    page.get_by_test_id("password-old").fill(run.generated_password)
    page.get_by_test_id("password-new").fill("admin-chosen-1")
    page.get_by_test_id("password-again").fill("admin-chosen-2")
    page.get_by_test_id("password-submit").click()
    expect(page.get_by_test_id("password-error")).to_have_text("the two new passwords differ")
    page.get_by_test_id("password-again").fill("admin-chosen-1")
    page.get_by_test_id("password-submit").click()
    page.wait_for_url(f"{run.api}/")
    run.admin_password = "admin-chosen-1"
    assert page.get_by_test_id("me-user").text_content() == "admin"
    assert run.session("admin", "admin-chosen-1").get("/api/status").status_code == 200


def test_console_in_chromium(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    artifacts = Artifacts(request.node.name)
    scheme = demo_scheme(tmp_path / "scheme.yaml", extra_procedures=[COPY])
    with DemoRun(tmp_path / "data", scheme) as run, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        pages = []

        def new_page() -> Any:
            context = browser.new_context(
                accept_downloads=True, viewport={"width": 1280, "height": 900}
            )
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            pages.append(page)
            return page

        try:
            with artifacts.on_failure(pages):
                admin = new_page()
                admin.goto(f"{run.api}/")
                artifacts.shot(admin, "login")
                first_admin_login(admin, run, artifacts)
                check_dashboard(admin, artifacts)
                add_users(admin, run, artifacts)

                operator = new_page()
                log_in(operator, run, "otto", "otto-password-1")
                build_chain(operator, run, artifacts)

                viewer = new_page()
                log_in(viewer, run, "vera", "vera-password-1")
                download_reports(viewer, run, artifacts)
                refuse_viewer(viewer, run, artifacts)
        finally:
            browser.close()


def check_dashboard(page: Any, artifacts: Artifacts) -> None:
    # every demo device's records counted in the last minute
    page.wait_for_function(
        """(sources) => {
          const rows = [...document.querySelectorAll('#ingest-table tbody tr')];
          const n = Object.fromEntries(
            rows.map((r) => [r.dataset.source, Number(r.children[2].textContent)]));
          return sources.every((s) => n[s] > 0);
        }""",
        arg=DEMO_SOURCES,
        timeout=60_000,
    )
    page.wait_for_function(
        """() => ['chart-traffic', 'chart-top-accounts'].every((id) => {
          const chart = Chart.getChart(document.getElementById(id));
          return chart && chart.data.datasets.some(
            (d) => d.data.some((v) => (typeof v === 'object' ? v.y : v) > 0));
        })"""
    )
    services = page.evaluate(
        "Chart.getChart(document.getElementById('chart-traffic')).data.datasets.map((d) => d.label)"
    )
    assert len(ROUTER_SERVICES & set(services)) >= 3, services
    accounts = page.evaluate(
        "Chart.getChart(document.getElementById('chart-top-accounts')).data.labels"
    )
    assert accounts and {a.split(" (")[0] for a in accounts} <= DEMO_ACCOUNTS | {"(none)"}
    assert DEMO_ACCOUNTS & {a.split(" (")[0] for a in accounts}, accounts
    expect_text(page, "gatherer-health", "up")
    artifacts.shot(page, "dashboard")


def expect_text(page: Any, test_id: str, text: str) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_test_id(test_id).first).to_have_text(text)


def add_users(page: Any, run: DemoRun, artifacts: Artifacts) -> None:
    from playwright.sync_api import expect

    page.get_by_test_id("nav-users").click()
    page.wait_for_url("**/users")
    for name, role in [("vera", "viewer"), ("otto", "operator")]:
        page.get_by_test_id("user-name").fill(name)
        page.get_by_test_id("user-password").fill(f"{name}-password-1")
        page.get_by_test_id("user-role").select_option(role)
        page.get_by_test_id("user-add-submit").click()
        expect(page.locator(f'#users-table tr[data-user="{name}"]')).to_have_count(1)
    artifacts.shot(page, "users")
    users = {u["name"]: u["role"] for u in run.client().get("/api/users").json()}
    assert users == {"admin": "admin", "otto": "operator", "vera": "viewer"}


def build_chain(page: Any, run: DemoRun, artifacts: Artifacts) -> None:
    from playwright.sync_api import expect

    page.get_by_test_id("nav-procedures").click()
    card = page.get_by_test_id("procedure-routers-draft")
    expect(card.get_by_test_id("procedure-state")).to_have_text("disabled")
    artifacts.shot(page, "procedures")
    page.goto(f"{run.api}/procedures/routers-draft/builder?field=user_name")
    expect(page.get_by_test_id("builder-state")).to_have_text("disabled")
    expect(page.get_by_test_id("builder-field-type")).to_have_text("string")
    expect(page.get_by_test_id("builder-current")).to_have_text("<none>")
    options = page.get_by_test_id("builder-option")

    def step(function: str, args: dict[str, str], chain: str) -> None:
        page.get_by_test_id("builder-continue").click()
        options.and_(page.locator(f'[data-function^="{function}("]')).click()
        for param, value in args.items():
            page.get_by_test_id(f"builder-arg-{param}").select_option(value)
        page.get_by_test_id("builder-apply").click()
        expect(page.get_by_test_id("builder-chain")).to_have_text(chain)

    first = "Customers.MatchEither(src_ip, dst_ip)"
    step("Customers.MatchEither", {"ip": "src_ip", "other_ip": "dst_ip"}, first)
    artifacts.shot(page, "builder-step-1")
    second = f"RADIUS.User({first}.matched_ip, start_time)"
    step("RADIUS.User", {"ip_address": f"{first}.matched_ip", "at": "start_time"}, second)
    artifacts.shot(page, "builder-step-2")
    page.get_by_test_id("builder-end").click()
    options.and_(page.locator(f'[data-expression="{second}.user_name"]')).click()
    expect(page.get_by_test_id("builder-expression")).to_have_text(CHAIN)
    expect(page.get_by_test_id("builder-display")).to_have_text("RADIUS...user_name")
    page.get_by_test_id("builder-save").click()
    expect(page.get_by_test_id("builder-message")).to_have_text(f"Saved: user_name = {CHAIN}")
    expect(page.get_by_test_id("builder-message")).to_be_visible()
    expect(page.get_by_test_id("builder-current")).to_have_text(CHAIN)
    artifacts.shot(page, "builder-saved")
    saved = run.client().get("/api/procedures/routers-draft").json()
    assert saved["fields"] == {**COPY["fields"], "user_name": CHAIN}
    assert saved["enabled"] is False
    demo = run.client().get("/api/procedures/demo-routers").json()
    assert demo["fields"]["user_name"] == CHAIN  # the demo's own, written in the scheme


def download_reports(page: Any, run: DemoRun, artifacts: Artifacts) -> None:
    upto = int(query(run, "SELECT max(record_id) AS n FROM records")[0]["n"])
    report = {
        **STORED_UPTO,
        "params": [
            {"name": "from", "type": "timestamp", "default": "now-24h"},
            {"name": "to", "type": "timestamp", "default": "now"},
            {"name": "upto", "type": "int", "default": upto},
        ],
    }
    saved = run.client().post("/api/reports", json=report)
    assert saved.status_code == 201, saved.text

    page.get_by_test_id("nav-reports").click()
    activity = page.locator('[data-report="network_activity"]')
    with page.expect_download() as download:
        activity.get_by_test_id("report-download-network_activity-csv").click()
    rows = save_csv(download.value, artifacts)
    assert rows[0] == ["hour", "service", "records", "bytes", "packets"]
    assert len(rows) > 1

    now = dt.datetime.now(dt.UTC)
    card = page.locator('[data-report="stored_upto"]')
    card.get_by_test_id("report-from").fill(minute(now - dt.timedelta(hours=1)))
    card.get_by_test_id("report-to").fill(minute(now + dt.timedelta(minutes=2)))
    link = card.get_by_test_id("report-download-stored_upto-csv")
    with page.expect_download() as download:
        link.click()
    rows = save_csv(download.value, artifacts)
    artifacts.shot(page, "reports")
    assert rows[0] == ["source", "records", "bytes"]
    href = link.get_attribute("href")
    assert href is not None and "format=csv" in href
    json_run = page.request.get(run.api + href.replace("format=csv", "format=json")).json()
    assert json_run["params"]["upto"] == upto
    as_text = [["" if v is None else str(v) for v in row] for row in json_run["rows"]]
    assert rows[1:] == as_text
    # the same figures from a plain GROUP BY of the stored records
    truth = query(
        run,
        "SELECT source, count(*) AS records, sum(bytes) AS bytes FROM records "
        f"WHERE record_id <= {upto} AND {APPEND_ONLY} GROUP BY source ORDER BY source",
    )
    assert rows[1:] == [[str(r["source"]), str(r["records"]), str(r["bytes"])] for r in truth]
    assert [r[0] for r in rows[1:]] == ["demo-netflow", "demo-radius"]


def save_csv(download: Any, artifacts: Artifacts) -> list[list[str]]:
    path = artifacts.path(download.suggested_filename)
    download.save_as(path)
    return list(csv.reader(io.StringIO(path.read_text())))


def refuse_viewer(page: Any, run: DemoRun, artifacts: Artifacts) -> None:
    from playwright.sync_api import expect

    assert page.get_by_test_id("nav-users").count() == 0  # not offered
    response = page.goto(f"{run.api}/users")
    assert response is not None and response.status == 403
    expect(page.get_by_test_id("denied")).to_contain_text(
        "/users needs the admin role; you are viewer."
    )
    artifacts.shot(page, "viewer-denied-users")
    page.goto(f"{run.api}/fields")
    expect(page.locator('#fields-table tr[data-field="user_name"]')).to_have_count(1)
    expect(page.get_by_test_id("field-add")).to_be_hidden()  # no form to change fields
    # … and the API refuses the change when the viewer sends it all the same
    refused = page.evaluate(
        """() => nd.api('POST', '/api/fields', {name: 'region', type: 'string'})
              .then(() => null, (error) => ({status: error.status, message: error.message}))"""
    )
    assert refused == {"status": 403, "message": "vera is viewer; this needs operator"}
    artifacts.shot(page, "viewer-fields")
    fields = [f["name"] for f in run.client().get("/api/fields").json()]
    assert "region" not in fields
