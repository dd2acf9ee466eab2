"""A manager creates the fields of every source of its scheme, whichever gatherer runs
it, when it starts and when its scheme changes — not when it serves a plan (issue 12).

A real ``ManagerProcess`` (DuckDB store, uvicorn on a loopback port); no gatherer ever
asks it for a plan.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import peers
import pytest

from netdistill.errors import FieldError
from netdistill.manager.serve import ManagerProcess
from netdistill.scheme.load import parse_scheme

TOKEN_SHA256 = hashlib.sha256(b"t").hexdigest()


def head(port: int) -> str:
    return (
        f"manager: {{api_port: {port}}}\n"
        f"gatherers:\n  - {{name: g1, token_sha256: {TOKEN_SHA256}}}\n"
        "sources:\n"
    )


RADIUS = (
    "  - {type: radius, name: rad, gatherer: g1, listen: ['127.0.0.1:18130'],\n"
    "     clients: {127.0.0.1: {secret: s3cret}}}\n"
)
SQUID = (
    "  - {type: file, name: proxy, gatherer: g1, paths: [/nonexistent/access.log], format: squid}\n"
)
SYSLOG = (
    "  - {type: syslog, name: fw, gatherer: g1, listen: ['udp://127.0.0.1:5514'],\n"
    "     formats: [netfilter]}\n"
)


@pytest.fixture
def manager(tmp_path: Path):
    scheme = tmp_path / "scheme.yaml"
    scheme.write_text(head(peers.free_tcp_port()) + RADIUS + SQUID)
    process = ManagerProcess(scheme, tmp_path / "data")
    process.start()
    yield process
    process.stop()


def test_fields_of_a_gatherers_sources_exist_before_any_plan(manager: ManagerProcess) -> None:
    fields = manager.store.fields
    for name, type_ in (
        ("acct_status_type", "string"),  # RADIUS: fields declared by the class
        ("bytes_in", "uint64"),
        ("http_status", "uint16"),  # Squid: declared by the line format of the config
        ("cache_result", "string"),
    ):
        assert fields[name].type == type_


def test_a_reload_creates_the_new_sources_fields_or_is_refused(manager: ManagerProcess) -> None:
    assert "log_prefix" not in manager.store.fields
    path = manager.scheme_path
    path.write_text(path.read_text() + SYSLOG)
    admin = {"authorization": f"Bearer {manager.manager.token}"}
    url = manager.manager.api_url
    assert httpx.post(f"{url}/api/scheme/reload", headers=admin).status_code == 200
    assert manager.store.fields["log_prefix"].type == "string"
    # an operator made a field another type: a scheme whose source produces it is refused
    manager.store.alter_field("http_status", "string")
    refused = httpx.post(f"{url}/api/scheme/reload", headers=admin)
    assert refused.status_code == 400
    assert "'http_status' as uint16, but records has it as string" in refused.text
    assert manager.plan.last_reload_error


def test_a_live_change_creates_fields_before_anything_changes(manager: ManagerProcess) -> None:
    text = manager.scheme_path.read_text() + SYSLOG
    manager.apply_scheme(parse_scheme(text))
    assert "log_prefix" in manager.store.fields
    manager.store.alter_field("log_prefix", "uint32")
    with pytest.raises(FieldError, match="log_prefix"):
        manager.apply_scheme(parse_scheme(text.replace("fw,", "fw2,")))
    assert [s.name for s in manager.plan.scheme.sources] == ["rad", "proxy", "fw"]
