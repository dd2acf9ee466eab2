"""``netdistill licence``: install, list and remove licences; the vendor's tools.

    netdistill licence install-id                 this installation's id (for a bound licence)
    netdistill licence add FILE                   verify and install a licence file
    netdistill licence list [--format json]       edition, limits, usage, installed licences
    netdistill licence remove LICENCE_ID
    netdistill licence forget gatherer NAME       free a gatherer's place
    netdistill licence forget exporter KIND ADDRESS
    netdistill licence keygen --out FILE          vendor: a new key pair
    netdistill licence issue --key FILE ...       vendor: sign a licence

While a manager runs on the data directory, the commands go through its API with the
token from ``manager.json`` (admin); otherwise they open the store file. ``keygen`` and
``issue`` need the vendor's private key and never touch a store (``issue.py``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from netdistill.cli.common import DEFAULT_DATA_DIR, DataDir, app, errors, fail, out

licence_app = typer.Typer(
    help="Licences: install-id, add, list, remove, forget (works while running); "
    "keygen and issue for the vendor.",
    no_args_is_help=True,
)
app.add_typer(licence_app, name="licence")


class _Licences:
    """The same operations on a running manager or on the store file."""

    def __init__(self, data_dir: Path) -> None:
        from netdistill.manager.client import ManagerClient
        from netdistill.manager.discovery import read_manager_info

        info = read_manager_info(data_dir)
        self.remote = ManagerClient(info) if info is not None else None
        self.store: Any = None
        if self.remote is None:
            from netdistill.licence.book import LicenceBook
            from netdistill.manager.monitor import ensure_tables
            from netdistill.store.duckdb import DuckDBStore

            self.store = DuckDBStore(data_dir / "records.duckdb")
            ensure_tables(self.store)
            self.book = LicenceBook(self.store)

    def overview(self) -> dict[str, Any]:
        if self.remote is not None:
            return dict(self.remote.request("GET", "/api/licences").json())
        self.book.check()
        return {
            **self.book.status(),
            "entitlements": self.book.entitlements().model_dump(),
            "licences": self.book.licences(),
        }

    def add(self, text: str) -> str:
        if self.remote is not None:
            answer = self.remote.request("POST", "/api/licences", json={"text": text}).json()
            return str(answer["installed"])
        return self.book.add(text, user="cli").licence_id

    def remove(self, licence_id: str) -> None:
        if self.remote is not None:
            self.remote.request("DELETE", f"/api/licences/{licence_id}")
            return
        self.book.remove(licence_id, user="cli")

    def forget(self, item: str, subject: str) -> None:
        if self.remote is not None:
            params = {"item": item, "subject": subject}
            self.remote.request("DELETE", "/api/licences/admitted", params=params)
            return
        self.book.forget(item, subject)

    def close(self) -> None:
        if self.remote is not None:
            self.remote.close()
        if self.store is not None:
            self.store.close()


def _with(data_dir: Path, action: Any) -> Any:
    with errors():
        licences = _Licences(data_dir)
        try:
            return action(licences)
        finally:
            licences.close()


@licence_app.command("install-id")
def install_id(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """This installation's id: give it to the vendor for a licence bound to it."""
    out.print(_with(data_dir, lambda lic: lic.overview()["install_id"]), highlight=False)


@licence_app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="The licence file the vendor sent.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Verify and install a licence (a licence with the same id is replaced)."""
    with errors():
        text = file.read_text(encoding="utf-8")
    licence_id = _with(data_dir, lambda lic: lic.add(text))
    out.print(f"installed licence {licence_id}", highlight=False)


