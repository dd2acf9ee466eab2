"""The filter stage and procedure ``where``: records kept and dropped, counted once per
committed batch, on the pipeline and on a remote gatherer's plan; scheme errors."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from aggregate_testdata import flows

from netdistill.delivery.pipeline import Pipeline
from netdistill.enhance.plan import Enhancer, build_enhancer
from netdistill.errors import SchemeError
from netdistill.gatherer.main import source_filters
from netdistill.records.batch import DecodeResult, SourceCounters
from netdistill.records.schema import conform
from netdistill.scheme.load import parse_scheme
from netdistill.store.duckdb import DuckDBStore

SCHEME = """\
sources:
  - {name: routers, type: netflow, listen: ["127.0.0.1:0"]}
procedures:
  - {name: web, trigger: routers, where: "dst_port in (80, 443)"}
  - {name: everything, trigger: routers}
stages:
  - {name: no-dns, type: filter, input: routers, where: "not (protocol = 17 and dst_port = 53)"}
  - {name: big, type: filter, input: web, where: "bytes >= 500000 and src_ip in 10.0.0.0/30"}
"""

NOT_DNS = "NOT (protocol = 17 AND dst_port = 53)"


def count(table: pa.Table, where: str) -> int:
    """An independent count: DuckDB SQL over the same batch."""
    connection = duckdb.connect()
    connection.register("t", table)
    row = connection.execute(f"SELECT count(*) FROM t WHERE {where}").fetchone()
    assert row is not None
    return int(row[0])


def test_source_filter_procedure_where_and_output_filter(tmp_path: Path) -> None:
    batch = conform(flows(4000, seed=5))
    enhancer = build_enhancer(parse_scheme(SCHEME))
    assert enhancer is not None
    out = enhancer("routers", batch)
    kept = count(batch, NOT_DNS)
    web = count(batch, f"{NOT_DNS} AND dst_port IN (80, 443)")
    # 10.0.0.0/30 holds 10.0.0.1 .. 10.0.0.3 of the test hosts
    big = count(
        batch,
        f"{NOT_DNS} AND dst_port IN (80, 443) AND bytes >= 500000"
        " AND src_ip IN ('10.0.0.1', '10.0.0.2', '10.0.0.3')",
    )
    connection = duckdb.connect()
    connection.register("out", out)
    by_procedure = dict(
        connection.execute("SELECT procedure, count(*) FROM out GROUP BY ALL").fetchall()
    )
    assert by_procedure == {"web": big, "everything": kept}
    assert 0 < big < web < kept < 4000
    # nothing is counted before the batch is committed, and a retry counts once
    assert [f["dropped"] for f in enhancer.filter_status()] == [0, 0, 0]
    enhancer("routers", batch)
    enhancer.committed("routers")
    status = {f["name"]: f for f in enhancer.filter_status()}
    assert status["no-dns"] | {"records": 4000, "dropped": 4000 - kept} == status["no-dns"]
    assert (status["web.where"]["records"], status["web.where"]["dropped"]) == (kept, kept - web)
    assert (status["big"]["records"], status["big"]["dropped"]) == (web, web - big)
    assert status["big"]["input"] == "web" and status["web.where"]["kind"] == "procedure"


class ListSource:
    """Hands out prepared batches, one per poll."""

    name = "routers"

    def __init__(self, batches: list[pa.Table]) -> None:
        self.batches = batches
        self.counters = SourceCounters()

    def start(self) -> None: ...
    def stop(self) -> None: ...

    def poll(self, max_datagrams: int) -> DecodeResult:
        if self.batches:
            return DecodeResult(self.batches.pop(0))
        return DecodeResult(conform(pa.table({"bytes": pa.array([], pa.uint64())})))

    def pending(self) -> int:
        return len(self.batches)

    def flush(self) -> DecodeResult:
        return self.poll(0)

    def status(self) -> dict[str, object]:
        return {}


class OnceFailingStore:
    """The real store, refusing the first record commit (the pipeline retries it)."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store, self.failed = store, False

    def commit(self, batch: pa.Table, *, origin: str, sequence: int) -> int:
        if not self.failed:
            self.failed = True
            raise OSError("disk full")
        return self.store.commit(batch, origin=origin, sequence=sequence)

    def commit_quarantine(self, items: list[object]) -> int:
        return 0

    def last_sequence(self, origin: str) -> int:
        return self.store.last_sequence(origin)


