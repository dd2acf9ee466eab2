"""The POP's outbox and the centre's receiver, in process on a real DuckDB store and a
real spool: relaying is idempotent across a crash between the spool append and the
cursor save; a resent entry is stored once; a roll-up no central rollup takes is refused
for good, naming what to add."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from netdistill.errors import BatchRefused
from netdistill.gatherer.spool import Spool
from netdistill.hierarchy.outbox import Outbox
from netdistill.hierarchy.receive import StageReceiver
from netdistill.scheme.models import Scheme
from netdistill.stages.base import ensure_state_table
from netdistill.store.duckdb import DuckDBStore


def _rows(n: int) -> pa.Table:
    return pa.table({"src_ip": [f"10.0.0.{i}" for i in range(n)], "bytes": list(range(n))})


def test_relay_is_idempotent_across_a_crash(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "pop.duckdb")
    ensure_state_table(store)
    outbox = Outbox(store, ["hosts"], origin="pop-east/stages")
    outbox.ensure_table()
    for n in (1, 2, 3):
        with store.transaction() as tx:
            outbox(tx, "hosts", _rows(n), {"type": "aggregate", "output": "table"})
            outbox(tx, "other", _rows(n), {"type": "aggregate", "output": "table"})  # not sent
    spool = Spool(tmp_path / "spool", ["central"], fsync=False)
    # a crash after the first append, before the relay saved its cursor
    row = store.query("SELECT seq, rows, payload FROM _upstream_outbox ORDER BY seq LIMIT 1")
    first = row.to_pylist()[0]
    spool.append(3, "pop-east/stages", first["seq"], first["rows"], bytes(first["payload"]))
    spool.close()
    spool = Spool(tmp_path / "spool", ["central"], fsync=False)  # restarted
    assert outbox.relay(spool) == 2
    assert outbox.relay(spool) == 0
    entries = spool.read("central", max_entries=10)
    assert [e.origin_seq for e in entries] == [1, 2, 3]
    assert [e.rows for e in entries] == [1, 2, 3]
    assert outbox.pending() == 0 and outbox.relayed() == 3
    with store.transaction() as tx:  # numbers are never reused after the rows are gone
        assert outbox.write(tx, "hosts", _rows(1), {"type": "aggregate"}) == 4
    store.close()


def test_receiver_stores_once_and_refuses_an_unknown_rollup(tmp_path: Path) -> None:
    pop = DuckDBStore(tmp_path / "pop.duckdb")
    ensure_state_table(pop)
    outbox = Outbox(pop, ["hosts", "daily"], origin="pop-east/stages")
    outbox.ensure_table()
    with pop.transaction() as tx:
        outbox(tx, "hosts", _rows(3), {"type": "aggregate", "output": "table"})
        outbox(tx, "daily", _rows(0), {"type": "rollup", "period": "2026-11-01", "unit": "day"})
    spool = Spool(tmp_path / "spool", ["central"], fsync=False)
    outbox.relay(spool)
    hosts, daily = spool.read("central", max_entries=10)

    central = DuckDBStore(tmp_path / "central.duckdb")
    scheme = Scheme.model_validate({"gatherers": [{"name": "pop-east", "token_file": "t"}]})
    receiver = StageReceiver(central, lambda: scheme)
    assert receiver.commit("pop-east", hosts.origin, hosts.seq, hosts.payload) == 3
    assert receiver.commit("pop-east", hosts.origin, hosts.seq, hosts.payload) == 0
    got = central.query("SELECT pop, src_ip, bytes FROM pop_agg_hosts ORDER BY bytes")
    assert got.to_pylist() == [
        {"pop": "pop-east", "src_ip": f"10.0.0.{i}", "bytes": i} for i in range(3)
    ]
    assert receiver.duplicates == {"pop-east": 1}
    with pytest.raises(BatchRefused, match="no rollup 'daily' whose pops list 'pop-east'"):
        receiver.commit("pop-east", daily.origin, daily.seq, daily.payload)
    pop.close()
    central.close()
