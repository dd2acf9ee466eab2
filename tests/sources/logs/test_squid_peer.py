"""A real Squid on loopback proxies requests to a local HTTP server; its access.log must
give exactly the records of the requests sent, by ``netdistill import`` and by a live tail.

Ground truth is computed independently: the requests the test sent (URL, expected
status, body size) and the log file read with ``str.split`` in the test.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import peers
import pytest

from netdistill.delivery.pipeline import Pipeline
from netdistill.sources.logs.config import FileSourceConfig
from netdistill.sources.logs.listener import FileSource
from netdistill.store.duckdb import DuckDBStore

pytestmark = pytest.mark.integration

SIZES = {f"/f{i}.bin": 100 * i + i * i for i in range(1, 13)}  # path → body bytes


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        size = SIZES.get(self.path.split("?")[0])
        if size is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(b"x" * size)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def origin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def squid():
    peers.require("squid")
    # squid drops root for the 'proxy' user, who cannot enter pytest's 0700 tmp_path
    work = Path(tempfile.mkdtemp(prefix="netdistill-squid-"))
    os.chmod(work, 0o777)
    port = peers.free_tcp_port()
    conf = work / "squid.conf"
    conf.write_text(
        f"http_port 127.0.0.1:{port}\n"
        f"pid_filename {work}/squid.pid\n"
        f"coredump_dir {work}\n"
        f"cache_log {work}/cache.log\n"
        f"access_log stdio:{work}/access.log squid\n"
        "cache deny all\n"
        "cache_mem 8 MB\n"
        "logfile_rotate 0\n"
        "strip_query_terms off\n"
        "shutdown_lifetime 0 seconds\n"
        "http_access allow localhost\n"
        "http_access deny all\n"
    )
    subprocess.run(["squid", "-k", "parse", "-f", str(conf)], check=True, capture_output=True)
    output = open(work / "squid.out", "wb")  # noqa: SIM115 - closed at the end
    proc = subprocess.Popen(
        ["squid", "-N", "-d", "1", "-f", str(conf)], stdout=output, stderr=output
    )
    deadline = time.monotonic() + 30
    # ready when squid says so: even a bare connection would be logged
    # (NONE_NONE/000 error:transaction-end-before-headers)
    while b"Accepting HTTP Socket connections" not in (work / "squid.out").read_bytes():
        if time.monotonic() > deadline or proc.poll() is not None:
            peers.stop_process(proc)
            pytest.fail(f"squid did not start: {(work / 'squid.out').read_text()[-2000:]}")
        time.sleep(0.1)
    try:
        yield port, conf, work / "access.log"
    finally:
        peers.stop_process(proc, timeout_s=20)
        output.close()
        shutil.rmtree(work, ignore_errors=True)


def _send_requests(proxy_port: int, origin_port: int) -> list[tuple[str, int, int]]:
    """The requests: (URL, status, body bytes); 404s included, each path twice."""
    sent = []
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy_port}", timeout=10) as client:
        for round_ in range(2):
            for path in [*SIZES, "/missing"]:
                url = f"http://127.0.0.1:{origin_port}{path}?r={round_}"
                reply = client.get(url)
                sent.append((url, reply.status_code, len(reply.content)))
    return sent


def _flush_log(conf: Path, log: Path, n_lines: int) -> None:
    """``squid -k rotate`` with logfile_rotate 0 reopens the log: buffered lines are written."""
    deadline = time.monotonic() + 20
    while True:
        subprocess.run(["squid", "-k", "rotate", "-f", str(conf)], check=True, capture_output=True)
        time.sleep(0.3)
        if log.exists() and log.read_bytes().count(b"\n") >= n_lines:
            return
        assert time.monotonic() < deadline, "squid did not write its access log"


def _logged_totals(log: Path) -> tuple[int, int]:
    """Lines and the sum of the size field (5th), read directly from squid's file."""
    fields = [line.split() for line in log.read_text().splitlines() if line.strip()]
    return len(fields), sum(int(f[4]) for f in fields)


