"""The aggregate stage against a plain DuckDB GROUP BY over the same committed records."""

from __future__ import annotations

from pathlib import Path

import pytest
from aggregate_testdata import INGESTED, T0, build_stage, commit, flows, open_store, rows

from netdistill.errors import SchemeError
from netdistill.scheme.load import parse_scheme
from netdistill.store.duckdb import DuckDBStore

LATE = T0 + 100_000  # every bin of the test data closed, grace included
KEYS = ["src_ip", "dst_ip", "src_port", "dst_port", "protocol"]
BIN = "epoch_us(start_time) // 300000000"

CLASSIC = """\
stages:
  - {name: conversations, type: aggregate, input: routers,
     by: [src_ip, dst_ip, src_port, dst_port, protocol]}
"""


def expected(store: DuckDBStore, select: str, by: list[str], where: str = "TRUE") -> list[tuple]:
    keys = ", ".join(by)
    sql = (
        f"SELECT {keys}, make_timestamp(({BIN}) * 300000000) AS bin_start, {select} "
        f"FROM records WHERE source = 'routers' AND ({where}) GROUP BY {keys}, {BIN}"
    )
    table = store.query(sql)
    return sorted(tuple(r.values()) for r in table.to_pylist())


def got(store: DuckDBStore, table: str, columns: list[str]) -> list[tuple]:
    data = store.query(f'SELECT {", ".join(columns)} FROM "{table}"')
    return rows(data, columns)


def naive(values: list[tuple]) -> list[tuple]:
    """Timestamps without their zone, so DuckDB's TIMESTAMP and TIMESTAMPTZ compare."""
    return sorted(
        tuple(v.replace(tzinfo=None) if hasattr(v, "tzinfo") else v for v in row) for row in values
    )


