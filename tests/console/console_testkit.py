"""Shared by the console tests: a manager app over a real DuckDB store with the console
mounted, the procedures router behind the same guard, a movable clock, and logged-in
clients (FastAPI TestClient, in process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from netdistill.console.app import Console
from netdistill.enhance.api import ProcedureBook, procedures_router
from netdistill.manager.api import create_app
from netdistill.scheme.load import parse_scheme
from netdistill.store.duckdb import DuckDBStore

TOKEN = "test-manager-token"
#: argon2id still, with the smallest cost, so a test can log in many times quickly
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
T0 = 1_800_000_000.0

SCHEME = """\
sources:
  - name: nf
    type: netflow
lookups:
  - {{name: Ports, type: ports}}
  - name: Cust
    type: prefix
    csv: {csv}
    values: {{account_id: string, site: string}}
procedures:
  - name: routers
    trigger: nf
    add_fields: {{site: string}}
    fields:
      service: Ports.Service(protocol, dst_port).service
      account_id: Cust.Match(src_ip).account_id
      site: Cust.Match(src_ip).site
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Kit:
    store: DuckDBStore
    console: Console
    client: TestClient
    clock: Clock
    admin_password: str
    announced: list[str] = field(default_factory=list)

    def anonymous(self) -> TestClient:
        return TestClient(self.client.app)

    def bearer(self) -> TestClient:
        return TestClient(self.client.app, headers={"authorization": f"Bearer {TOKEN}"})

    def login(self, user: str, password: str) -> tuple[TestClient, str]:
        """A client holding ``user``'s session cookie, and the session's CSRF token."""
        client = TestClient(self.client.app)
        response = client.post("/api/auth/login", json={"user": user, "password": password})
        assert response.status_code == 200, response.text
        return client, response.json()["csrf_token"]

    def first_admin(self, password: str = "admin-chosen-1") -> TestClient:
        """The first admin logged in, having changed the generated password (as the
        console makes them do first) to ``password``."""
        client, csrf = self.login("admin", self.admin_password)
        client.headers["x-csrf-token"] = csrf
        changed = client.post(
            "/api/auth/password",
            json={"old_password": self.admin_password, "new_password": password},
        )
        assert changed.status_code == 200, changed.text
        self.admin_password = password
        return client

    def user(self, name: str, role: str, password: str = "password-" + "x" * 4) -> Any:
        self.console.users.add(name, password, role)
        client, csrf = self.login(name, password)
        client.headers["x-csrf-token"] = csrf
        return client

    def audit(self) -> list[dict[str, Any]]:
        """The audit log, oldest first, read with plain SQL."""
        return self.store.query(
            "SELECT user_name, action, detail FROM audit_log ORDER BY id"
        ).to_pylist()


def make_kit(tmp_path: Path, *, with_procedures: bool = True, ttl_s: float = 3600) -> Kit:
    from netdistill.console.app import ConsoleConfig

    clock = Clock(T0)
    store = DuckDBStore(tmp_path / "records.duckdb", clock=clock)
    announced: list[str] = []
    console = Console(
        store,
        token=TOKEN,
        clock=clock,
        announce=announced.append,
        config=ConsoleConfig(session_ttl_s=ttl_s, session_idle_s=600),
        hasher=CHEAP_HASHER,
    )
    guarded = []
    if with_procedures:
        csv = tmp_path / "cust.csv"
        csv.write_text("network,account_id,site\n10.0.0.0/8,acme,paris\n")
        scheme = parse_scheme(SCHEME.format(csv=csv))
        guarded.append(procedures_router(ProcedureBook.from_scheme(scheme)))
    app = create_app(
        store,
        token=TOKEN,
        status=lambda: {"sources": []},
        guarded=guarded,
        access=console.access.authorize,
    )
    console.mount(app)
    return Kit(store, console, TestClient(app), clock, announced[0], announced)