def test_squid_log_imported_and_tailed_gives_each_request_once(tmp_path, squid, origin):
    proxy_port, conf, log = squid
    tail_dir = tmp_path / "tail"
    source = FileSource(
        FileSourceConfig(
            type="file", name="proxy", paths=[str(log)], format="squid", poll_interval_s=0.05
        ),
        state_dir=tail_dir / "state",
    )
    tail_store = DuckDBStore(tail_dir / "records.duckdb")
    for spec in source.fields:
        tail_store.add_field(spec.name, spec.type)
    pipeline = Pipeline([source], tail_store, gatherer="test")

    sent = _send_requests(proxy_port, origin)
    _flush_log(conf, log, len(sent))
    lines, logged_bytes = _logged_totals(log)
    assert lines == len(sent) == 26
    # squid's size counts headers too: more than the bodies, never less
    assert logged_bytes > sum(size for _, _, size in sent)

    deadline = time.monotonic() + 20
    while pipeline.committed_records < len(sent) and time.monotonic() < deadline:
        pipeline.step()
        time.sleep(0.05)
    pipeline.stop()
    tailed = tail_store.query(
        "select url, http_status, http_method, bytes, src_ip, dst_ip, service, cache_result "
        "from records order by record_id"
    ).to_pylist()
    tail_store.close()

    imported_dir = tmp_path / "imported"
    peers.netdistill("import", "--data-dir", str(imported_dir), "--format", "squid", str(log))
    imported = peers.query(
        imported_dir,
        "select url, http_status, http_method, bytes, src_ip, dst_ip, service, cache_result "
        "from records order by record_id",
    )
    for rows in (tailed, imported):
        assert len(rows) == len(sent)
        assert sum(int(r["bytes"]) for r in rows) == logged_bytes
        assert [(r["url"], r["http_status"]) for r in rows] == [(u, s) for u, s, _ in sent]
        assert {r["http_method"] for r in rows} == {"GET"}
        assert {r["src_ip"] for r in rows} == {"127.0.0.1"}
        assert {r["dst_ip"] for r in rows} == {"127.0.0.1"}
        assert {r["service"] for r in rows} == {"http"}
        assert {r["cache_result"] for r in rows} <= {"TCP_MISS", "TCP_MISS_ABORTED"}
    assert tailed == imported
    assert peers.query(imported_dir, "select count(*) as n from quarantine") == [{"n": 0}]


def test_squid_lines_without_a_request_are_squid_internal(tmp_path, squid, origin):
    """A bare connection (health check) and an unparseable request make Squid log
    ``error:`` lines; they are records of service ``squid-internal``, never ``http``."""
    proxy_port, conf, log = squid
    bare = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    bare.close()
    garbage = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    garbage.sendall(b"GARBAGE\r\n\r\n")
    assert garbage.recv(12) == b"HTTP/1.1 400"
    garbage.close()
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy_port}", timeout=10) as client:
        reply = client.get(f"http://127.0.0.1:{origin}/f1.bin")
    assert reply.status_code == 200
    _flush_log(conf, log, 3)
    fields = [line.split() for line in log.read_text().splitlines() if line.strip()]
    # squid's own words, read with str.split: method, URL, result code
    assert sorted((f[5], f[6], f[3]) for f in fields) == sorted(
        [
            ("-", "error:transaction-end-before-headers", "NONE_NONE/000"),
            ("GARBAGE", "error:invalid-request", "NONE_NONE/400"),
            ("GET", f"http://127.0.0.1:{origin}/f1.bin", "TCP_MISS/200"),
        ]
    )
    data = tmp_path / "data"
    peers.netdistill("import", "--data-dir", str(data), "--format", "squid", str(log))
    rows = peers.query(
        data,
        "select service, http_method, http_status, url, squid_error, bytes from records "
        "order by service, squid_error",
    )
    by_size = {f[6]: int(f[4]) for f in fields}
    assert rows == [
        {
            "service": "http",
            "http_method": "GET",
            "http_status": 200,
            "url": f"http://127.0.0.1:{origin}/f1.bin",
            "squid_error": None,
            "bytes": by_size[f"http://127.0.0.1:{origin}/f1.bin"],
        },
        {
            "service": "squid-internal",
            "http_method": "GARBAGE",
            "http_status": 400,
            "url": None,
            "squid_error": "invalid-request",
            "bytes": by_size["error:invalid-request"],
        },
        {
            "service": "squid-internal",
            "http_method": None,
            "http_status": None,
            "url": None,
            "squid_error": "transaction-end-before-headers",
            "bytes": 0,
        },
    ]
