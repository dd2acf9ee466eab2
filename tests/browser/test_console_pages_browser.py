"""Every console page in Chromium at 1366×768 and 1920×1080, as a person sees it, against
one live ``netdistill run`` of the demo; then what the redesign promised, each checked:

* every page: a screenshot per size (kept under ``test-artifacts/browser/<test>/``), no
  horizontal overflow (``scrollWidth <= clientWidth`` of the document) and no serious or
  critical accessibility violation found by axe-core (vendored in ``vendor/``, injected
  into the page: nothing is fetched; run at the first size only, the page being the
  same DOM at both, to keep the test quick);
* the dashboard drills down: a click on the top account's bar opens the explorer filtered
  on it, in the same range; the explorer's top-N, record count and CSV equal what a
  plain GROUP BY through the query API gives for the same filters (bounded by a record
  id, since the demo keeps adding records);
* the builder warns on ``MatchEither(dst_ip, dst_ip)`` and on ``RADIUS.User(…, end_time)``
  and takes the step only once confirmed;
* the procedure graph: no edge passes through a block that is not its end, and no two
  edge labels overlap;
* reports: a preview shows the table and the chart; a saved report the sandbox refuses
  shows the sandbox's message and is not saved; an accepted one previews the same rows
  as the API;
* the scheme editor has line numbers and YAML highlighting, the diff is coloured, and a
  slow Validate shows its busy state.
"""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from browser_support import Artifacts, DemoRun, demo_scheme, launch_chromium, require_browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SIZES = [(1366, 768), (1920, 1080)]
TIMEOUT_MS = 30_000
#: page → what shows it is drawn (a selector that must be present)
PAGES = {
    "/": "#chart-traffic[data-ready]",
    "/explore": "#chart-explore[data-ready]",
    "/reports": "#reports[data-loaded]",
    "/procedures": "svg.graph",
    "/procedures/demo-routers/builder": "svg.graph",
    "/fields": "#fields-table tbody tr",
    "/scheme": "#scheme-versions tbody tr",
    "/scheme/sources": "#scheme-section[data-loaded]",
    "/scheme/lookups": "#scheme-section[data-loaded]",
    "/scheme/stages": "#scheme-section[data-loaded]",
    "/scheme/retention": "#scheme-section[data-loaded]",
    "/invoices": "[data-testid=invoices]",
    "/users": "#users-table tbody tr",
    "/licences": "#licences-table",
    "/audit": "#audit-table tbody tr",
    "/password": "#password-form",
}
COPY = {
    "name": "routers-draft",
    "trigger": "demo-netflow",
    "enabled": False,
    "add_fields": {"company": "string", "site": "string"},
    "fields": {"account_id": "Customers.MatchEither(src_ip, dst_ip).account_id"},
}


def query(run: DemoRun, sql: str) -> list[dict[str, Any]]:
    response = run.client().post("/api/query", json={"sql": sql})
    assert response.status_code == 200, response.text
    return list(pa.ipc.open_stream(response.content).read_all().to_pylist())


def no_overflow(page: Any) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{page.url}: the page is {widths[0]} px wide in {widths[1]}"


