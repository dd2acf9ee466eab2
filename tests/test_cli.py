"""The CLI end to end, as an operator uses it: real processes, real sockets, real files."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from netdistill.store.duckdb import DuckDBStore

CAPTURES = next(
    (
        p / "shared" / "captures" / "akvorado-netflow"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "captures" / "akvorado-netflow").is_dir()
    ),
    Path(__file__).resolve().parents[1].parent / "shared" / "captures" / "akvorado-netflow",
)
NETDISTILL = [sys.executable, "-m", "netdistill"]


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*NETDISTILL, *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"netdistill {' '.join(args)} failed:\n{result.stderr}")
    return result


def query_json(data_dir: Path, sql: str) -> list[dict]:
    return json.loads(cli("query", "--data-dir", str(data_dir), "--format", "json", sql).stdout)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_config_reports_problems_and_exit_status(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("manager:\n  api_port: -1\nsources:\n  - {name: x, type: netflow, lisen: []}\n")
    result = cli("check-config", str(bad), check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{bad}:2:13: manager.api_port: Input should be greater than or equal to 0 (found -1)",
        f"{bad}:4:30: sources.0.lisen: unknown key (not a setting of this section; check its "
        "spelling)",
    ]
    good = tmp_path / "good.yaml"
    good.write_text("sources:\n  - {name: x, type: netflow, listen: ['127.0.0.1:2055']}\n")
    assert cli("check-config", str(good)).stdout.strip() == f"{good}: ok (1 source(s))"


def test_import_then_query_in_every_format(tmp_path):
    cli("import", "--data-dir", str(tmp_path), str(CAPTURES / "nfv5.pcap"))
    # nfv5.pcap: one NetFlow v5 datagram of 29 records (count field at offset 2 of the
    # header, read with tcpdump -X); totals checked against nfdump in integration tests.
    rows = query_json(tmp_path, "select count(*) n, sum(bytes) b, sum(packets) p from records")
    assert rows == [{"n": 29, "b": 88345, "p": 78}]
    csv_out = cli(
        "query",
        "--data-dir",
        str(tmp_path),
        "--format",
        "csv",
        "select src_ip, dst_port, start_time from records order by record_id limit 1",
    )
    assert csv_out.stdout.splitlines() == [
        "src_ip,dst_port,start_time",
        # first record of the datagram, read by hand from its bytes (offset 24: a1ca d4d4 …)
        "161.202.212.212,11963,2023-04-04T16:44:24Z",
    ]
    bound = query_json(tmp_path, "select count(*) n from records where protocol = 6")
    params = cli(
        "query",
        "--data-dir",
        str(tmp_path),
        "-f",
        "json",
        "-p",
        "proto=6",
        "select count(*) n from records where protocol = $proto::int",
    ).stdout
    assert json.loads(params) == bound
    refused = cli("query", "--data-dir", str(tmp_path), "delete from records", check=False)
    assert refused.returncode == 1
    assert "refused (rule: one-select): only a SELECT is allowed, not DELETE" in refused.stderr


def test_import_of_missing_or_bad_file_names_the_file(tmp_path):
    missing = cli("import", "--data-dir", str(tmp_path), str(tmp_path / "nope.pcap"), check=False)
    assert missing.returncode == 1 and "nope.pcap: no such file" in missing.stderr
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture")
    bad = cli("import", "--data-dir", str(tmp_path), str(junk), check=False)
    assert bad.returncode == 1 and "junk.pcap: not a pcap or pcapng file" in bad.stderr


def start_run(data_dir: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            *NETDISTILL,
            "run",
            "--data-dir",
            str(data_dir),
            "--no-demo",
            "--ui-port",
            "0",
            "--netflow",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 30
    while not (data_dir / "manager.json").exists():
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise AssertionError(f"run did not start: {process.communicate()[1]}")
        time.sleep(0.1)
    return process


def stop_run(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return stderr


def wait_for(data_dir: Path, sql: str, expected: list[dict], timeout_s: float = 20) -> None:
    deadline = time.time() + timeout_s
    while True:
        rows = query_json(data_dir, sql)
        if rows == expected or time.time() > deadline:
            assert rows == expected
            return
        time.sleep(0.3)


def test_live_run_collects_what_import_gives_and_stops_cleanly(tmp_path):
    imported = tmp_path / "imported"
    files = [CAPTURES / "template.pcap", CAPTURES / "data.pcap", CAPTURES / "nfv5.pcap"]
    cli("import", "--data-dir", str(imported), *map(str, files))
    totals_sql = (
        "select count(*) n, sum(bytes) b, sum(packets) p, count(distinct src_ip) s from records"
    )
    expected = query_json(imported, totals_sql)
    assert expected[0]["n"] == 33  # 29 v5 records + 4 in data.pcap (see test_import_…)

    live = tmp_path / "live"
    port = free_udp_port()
    process = start_run(live, port)
    try:
        for path in files:
            cli("replay", str(path), "--to", f"127.0.0.1:{port}")
        wait_for(live, totals_sql, expected)  # through the running manager's API
        fields = query_json(live, "select gatherer, source from records group by all")
        assert fields == [{"gatherer": "local", "source": "netflow"}]
        cli("fields", "add", "--data-dir", str(live), "customer", "string")  # while running
        listed = cli("fields", "list", "--data-dir", str(live)).stdout
        assert "1001" in listed and "customer" in listed
        assert query_json(live, "select count(customer) c, count(*) n from records") == [
            {"c": 0, "n": 33}
        ]
    finally:
        stderr = stop_run(process)
    assert "33 records committed" in stderr
    assert not (live / "manager.json").exists()
    assert query_json(live, totals_sql) == expected  # straight from the file


def test_templates_survive_a_restart(tmp_path):
    port = free_udp_port()
    process = start_run(tmp_path, port)
    try:
        cli("replay", str(CAPTURES / "template.pcap"), "--to", f"127.0.0.1:{port}")
        deadline = time.time() + 10
        while not list((tmp_path / "state").glob("*.templates")) and time.time() < deadline:
            time.sleep(0.1)
    finally:
        stop_run(process)
    process = start_run(tmp_path, port)
    try:
        cli("replay", str(CAPTURES / "data.pcap"), "--to", f"127.0.0.1:{port}")
        wait_for(tmp_path, "select count(*) n from records", [{"n": 4}])
    finally:
        stop_run(process)
    assert query_json(tmp_path, "select count(*) n from quarantine") == [{"n": 0}]


def test_run_refuses_a_taken_port_with_a_clear_message(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = cli(
            "run",
            "--data-dir",
            str(tmp_path),
            "--no-demo",
            "--ui-port",
            "0",
            "--netflow",
            f"127.0.0.1:{port}",
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr


def test_demo_run_shows_records_within_seconds(tmp_path):
    result = cli("run", "--data-dir", str(tmp_path), "--ui-port", "0", "--duration", "5")
    assert "netdistill 0.1.0 running" in result.stderr
    assert "synthetic devices: router (v9), router (IPFIX), NAS, firewall, proxy" in result.stderr
    rows = query_json(
        tmp_path,
        "select count(distinct exporter) e, count(*) > 500 many, "
        "count(distinct dst_port) > 5 services, count(distinct service) > 5 named, "
        "count(account_id) = count(*) all_billed from records where source = 'demo-netflow'",
    )
    assert rows == [{"e": 2, "many": True, "services": True, "named": True, "all_billed": True}]
    # Every other demo device delivered, through its own source, and nothing was set aside.
    rows = query_json(
        tmp_path,
        "select source, count(*) > 0 has, count(distinct exporter) e from records "
        "where source <> 'demo-netflow' group by 1 order by 1",
    )
    assert rows == [
        {"source": "demo-firewall", "has": True, "e": 1},
        {"source": "demo-proxy", "has": True, "e": 1},
        {"source": "demo-radius", "has": True, "e": 1},
    ]
    assert query_json(tmp_path, "select count(*) n from quarantine") == [{"n": 0}]
    # The user behind a flow is the user of the RADIUS session that held its customer
    # address: check every named flow against the stored sessions.
    wrong = query_json(
        tmp_path,
        "select count(*) n from records f where f.source = 'demo-netflow' "
        "and f.user_name is not null and not exists (select 1 from records r "
        "where r.source = 'demo-radius' and r.user_name = f.user_name "
        "and r.src_ip in (f.src_ip, f.dst_ip))",
    )
    assert wrong == [{"n": 0}]
    named = query_json(
        tmp_path,
        "select count(user_name) > count(*) / 2 most from records where source = 'demo-netflow'",
    )
    assert named == [{"most": True}]
    # The demo's stages ran: the proxy's and the firewall's views of a web fetch merged
    # into one record (client from the proxy, site from the firewall), the routers'
    # flows read by the aggregate and the rollup.
    merged = query_json(
        tmp_path,
        "select count(*) > 0 seen, count(*) filter (where src_ip = '192.0.2.3' "
        "or dst_ip is null or account_id is null or url not like 'http://%?r=%') bad "
        "from records where procedure = 'web-sessions'",
    )
    assert merged == [{"seen": True, "bad": 0}]
    # (the stages' watermarks are internal: the query sandbox refuses them, the manager's
    # own reads see them)
    watermarks = (
        "select stage, watermark > 0 read from _stage_state "
        "where stage in ('conversations', 'hourly-usage', 'web-sessions') order by 1"
    )
    refused = cli("query", "--data-dir", str(tmp_path), watermarks, check=False)
    assert "refused (rule: table): '_stage_state' is not readable here" in refused.stderr
    store = DuckDBStore(tmp_path / "records.duckdb", read_only=True)
    try:
        read = store.query(watermarks).to_pylist()
    finally:
        store.close()
    assert read == [
        {"stage": "conversations", "read": True},
        {"stage": "hourly-usage", "read": True},
        {"stage": "web-sessions", "read": True},
    ]