def test_the_two_line_netflow_aggregation_equals_group_by(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    commit(store, flows(3000, seed=1), 1)
    commit(store, flows(2000, seed=2, source="proxies"), 2)  # another source: not read
    stage = build_stage(store, CLASSIC, "conversations")
    assert stage.run_once(INGESTED) == {"read": 3000, "aggregated": 3000, "emitted": 0}
    commit(store, flows(2500, seed=3), 3)
    counts = stage.run_once(LATE)
    assert counts["read"] == 2500
    select = "sum(bytes), sum(packets), count(*), min(start_time), max(end_time)"
    want = naive(expected(store, select, KEYS))
    columns = [*KEYS, "bin_start", "bytes", "packets", "records", "start_time", "end_time"]
    assert naive(got(store, "agg_conversations", columns)) == want
    assert counts["emitted"] == len(want)
    assert sum(r[-3] for r in want) == 5500  # records of routers, none of proxies
    types = store.query(
        "SELECT column_name AS c, data_type AS t FROM information_schema.columns"
        " WHERE table_name = 'agg_conversations'"
    ).to_pylist()
    assert {r["c"]: r["t"] for r in types} == {
        "src_ip": "VARCHAR",
        "dst_ip": "VARCHAR",
        "src_port": "USMALLINT",
        "dst_port": "USMALLINT",
        "protocol": "UTINYINT",
        "bin_start": "TIMESTAMP WITH TIME ZONE",
        "bin_end": "TIMESTAMP WITH TIME ZONE",
        "bytes": "UBIGINT",
        "packets": "UBIGINT",
        "records": "BIGINT",
        "start_time": "TIMESTAMP WITH TIME ZONE",
        "end_time": "TIMESTAMP WITH TIME ZONE",
    }
    assert stage.run_once(LATE + 1) == {"read": 0, "aggregated": 0, "emitted": 0}


EVERY = """\
stages:
  - name: hosts
    type: aggregate
    input: routers
    where: "protocol = 6 and dst_port != 53"
    by: [src_ip]
    bin_s: 300
    accumulate:
      total: sum(bytes)
      flows: count()
      with_port: count(dst_port)
      smallest: min(bytes)
      largest: max(packets)
      mean: avg(bytes)
      peers: count_distinct(dst_ip)
      ports: count_distinct(dst_port)
      first_bytes: first(bytes)
      last_port: last(src_port)
"""


@pytest.mark.parametrize("span_s", [1200.0, 200.0])  # several bins per read; one bin
def test_every_accumulator_and_where_equal_sql(tmp_path: Path, span_s: float) -> None:
    store = open_store(tmp_path)
    for sequence, seed in enumerate((11, 12, 13), 1):
        commit(store, flows(1500, seed=seed, span_s=span_s), sequence)
    stage = build_stage(store, EVERY, "hosts")
    # two reads: first/last and distinct sets must combine across batches
    stage.config = stage.config.model_copy(update={"batch_records": 2000})
    assert [stage.run_once(INGESTED)["read"] for _ in range(3)] == [2000, 2000, 500]
    stage.run_once(LATE)
    select = (
        "sum(bytes), count(*), count(dst_port), min(bytes), max(packets), avg(bytes),"
        " count(DISTINCT dst_ip), count(DISTINCT dst_port),"
        " arg_min(bytes, record_id), arg_max(src_port, record_id)"
    )
    want = naive(expected(store, select, ["src_ip"], "protocol = 6 AND dst_port != 53"))
    columns = ["src_ip", "bin_start", "total", "flows", "with_port", "smallest", "largest"]
    columns += ["mean", "peers", "ports", "first_bytes", "last_port"]
    have = naive(got(store, "agg_hosts", columns))
    assert len(have) == len(want) >= 6
    for mine, theirs in zip(have, want, strict=True):
        assert mine[:7] == theirs[:7]
        assert mine[7] == pytest.approx(theirs[7], rel=1e-12)
        assert mine[8:] == theirs[8:]
    assert stage.status()["aggregated_records"] == sum(r[3] for r in want)


def test_a_stage_rebuilt_on_the_same_store_loses_and_doubles_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    commit(store, flows(1000, seed=21), 1)
    first = build_stage(store, CLASSIC, "conversations")
    first.run_once(T0 + 300)  # nothing closed yet (bin 0 closes at 360 s with grace)
    commit(store, flows(1000, seed=23), 2)
    # bins 0 and 1 closed: their partial rows are deleted from the saved state, the new
    # batch's others appended (the state table holds uncombined partials)
    assert first.run_once(T0 + 700)["emitted"] > 0
    saved = store.query('SELECT count(*) AS n FROM "_agg_state_conversations"').column("n")
    assert saved[0].as_py() == first.aggregator.state().num_rows > 0
    open_groups = first.status()["open_groups"]
    assert 0 < open_groups < saved[0].as_py()  # a group in both batches has two rows
    commit(store, flows(2000, seed=22), 3)
    second = build_stage(store, CLASSIC, "conversations")  # a manager restart
    assert second.status()["open_groups"] == open_groups
    second.run_once(LATE)
    totals = store.query(
        "SELECT sum(bytes) AS b, sum(records) AS n FROM agg_conversations"
    ).to_pylist()[0]
    raw = store.query("SELECT sum(bytes) AS b, count(*) AS n FROM records").to_pylist()[0]
    assert (totals["b"], totals["n"]) == (raw["b"], 4000)
    select = "sum(bytes), count(*)"
    # a group whose bin closed before the restart got its late records as a second row
    have = store.query(
        "SELECT src_ip, dst_ip, src_port, dst_port, protocol, bin_start, sum(bytes) AS b,"
        " sum(records) AS n FROM agg_conversations GROUP BY ALL"
    )
    assert naive(rows(have, [*KEYS, "bin_start", "b", "n"])) == naive(expected(store, select, KEYS))


def test_a_failed_round_is_undone_and_redone(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    commit(store, flows(1000, seed=31), 1)
    stage = build_stage(store, CLASSIC, "conversations")
    store.read_only = True  # the transaction refuses: nothing of the round may stay
    with pytest.raises(Exception, match="read-only"):
        stage.run_once(LATE)
    store.read_only = False
    assert stage.status()["open_groups"] == 0 and stage.watermark == 0
    stage.run_once(LATE)
    n = store.query("SELECT sum(records) AS n FROM agg_conversations").column("n")[0]
    assert n.as_py() == 1000


PIECES = """\
stages:
  - {name: pieces, type: aggregate, input: routers, by: [src_ip, dst_ip], max_records: 7}
  - {name: chunks, type: aggregate, input: routers, by: [src_ip], max_bytes: 20000000}
"""


def test_max_records_cuts_a_group_into_exact_pieces(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    commit(store, flows(1200, seed=41), 1)
    stage = build_stage(store, PIECES, "pieces")
    stage.config = stage.config.model_copy(update={"batch_records": 500})
    stage.run_once(T0)  # no bin closed: only full pieces come out
    stage.run_once(T0)
    early = store.query("SELECT DISTINCT records FROM agg_pieces").column("records")
    assert early.to_pylist() == [7]
    stage.run_once(LATE)
    piece = (
        "(row_number() OVER (PARTITION BY src_ip, dst_ip, epoch_us(start_time) // 300000000"
        " ORDER BY record_id) - 1) // 7"
    )
    want = store.query(
        f"WITH r AS (SELECT *, {piece} AS piece FROM records) SELECT src_ip, dst_ip,"
        " count(*) AS records, sum(bytes) AS bytes, min(start_time) AS start_time"
        " FROM r GROUP BY src_ip, dst_ip, epoch_us(start_time) // 300000000, piece"
    )
    columns = ["src_ip", "dst_ip", "records", "bytes", "start_time"]
    assert got(store, "agg_pieces", columns) == rows(want, columns)
    assert stage.status()["open_groups"] == 0


def test_max_bytes_ends_a_piece_with_the_record_that_passes_a_multiple(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    commit(store, flows(900, seed=42), 1)
    commit(store, flows(900, seed=43), 2)
    stage = build_stage(store, PIECES, "chunks")
    stage.config = stage.config.model_copy(update={"batch_records": 700})
    for _ in range(3):
        stage.run_once(T0)
    stage.run_once(LATE)
    before = (
        "coalesce(sum(bytes) OVER (PARTITION BY src_ip, epoch_us(start_time) // 300000000"
        " ORDER BY record_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)"
    )
    want = store.query(
        f"WITH r AS (SELECT *, ({before}) // 20000000 AS piece FROM records) SELECT src_ip,"
        " count(*) AS records, sum(bytes) AS bytes"
        " FROM r GROUP BY src_ip, epoch_us(start_time) // 300000000, piece"
    )
    columns = ["src_ip", "records", "bytes"]
    assert got(store, "agg_chunks", columns) == rows(want, columns)
    assert len(want) > 2 * 6 * 4  # pieces beyond one per host and bin


BINS = """\
stages:
  - {name: minutes, type: aggregate, input: routers, by: [protocol], bin_s: 60, grace_s: 30}
  - {name: aged, type: aggregate, input: routers, by: [protocol], bin_s: 86400, max_age_s: 100}
"""


def test_a_bin_is_emitted_once_its_end_and_grace_have_passed(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    commit(store, flows(600, seed=51, span_s=300), 1)
    stage = build_stage(store, BINS, "minutes")
    emitted = [
        stage.run_once(now)["emitted"]
        for now in (T0 + 89, T0 + 90, T0 + 149, T0 + 150, T0 + 329, T0 + 330, T0 + 1000)
    ]
    assert emitted == [0, 2, 0, 2, 4, 2, 0]  # two protocols per minute, five minutes
    want = store.query(
        "SELECT protocol, make_timestamp((epoch_us(start_time) // 60000000) * 60000000)"
        " AS bin_start, count(*) AS records FROM records GROUP BY ALL"
    )
    have = store.query("SELECT protocol, bin_start, records FROM agg_minutes")
    columns = ["protocol", "bin_start", "records"]
    assert naive(rows(have, columns)) == naive(rows(want, columns))


def test_max_age_emits_an_open_group_and_restarts_it(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    commit(store, flows(300, seed=61, span_s=60), 1)
    stage = build_stage(store, BINS, "aged")
    assert stage.run_once(T0)["emitted"] == 0  # opened at T0
    assert stage.run_once(T0 + 99)["emitted"] == 0
    commit(store, flows(200, seed=62, span_s=60), 2)
    assert stage.run_once(T0 + 100)["emitted"] == 2  # aged: both protocols, 500 records
    commit(store, flows(100, seed=63, span_s=60), 3)
    assert stage.run_once(T0 + 150)["emitted"] == 0  # restarted at T0 + 150
    assert stage.run_once(T0 + 250)["emitted"] == 2
    counts = store.query("SELECT sum(records) AS n FROM agg_aged").column("n")[0].as_py()
    assert counts == 600


AGAIN = """\
procedures:
  - {name: tagged, trigger: pairs}
stages:
  - name: pairs
    type: aggregate
    input: routers
    by: [src_ip, dst_ip]
    output: records
    grace_s: 0
  - name: per-host
    type: aggregate
    input: tagged
    by: [src_ip]
    grace_s: 0
    accumulate: {bytes: sum(bytes), flows: sum(records), pairs: count()}
"""


def test_output_records_are_enriched_and_aggregated_again(tmp_path: Path) -> None:
    from netdistill.enhance.plan import build_enhancer

    store = open_store(tmp_path)
    commit(store, flows(2000, seed=71), 1)
    scheme = parse_scheme(
        "sources:\n  - {name: routers, type: netflow, listen: ['127.0.0.1:0']}\n" + AGAIN
    )
    enhancer = build_enhancer(scheme, store)
    assert enhancer is not None
    pairs = build_stage(store, AGAIN, "pairs", enhance=enhancer)
    per_host = build_stage(store, AGAIN, "per-host", enhance=enhancer)
    pairs.run_once(LATE)
    per_host.run_once(LATE)
    made = store.query(
        "SELECT source, procedure, count(*) AS n, sum(records) AS r FROM records"
        " WHERE source = 'pairs' GROUP BY ALL"
    ).to_pylist()
    want_pairs = store.query(
        "SELECT count(*) AS n FROM (SELECT DISTINCT src_ip, dst_ip, epoch_us(start_time)"
        " // 300000000 FROM records WHERE source = 'routers')"
    ).column("n")[0]
    assert made == [{"source": "pairs", "procedure": "tagged", "n": want_pairs.as_py(), "r": 2000}]
    want = store.query(
        "SELECT src_ip, sum(bytes) AS bytes, count(*) AS flows,"
        " count(DISTINCT dst_ip) AS pairs FROM records WHERE source = 'routers'"
        " GROUP BY src_ip, epoch_us(start_time) // 300000000"
    )
    columns = ["src_ip", "bytes", "flows", "pairs"]
    assert got(store, "agg_per-host", columns) == rows(want, columns)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{name: a, type: aggregate, input: routers, by: [src_ipp]}",
            "'routers' has no field 'src_ipp'",
        ),
        (
            "{name: a, type: aggregate, input: routers, by: [src_ip],"
            " accumulate: {x: 'median(bytes)'}}",
            "unknown function 'median'",
        ),
        (
            "{name: a, type: aggregate, input: routers, by: [src_ip], accumulate: {x: 'sum(url)'}}",
            "stage 'a': x: sum needs a number field",
        ),
        (
            "{name: a, type: aggregate, input: routers, by: [src_ip], where: 'bytez > 1'}",
            "stage 'a': where 'bytez > 1'",
        ),
        (
            "{name: a, type: aggregate, input: routers, by: [src_ip], time_field: bytes}",
            "time_field 'bytes' is not a timestamp",
        ),
        ("{name: a, type: aggregate, input: nowhere, by: [src_ip]}", "reads 'nowhere'"),
    ],
)
def test_scheme_errors_name_the_stage_and_the_problem(entry: str, message: str) -> None:
    with pytest.raises(SchemeError) as info:
        parse_scheme(
            "sources:\n  - {name: routers, type: netflow, listen: ['127.0.0.1:0']}\n"
            f"stages:\n  - {entry}\n",
            filename="s.yaml",
        )
    assert any(message in p for p in info.value.problems), info.value.problems
