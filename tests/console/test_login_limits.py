"""Login rate limits (console/login_limits.py) on the console app over a real DuckDB
store, with a movable clock: exact counts of 401 before 429, the Retry-After seconds of
each lockout, the reset on success, other addresses untouched, the audit entries."""

from __future__ import annotations

from pathlib import Path

import pytest
from console_testkit import CHEAP_HASHER, T0, TOKEN, Clock
from fastapi.testclient import TestClient

from netdistill.console.app import Console, ConsoleConfig
from netdistill.manager.api import create_app
from netdistill.store.duckdb import DuckDBStore

PASSWORD = "right-password-1"


class Limits:
    def __init__(self, tmp_path: Path, **config: float) -> None:
        self.clock = Clock(T0)
        self.store = DuckDBStore(tmp_path / "records.duckdb", clock=self.clock)
        self.console = Console(
            self.store,
            token=TOKEN,
            clock=self.clock,
            announce=lambda _: None,
            config=ConsoleConfig(**config),  # type: ignore[arg-type]
            hasher=CHEAP_HASHER,
        )
        self.console.users.add("alice", PASSWORD, "operator")
        app = create_app(self.store, token=TOKEN, status=dict, access=self.console.access.authorize)
        self.console.mount(app)
        self.app = app

    def client(self, address: str = "192.0.2.1") -> TestClient:
        return TestClient(self.app, client=(address, 40000))

    def login(self, client: TestClient, password: str, user: str = "alice") -> tuple[int, str]:
        answer = client.post("/api/auth/login", json={"user": user, "password": password})
        return answer.status_code, answer.headers.get("retry-after", "")

    def audit(self) -> list[tuple[str, str, int]]:
        rows = self.store.query(
            "SELECT user_name, action, json_extract(detail, '$.status')::INT AS status "
            "FROM audit_log ORDER BY id"
        ).to_pylist()
        return [(r["user_name"], r["action"], r["status"]) for r in rows]


@pytest.fixture
def limits(tmp_path):
    kit = Limits(tmp_path)
    yield kit
    kit.store.close()


def test_five_failures_then_429_with_doubling_lockouts_and_reset_on_success(limits):
    client = limits.client()
    assert [limits.login(client, "wrong")[0] for _ in range(5)] == [401] * 5
    # locked: even the right password is refused, without being checked
    assert limits.login(client, PASSWORD) == (429, "60")
    limits.clock.now += 45
    assert limits.login(client, PASSWORD) == (429, "15")
    limits.clock.now += 15  # the first lockout is over: one more try is heard
    assert limits.login(client, "wrong") == (401, "")
    assert limits.login(client, "wrong") == (429, "120")  # 6 failures: 60 s doubled
    limits.clock.now += 120
    assert limits.login(client, "wrong") == (401, "")
    assert limits.login(client, PASSWORD) == (429, "240")  # 7 failures: doubled again
    limits.clock.now += 240
    assert limits.login(client, PASSWORD) == (200, "")
    # the success cleared the name+address count: five more failures before a lockout
    assert [limits.login(client, "wrong")[0] for _ in range(6)] == [401] * 5 + [429]
    failed = [(u, a, s) for u, a, s in limits.audit() if a == "login_failed"]
    # 5 + 1 + 1 + 5 failures (401), 2 + 1 + 1 + 1 refusals (429)
    assert [s for _, _, s in failed].count(401) == 12
    assert [s for _, _, s in failed].count(429) == 5
    assert {u for u, _, _ in failed} == {"alice"}


def test_another_address_and_another_name_are_not_locked(limits):
    locked = limits.client("192.0.2.1")
    assert [limits.login(locked, "wrong")[0] for _ in range(6)] == [401] * 5 + [429]
    assert limits.login(limits.client("192.0.2.2"), PASSWORD) == (200, "")
    limits.console.users.add("bob", PASSWORD, "viewer")
    assert limits.login(locked, PASSWORD, user="bob") == (200, "")
    assert limits.login(locked, PASSWORD) == (429, "60")


def test_fifty_failures_from_one_address_lock_every_name_there(limits):
    client = limits.client("198.51.100.9")
    codes = [
        limits.login(client, "wrong", user=f"guess{n}")[0] for n in range(10) for _ in range(5)
    ]
    assert codes == [401] * 50
    assert limits.login(client, PASSWORD) == (429, "60")
    assert limits.login(client, "whatever", user="guess99") == (429, "60")
    # a success elsewhere clears nothing here; the other address is free
    assert limits.login(limits.client("198.51.100.10"), PASSWORD) == (200, "")
    limits.clock.now += 60
    assert limits.login(client, PASSWORD) == (200, "")  # the address count stays at 50
    assert limits.login(client, "wrong", user="guess99") == (401, "")
    assert limits.login(client, PASSWORD) == (429, "120")


def test_lockout_capped_and_failures_age_out_of_the_window(tmp_path):
    kit = Limits(tmp_path, login_lockout_s=60, login_lockout_max_s=100, login_window_s=300)
    try:
        client = kit.client()
        assert [kit.login(client, "wrong")[0] for _ in range(5)] == [401] * 5
        kit.clock.now += 60
        assert kit.login(client, "wrong") == (401, "")
        assert kit.login(client, "wrong") == (429, "100")  # 120 capped at 100
        kit.clock.now += 100
        assert kit.login(client, "wrong") == (401, "")
        assert kit.login(client, "wrong") == (429, "100")
        # 300 s after the first five failures only the two later ones are in the window
        kit.clock.now = T0 + 300
        assert [kit.login(client, "wrong")[0] for _ in range(4)] == [401, 401, 401, 429]
    finally:
        kit.store.close()
