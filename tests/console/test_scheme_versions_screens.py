"""The scheme screens: section editing through the API (a section's text replaces that
section only), the pages and their controls, comparing versions; and a change applied
live in a ``netdistill manager`` process (ManagerProcess)."""

from __future__ import annotations

import httpx
from scheme_versions_kit import append, log_line, running_system, wait_for

from netdistill.manager.serve import ManagerProcess


def test_section_editing_and_pages(tmp_path):
    with running_system(tmp_path) as run:
        base = run.base()
        part = run.http.get("/api/scheme/section/stages").json()
        assert part == {
            "version": 1,
            "section": "stages",
            "yaml": 'stages:\n  - {name: big, type: filter, input: web, where: "bytes >= 100"}\n',
            "line": 10,
        }
        # a problem in the section is reported at its line in the whole scheme
        bad = 'stages:\n  - {name: big, type: filter, input: web, where: "bytes >= "}\n'
        answer = run.http.post("/api/scheme/validate", json={"section": "stages", "yaml": bad})
        body = answer.json()
        assert (body["ok"], body["section_line"], len(body["problems"])) == (False, 10, 1)
        assert body["problems"] == [
            f"{run.scheme_path}:11:50: stages.0.where: stage 'big': where 'bytes >= ': "
            "column 10: expected a field name or a value, found the end (found 'bytes >= ')"
        ]
        other = run.http.post(
            "/api/scheme/validate", json={"section": "stages", "yaml": "sources: []\n"}
        )
        assert other.status_code == 400
        assert other.json()["detail"] == [
            "the stages editor holds the 'stages' section only (stages: …)"
        ]

        merged = (
            "stages:\n"
            '  - {name: big, type: filter, input: web, where: "bytes >= 100"}\n'
            "  - {name: quarantine, type: alert, rule: quarantine_growing, threshold: 100, "
            "window_s: 60, actions: [{log: {level: error}}]}\n"
        )
        diff = run.http.post("/api/scheme/diff", json={"section": "stages", "yaml": merged})
        body = diff.json()
        assert body["ok"], body["problems"]
        assert body["summary"] == {
            "stages": {"added": ["quarantine"], "removed": [], "changed": []}
        }
        assert body["yaml"] == base.replace(
            '"bytes >= 100"}\n', '"bytes >= 100"}\n' + merged.splitlines(keepends=True)[2]
        )
        put = run.http.put("/api/scheme", json={"section": "stages", "yaml": merged})
        assert put.status_code == 200, put.text
        assert run.scheme_path.read_text() == body["yaml"]
        compare = run.http.get("/api/scheme/versions/1/diff/2").json()
        assert compare["summary"] == body["summary"]
        assert compare["diff"].startswith("--- version 1\n+++ version 2\n")

        viewer = run.client("vera", "viewer")
        for screen in ("sources", "lookups", "stages", "retention"):
            page = viewer.get(f"/scheme/{screen}")
            assert page.status_code == 200
            for testid in ("scheme-editor-box", "scheme-validate", "scheme-diff", "scheme-apply",
                           "scheme-problems", "scheme-summary", "scheme-entries"):  # fmt: skip
                assert f'data-testid="{testid}"' in page.text, (screen, testid)
        assert 'data-section="manager"' in viewer.get("/scheme/retention").text
        assert 'data-testid="scheme-type-filter"' in viewer.get("/scheme/stages").text
        versions = viewer.get("/scheme")
        assert 'data-testid="scheme-versions"' in versions.text
        assert 'data-testid="nav-scheme"' in versions.text
        assert viewer.get("/scheme/nothing").status_code == 404
        anonymous = httpx.get(run.system.manager.api_url + "/scheme/sources")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/login?next=/scheme/sources"


MANAGER_SCHEME = """\
manager: {{api_port: 0, commit_interval_s: 0.05, stages_interval_s: 0.2}}
sources:
  - {{name: web, type: file, paths: ["{a}"], format: clf, poll_interval_s: 0.05}}
"""


def test_manager_process_applies_a_new_source_live(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text(log_line(1, "alice", 100))
    b.write_text("")
    path = tmp_path / "scheme.yaml"
    text = MANAGER_SCHEME.format(a=a)
    path.write_text(text)
    process = ManagerProcess(path, tmp_path / "data")
    process.start()
    try:
        count = lambda: process.store.query("SELECT count(*) AS n FROM records").to_pylist()[0]["n"]  # noqa: E731
        wait_for(lambda: count() == 1)
        http = httpx.Client(
            base_url=process.manager.api_url,
            headers={"authorization": f"Bearer {process.manager.token}"},
            timeout=60,
        )
        new = text + (
            f'  - {{name: web2, type: file, paths: ["{b}"], format: clf, poll_interval_s: 0.05}}\n'
            'stages:\n  - {name: big, type: filter, input: web2, where: "bytes >= 500"}\n'
        )
        answer = http.put("/api/scheme", json={"yaml": new})
        assert answer.status_code == 200, answer.text
        assert answer.json()["summary"] == {
            "sources": {"added": ["web2"], "removed": [], "changed": []},
            "stages": {"added": ["big"], "removed": [], "changed": []},
        }
        assert process.plan.scheme.sources[1].name == "web2"  # gatherers see it too
        append(b, log_line(2, "bob", 1000), log_line(3, "carol", 20))
        append(a, log_line(4, "dave", 20))
        wait_for(lambda: count() == 3)
        rows = process.store.query(
            "SELECT source, user_name, bytes FROM records ORDER BY start_time"
        ).to_pylist()
        assert rows == [
            {"source": "web", "user_name": "alice", "bytes": 100},
            {"source": "web2", "user_name": "bob", "bytes": 1000},
            {"source": "web", "user_name": "dave", "bytes": 20},
        ]
        assert path.read_text() == new
        http.close()
    finally:
        process.stop()
