"""The ``type: sflow`` scheme entry, and ``netdistill import`` of sFlow captures (which
gave 0 records as ``unknown_version`` before sFlow had a decoder, issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sflowref import SFLOW_CAPTURES, decode, read_capture

from netdistill.errors import SchemeError
from netdistill.importer import import_files
from netdistill.scheme import parse_scheme
from netdistill.sources.registry import SOURCES
from netdistill.sources.sflow.config import SflowSourceConfig
from netdistill.store.duckdb import DuckDBStore

NETFLOW_V5 = SFLOW_CAPTURES.parent / "akvorado-netflow" / "nfv5.pcap"


def test_scheme_accepts_sflow_with_defaults() -> None:
    scheme = parse_scheme("sources:\n  - {name: switches, type: sflow}\n", filename="s.yaml")
    (source,) = scheme.sources
    assert isinstance(source, SflowSourceConfig)
    assert (source.listen, source.default_sampling_rate) == (["0.0.0.0:6343"], 1)
    assert SOURCES.runtime_class("sflow").__name__ == "SflowSource"


def test_scheme_rejects_bad_sflow_settings_with_their_place() -> None:
    text = "sources:\n  - {name: s, type: sflow, listen: ['x:1'], sampling: 3}\n"
    with pytest.raises(SchemeError) as caught:
        parse_scheme(text, filename="s.yaml")
    problems = "\n".join(caught.value.problems)
    assert "s.yaml:2:" in problems and "'x' is not an IP address" in problems
    assert "sampling: unknown key" in problems or "sources.0.sampling" in problems


@pytest.mark.skipif(not SFLOW_CAPTURES.is_dir(), reason="captures not found")
def test_import_of_sflow_and_netflow_captures_together(tmp_path: Path) -> None:
    files = [*sorted(SFLOW_CAPTURES.glob("*.pcap")), NETFLOW_V5]
    summary = import_files(
        files, data_dir=tmp_path, config=None, source_name=None,
        store=DuckDBStore(tmp_path / "records.duckdb"),
    )  # fmt: skip
    samples = [s for f in files[:-1] for d in read_capture(f) for s in decode(d.payload).samples]
    assert summary["records"] == len(samples) + 29  # nfv5.pcap holds 29 flows
    assert summary["quarantined"] == 0 and summary["dropped"] == {}
    store = DuckDBStore(tmp_path / "records.duckdb", read_only=True)
    try:
        rows = store.query(
            "select source, count(*) n, sum(bytes)::BIGINT b, sum(packets)::BIGINT p, "
            "count(sample_kind) k from records group by all order by all",
            {},
        ).to_pylist()
    finally:
        store.close()
    assert rows == [
        {"source": "netflow", "n": 29, "b": 88345, "p": 78, "k": 0},
        {
            "source": "sflow",
            "n": len(samples),
            "b": sum(s.bytes or 0 for s in samples),
            "p": sum(s.rate for s in samples),
            "k": len(samples),
        },
    ]
