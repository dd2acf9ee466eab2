"""Biflows built with the project's encoder (``IpfixExporter(biflow=True)``): decoded
totals equal the input's forward + reverse sums, and the billing report bills both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from nfbuild import dgram

from netdistill import output
from netdistill.reports import find_report, run_report
from netdistill.sources.netflow import NetflowDecoder
from netdistill.sources.netflow.encode import IpfixExporter, encode_ipfix
from netdistill.store.duckdb import DuckDBStore

T0 = 1_700_000_000_000


def flows(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    start = T0 + np.sort(rng.integers(0, 60_000, n))
    answered = rng.random(n) < 0.6
    return {
        "start_time": start,
        "end_time": start + 1_000,
        "src_ip": rng.integers(0x0A000000, 0x0A0000FF, n, dtype=np.uint32),
        "dst_ip": rng.integers(0xC6336400, 0xC63364FF, n, dtype=np.uint32),
        "src_port": rng.integers(1024, 65535, n),
        "dst_port": np.full(n, 443),
        "protocol": np.full(n, 6),
        "bytes": rng.integers(40, 1500, n),
        "packets": rng.integers(1, 10, n),
        "rev_bytes": np.where(answered, rng.integers(40, 90_000, n), 0),
        "rev_packets": np.where(answered, rng.integers(1, 70, n), 0),
    }


def test_encoded_biflows_bill_both_directions(tmp_path: Path) -> None:
    given = flows(2_000)
    payloads = encode_ipfix(given, IpfixExporter(biflow=True), export_time_ms=T0 + 70_000)
    result = NetflowDecoder().decode([dgram(p) for p in payloads])
    assert result.quarantined == []
    records = result.records
    answered = int((given["rev_packets"] > 0).sum())
    assert records.num_rows == 2_000 + answered
    total = int(given["bytes"].sum() + given["rev_bytes"].sum())
    assert pa.compute.sum(records.column("bytes")).as_py() == total
    reverse = records.filter(records.column("biflow_reverse"))
    assert sorted(reverse.column("dst_ip").to_pylist()) == sorted(
        records.filter(pa.compute.invert(records.column("biflow_reverse")))
        .filter(pa.array(given["rev_packets"] > 0))
        .column("src_ip")
        .to_pylist()
    )

    store = DuckDBStore(tmp_path / "s.duckdb")
    try:
        store.add_field("biflow_reverse", "bool")
        store.commit(records, origin="test", sequence=1)
        report = find_report(store, "billing_usage")
        params = {"from": "2023-11-14T00:00:00Z", "to": "2023-11-16T00:00:00Z"}
        rows = output.rows(run_report(store, report, params).table)
        assert sum(r["bytes"] for r in rows) == total
        assert sum(r["packets"] for r in rows) == int(
            given["packets"].sum() + given["rev_packets"].sum()
        )
    finally:
        store.close()
