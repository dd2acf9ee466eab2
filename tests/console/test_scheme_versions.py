"""Scheme versions through the console API on a running ``netdistill run`` system:
validation identical to check-config, diff summaries, live application of sources,
filters and retention, refusals that change nothing, versions and rollback."""

from __future__ import annotations

import os
import subprocess
import sys

from scheme_versions_kit import append, log_line, running_system, wait_for

LINES = [log_line(1, "alice", 1000), log_line(2, "bob", 0), log_line(3, "carol", 250)]


def _with(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def test_validate_answers_check_configs_problems(tmp_path):
    with running_system(tmp_path) as run:
        bad = _with(run.base(), "retention_days: 90", "retention_days: -1\n  colour: red")
        bad = _with(bad, "type: filter", "type: sieve")
        answer = run.http.post("/api/scheme/validate", json={"yaml": bad}).json()
        # check-config, the real command, on the same text at the same path
        good = run.scheme_path.read_text()
        run.scheme_path.write_text(bad)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "netdistill", "check-config", str(run.scheme_path)],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, "COLUMNS": "1000"},
                check=False,
            )
        finally:
            run.scheme_path.write_text(good)
        assert done.returncode == 1
        expected = done.stderr.splitlines()
        assert answer == {"ok": False, "problems": expected}
        path = run.scheme_path
        assert expected == [
            f"{path}:5:19: manager.retention_days: Input should be greater than 0 (found -1)",
            f"{path}:6:3: manager.colour: unknown key (not a setting of this section; check "
            "its spelling) (found 'red')",
            f"{path}:12:23: stages.0.type: unknown stage type 'sieve': expected one of "
            "filter, merge, aggregate, rollup, alert (found 'sieve')",
        ]
        ok = run.http.post("/api/scheme/validate", json={"yaml": run.base()}).json()
        assert ok == {"ok": True, "problems": []}


def test_diff_summary_names_added_removed_and_changed_entries(tmp_path):
    with running_system(tmp_path) as run:
        base = run.base()
        web2 = f'  - {{name: web2, type: file, paths: ["{run.logs["b"]}"], format: clf}}\nstages:\n'
        grown = _with(base, "stages:\n", web2)
        grown = _with(grown, "type: ports}", "type: ports, description: service names}")
        grown = _with(
            grown,
            '"bytes >= 100"}',
            '"bytes >= 500"}\n  - {name: small, type: filter, input: web2, where: "bytes < 10"}',
        )
        answer = run.http.post("/api/scheme/diff", json={"yaml": grown}).json()
        assert answer["summary"] == {
            "sources": {"added": ["web2"], "removed": [], "changed": []},
            "lookups": {"added": [], "removed": [], "changed": ["Ports"]},
            "stages": {"added": ["small"], "removed": [], "changed": ["big"]},
        }
        assert answer["ok"] is True and answer["restart_needed"] == []
        assert answer["version"] == 1
        assert (
            '-  - {name: big, type: filter, input: web, where: "bytes >= 100"}\n' in answer["diff"]
        )
        assert (
            '+  - {name: big, type: filter, input: web, where: "bytes >= 500"}\n' in answer["diff"]
        )

        shrunk = _with(base, "lookups:\n  - {name: Ports, type: ports}\n", "")
        shrunk = _with(
            shrunk,
            'stages:\n  - {name: big, type: filter, input: web, where: "bytes >= 100"}\n',
            "",
        )
        shrunk = _with(shrunk, "poll_interval_s: 0.05", "poll_interval_s: 0.5")
        shrunk = _with(shrunk, "retention_days: 90", "retention_days: 30")
        answer = run.http.post("/api/scheme/diff", json={"yaml": shrunk}).json()
        assert answer["summary"] == {
            "sources": {"added": [], "removed": [], "changed": ["web"]},
            "lookups": {"added": [], "removed": ["Ports"], "changed": []},
            "stages": {"added": [], "removed": ["big"], "changed": []},
            "manager": {"changed": ["retention_days"]},
        }
        assert answer["needs_admin"] is True
        # the diff changed nothing
        assert run.http.get("/api/scheme").json()["version"] == 1


