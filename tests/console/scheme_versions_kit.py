"""Shared by the scheme-versions tests: a real ``netdistill run`` system (LocalSystem) on
a temporary data directory whose scheme tails two Apache log files, an HTTP client
holding the manager's token, and helpers to append log lines and wait for records."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from netdistill.manager.local import LocalSystem
from netdistill.scheme.load import parse_scheme

BASE = """\
manager:
  api_port: 0
  commit_interval_s: 0.05
  stages_interval_s: 0.2
  retention_days: 90
lookups:
  - {{name: Ports, type: ports}}
sources:
  - {{name: web, type: file, paths: ["{a}"], format: clf, poll_interval_s: 0.05}}
stages:
  - {{name: big, type: filter, input: web, where: "bytes >= 100"}}
procedures:
  - {{name: tag, trigger: web, fields: {{account_id: user_name}}}}
"""


def log_line(second: int, user: str, bytes_: int) -> str:
    size = "-" if bytes_ == 0 else str(bytes_)
    return (
        f'192.0.2.1 - {user} [01/Mar/2024:10:00:{second:02d} +0000] "GET /x HTTP/1.1" 200 {size}\n'
    )


def append(path: Path, *lines: str) -> None:
    with path.open("a") as file:
        file.write("".join(lines))


@dataclass
class Running:
    system: LocalSystem
    scheme_path: Path
    logs: dict[str, Path]
    http: httpx.Client

    def base(self) -> str:
        """The scheme the system started with (version 1)."""
        return BASE.format(a=self.logs["a"])

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return self.system.store.query(sql).to_pylist()

    def count(self) -> int:
        return int(self.rows("SELECT count(*) AS n FROM records")[0]["n"])

    def client(self, user: str, role: str) -> httpx.Client:
        password = "password-" + user
        self.system.manager.console.users.add(user, password, role)
        client = httpx.Client(base_url=self.system.manager.api_url, timeout=60)
        answer = client.post("/api/auth/login", json={"user": user, "password": password})
        assert answer.status_code == 200, answer.text
        client.headers["x-csrf-token"] = answer.json()["csrf_token"]
        return client


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@contextmanager
def running_system(tmp_path: Path) -> Iterator[Running]:
    logs = {"a": tmp_path / "a.log", "b": tmp_path / "b.log"}
    for path in logs.values():
        path.write_text("")
    scheme_path = tmp_path / "scheme.yaml"
    text = BASE.format(a=logs["a"])
    scheme_path.write_text(text)
    system = LocalSystem(parse_scheme(text), tmp_path / "data", demo=False, scheme_path=scheme_path)
    system.start()
    http = httpx.Client(
        base_url=system.manager.api_url,
        headers={"authorization": f"Bearer {system.manager.token}"},
        timeout=60,
    )
    try:
        yield Running(system, scheme_path, logs, http)
    finally:
        http.close()
        system.stop()
