"""A reload of the scheme file (``POST /api/scheme/reload``, SIGHUP) is a scheme version
when its text changed: a real ``netdistill manager`` process (ManagerProcess, uvicorn on
a loopback port) driven over HTTP; the versions are read back with plain SQL."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from netdistill.manager.serve import ManagerProcess

SCHEME = """\
manager:
  api_port: 0
  retention_days: {days}
lookups:
  - {{name: Ports, type: ports}}
"""


@pytest.fixture
def manager(tmp_path: Path):
    path = tmp_path / "scheme.yaml"
    path.write_text(SCHEME.format(days=90))
    process = ManagerProcess(path, tmp_path / "data")
    process.start()
    yield process
    process.stop()


def _versions(process: ManagerProcess) -> list[tuple[int, str, str, str]]:
    rows = process.store.query(
        "SELECT version, user_name, comment, sha256 FROM scheme_versions ORDER BY version"
    ).to_pylist()
    return [(r["version"], r["user_name"], r["comment"], r["sha256"]) for r in rows]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_changed_reload_is_a_version_an_identical_one_is_not(manager: ManagerProcess) -> None:
    path = manager.scheme_path
    first = path.read_text()
    token = httpx.Client(
        base_url=manager.manager.api_url,
        headers={"authorization": f"Bearer {manager.manager.token}"},
        timeout=60,
    )
    started = [(1, "startup", "started with this scheme", _sha(first))]
    assert _versions(manager) == started

    same = token.post("/api/scheme/reload")
    assert same.status_code == 200, same.text
    assert _versions(manager) == started

    second = SCHEME.format(days=30)
    path.write_text(second)
    answer = token.post("/api/scheme/reload")
    assert answer.status_code == 200, answer.text
    by_token = (2, "token", f"reloaded from {path}", _sha(second))
    assert _versions(manager) == [*started, by_token]
    current = token.get("/api/scheme").json()
    assert (current["version"], current["yaml"]) == (2, second)
    assert token.get("/api/scheme/versions/2").json()["yaml"] == second
    assert token.post("/api/scheme/reload").status_code == 200  # unchanged again
    assert _versions(manager) == [*started, by_token]

    # a scheme with errors is refused and stores nothing
    path.write_text("manager: {retention_days: -1}\n")
    assert token.post("/api/scheme/reload").status_code == 400
    assert _versions(manager) == [*started, by_token]

    # an operator's session reloads as that user; a viewer may not reload
    users = manager.manager.console.users
    users.add("olga", "password-olga", "operator")
    users.add("vic", "password-vic", "viewer")
    sessions = {}
    for name in ("olga", "vic"):
        client = httpx.Client(base_url=manager.manager.api_url, timeout=60)
        login = client.post("/api/auth/login", json={"user": name, "password": "password-" + name})
        assert login.status_code == 200, login.text
        client.headers["x-csrf-token"] = login.json()["csrf_token"]
        sessions[name] = client
    third = SCHEME.format(days=60)
    path.write_text(third)
    assert sessions["vic"].post("/api/scheme/reload").status_code == 403
    assert _versions(manager) == [*started, by_token]
    assert sessions["olga"].post("/api/scheme/reload").status_code == 200
    by_olga = (3, "olga", f"reloaded from {path}", _sha(third))
    assert _versions(manager) == [*started, by_token, by_olga]

    # SIGHUP, through the handler serve_manager installs
    fourth = SCHEME.format(days=7)
    path.write_text(fourth)
    previous = signal.signal(signal.SIGHUP, lambda *_: manager.reload())
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 30
        while len(_versions(manager)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGHUP)  # the same text again: nothing new
        time.sleep(0.2)
    finally:
        signal.signal(signal.SIGHUP, previous)
    by_signal = (4, "sighup", f"reloaded from {path}", _sha(fourth))
    assert _versions(manager) == [*started, by_token, by_olga, by_signal]
    assert manager.plan.reloads == 6  # every successful reload, stored or not
    assert manager.plan.scheme.manager.retention_days == 7

    audit = manager.store.query(
        "SELECT user_name FROM audit_log WHERE action = 'POST /api/scheme/reload' ORDER BY id"
    ).to_pylist()
    assert [r["user_name"] for r in audit] == ["token", "token", "token", "olga"]
