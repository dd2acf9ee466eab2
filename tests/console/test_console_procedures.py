"""Procedure screens' API: notation trees for the block diagrams, the type table for the
builder, and the procedures API driven with console sessions (viewer reads the End and
Continue lists, operator changes a disabled procedure only), each change audited."""

from __future__ import annotations

import pytest
from console_testkit import make_kit


@pytest.fixture
def kit(tmp_path):
    k = make_kit(tmp_path)
    yield k
    k.store.close()


def test_notation_trees(kit):
    viewer = kit.user("vera", "viewer")
    three = "LDAP.Person(RADIUS.User(src_ip, start_time).user_name).department"
    got = viewer.get(
        "/api/console/notation", params={"expression": [three, "src_ip", "DNS.Name(src_ip"]}
    ).json()
    assert got[0] == {
        "expression": three,
        "display": "LDAP...department",
        "tree": {
            "kind": "call",
            "lookup": "LDAP",
            "function": "Person",
            "application": "LDAP.Person(RADIUS.User(src_ip, start_time).user_name)",
            "output": "department",
            "text": three,
            "display": "LDAP...department",
            "args": [
                {
                    "kind": "call",
                    "lookup": "RADIUS",
                    "function": "User",
                    "application": "RADIUS.User(src_ip, start_time)",
                    "output": "user_name",
                    "text": "RADIUS.User(src_ip, start_time).user_name",
                    "display": "RADIUS...user_name",
                    "args": [
                        {"kind": "field", "name": "src_ip"},
                        {"kind": "field", "name": "start_time"},
                    ],
                }
            ],
        },
    }
    assert got[1] == {
        "expression": "src_ip",
        "display": "src_ip",
        "tree": {"kind": "field", "name": "src_ip"},
    }
    assert got[2]["expression"] == "DNS.Name(src_ip" and got[2]["column"] == 16


def test_types_table(kit):
    types = kit.user("vera", "viewer").get("/api/console/types").json()
    assert types["feeds"]["uint16"] == ["int64", "uint16", "uint32", "uint64"]
    assert types["feeds"]["ip"] == ["ip"]
    assert types["standard_fields"]["src_ip"] == "ip"
    assert types["standard_fields"]["dst_port"] == "uint16"


def test_builder_backend_with_sessions(kit):
    viewer = kit.user("vera", "viewer")
    operator = kit.user("otto", "operator")
    first = viewer.get("/api/procedures/routers/options", params={"field": "site"}).json()
    # End: every string field (the standard ones and the procedure's own "site"), then <none>
    assert [e["expression"] for e in first["end"]] == [
        "account_id",
        "dst_host",
        "exporter",
        "gatherer",
        "procedure",
        "service",
        "session_id",
        "site",
        "source",
        "src_host",
        "url",
        "user_name",
        "<none>",
    ]
    assert (
        "Cust.Match(ip:ip) → (account_id:string, site:string, network:string)"
        in (first["continue"])
    )
    step = viewer.get(
        "/api/procedures/routers/options", params={"field": "site", "chain": "Cust.Match(dst_ip)"}
    ).json()
    assert [e["display"] for e in step["end"]] == [
        "Cust...account_id",
        "Cust...site",
        "Cust...network",
    ]
    new = {
        "trigger": "nf",
        "add_fields": {"site": "string"},
        "fields": {
            "service": "Ports.Service(protocol, dst_port).service",
            "site": "Cust.Match(dst_ip).site",
        },
    }
    assert viewer.put("/api/procedures/routers", json=new).status_code == 403
    enabled = operator.put("/api/procedures/routers", json=new)
    assert enabled.status_code == 409
    assert operator.post("/api/procedures/routers/disable").json()["enabled"] is False
    saved = operator.put("/api/procedures/routers", json={**new, "enabled": False})
    assert saved.status_code == 200, saved.text
    assert viewer.get("/api/procedures/routers").json()["fields"] == new["fields"]
    bad = operator.put(
        "/api/procedures/routers",
        json={**new, "enabled": False, "fields": {"site": "Cust.Match(protocol).site"}},
    )
    assert bad.status_code == 400
    assert [(e["user_name"], e["action"]) for e in kit.audit()[-2:]] == [
        ("otto", "POST /api/procedures/routers/disable"),
        ("otto", "PUT /api/procedures/routers"),
    ]
