"""``LicenceBook`` on a real DuckDB store, with a clock the test moves: install and
uninstall, admission of the first N gatherers and exporters (durable across a restart),
refusals counted and alerted, expiry → grace → read-only, and the community edition."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from licence_kit import TestVendor

from netdistill.errors import LicenceError
from netdistill.licence.book import LicenceBook
from netdistill.manager.monitor import ensure_tables
from netdistill.store.duckdb import DuckDBStore

START = datetime(2026, 6, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, days: float) -> None:
        self.now += days * 86400


def open_book(path: Path, vendor: TestVendor, clock: Clock) -> tuple[DuckDBStore, LicenceBook]:
    store = DuckDBStore(path)
    ensure_tables(store)
    return store, LicenceBook(store, trusted_keys=vendor.trusted, clock=clock)


def flows(exporters: list[str | None]) -> pa.Table:
    return pa.table(
        {"exporter": pa.array(exporters, pa.string()), "bytes": pa.array(range(len(exporters)))}
    )


def alerts(store: DuckDBStore) -> list[dict[str, Any]]:
    return store.query(
        "SELECT kind, subject, detail, cleared_at IS NULL AS open FROM alerts ORDER BY id"
    ).to_pylist()


def test_community_edition_admits_two_gatherers_and_25_exporters_per_kind(tmp_path: Path) -> None:
    vendor, clock = TestVendor(), Clock()
    store, book = open_book(tmp_path / "s.duckdb", vendor, clock)
    assert book.edition() == "community" and book.read_only() == ""
    book.admit_gatherer("g1")
    book.admit_gatherer("g2")
    book.admit_gatherer("local")  # the manager's own sources: not counted
    with pytest.raises(LicenceError) as caught:
        book.admit_gatherer("g3")
    assert str(caught.value) == (
        "gatherer 'g3' refused: the licence allows 2 gatherers and 2 are admitted (g1, g2); "
        "install a licence for more (netdistill licence add) or free a place "
        "(netdistill licence forget gatherer NAME)"
    )
    book.admit_gatherer("g1")  # admitted ones stay admitted
    # 30 netflow exporters, each with 2 records; 25 pass, in order of first appearance
    batch = flows([f"10.0.0.{i}" for i in range(30)] * 2)
    kept = book.admit_exporters("netflow", batch)
    assert kept.num_rows == 50
    assert set(kept.column("exporter").to_pylist()) == {f"10.0.0.{i}" for i in range(25)}
    assert kept.column("bytes").to_pylist() == [*range(25), *range(30, 55)]
    # another kind has its own 25
    assert book.admit_exporters("radius", flows(["nas-1", None])).num_rows == 2
    status = book.status()
    assert status["usage"]["gatherer"] == {"admitted": 2, "limit": 2}
    assert status["usage"]["exporter:netflow"] == {"admitted": 25, "limit": 25}
    assert status["usage"]["exporter:radius"] == {"admitted": 2, "limit": 25}
    assert status["refused_gatherers"] == {"g3": 1}
    refused = status["refused_exporters"]["netflow"]
    assert sorted(refused) == [f"10.0.0.{i}" for i in range(25, 30)]
    assert all(c["records"] == 2 for c in refused.values())
    assert status["refused_records"] == 10
    # one alert per refused subject, however often it is refused
    book.admit_exporters("netflow", flows(["10.0.0.29"] * 3))
    with pytest.raises(LicenceError):
        book.admit_gatherer("g3")
    kinds = [(a["kind"], a["subject"]) for a in alerts(store)]
    assert kinds.count(("licence_refused", "gatherer g3")) == 1
    assert kinds.count(("licence_refused", "exporter netflow 10.0.0.29")) == 1
    assert len(kinds) == 6
    assert book.status()["refused_exporters"]["netflow"]["10.0.0.29"]["records"] == 5
    store.close()


def test_the_first_n_stay_licensed_across_a_restart(tmp_path: Path) -> None:
    vendor, clock = TestVendor(), Clock()
    store, book = open_book(tmp_path / "s.duckdb", vendor, clock)
    book.admit_exporters("sflow", flows([f"a{i}" for i in range(25)]))
    book.admit_gatherer("g-old-1")
    book.admit_gatherer("g-old-2")
    install_id = book.install_id
    store.close()
    store, book = open_book(tmp_path / "s.duckdb", vendor, clock)
    assert book.install_id == install_id
    # a new exporter seen first after the restart is the one refused
    kept = book.admit_exporters("sflow", flows(["new", "a0", "a24"]))
    assert kept.column("exporter").to_pylist() == ["a0", "a24"]
    with pytest.raises(LicenceError, match="g-old-1, g-old-2"):
        book.admit_gatherer("g-new")
    # freeing a place lets the next one in
    book.forget("exporter:sflow", "a3")
    assert book.admit_exporters("sflow", flows(["new"])).num_rows == 1
    with pytest.raises(LicenceError, match="is not admitted"):
        book.forget("exporter:sflow", "a3")
    store.close()


def test_install_uninstall_and_a_larger_limit(tmp_path: Path) -> None:
    vendor, clock = TestVendor(), Clock()
    store, book = open_book(tmp_path / "s.duckdb", vendor, clock)
    book.admit_gatherer("g1")
    book.admit_gatherer("g2")
    with pytest.raises(LicenceError):
        book.admit_gatherer("g3")
    licence = book.add(vendor.issue("L-5", now=START, gatherers=5, exporters={"netflow": 100}))
    assert licence.licence_id == "L-5" and book.edition() == "licensed"
    book.admit_gatherer("g3")
    assert book.status()["usage"]["gatherer"] == {"admitted": 3, "limit": 5}
    listed = book.licences()
    assert [(x["licence_id"], x["state"], x["key"]) for x in listed] == [
        ("L-5", "valid", "test-key")
    ]
    # a licence of another installation is refused at install
    with pytest.raises(LicenceError, match="is for installation other-id"):
        book.add(vendor.issue("L-X", now=START, install_id="other-id"))
    # removed: 3 admitted gatherers, the community edition allows 2 → read-only
    book.remove("L-5")
    assert book.edition() == "community"
    assert book.read_only() == (
        "read-only: 3 gatherers are admitted and the licence allows 2. Configuration changes "
        "are refused until a valid licence is installed (netdistill licence add); "
        "collection, storing and reports go on"
    )
    book.admit_gatherer("g3")  # admitted ones keep working
    with pytest.raises(LicenceError, match="no licence 'L-5' is installed"):
        book.remove("L-5")
    book.forget("gatherer", "g3")
    assert book.read_only() == ""
    store.close()


def test_expiry_grace_then_read_only_and_collection_goes_on(tmp_path: Path) -> None:
    vendor, clock = TestVendor(), Clock()
    store, book = open_book(tmp_path / "s.duckdb", vendor, clock)
    book.add(vendor.issue("Y1", now=START, days=40, grace_days=10, exporters={"netflow": 30}))
    assert book.admit_exporters("netflow", flows([f"e{i}" for i in range(30)])).num_rows == 30
    book.check()
    assert [a["kind"] for a in alerts(store)] == []
    clock.advance(15)  # 25 days left: the expiry warning
    book.check()
    assert [(a["kind"], a["subject"]) for a in alerts(store)] == [("licence_expiring", "Y1")]
    clock.advance(30)  # expired 5 days ago, in its 10 days of grace: still counts
    assert book.check() == ""
    assert book.edition() == "grace"
    assert book.entitlements().exporter_limit("netflow") == 30
    clock.advance(6)  # grace over
    reason = book.check()
    assert reason.startswith(
        "read-only: every installed licence is past its grace period; 30 netflow exporters "
        "are admitted and the licence allows 25."
    )
    assert book.edition() == "expired"
    assert [a["kind"] for a in alerts(store)] == [
        "licence_expiring", "licence_grace", "licence_expired", "licence_read_only"
    ]  # fmt: skip
    # never lose collected data: admitted exporters are stored as before
    batch = flows([f"e{i}" for i in range(30)])
    assert book.admit_exporters("netflow", batch).num_rows == 30
    # the expired licence is listed, and a new one ends read-only mode
    assert [x["state"] for x in book.licences()] == ["expired"]
    now = datetime.fromtimestamp(clock(), UTC)
    book.add(vendor.issue("Y2", now=now, exporters={"netflow": 50}))
    assert book.read_only() == "" and book.edition() == "licensed"
    assert alerts(store)[-1]["kind"] == "licence_read_only" and not alerts(store)[-1]["open"]
    store.close()


def test_a_licence_row_edited_in_the_store_counts_for_nothing(tmp_path: Path) -> None:
    vendor, clock = TestVendor(), Clock()
    store, book = open_book(tmp_path / "s.duckdb", vendor, clock)
    book.add(vendor.issue("E1", now=START, gatherers=9))
    assert book.entitlements().gatherers == 9
    store.close()
    import duckdb

    conn = duckdb.connect(str(tmp_path / "s.duckdb"))
    edit = "replace(text, '\"gatherers\": 9', '\"gatherers\": 99')"
    conn.execute(f"UPDATE licences SET text = {edit}")
    conn.close()
    store, book = open_book(tmp_path / "s.duckdb", vendor, clock)
    assert book.licences() == [] and book.entitlements().gatherers == 2
    store.close()


def test_read_only_refuses_config_routes_only() -> None:
    from netdistill.licence.api import is_config_change

    assert is_config_change("PUT", "/api/scheme")
    assert is_config_change("POST", "/api/scheme/reload")
    assert is_config_change("POST", "/api/fields")
    assert is_config_change("PUT", "/api/procedures/web")
    assert is_config_change("POST", "/api/reports")
    assert not is_config_change("POST", "/api/scheme/validate")
    assert not is_config_change("GET", "/api/scheme")
    for path in ["/api/ingest", "/api/heartbeat", "/api/query", "/api/licences", "/api/users"]:
        assert not is_config_change("POST", path)
    assert not is_config_change("POST", "/api/reportsX")