def axe_problems(page: Any) -> list[str]:
    """Serious and critical axe-core violations of the page, one line each."""
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
          const result = await axe.run(document, {resultTypes: ['violations']});
          return result.violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => `${v.impact} ${v.id}: ${v.help} — ` +
                 v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', '));
        }"""
    )
    return list(found)


def test_console_pages_in_chromium(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    artifacts = Artifacts(request.node.name)
    scheme = demo_scheme(tmp_path / "scheme.yaml", extra_procedures=[COPY])
    with DemoRun(tmp_path / "data", scheme) as run, sync_playwright() as playwright:
        run.settle_admin()
        token = run.client()
        assert (
            token.post(
                "/api/users", json={"name": "otto", "password": "otto-pass-1", "role": "operator"}
            ).status_code
            == 200
        )
        browser = launch_chromium(playwright)
        pages: list[Any] = []

        def logged_in(user: str, password: str, width: int, height: int) -> Any:
            context = browser.new_context(viewport={"width": width, "height": height})
            login = context.request.post(
                f"{run.api}/api/auth/login", data={"user": user, "password": password}
            )
            assert login.status == 200, login.text()
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            pages.append(page)
            return page

        try:
            with artifacts.on_failure(pages):
                # data first: the dashboard's charts need records
                stored = 0
                for _ in range(120):
                    stored = query(run, "SELECT count(*) AS n FROM records")[0]["n"]
                    if stored > 200:
                        break
                    time.sleep(0.5)
                assert stored > 200
                problems: list[str] = []
                for width, height in SIZES:
                    page = logged_in("admin", run.admin_password, width, height)
                    for path, ready in PAGES.items():
                        page.goto(f"{run.api}{path}")
                        page.wait_for_selector(ready, state="attached")
                        page.wait_for_timeout(300)  # the last figures drawn
                        name = f"{width}x{height}{path.replace('/', '-') or '-'}"
                        artifacts.shot(page, name.rstrip("-") or name)
                        no_overflow(page)
                        if width == SIZES[0][0]:  # the same DOM at both sizes: axe once
                            problems += [f"{width} {path}: {p}" for p in axe_problems(page)]
                    login = browser.new_page(viewport={"width": width, "height": height})
                    pages.append(login)
                    login.goto(f"{run.api}/login")
                    artifacts.shot(login, f"{width}x{height}-login")
                    no_overflow(login)
                    problems += [f"{width} /login: {p}" for p in axe_problems(login)]
                assert problems == [], "\n".join(problems)

                admin = logged_in("admin", run.admin_password, 1366, 768)
                drill_down(admin, run, artifacts)
                operator = logged_in("otto", "otto-pass-1", 1366, 768)
                builder_warnings(operator, run, artifacts)
                graph_geometry(operator, run, artifacts)
                reports(operator, run, artifacts)
                scheme_editor(operator, run, artifacts)
        finally:
            browser.close()


def drill_down(page: Any, run: DemoRun, artifacts: Artifacts) -> None:
    from playwright.sync_api import expect

    page.goto(f"{run.api}/")
    page.wait_for_function(
        """() => { const c = Chart.getChart(document.getElementById('chart-top-accounts'));
                   return c && c.data.labels.length > 0; }"""
    )
    first, x, y = page.evaluate(
        """() => { const c = Chart.getChart(document.getElementById('chart-top-accounts'));
                   const bar = c.getDatasetMeta(0).data[0];
                   return [c.data.labels[0], bar.x - 5, bar.y]; }"""
    )
    page.locator("#chart-top-accounts").click(position={"x": x, "y": y})
    page.wait_for_url(re.compile(r".*/explore\?.*"))
    assert f"filter=account_id%3D{first}" in page.url or f"filter=account_id={first}" in page.url
    expect(page.get_by_test_id("filter-chip")).to_have_attribute(
        "data-filter", f"account_id={first}"
    )
    page.wait_for_selector("#chart-explore[data-ready]", state="attached")
    artifacts.shot(page, "explore-drilled")

    # a view that stays still: the router's records up to a record id, grouped by dst_ip
    upto = int(query(run, "SELECT max(record_id) AS n FROM records")[0]["n"])
    filters = f"account_id={first}&filter=source=demo-netflow&filter=record_id<={upto}"
    page.goto(f"{run.api}/explore?minutes=1440&by=dst_ip&limit=5&filter={filters}")
    expect(page.get_by_test_id("filter-chip")).to_have_count(3)
    truth = query(
        run,
        "SELECT dst_ip AS key, sum(bytes) AS bytes, count(*) AS records FROM records "
        f"WHERE account_id = '{first}' AND source = 'demo-netflow' AND record_id <= {upto} "
        "AND start_time >= now() - INTERVAL 1 DAY GROUP BY 1 ORDER BY bytes DESC, key LIMIT 5",
    )
    rows = page.get_by_test_id("explore-top-row")
    expect(rows).to_have_count(len(truth))
    keys = [rows.nth(i).get_attribute("data-key") for i in range(len(truth))]
    assert keys == [r["key"] for r in truth]
    total = query(
        run,
        "SELECT count(*) AS n FROM records WHERE "
        f"account_id = '{first}' AND source = 'demo-netflow' AND record_id <= {upto} "
        "AND start_time >= now() - INTERVAL 1 DAY",
    )[0]["n"]
    expect(page.get_by_test_id("explore-count")).to_contain_text(f"of {total:,}")
    artifacts.shot(page, "explore-bounded")
    href = page.get_by_test_id("explore-csv").get_attribute("href")
    assert href is not None
    download = page.request.get(run.api + href)
    table = list(csv.reader(io.StringIO(download.text())))
    assert len(table) - 1 == total
    src_index = table[0].index("bytes")
    assert sum(int(r[src_index]) for r in table[1:]) == sum(
        r["bytes"]
        for r in query(
            run,
            "SELECT bytes FROM records WHERE "
            f"account_id = '{first}' AND source = 'demo-netflow' AND record_id <= {upto} "
            "AND start_time >= now() - INTERVAL 1 DAY",
        )
    )
    # a click on a top row adds its value as a filter
    rows.first.click()
    expect(page.get_by_test_id("filter-chip")).to_have_count(4)
    assert f"dst_ip={keys[0]}" in page.url.replace("%3D", "=")


def builder_warnings(page: Any, run: DemoRun, artifacts: Artifacts) -> None:
    from playwright.sync_api import expect

    page.goto(f"{run.api}/procedures/routers-draft/builder?field=user_name")
    expect(page.get_by_test_id("builder-state")).to_have_text("disabled")
    options = page.get_by_test_id("builder-option")
    page.get_by_test_id("builder-continue").click()
    options.and_(page.locator('[data-function^="Customers.MatchEither("]')).click()
    # the inputs start on distinct values
    first = [
        page.get_by_test_id("builder-arg-ip").input_value(),
        page.get_by_test_id("builder-arg-other_ip").input_value(),
    ]
    assert first[0] != first[1], first
    page.get_by_test_id("builder-arg-ip").select_option("dst_ip")
    page.get_by_test_id("builder-arg-other_ip").select_option("dst_ip")
    page.get_by_test_id("builder-apply").click()
    expect(page.get_by_test_id("builder-warning-item")).to_have_text(
        ["dst_ip is given twice (to ip and to other_ip): the step compares a value with itself"]
    )
    expect(page.get_by_test_id("builder-chain")).to_have_text("(the trigger's fields)")
    artifacts.shot(page, "builder-warning-twice")
    page.get_by_test_id("builder-arg-ip").select_option("src_ip")  # changing hides it
    expect(page.get_by_test_id("builder-warning")).to_be_hidden()
    page.get_by_test_id("builder-apply").click()
    first_step = "Customers.MatchEither(src_ip, dst_ip)"
    expect(page.get_by_test_id("builder-chain")).to_have_text(first_step)
    page.get_by_test_id("builder-continue").click()
    options.and_(page.locator('[data-function^="RADIUS.User("]')).click()
    expect(page.get_by_test_id("builder-arg-at")).to_have_value("start_time")
    page.get_by_test_id("builder-arg-at").select_option("end_time")
    page.get_by_test_id("builder-apply").click()
    expect(page.get_by_test_id("builder-warning-item")).to_have_text(
        [
            "at ← end_time: the lookups' documentation recommends start_time (the moment "
            "the flow began; at end_time the session may be over)"
        ]
    )
    expect(page.get_by_test_id("builder-chain")).to_have_text(first_step)
    artifacts.shot(page, "builder-warning-time")
    page.get_by_test_id("builder-confirm").click()
    expect(page.get_by_test_id("builder-chain")).to_have_text(
        f"RADIUS.User({first_step}.matched_ip, end_time)"
    )
    # nothing was saved on the way
    saved = run.client().get("/api/procedures/routers-draft").json()
    assert "user_name" not in saved["fields"]


def graph_geometry(page: Any, run: DemoRun, artifacts: Artifacts) -> None:
    page.goto(f"{run.api}/procedures/demo-routers/builder")
    page.wait_for_selector("svg.graph path.edge")
    found = page.evaluate(
        """() => {
          const svg = document.querySelector('svg.graph');
          const boxes = [...svg.querySelectorAll('g.node')].map((g) => {
            const r = g.querySelector('rect');
            return {id: g.dataset.node, x: +r.getAttribute('x'), y: +r.getAttribute('y'),
                    w: +r.getAttribute('width'), h: +r.getAttribute('height')};
          });
          const through = [];
          for (const path of svg.querySelectorAll('path.edge')) {
            const length = path.getTotalLength();
            for (let s = 0; s <= length; s += 2) {
              const p = path.getPointAtLength(s);
              for (const b of boxes) {
                if (b.id === path.dataset.from || b.id === path.dataset.to) continue;
                if (p.x > b.x + 1 && p.x < b.x + b.w - 1 && p.y > b.y + 1 && p.y < b.y + b.h - 1)
                  through.push(path.dataset.from + ' → ' + path.dataset.to + ' through ' + b.id);
              }
            }
          }
          const labels = [...svg.querySelectorAll('.edge-label-bg')].map((r) => ({
            x: +r.getAttribute('x'), y: +r.getAttribute('y'),
            w: +r.getAttribute('width'), h: +r.getAttribute('height')}));
          const overlaps = [];
          labels.forEach((a, i) => labels.slice(i + 1).forEach((b) => {
            if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h)
              overlaps.push([a, b]);
          }));
          return {edges: svg.querySelectorAll('path.edge').length, boxes: boxes.length,
                  through: [...new Set(through)], overlaps: overlaps.length};
        }"""
    )
    artifacts.shot(page, "graph")
    assert found["edges"] >= 6 and found["boxes"] >= 7, found
    assert found["through"] == [] and found["overlaps"] == 0, found


def reports(page: Any, run: DemoRun, artifacts: Artifacts) -> None:
    from playwright.sync_api import expect

    page.goto(f"{run.api}/reports")
    card = page.locator('[data-report="network_activity"]')
    card.get_by_test_id("report-preview-network_activity").click()
    expect(card.get_by_test_id("report-preview")).to_be_visible()
    page.wait_for_selector("#chart-report-network_activity[data-ready]", state="attached")
    assert card.locator("[data-testid=report-preview] tbody tr").count() > 0
    artifacts.shot(page, "report-preview")

    page.get_by_test_id("report-new").click()
    page.get_by_test_id("author-name").fill("who_logs_in")
    page.get_by_test_id("author-title").fill("Password hashes")
    page.get_by_test_id("author-sql").fill("SELECT name, password_hash FROM users")
    page.get_by_test_id("author-save").click()
    expect(page.get_by_test_id("author-error")).to_have_text(
        "report who_logs_in: refused (rule: table): 'users' is not readable here "
        "(records, quarantine and the report tables are: see docs/security.md)"
    )
    artifacts.shot(page, "report-refused")
    assert "who_logs_in" not in [r["name"] for r in run.client().get("/api/reports").json()]

    upto = int(query(run, "SELECT max(record_id) AS n FROM records")[0]["n"])
    page.get_by_test_id("author-name").fill("per_source_upto")
    page.get_by_test_id("author-title").fill("Records per source up to a record id")
    page.get_by_test_id("author-sql").fill(
        "SELECT source, count(*) AS records, sum(bytes) AS bytes FROM records "
        "WHERE record_id <= $upto AND source IN ('demo-netflow', 'demo-radius') "
        "GROUP BY source ORDER BY source"
    )
    row = page.locator('#author-params tr[data-name="upto"]')
    row.locator('[data-field="type"]').select_option("int")
    row.locator('[data-field="default"]').fill(str(upto))
    page.get_by_test_id("author-chart").select_option("bar")
    page.get_by_test_id("author-x").fill("source")
    page.get_by_test_id("author-y").fill("records")
    page.get_by_test_id("author-save").click()
    saved = page.locator('[data-report="per_source_upto"]')
    saved.get_by_test_id("report-preview-per_source_upto").click()
    body = saved.locator("[data-testid=report-preview] tbody tr")
    truth = query(
        run,
        "SELECT source, count(*) AS records, sum(bytes) AS bytes FROM records "
        f"WHERE record_id <= {upto} AND source IN ('demo-netflow', 'demo-radius') "
        "GROUP BY source ORDER BY source",
    )
    expect(body).to_have_count(len(truth))
    shown = [body.nth(i).locator("td").all_text_contents() for i in range(len(truth))]
    assert shown == [[r["source"], f"{r['records']:,}", f"{r['bytes']:,}"] for r in truth]
    artifacts.shot(page, "report-saved-preview")


def scheme_editor(page: Any, run: DemoRun, artifacts: Artifacts) -> None:
    from playwright.sync_api import expect

    page.goto(f"{run.api}/scheme/stages")
    page.wait_for_selector("#scheme-section[data-loaded]", state="attached")
    lines = page.evaluate("() => window.ndSchemeEditor.value.split('\\n').length")
    gutter = page.locator(".cm-lineNumbers .cm-gutterElement")
    assert gutter.count() >= min(lines, 10)
    # YAML keys and values highlighted: tokens in spans with their own colours
    keys = page.evaluate(
        """() => [...document.querySelectorAll('.cm-content .cm-line span')]
                 .filter((s) => getComputedStyle(s).color
                                !== getComputedStyle(s.closest('.cm-line')).color)
                 .map((s) => s.textContent)"""
    )
    assert "stages" in keys and "name" in keys and "type" in keys, keys
    # typing works as in any editor
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("# typed\n")
    assert page.evaluate("() => window.ndSchemeEditor.value").count("# typed") == 1
    # a slow Validate shows its busy state, then the answer
    release = []

    def slow(route: Any) -> None:
        release.append(route)

    page.route("**/api/scheme/validate", slow)
    page.get_by_test_id("scheme-validate").click()
    expect(page.get_by_test_id("scheme-validate")).to_have_attribute("aria-busy", "true")
    expect(page.get_by_test_id("scheme-validate")).to_be_disabled()
    artifacts.shot(page, "scheme-busy")
    for _ in range(50):
        if release:
            break
        page.wait_for_timeout(100)
    release[0].continue_()
    page.unroute("**/api/scheme/validate")
    expect(page.get_by_test_id("scheme-status")).to_have_text("valid")
    expect(page.get_by_test_id("scheme-validate")).not_to_have_attribute("aria-busy", "true")
    # a coloured diff
    text = page.evaluate("() => window.ndSchemeEditor.value")
    page.evaluate(
        "(t) => { window.ndSchemeEditor.value = t; }",
        text.replace("account_id is not null", "account_id is not null and bytes > 0"),
    )
    page.get_by_test_id("scheme-diff").click()
    expect(page.locator("#scheme-diff-text span.add")).not_to_have_count(0)
    expect(page.locator("#scheme-diff-text span.del")).not_to_have_count(0)
    backgrounds = page.evaluate(
        """() => ['add', 'del'].map((k) => getComputedStyle(
             document.querySelector('#scheme-diff-text span.' + k)).backgroundColor)"""
    )
    assert backgrounds == ["rgb(230, 246, 234)", "rgb(253, 236, 234)"]
    artifacts.shot(page, "scheme-diff")
    no_overflow(page)