def test_pipeline_commits_what_the_filters_keep_and_shows_the_drops(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    batches = [conform(flows(3000, seed=s)) for s in (6, 7)]
    kept = [count(b, NOT_DNS) for b in batches]
    scheme = parse_scheme(
        SCHEME.replace("procedures:", "unused:").split("unused:")[0]
        + (
            "stages:\n  - {name: no-dns, type: filter, input: routers, "
            'where: "not (protocol = 17 and dst_port = 53)"}\n'
        )
    )
    pipeline = Pipeline(
        [ListSource(list(batches))], OnceFailingStore(store), process=build_enhancer(scheme)
    )
    pipeline.step()  # the commit fails: the batch is kept and processed again
    pipeline.step()
    pipeline.step()
    stored = store.query(
        "SELECT count(*) AS n, count(*) FILTER (WHERE protocol = 17 AND dst_port = 53) AS dns"
        " FROM records"
    ).to_pylist()
    assert stored == [{"n": sum(kept), "dns": 0}]
    (status,) = pipeline.status()["filters"]  # type: ignore[misc]
    assert (status["records"], status["dropped"]) == (6000, 6000 - sum(kept))


def test_a_gatherer_gets_the_filters_of_its_sources_in_its_plan(tmp_path: Path) -> None:
    from netdistill.manager.plan import PlanService

    path = tmp_path / "scheme.yaml"
    path.write_text(
        "sources:\n"
        "  - {name: edge-flows, type: netflow, listen: ['127.0.0.1:0'], gatherer: edge}\n"
        "  - {name: core-flows, type: netflow, listen: ['127.0.0.1:0'], gatherer: core}\n"
        "stages:\n"
        "  - {name: tcp, type: filter, input: edge-flows, where: 'protocol = 6'}\n"
        "  - {name: udp, type: filter, input: core-flows, where: 'protocol = 17'}\n"
    )
    store = DuckDBStore(tmp_path / "m.duckdb")
    plan = PlanService(path, store).plan_for("edge")
    assert [(f["name"], f["input"], f["where"]) for f in plan["filters"]] == [
        ("tcp", "edge-flows", "protocol = 6")
    ]
    assert plan["filters"][0]["types"]["protocol"] == "uint8"
    hook = source_filters(plan["filters"])
    assert isinstance(hook, Enhancer)
    batch = conform(flows(2000, seed=8, source="edge-flows"))
    assert hook("edge-flows", batch).num_rows == count(batch, "protocol = 6")
    assert hook("core-flows", batch).num_rows == 2000  # not its input
    assert source_filters([]) is None


def test_a_field_the_batch_lacks_is_null_and_fails_the_expression() -> None:
    enhancer = build_enhancer(
        parse_scheme(
            "sources:\n  - {name: routers, type: netflow, listen: ['127.0.0.1:0']}\n"
            "stages:\n  - {name: named, type: filter, input: routers,"
            " where: \"user_name like 'a%' or user_name is null and bytes > 1000000\"}\n"
        )
    )
    assert enhancer is not None
    batch = flows(1000, seed=9)  # no user_name column at all
    assert enhancer("routers", batch).num_rows == count(batch, "bytes > 1000000")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "stages:\n  - {name: f, type: filter, input: routers, where: 'byts > 1'}\n",
            "s.yaml:4:52: stages.0.where: stage 'f': where 'byts > 1': column 1: unknown field"
            " 'byts'",
        ),
        (
            "stages:\n  - {name: f, type: filter, input: routers, where: 'src_ip > 3'}\n",
            "stage 'f': where 'src_ip > 3'",
        ),
        (
            "stages:\n  - {name: f, type: filter, input: route, where: 'bytes > 1'}\n",
            "reads 'route'",
        ),
        (
            "procedures:\n  - {name: p, trigger: routers, where: 'porto = 6'}\n",
            "s.yaml:4:40: procedures.0.where: procedure 'p': where 'porto = 6'",
        ),
        (
            "procedures:\n  - {name: p, trigger: nowhere}\n",
            "no source named 'nowhere' (sources: routers)",
        ),
    ],
)
def test_scheme_errors_name_the_filter_and_the_field(text: str, message: str) -> None:
    with pytest.raises(SchemeError) as info:
        parse_scheme(
            "sources:\n  - {name: routers, type: netflow, listen: ['127.0.0.1:0']}\n" + text,
            filename="s.yaml",
        )
    assert any(message in p for p in info.value.problems), info.value.problems
