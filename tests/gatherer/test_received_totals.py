"""Per-source received counters survive a gatherer restart (``gatherer/totals.py``).

A real gatherer runs a ``type: file`` source from its cached plan (no manager is up:
the spool keeps the records). Lines are counted by the test as it writes them."""

from __future__ import annotations

import json
import time
from pathlib import Path

from netdistill.gatherer.main import Gatherer

GOOD = "1700000000.000      5 10.0.0.1 TCP_MISS/200 {n} GET http://h/{n} - HIER_DIRECT/10.0.0.2 -\n"


def _plan(log: Path) -> dict[str, object]:
    return {
        "version": 1,
        "sources": [
            {
                "name": "proxy",
                "type": "file",
                "paths": [str(log)],
                "format": "squid",
                "poll_interval_s": 0.05,
            }
        ],
        "fields": [],
        "settings": {"commit_interval_s": 0.05},
    }


def _run(data: Path, until_records: int) -> dict[str, object]:
    """Start the gatherer, wait until its running source has made ``until_records``
    records (counted after the lines of their batch), stop it; returns its last status."""
    gatherer = Gatherer("g", ["http://127.0.0.1:9"], token="t", data_dir=data)
    gatherer.start(wait_for_plan_s=0)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            (source,) = gatherer.status()["sources"]
            if source["records"] >= until_records:
                break
            time.sleep(0.05)
    finally:
        gatherer.stop()
    return gatherer.status()


def test_received_totals_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "g"
    data.mkdir()
    log = tmp_path / "access.log"
    (data / "plan.json").write_text(json.dumps(_plan(log)))
    log.write_text("".join(GOOD.format(n=n) for n in range(30)) + "not squid\n")
    first = _run(data, 30)
    assert first["received_totals"] == {
        "proxy": {
            "datagrams": 31,
            "bytes_received": log.stat().st_size,
            "records": 30,
            "dropped": {"malformed": 1},
        }
    }
    size = log.stat().st_size
    with open(log, "a") as f:
        f.write("".join(GOOD.format(n=n) for n in range(30, 50)))
    second = _run(data, 20)  # the new instance counts from zero ...
    (source,) = second["sources"]  # type: ignore[misc]
    assert (source["datagrams"], source["records"]) == (20, 20)
    # ... the totals go on from the first run's
    assert second["received_totals"] == {
        "proxy": {
            "datagrams": 51,
            "bytes_received": log.stat().st_size,
            "records": 50,
            "dropped": {"malformed": 1},
        }
    }
    assert log.stat().st_size > size
    saved = json.loads((data / "state" / "received.json").read_text())
    assert saved["sources"] == second["received_totals"]


def test_a_plan_change_keeps_the_counts_of_the_stopped_instance(tmp_path: Path) -> None:
    data = tmp_path / "g"
    data.mkdir()
    log = tmp_path / "access.log"
    plan = _plan(log)
    (data / "plan.json").write_text(json.dumps(plan))
    log.write_text("".join(GOOD.format(n=n) for n in range(10)))
    gatherer = Gatherer("g", ["http://127.0.0.1:9"], token="t", data_dir=data)
    gatherer.start(wait_for_plan_s=0)
    try:
        deadline = time.monotonic() + 20
        while gatherer.status()["sources"][0]["records"] < 10:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        changed = json.loads(json.dumps(plan))
        changed["version"] = 2
        changed["sources"][0]["poll_interval_s"] = 0.1  # the source restarts
        gatherer.apply(changed)
        with open(log, "a") as f:
            f.write("".join(GOOD.format(n=n) for n in range(10, 15)))
        while gatherer.status()["sources"][0]["records"] < 5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        totals = gatherer.status()["received_totals"]
        assert (totals["proxy"]["datagrams"], totals["proxy"]["records"]) == (15, 15)
    finally:
        gatherer.stop()
