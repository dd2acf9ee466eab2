"""Procedures: scheme errors at file:line:column, the change rule, the pipeline end to end,
and the catalogue API."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from netdistill.delivery.pipeline import Pipeline
from netdistill.enhance.api import ProcedureBook, procedures_router
from netdistill.enhance.config import check_procedure_change
from netdistill.enhance.plan import build_enhancer, distinct_rows
from netdistill.errors import ProcedureChangeError, SchemeError
from netdistill.records.batch import DecodeResult, SourceCounters
from netdistill.records.schema import conform
from netdistill.scheme.load import parse_scheme
from netdistill.store.duckdb import DuckDBStore

SCHEME = """\
sources:
  - name: nf
    type: netflow
lookups:
  - {{name: Ports, type: ports}}
  - name: Cust
    type: prefix
    csv: {csv}
    values: {{account_id: string, site: string}}
  - name: Apps
    type: categorizer
    inputs: [protocol, dst_port]
    rules:
      - {{category: dns, when: "protocol = 17 and dst_port = 53"}}
      - {{category: web, when: "dst_port in (80, 443)"}}
    default: other
procedures:
  - name: routers
    trigger: nf
    add_fields: {{site: string, app: string}}
    fields:
      service: Ports.Service(protocol, dst_port).service
      account_id: Cust.Match(src_ip).account_id
      site: Cust.Match(src_ip).site
      app: Apps.Classify(protocol, dst_port).category
      src_host: Ports.Service(protocol, src_port).service
