"""The console's scheme screens in a real browser (Debian's Chromium, Playwright) against
a live ``netdistill run`` of the demo:

1. an operator opens the Stages screen and puts a mistake in the editor (the demo's
   ``billed-flows`` filter asking for a field that does not exist); Validate lists the
   problem exactly as ``netdistill check-config`` prints it for the same whole scheme
   (run by the test on a file holding that text), with the editor's line;
2. a valid change — ``billed-flows`` gets a new ``where`` and an aggregate stage
   ``per-service`` is added —: Preview diff names exactly those two stages; Apply
   reports version 2, ``GET /api/scheme`` holds it, the pipeline's status shows the
   filter's new ``where`` and ``GET /api/stages`` the new stage, running;
3. on the Versions page the operator compares version 1 with 2 (the same summary) and
   rolls back to 1: version 3 holds version 1's text, the old ``where`` is live again
   and the added stage is gone;
4. a viewer sees the Stages screen and its entries but no Apply button; pressing it all
   the same is refused (403 shown) and the version stays 3.

Screenshots of each step go to ``test-artifacts/browser/<test>/`` (the path is printed).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import peers
import pytest
from browser_support import Artifacts, DemoRun, demo_scheme, launch_chromium, require_browser

TIMEOUT_MS = 30_000
OLD_WHERE = "where: account_id is not null"
BAD_WHERE = "where: acount_id is not null"  # a field that does not exist
NEW_WHERE = "account_id is not null and bytes >= 100"
NEW_STAGE = "- name: per-service\n  type: aggregate\n  input: demo-routers\n  by:\n  - service\n"


def check_config(path: Path, text: str) -> list[str]:
    """``netdistill check-config`` on ``text`` (written to ``path``): its problem lines
    with the file name taken off (``line:col: message``)."""
    path.write_text(text)
    done = subprocess.run(
        [*peers.netdistill_command(), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    prefix = f"{path}:"
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert lines and all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


def summary_rows(page: Any) -> list[list[str]]:
    return list(
        page.eval_on_selector_all(
            "#scheme-summary tbody tr",
            "(rows) => rows.map((r) => [...r.children].map((c) => c.textContent))",
        )
    )


def set_editor(page: Any, text: str) -> None:
    """Replace the CodeMirror editor's text (as a paste would)."""
    page.wait_for_function("() => document.getElementById('scheme-section').dataset.loaded")
    page.evaluate("(text) => { window.ndSchemeEditor.value = text; }", text)


def expect_editor(page: Any, text: str) -> None:
    page.wait_for_function(
        "(text) => window.ndSchemeEditor && window.ndSchemeEditor.value === text",
        arg=text,
        timeout=TIMEOUT_MS,
    )


def filter_where(run: DemoRun, name: str) -> str:
    filters = run.client().get("/api/status").json()["filters"]
    return str(next(f["where"] for f in filters if f["name"] == name))


def stage_names(run: DemoRun) -> list[str]:
    return [s["name"] for s in run.client().get("/api/stages").json()["stages"]]