@licence_app.command("list")
def list_(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """The edition, the limits in force and their use, the installed licences."""
    overview = _with(data_dir, lambda lic: lic.overview())
    if format == "json":
        out.print_json(json.dumps(overview, default=str))
        return
    out.print(f"edition: {overview['edition']}    install id: {overview['install_id']}")
    if overview["read_only"]:
        out.print(f"[red]{overview['read_only']}[/red]")
    for item, use in overview["usage"].items():
        out.print(f"  {item:<28} {use['admitted']:>6} admitted of {use['limit']}")
    out.print(f"  features: {', '.join(overview['features'])}")
    for lic in overview["licences"]:
        out.print(
            f"{lic['licence_id']:<24} {lic['state']:<14} {lic['customer']} "
            f"(until {lic['expires_at']}, grace until {lic['grace_ends_at']})",
            highlight=False,
        )
    if overview["refused_records"] or overview["refused_gatherers"]:
        out.print(
            f"refused: gatherers {overview['refused_gatherers']}, "
            f"{overview['refused_records']} records of unlicensed exporters"
        )


@licence_app.command("remove")
def remove(licence_id: str, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Uninstall a licence."""
    _with(data_dir, lambda lic: lic.remove(licence_id))
    out.print(f"removed licence {licence_id}", highlight=False)


@licence_app.command("forget")
def forget(
    what: Annotated[str, typer.Argument(help="gatherer or exporter")],
    names: Annotated[list[str], typer.Argument(help="NAME, or KIND ADDRESS")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Free the place of a retired gatherer or a replaced exporter."""
    if what == "gatherer" and len(names) == 1:
        item, subject = "gatherer", names[0]
    elif what == "exporter" and len(names) == 2:
        item, subject = f"exporter:{names[0]}", names[1]
    else:
        raise fail("give: gatherer NAME, or exporter KIND ADDRESS", 2)
    _with(data_dir, lambda lic: lic.forget(item, subject))
    out.print(f"forgot {item} {subject}", highlight=False)


# --- the vendor's side (issue.py) -------------------------------------------------------


@licence_app.command("keygen")
def keygen(out_file: Annotated[Path, typer.Option("--out", help="New private key (PEM).")]) -> None:
    """Vendor: make a key pair; prints the public key for licence/keys.py."""
    from netdistill.licence.issue import generate_key

    with errors():
        public = generate_key(out_file)
    out.print(f"private key written to {out_file} (keep it secret)\npublic key: {public}")


@licence_app.command("issue")
def issue(
    key: Annotated[Path, typer.Option("--key", help="The vendor's private key (PEM).")],
    key_id: Annotated[str, typer.Option("--key-id", help="Its id in licence/keys.py.")],
    licence_id: Annotated[str, typer.Option("--id", help="The licence id.")],
    customer: Annotated[str, typer.Option("--customer")],
    days: Annotated[float, typer.Option("--days", help="Valid this many days.")] = 365,
    starts: Annotated[str | None, typer.Option("--starts", help="ISO date; default now")] = None,
    grace_days: Annotated[float, typer.Option("--grace-days")] = 14,
    install_id: Annotated[str | None, typer.Option("--install-id")] = None,
    gatherers: Annotated[int, typer.Option("--gatherers")] = 0,
    exporters: Annotated[
        list[str] | None, typer.Option("--exporters", help="KIND=N (repeat; * for others)")
    ] = None,
    feature: Annotated[list[str] | None, typer.Option("--feature", help="repeat")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
) -> None:
    """Vendor: sign a licence with the private key."""
    from pydantic import ValidationError

    from netdistill.licence.issue import load_private_key, sign
    from netdistill.licence.terms import Licence

    with errors():
        now = datetime.now(UTC)
        start = datetime.fromisoformat(starts).replace(tzinfo=UTC) if starts else now
        counts = {}
        for entry in exporters or []:
            kind, sep, n = entry.partition("=")
            if not sep or not n.isdigit():
                raise fail(f"--exporters {entry!r}: expected KIND=N", 2)
            counts[kind] = int(n)
        try:
            licence = Licence(
                licence_id=licence_id,
                customer=customer,
                issued_at=now,
                valid_from=start,
                expires_at=start + timedelta(days=days),
                grace_days=grace_days,
                install_id=install_id,
                gatherers=gatherers,
                exporters=counts,
                features=tuple(feature or ()),
            )
        except ValidationError as exc:
            raise fail(str(exc), 2) from None
        text = sign(licence, load_private_key(key), key_id)
        if output is None:
            out.print(text, end="", highlight=False, markup=False)
        else:
            output.write_text(text, encoding="utf-8")
            out.print(f"licence {licence_id} written to {output}", highlight=False)
