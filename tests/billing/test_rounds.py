"""Rating rounds: a failed round changes nothing (rolled back, nothing doubled after),
a restart neither re-rates nor re-issues, numbers stay gap-free across both; issued
documents cannot be changed through the API or a query, and a change made behind
netdistill's back is detected; the BSS API pages with ``since``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from billing_support import GB, Clock, commit, open_store, record, rows, runner, t
from fastapi.testclient import TestClient

from netdistill.errors import QueryRefusedError
from netdistill.manager.api import create_app
from netdistill.stages.runner import stages_router

SCHEME = """
stages:
  - {name: hourly, type: rollup, period: hour, company: company, grace_s: 0,
     export: {directory: null}}
rating:
  rollups: [hourly]
  default_plan: flat
  plans:
    flat:
      prices:
        - {name: web, category: http, unit: GB, rate: "1.00"}
"""
AUTH = {"authorization": "Bearer t0k"}


def state(store: Any) -> dict[str, Any]:
    return {
        "rated": rows(store, "SELECT count(*) AS n FROM billing_rated")[0]["n"],
        "usage": rows(
            store,
            "SELECT CAST(sum(quantity) AS BIGINT) AS q, sum(rated_minor) AS m FROM billing_usage",
        )[0],
        "invoices": rows(store, "SELECT number, total_minor FROM invoices ORDER BY seq"),
        "sequence": rows(store, "SELECT last FROM billing_sequence"),
    }


def boom(_tx: Any) -> None:
    raise RuntimeError("injected failure at the end of the round")


def test_failed_round_restart_and_gap_free_numbers(tmp_path: Path) -> None:
    clock = Clock(t("2026-12-01T00:00:01"))
    store = open_store(tmp_path, clock)
    commit(store, [record("2026-11-02T10:00:00", f"acct{i}", "http", bytes=(i + 1) * GB)
                   for i in range(3)], 1)  # fmt: skip
    stages = runner(store, tmp_path, clock, SCHEME)
    rating = stages.get("rating")
    before = state(store)
    rating._after_writes = boom  # every write of the round is done when this raises
    stages.run_once()
    assert "injected failure" in stages.errors["rating"]
    assert state(store) == before  # rolled back: nothing rated, nothing issued
    stages.run_once()  # fails again: still nothing
    assert state(store) == before
    del rating._after_writes
    counts = stages.run_once()["rating"]
    assert stages.errors == {}
    assert counts["invoices"] == 3
    after = state(store)
    assert after["usage"] == {"q": 6 * GB, "m": 600}  # 1 + 2 + 3 GB at 1.00, once
    assert after["invoices"] == [
        {"number": "INV-00000001", "total_minor": 100},
        {"number": "INV-00000002", "total_minor": 200},
        {"number": "INV-00000003", "total_minor": 300},
    ]
    store.close()

    # restart: a new store handle and runner on the same file rate nothing again
    store = open_store(tmp_path, clock)
    stages = runner(store, tmp_path, clock, SCHEME)
    assert stages.run_once()["rating"]["periods_rated"] == 0
    assert state(store) == after
    # December: a failed round that would issue, then a good one: numbers continue at 4
    commit(store, [record("2026-12-03T10:00:00", "acct0", "http", bytes=GB),
                   record("2026-12-03T11:00:00", "acct9", "http", bytes=GB)], 2)  # fmt: skip
    clock.set(t("2027-01-01T00:00:01"))
    stages.get("rating")._after_writes = boom
    stages.run_once()
    assert state(store)["sequence"] == [{"last": 3}]
    del stages.get("rating")._after_writes
    assert stages.run_once()["rating"]["invoices"] == 2
    seqs = [r["seq"] for r in rows(store, "SELECT seq FROM invoices ORDER BY seq")]
    assert seqs == [1, 2, 3, 4, 5]
    assert [r["account_id"] for r in rows(store, "SELECT account_id FROM invoices WHERE seq > 3"
                                        " ORDER BY seq")] == ["acct0", "acct9"]  # fmt: skip
    store.close()


def test_issued_invoices_are_immutable_and_api(tmp_path: Path) -> None:
    clock = Clock(t("2026-12-01T00:00:01"))
    store = open_store(tmp_path, clock)
    commit(store, [record("2026-11-02T10:00:00", f"acct{i}", "http", bytes=GB)
                   for i in range(5)], 1)  # fmt: skip
    stages = runner(store, tmp_path, clock, SCHEME)
    app = create_app(store, token="t0k", status=dict, guarded=[stages_router(stages)])
    client = TestClient(app)
    assert client.get("/api/invoices", headers=AUTH).json() == {"invoices": [], "next": None}
    run = client.post("/api/billing/run", headers=AUTH).json()
    assert run["counts"]["invoices"] == 5
    page = client.get("/api/invoices?limit=2", headers=AUTH).json()
    assert [d["number"] for d in page["invoices"]] == ["INV-00000001", "INV-00000002"]
    assert page["next"] == "INV-00000002"
    rest = client.get(f"/api/invoices?since={page['next']}", headers=AUTH).json()
    assert [d["number"] for d in rest["invoices"]] == [f"INV-0000000{i}" for i in (3, 4, 5)]
    one = client.get("/api/invoices/INV-00000003", headers=AUTH).json()
    assert one["idempotency_key"] == "invoice/INV-00000003"
    assert (one["account_id"], one["total"], one["currency"], one["intact"]) == (
        "acct2",
        "1.00",
        "EUR",
        True,
    )
    assert one["lines"][0]["amount"] == "1.00" and one["lines"][0]["quantity"] == "1"
    assert client.get("/api/invoices/INV-09", headers=AUTH).status_code == 404
    # no path changes an issued invoice
    for method in ("put", "patch", "delete"):
        answer = getattr(client, method)("/api/invoices/INV-00000003", headers=AUTH)
        assert answer.status_code == 405, method
        assert "immutable" in answer.json()["detail"]
    with pytest.raises(QueryRefusedError):  # what a person's SQL goes through
        store.query_user("UPDATE invoices SET total_minor = 1 WHERE number = 'INV-00000003'")
    # … which may read invoices: they are reports
    assert store.query_user("SELECT count(*) AS n FROM invoices").to_pylist() == [{"n": 5}]
    # running billing again issues nothing new
    assert client.post("/api/billing/run", headers=AUTH).json()["counts"]["invoices"] == 0
    # a change behind netdistill's back (straight on the file) is detected
    with store.transaction() as tx:
        tx.execute("UPDATE invoice_lines SET amount_minor = 1 WHERE number = 'INV-00000003'")
    tampered = client.get("/api/invoices/INV-00000003", headers=AUTH).json()
    assert tampered["intact"] is False
    assert client.get("/api/invoices/INV-00000002", headers=AUTH).json()["intact"] is True
    store.close()


def _month(store: Any) -> None:
    commit(store, [record(f"2026-11-{2 + i % 20:02d}T10:00:00", f"acct{i:02d}", "http",
                          bytes=(i + 1) * GB // 3) for i in range(30)], 1)  # fmt: skip


def _outcome(store: Any, directory: Path) -> dict[str, Any]:
    return {
        "state": state(store),
        "docs": rows(
            store,
            "SELECT seq, number, account_id, total_minor, sha256, body FROM invoices ORDER BY seq",
        ),
        "lines": rows(store, "SELECT * FROM invoice_lines ORDER BY number, line"),
        "files": {p.name: p.read_bytes() for p in sorted(directory.glob("*"))},
    }


@pytest.mark.parametrize("fail_at", [2, 3, 5, "files"])
def test_round_failing_between_chunks_resumes_exactly_once(
    tmp_path: Path, fail_at: int | str
) -> None:
    """A round cut into chunks (short transactions) that fails after some of them, or
    after all of them but before the invoice files are written, then restarts: the
    result — usage, invoices, their numbers, bodies and fingerprints, and the files'
    bytes — is exactly that of a round that never failed."""
    scheme = SCHEME + "  invoices: {directory: invoices}\n"
    clock = Clock(t("2026-12-01T00:00:01"))
    reference_dir, failing_dir = tmp_path / "reference", tmp_path / "failing"
    store = open_store(reference_dir, clock)
    _month(store)
    stages = runner(store, reference_dir, clock, scheme)
    stages.get("rating").chunk_rows = 8
    assert stages.run_once()["rating"]["invoices"] == 30
    reference = _outcome(store, reference_dir / "invoices")
    assert len(reference["files"]) == 3 * 4  # four chunks, each a batch of three files
    store.close()

    store = open_store(failing_dir, clock)
    _month(store)
    stages = runner(store, failing_dir, clock, scheme)
    rating = stages.get("rating")
    rating.chunk_rows = 8
    calls = []

    def fail(_tx: Any) -> None:
        calls.append(1)
        if len(calls) == fail_at:
            raise RuntimeError("injected failure between the round's transactions")

    def crash() -> dict[str, int]:
        raise RuntimeError("injected crash before the invoice files")

    if fail_at == "files":
        rating.export_pending = crash
    else:
        rating._after_writes = fail
    stages.run_once()
    assert "injected" in stages.errors["rating"]
    done = rows(store, "SELECT count(*) AS n FROM invoices")[0]["n"]
    assert done == {2: 0, 3: 8, 5: 24, "files": 30}[fail_at]  # chunks of 8 accounts
    store.close()  # and a restart: a new store handle and runner on the same file

    store = open_store(failing_dir, clock)
    stages = runner(store, failing_dir, clock, scheme)
    stages.get("rating").chunk_rows = 8
    stages.run_once()
    assert stages.errors == {}
    assert _outcome(store, failing_dir / "invoices") == reference
    stages.run_once()  # and nothing more
    assert _outcome(store, failing_dir / "invoices") == reference
    store.close()