"""


@pytest.fixture
def scheme_text(tmp_path):
    csv = tmp_path / "cust.csv"
    csv.write_text("network,account_id,site\n10.0.0.0/8,acme,paris\n10.1.0.0/16,beta,lyon\n")
    return SCHEME.format(csv=csv)


def test_scheme_errors_at_file_line_column(scheme_text):
    bad = (
        scheme_text.replace("Cust.Match(src_ip).site", "Cust.Match(bytes).site")
        .replace("Apps.Classify(protocol, dst_port).category", "Apps.Clasify(protocol).category")
        .replace("trigger: nf", "trigger: nff")
    )
    with pytest.raises(SchemeError) as info:
        parse_scheme(bad, filename="s.yaml")
    assert info.value.problems == [
        "s.yaml:19:14: procedures.0.trigger: no source named 'nff' (sources: nf) (found 'nff')",
        "s.yaml:24:13: procedures.0.fields.site: column 12: input 'ip' of Cust.Match expects "
        "ip, found bytes of type uint64 (found 'Cust.Match(bytes).site')",
        "s.yaml:25:12: procedures.0.fields.app: column 6: lookup 'Apps' has no function "
        "'Clasify' (functions: Classify) (found 'Apps.Clasify(protocol).category')",
    ]


def test_unknown_lookup_type_and_duplicate_names(scheme_text):
    bad = scheme_text.replace("{name: Ports, type: ports}", "{name: Ports, type: portz}")
    with pytest.raises(SchemeError) as info:
        parse_scheme(bad, filename="s.yaml")
    assert info.value.problems[0].startswith(
        "s.yaml:5:25: lookups.0.type: unknown lookup type 'portz': expected one of ports,"
    )


def test_change_rule(scheme_text):
    procedure = parse_scheme(scheme_text).procedures[0]
    changed = procedure.model_copy(
        update={"fields": {"service": "Ports.Service(protocol, dst_port).service"}}
    )
    with pytest.raises(ProcedureChangeError, match="disable it before changing fields"):
        check_procedure_change(procedure, changed)
    with pytest.raises(ProcedureChangeError):  # disabling and changing in one step
        check_procedure_change(procedure, changed.model_copy(update={"enabled": False}))
    disabled = procedure.model_copy(update={"enabled": False})
    check_procedure_change(procedure, disabled)
    check_procedure_change(disabled, changed)
    check_procedure_change(procedure, procedure.model_copy(update={"description": "x"}))


def test_distinct_rows_multi_column():
    a = pa.array([1, 2, 1, None, 2, 1], pa.int64())
    b = pa.array(["x", "y", "x", "x", None, "z"])
    keys, inverse = distinct_rows([a, b])
    pairs = list(zip(keys[0].to_pylist(), keys[1].to_pylist(), strict=True))
    assert pairs == [(1, "x"), (2, "y"), (None, "x"), (2, None), (1, "z")]
    assert inverse.tolist() == [0, 1, 0, 2, 3, 4]


class ListSource:
    name = "nf"

    def __init__(self, tables):
        self.tables = tables
        self.counters = SourceCounters()

    def start(self): ...
    def stop(self): ...

    def poll(self, max_datagrams):
        return DecodeResult(self.tables.pop(0) if self.tables else conform(pa.table({})))

    def pending(self):
        return len(self.tables)

    def flush(self):
        return self.poll(0)

    def status(self):
        return {}


def test_pipeline_stores_enhanced_fields(scheme_text, tmp_path):
    scheme = parse_scheme(scheme_text)
    store = DuckDBStore(tmp_path / "r.duckdb")
    rng = np.random.default_rng(3)
    n = 5000
    src = rng.choice(["10.1.2.3", "10.9.9.9", "192.0.2.1", "10.1.0.7"], n)
    proto = rng.choice([6, 17], n).astype(np.uint8)
    dport = rng.choice([53, 80, 443, 22, 9999], n).astype(np.uint16)
    sport = rng.choice([25, 110, 40000], n).astype(np.uint16)
    batch = conform(
        pa.table(
            {
                "src_ip": src,
                "protocol": proto,
                "dst_port": dport,
                "src_port": sport,
                "bytes": np.arange(n, dtype=np.uint64),
            }
        )
    )
    try:
        enhancer = build_enhancer(scheme, store)
        pipeline = Pipeline([ListSource([batch])], store, process=enhancer)
        assert pipeline.step() == n
        got = store.query(
            "SELECT bytes, src_ip, service, account_id, site, app, src_host "
            "FROM records ORDER BY bytes"
        ).to_pylist()
    finally:
        store.close()
    services = {
        (6, 53): "domain",
        (17, 53): "domain",
        (6, 80): "http",
        (17, 80): None,
        (6, 443): "https",
        (17, 443): "https",
        (6, 22): "ssh",
        (17, 22): None,
    }
    hosts = {(6, 25): "smtp", (17, 25): None, (6, 110): "pop3", (17, 110): None}
    customers = {
        "10.1.2.3": ("beta", "lyon"),
        "10.1.0.7": ("beta", "lyon"),
        "10.9.9.9": ("acme", "paris"),
        "192.0.2.1": (None, None),
    }
    assert len(got) == n
    for i, row in enumerate(got):
        p, d, s = int(proto[i]), int(dport[i]), int(sport[i])
        app = "dns" if (p, d) == (17, 53) else "web" if d in (80, 443) else "other"
        assert row == {
            "bytes": i,
            "src_ip": src[i],
            "service": services.get((p, d)),
            "account_id": customers[src[i]][0],
            "site": customers[src[i]][1],
            "app": app,
            "src_host": hosts.get((p, s)),
        }, i


def test_catalogue_api(scheme_text):
    scheme = parse_scheme(scheme_text)
    changes = []
    book = ProcedureBook.from_scheme(scheme, on_change=changes.append)
    app = FastAPI()
    app.include_router(procedures_router(book, token="t0k"))
    client = TestClient(app)
    auth = {"authorization": "Bearer t0k"}
    assert client.get("/api/lookups").status_code == 401
    lookups = client.get("/api/lookups", headers=auth).json()
    assert lookups[0]["functions"] == [
        "Ports.Service(protocol:uint8, port:uint16) → (service:string)",
        "Ports.Port(service:string) → (protocol:uint8, port:uint16)",
    ]
    first = client.get(
        "/api/procedures/routers/options", params={"field": "next_hop"}, headers=auth
    ).json()
    assert [e["expression"] for e in first["end"]] == [
        "dst_ip", "next_hop", "post_nat_dst_ip", "post_nat_src_ip", "src_ip", "<none>"
    ]  # fmt: skip
    assert first["continue"] == [
        "Apps.Classify(protocol:uint8, dst_port:uint16) → (category:string)",
        "Cust.Match(ip:ip) → (account_id:string, site:string, network:string)",
        "Cust.MatchEither(ip:ip, other_ip:ip) → "
        "(account_id:string, site:string, network:string, matched_ip:ip)",
        "Ports.Port(service:string) → (protocol:uint8, port:uint16)",
        "Ports.Service(protocol:uint8, port:uint16) → (service:string)",
    ]
    step = client.get(
        "/api/procedures/routers/options",
        params={"field": "service", "chain": "Cust.Match(src_ip)"},
        headers=auth,
    ).json()
    assert step["end"] == [
        {
            "expression": "Cust.Match(src_ip).account_id",
            "display": "Cust...account_id",
            "type": "string",
        },
        {"expression": "Cust.Match(src_ip).site", "display": "Cust...site", "type": "string"},
        {"expression": "Cust.Match(src_ip).network", "display": "Cust...network", "type": "string"},
    ]
    assert step["continue"] == ["Ports.Port(service:string) → (protocol:uint8, port:uint16)"]
    ports = client.get(
        "/api/procedures/routers/options",
        params={"field": "bytes", "chain": "Ports.Port(service)"},
        headers=auth,
    ).json()
    assert [e["display"] for e in ports["end"]] == ["Ports...protocol", "Ports...port"]
    assert ports["continue"] == [
        "Apps.Classify(protocol:uint8, dst_port:uint16) → (category:string)",
        "Ports.Service(protocol:uint8, port:uint16) → (service:string)",
    ]
    body = {"trigger": "nf", "fields": {"service": "Ports.Service(protocol, dst_port).service"}}
    refused = client.put("/api/procedures/routers", json=body, headers=auth)
    assert refused.status_code == 409
    assert "disable it before changing" in refused.json()["detail"]
    assert client.post("/api/procedures/routers/disable", headers=auth).json()["enabled"] is False
    wrong = client.put(
        "/api/procedures/routers",
        json={"trigger": "nf", "fields": {"service": "Ports.Service(src_ip, dst_port).service"}},
        headers=auth,
    )
    assert wrong.status_code == 400
    assert wrong.json()["detail"] == [
        "fields.service: column 15: input 'protocol' of Ports.Service "
        "expects uint8, found src_ip of type ip"
    ]
    done = client.put("/api/procedures/routers", json={**body, "enabled": False}, headers=auth)
    assert done.status_code == 200 and done.json()["fields"] == body["fields"]
    assert client.post("/api/procedures/routers/enable", headers=auth).json()["enabled"] is True
    assert [p[0].enabled for p in changes] == [False, False, True]
    assert client.get("/api/procedures/nope", headers=auth).status_code == 404
