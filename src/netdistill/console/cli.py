"""``netdistill user``: console users from the command line, e.g. to set a new password
for ``admin`` when the one printed at first start is lost::

    netdistill user list
    netdistill user add noc --role viewer          (asks for the password)
    netdistill user passwd admin
    netdistill user role noc operator
    netdistill user remove noc

While a manager runs on the data directory the change goes through its API with the
token from ``manager.json`` (and is audited as ``token``); otherwise the store file is
opened and changed directly (audited as ``cli``). A changed password or role, or a
removed user, ends that user's sessions either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from netdistill.cli.common import DEFAULT_DATA_DIR, DataDir, app, errors, fail, out

user_app = typer.Typer(
    help="Console users: list, add, passwd, role, remove (works while running).",
    no_args_is_help=True,
)
app.add_typer(user_app, name="user")

Password = Annotated[
    str,
    typer.Option(
        "--password", prompt=True, hide_input=True, confirmation_prompt=True, help="(asked)"
    ),
]


class _Users:
    """The same five operations on a running manager or on the store file."""

    def __init__(self, data_dir: Path) -> None:
        from netdistill.manager.client import ManagerClient
        from netdistill.manager.discovery import read_manager_info

        info = read_manager_info(data_dir)
        self.remote = ManagerClient(info) if info is not None else None
        self.store: Any = None
        if self.remote is None:
            from netdistill.console.audit import AuditLog
            from netdistill.console.sessions import SessionBook
            from netdistill.console.users import UserBook
            from netdistill.store.duckdb import DuckDBStore

            self.store = DuckDBStore(data_dir / "records.duckdb")
            self.users = UserBook(self.store)
            self.sessions = SessionBook(self.store)
            self.audit = AuditLog(self.store)

    def _local(self, action: str, name: str, detail: dict[str, Any]) -> None:
        self.audit.record("cli", action, {"user": name, **detail})

    def list(self) -> list[dict[str, Any]]:
        if self.remote is not None:
            return list(self.remote.request("GET", "/api/users").json())
        return self.users.list()

    def add(self, name: str, password: str, role: str) -> None:
        if self.remote is not None:
            body = {"name": name, "password": password, "role": role}
            self.remote.request("POST", "/api/users", json=body)
            return
        self.users.add(name, password, role)
        self._local("user_add", name, {"role": role})

    def change(self, name: str, *, password: str | None = None, role: str | None = None) -> None:
        if self.remote is not None:
            body = {k: v for k, v in {"password": password, "role": role}.items() if v}
            self.remote.request("PATCH", f"/api/users/{name}", json=body)
            return
        if role is not None:
            self.users.set_role(name, role)
        if password is not None:
            self.users.set_password(name, password)
        self.sessions.end_all(name)
        self._local("user_change", name, {"role": role} if role else {"password": "***"})

    def remove(self, name: str) -> None:
        if self.remote is not None:
            self.remote.request("DELETE", f"/api/users/{name}")
            return
        self.users.remove(name)
        self.sessions.end_all(name)
        self._local("user_remove", name, {})

    def close(self) -> None:
        if self.remote is not None:
            self.remote.close()
        if self.store is not None:
            self.store.close()


def _with_users(data_dir: Path, action: Any) -> Any:
    with errors():
        users = _Users(data_dir)
        try:
            return action(users)
        except ValueError as exc:  # an unknown role
            raise fail(str(exc)) from None
        finally:
            users.close()


@user_app.command("list")
def user_list(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Users and their roles."""
    for row in _with_users(data_dir, lambda u: u.list()):
        out.print(f"{row['name']:<24} {row['role']}", highlight=False)


@user_app.command("add")
def user_add(
    name: str,
    password: Password,
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "viewer",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Add a console user."""
    _with_users(data_dir, lambda u: u.add(name, password, role))
    out.print(f"added {name} ({role})", highlight=False)


@user_app.command("passwd")
def user_passwd(name: str, password: Password, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Set a user's password (ends the user's sessions)."""
    _with_users(data_dir, lambda u: u.change(name, password=password))
    out.print(f"password of {name} changed", highlight=False)


@user_app.command("role")
def user_role(name: str, role: str, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Change a user's role (ends the user's sessions)."""
    _with_users(data_dir, lambda u: u.change(name, role=role))
    out.print(f"{name} is now {role}", highlight=False)


@user_app.command("remove")
def user_remove(name: str, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Remove a user (ends the user's sessions)."""
    _with_users(data_dir, lambda u: u.remove(name))
    out.print(f"removed {name}", highlight=False)