def test_scheme_screens_in_chromium(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    artifacts = Artifacts(request.node.name)
    scheme = demo_scheme(tmp_path / "scheme.yaml")
    with DemoRun(tmp_path / "data", scheme) as run, sync_playwright() as playwright:
        token = run.client()
        for name, role in [("vera", "viewer"), ("otto", "operator")]:
            added = token.post("/api/users", json={"name": name, "password": f"{name}-pass-1"})
            assert added.status_code == 200, added.text
            assert token.patch(f"/api/users/{name}", json={"role": role}).status_code == 200
        start = token.get("/api/scheme").json()
        assert start["version"] == 1
        section = token.get("/api/scheme/section/stages").json()
        stages_text, section_line = section["yaml"], section["line"]
        assert start["yaml"].count(stages_text) == 1 and stages_text.count(OLD_WHERE) == 1
        old_stages = stage_names(run)
        assert filter_where(run, "billed-flows") == "account_id is not null"

        browser = launch_chromium(playwright)
        pages: list[Any] = []

        def log_in(user: str) -> Any:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            pages.append(page)
            login = context.request.post(
                f"{run.api}/api/auth/login", data={"user": user, "password": f"{user}-pass-1"}
            )
            assert login.status == 200, login.text()
            return page

        try:
            with artifacts.on_failure(pages):
                operator = log_in("otto")
                operator.goto(f"{run.api}/scheme/stages")
                expect_editor(operator, stages_text)
                expect(operator.get_by_test_id("scheme-version")).to_have_text("1")
                entries = operator.locator("#scheme-entries tbody tr")
                expect(entries).to_have_count(len(old_stages) + 1)  # + the filter
                artifacts.shot(operator, "stages-screen")

                # 1. an invalid change: the problem as check-config prints it
                bad = stages_text.replace(OLD_WHERE, BAD_WHERE)
                expected = check_config(
                    tmp_path / "candidate.yaml", start["yaml"].replace(stages_text, bad)
                )
                assert len(expected) == 1, expected
                line = int(expected[0].split(":")[0])
                editor_line = line - section_line + 1
                assert BAD_WHERE in bad.splitlines()[editor_line - 1]
                set_editor(operator, bad)
                operator.get_by_test_id("scheme-validate").click()
                expect(operator.get_by_test_id("scheme-status")).to_have_text("invalid")
                expect(operator.get_by_test_id("scheme-problem")).to_have_text(
                    [f"{scheme}:{expected[0]} (editor line {editor_line})"]
                )
                artifacts.shot(operator, "validate-invalid")

                # 2. a valid change: preview, apply, live
                good = stages_text.replace(OLD_WHERE, f"where: {NEW_WHERE}") + NEW_STAGE
                set_editor(operator, good)
                operator.get_by_test_id("scheme-validate").click()
                expect(operator.get_by_test_id("scheme-status")).to_have_text("valid")
                expect(operator.get_by_test_id("scheme-problem")).to_have_count(0)
                operator.get_by_test_id("scheme-diff").click()
                expect(operator.get_by_test_id("scheme-status")).to_have_text(
                    "diff against version 1"
                )
                expect(operator.get_by_test_id("scheme-summary-table")).to_be_visible()
                assert summary_rows(operator) == [["stages", "per-service", "", "billed-flows"]]
                diff = operator.get_by_test_id("scheme-diff-text").text_content() or ""
                assert f"-  {OLD_WHERE}" in diff and f"+  where: {NEW_WHERE}" in diff
                assert "+- name: per-service" in diff
                artifacts.shot(operator, "preview-diff")
                operator.get_by_test_id("scheme-comment").fill("where on bytes, per-service")
                operator.get_by_test_id("scheme-apply").click()
                expect(operator.get_by_test_id("scheme-status")).to_have_text("applied: version 2")
                expect(operator.get_by_test_id("scheme-version")).to_have_text("2")
                expect_editor(operator, good)
                assert summary_rows(operator) == [["stages", "per-service", "", "billed-flows"]]
                artifacts.shot(operator, "applied")
                now = token.get("/api/scheme").json()
                assert now["version"] == 2
                assert now["yaml"] == start["yaml"].replace(stages_text, good)
                assert filter_where(run, "billed-flows") == NEW_WHERE
                assert stage_names(run) == [*old_stages, "per-service"]

                # 3. versions: compare 1 → 2, roll back to 1
                operator.goto(f"{run.api}/scheme")
                rows = operator.locator("#scheme-versions tbody tr")
                expect(rows).to_have_count(2)
                expect(operator.get_by_test_id("scheme-from-1")).to_be_checked()
                expect(operator.get_by_test_id("scheme-to-2")).to_be_checked()
                operator.get_by_test_id("scheme-compare").click()
                expect(operator.get_by_test_id("scheme-summary-table")).to_be_visible()
                assert summary_rows(operator) == [["stages", "per-service", "", "billed-flows"]]
                artifacts.shot(operator, "compare-1-2")
                operator.once("dialog", lambda dialog: dialog.accept())
                operator.get_by_test_id("scheme-rollback-1").click()
                expect(rows).to_have_count(3)
                expect(rows.first).to_have_attribute("data-version", "3")
                expect(rows.first.locator("td").nth(3)).to_have_text("rollback to version 1")
                assert summary_rows(operator) == [["stages", "", "per-service", "billed-flows"]]
                artifacts.shot(operator, "rolled-back")
                back = token.get("/api/scheme").json()
                assert back["version"] == 3 and back["yaml"] == start["yaml"]
                assert len(token.get("/api/scheme/versions").json()) == 3
                assert filter_where(run, "billed-flows") == "account_id is not null"
                assert stage_names(run) == old_stages

                # 4. a viewer: sees the screen, no Apply; pressed anyway → 403
                viewer = log_in("vera")
                viewer.goto(f"{run.api}/scheme/stages")
                expect(viewer.get_by_test_id("scheme-version")).to_have_text("3")
                expect_editor(viewer, stages_text)
                expect(viewer.locator("#scheme-entries tbody tr")).to_have_count(
                    len(old_stages) + 1
                )
                apply = viewer.get_by_test_id("scheme-apply")
                expect(apply).to_be_hidden()
                set_editor(viewer, good)
                apply.dispatch_event("click")
                expect(viewer.get_by_test_id("scheme-status")).to_have_text("refused (403)")
                expect(viewer.get_by_test_id("scheme-problem")).to_have_text(
                    ["vera is viewer; this needs operator"]
                )
                artifacts.shot(viewer, "viewer-refused")
                assert token.get("/api/scheme").json()["version"] == 3
                assert filter_where(run, "billed-flows") == "account_id is not null"
        finally:
            browser.close()