def test_put_applies_sources_filters_and_retention_live_then_rollback(tmp_path):
    with running_system(tmp_path) as run:
        a, b = run.logs["a"], run.logs["b"]
        append(a, *LINES)
        wait_for(lambda: run.count() == 2)  # bob's 0 bytes dropped by `bytes >= 100`
        web = run.system.pipeline.sources[0]
        new = _with(
            run.base(),
            "stages:\n",
            f'  - {{name: web2, type: file, paths: ["{b}"], format: clf, '
            "poll_interval_s: 0.05}\nstages:\n",
        )
        new = _with(new, '"bytes >= 100"', '"bytes >= 500"')
        answer = run.http.put("/api/scheme", json={"yaml": new, "comment": "second log"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["version"], body["previous"]) == (2, 1)
        assert body["summary"] == {
            "sources": {"added": ["web2"], "removed": [], "changed": []},
            "stages": {"added": [], "removed": [], "changed": ["big"]},
        }
        # web kept running (same object), web2 started beside it
        assert [s.name for s in run.system.pipeline.sources] == ["web", "web2"]
        assert run.system.pipeline.sources[0] is web
        append(b, *[log_line(10 + i, f"b{i}", n) for i, n in enumerate([1000, 0, 250])])
        append(a, *[log_line(20 + i, f"a{i}", n) for i, n in enumerate([1000, 0, 250])])
        wait_for(lambda: run.count() == 6)
        rows = run.rows(
            "SELECT source, user_name, bytes, account_id FROM records ORDER BY source, start_time"
        )
        assert rows == [
            {"source": "web", "user_name": "alice", "bytes": 1000, "account_id": "alice"},
            {"source": "web", "user_name": "carol", "bytes": 250, "account_id": "carol"},
            {"source": "web", "user_name": "a0", "bytes": 1000, "account_id": "a0"},
            {"source": "web2", "user_name": "b0", "bytes": 1000, "account_id": None},
            {"source": "web2", "user_name": "b1", "bytes": 0, "account_id": None},
            {"source": "web2", "user_name": "b2", "bytes": 250, "account_id": None},
        ]
        assert run.scheme_path.read_text() == new  # written through

        # retention: the aging job takes it, the status shows it
        third = _with(new, "retention_days: 90", "retention_days: 30")
        answer = run.http.put("/api/scheme", json={"yaml": third})
        assert answer.status_code == 200, answer.text
        assert answer.json()["summary"] == {"manager": {"changed": ["retention_days"]}}
        assert run.system.manager.aging.retention_s == 30 * 86400
        status = run.http.get("/api/status").json()
        assert status["aging"]["retention_days"] == 30
        assert [s.name for s in run.system.pipeline.sources] == ["web", "web2"]

        versions = run.http.get("/api/scheme/versions").json()
        assert [(v["version"], v["user_name"], v["comment"]) for v in versions] == [
            (3, "token", ""),
            (2, "token", "second log"),
            (1, "startup", "started with this scheme"),
        ]
        assert run.http.get("/api/scheme/versions/2").json()["yaml"] == new

        # rollback to version 1: web2 stops, the filter and retention come back
        answer = run.http.post("/api/scheme/rollback/1")
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == 4
        assert [s.name for s in run.system.pipeline.sources] == ["web"]
        assert run.system.manager.aging.retention_s == 90 * 86400
        assert run.scheme_path.read_text() == run.base()
        current = run.http.get("/api/scheme").json()
        assert (current["version"], current["yaml"]) == (4, run.base())
        assert current["scheme"]["manager"]["retention_days"] == 90
        append(a, *[log_line(30 + i, f"r{i}", n) for i, n in enumerate([1000, 0, 250])])
        append(b, log_line(40, "late", 5000))  # no source follows b.log any more
        wait_for(lambda: run.count() == 8)
        kept = run.rows("SELECT user_name FROM records WHERE user_name LIKE 'r%' ORDER BY 1")
        assert kept == [{"user_name": "r0"}, {"user_name": "r2"}]
        assert run.rows("SELECT count(*) AS n FROM records WHERE user_name = 'late'") == [{"n": 0}]
        audit = run.rows(
            "SELECT user_name, action FROM audit_log WHERE action LIKE '%/api/scheme%' ORDER BY id"
        )
        assert audit == [
            {"user_name": "token", "action": "PUT /api/scheme"},
            {"user_name": "token", "action": "PUT /api/scheme"},
            {"user_name": "token", "action": "POST /api/scheme/rollback/1"},
        ]


def test_refused_changes_leave_version_and_system_unchanged(tmp_path):
    with running_system(tmp_path) as run:
        sources = list(run.system.pipeline.sources)
        enhancer = run.system.pipeline.process
        stages = run.system.manager.stages
        base = run.base()
        web2 = f'  - {{name: web2, type: file, paths: ["{run.logs["b"]}"], format: clf}}\nstages:\n'
        # each with a second, acceptable change that must not happen either
        cases = [
            (
                _with(
                    _with(base, "{account_id: user_name}", "{account_id: url}"), "stages:\n", web2
                ),
                409,
                "procedure 'tag' is enabled: disable it before changing fields",
            ),
            (
                _with(_with(base, "api_port: 0", "api_port: 8099"), "stages:\n", web2),
                409,
                "manager.api_port changes only with a restart of the manager",
            ),
            (
                _with(base, "stages:\n", web2 + "  - {name: x, type: filter}\n"),
                400,
                [
                    f"{run.scheme_path}:12:5: stages.0.input: required key is missing",
                    f"{run.scheme_path}:12:5: stages.0.where: required key is missing",
                ],
            ),
            ("sources: [", 400, None),
        ]
        for text, status, detail in cases:
            answer = run.http.put("/api/scheme", json={"yaml": text})
            assert answer.status_code == status, answer.text
            if detail is not None:
                assert answer.json()["detail"] == detail
            assert run.http.get("/api/scheme").json()["version"] == 1
            assert run.system.pipeline.sources == sources
            assert run.system.pipeline.process is enhancer
            assert run.system.manager.stages is stages
            assert run.scheme_path.read_text() == base
        assert len(run.http.get("/api/scheme/versions").json()) == 1
        assert run.rows("SELECT count(*) AS n FROM audit_log WHERE action LIKE '%scheme%'") == [
            {"n": 0}
        ]
        # disabled first, the same procedure change is taken
        disabled = _with(
            base, "{name: tag, trigger: web,", "{name: tag, trigger: web, enabled: false,"
        )
        assert run.http.put("/api/scheme", json={"yaml": disabled}).status_code == 200
        changed = _with(disabled, "{account_id: user_name}", "{account_id: url}")
        answer = run.http.put("/api/scheme", json={"yaml": changed})
        assert answer.status_code == 200, answer.text
        assert answer.json()["summary"] == {
            "procedures": {"added": [], "removed": [], "changed": ["tag"]}
        }
        # the procedures page knows the new definition and enables it on the new scheme
        assert run.http.get("/api/procedures/tag").json()["fields"] == {"account_id": "url"}
        assert run.http.post("/api/procedures/tag/enable").status_code == 200
        assert run.system.scheme.procedures[0].enabled is True
        assert run.system.scheme.procedures[0].fields == {"account_id": "url"}
        assert run.system.pipeline.process is run.system.enhancer


def test_roles_viewer_operator_admin(tmp_path):
    with running_system(tmp_path) as run:
        viewer = run.client("vera", "viewer")
        operator = run.client("otto", "operator")
        admin = run.client("ada", "admin")
        base = run.base()
        stricter = _with(base, '"bytes >= 100"', '"bytes >= 200"')
        retention = _with(base, "retention_days: 90", "retention_days: 7")
        assert viewer.get("/api/scheme").status_code == 200
        assert viewer.post("/api/scheme/validate", json={"yaml": base}).status_code == 403
        assert viewer.put("/api/scheme", json={"yaml": stricter}).status_code == 403
        refused = operator.put("/api/scheme", json={"yaml": retention})
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            "otto is operator; changing the manager section (retention_days) needs admin"
        )
        assert run.system.manager.aging.retention_s == 90 * 86400
        assert operator.put("/api/scheme", json={"yaml": stricter}).status_code == 200
        without_csrf = operator.put(
            "/api/scheme", json={"yaml": base}, headers={"x-csrf-token": ""}
        )
        assert without_csrf.status_code == 403
        both = _with(stricter, "retention_days: 90", "retention_days: 7")
        assert admin.put("/api/scheme", json={"yaml": both, "comment": "a week"}).status_code == 200
        assert run.system.manager.aging.retention_s == 7 * 86400
        versions = admin.get("/api/scheme/versions").json()
        assert [(v["version"], v["user_name"], v["comment"]) for v in versions] == [
            (3, "ada", "a week"),
            (2, "otto", ""),
            (1, "startup", "started with this scheme"),
        ]
        audit = run.rows(
            "SELECT user_name, action, detail FROM audit_log "
            "WHERE action LIKE '%/api/scheme%' ORDER BY id"
        )
        assert [(r["user_name"], r["action"]) for r in audit] == [
            ("otto", "PUT /api/scheme"),
            ("ada", "PUT /api/scheme"),
        ]
        assert '"comment": "a week"' in audit[1]["detail"]
