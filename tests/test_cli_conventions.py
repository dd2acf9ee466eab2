"""CLI conventions (issue 18): help without value placeholders on flags, shell completion,
logging options on every command, the data directory's order of defaults, lazy imports,
``netdistill stages`` — all through real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from test_cli import CAPTURES, NETDISTILL, cli, free_udp_port, start_run, stop_run, wait_for

#: what a command that needs none of them must not import (each costs 0.1–0.3 s of CPU)
HEAVY = ("polars", "duckdb", "fastapi", "uvicorn", "starlette", "ldap3", "pysnmp", "jinja2")


def _run_and_list_modules(argv: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``netdistill argv`` in a fresh interpreter; return its exit code, output and the
    top-level packages it imported."""
    code = textwrap.dedent(
        f"""
        import io, json, sys, contextlib
        sys.argv = ["netdistill", *{argv!r}]
        from netdistill.cli import main
        out = io.StringIO()
        status = 0
        with contextlib.redirect_stdout(out):
            try:
                main()
            except SystemExit as exc:
                status = exc.code or 0
        loaded = sorted({{m.split(".")[0] for m in sys.modules}})
        print(json.dumps({{"status": status, "stdout": out.getvalue(), "modules": loaded}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.splitlines()[-1]))


def _commands() -> list[list[str]]:
    """Every command and sub-command, from the root's help (so a new one is covered)."""
    found: list[list[str]] = []

    def walk(prefix: list[str]) -> None:
        text = cli(*prefix, "--help").stdout
        if "Commands:" not in text:
            return
        for line in text.split("Commands:", 1)[1].splitlines():
            if line.startswith("  ") and line.strip():
                name = line.split()[0]
                found.append([*prefix, name])
                walk([*prefix, name])

    walk([])
    return found


def test_help_of_every_command_shows_flags_without_a_value_placeholder():
    commands = _commands()
    names = {" ".join(c) for c in commands}
    assert {"run", "query", "stages", "stages run", "fields list", "user add"} <= names
    for command in commands:
        text = cli(*command, "--help").stdout
        assert "<bool>" not in text, (command, text)
    run_help = cli("run", "--help").stdout
    assert "--demo / --no-demo" in run_help
    root = cli("--help").stdout
    for option in ("--log-level", "--log-format", "--install-completion", "--show-completion"):
        assert option in root


def test_shell_completion_is_on_and_completes_commands_and_options():
    script = cli("--show-completion", "bash").stdout
    assert "_netdistill_completion" in script and "complete " in script
    env = {**os.environ, "_NETDISTILL_COMPLETE": "complete_bash"}

    def complete(words: str) -> list[str]:
        parts = words.split(" ")
        result = subprocess.run(
            [sys.executable, "-m", "netdistill"],
            env={**env, "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout.split()

    assert complete("netdistill sta") == ["stages"]
    assert complete("netdistill run --no") == ["--no-demo"]


def test_logging_options_after_the_command_give_json_lines_with_extra_fields(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("sources:\n  - {name: x, type: netflow, listen: ['127.0.0.1:2055']}\n")
    code = textwrap.dedent(
        f"""
        import logging, sys
        sys.argv = ["netdistill", "check-config", {str(good)!r},
                    "--log-level", "debug", "--log-format=json"]
        from netdistill.cli import main
        try:
            main()
        except SystemExit:
            pass
        logging.getLogger("netdistill.test").debug("hello %s", "there", extra={{"peer": "p1"}})
        logging.getLogger("netdistill.test").info("second")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(x["level"], x["logger"], x["msg"]) for x in lines] == [
        ("debug", "netdistill.test", "hello there"),
        ("info", "netdistill.test", "second"),
    ]
    assert lines[0]["peer"] == "p1" and lines[0]["ts"].endswith("+00:00")
    assert set(lines[1]) == {"ts", "level", "logger", "msg"}
    bad = cli("--log-level", "loud", "check-config", str(good), check=False)
    assert bad.returncode == 2 and "loud" in bad.stderr


def test_data_dir_order_flag_then_env_then_systemd_state_directory_then_default(tmp_path):
    def where(*args: str, **env: str) -> str:
        result = subprocess.run(
            [*NETDISTILL, "query", *args, "select 1"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={
                **{k: v for k, v in os.environ.items() if k not in ("STATE_DIRECTORY",)},
                "NETDISTILL_DATA_DIR": "",
                **env,
            },
        )
        assert result.returncode == 1
        # "error: no store at <dir>/records.duckdb: nothing has been collected yet"
        return result.stderr.split("no store at ", 1)[1].split("/records.duckdb")[0]

    state = str(tmp_path / "state")
    assert where() == "netdistill-data"
    assert where(STATE_DIRECTORY=state) == state
    assert where(STATE_DIRECTORY=f"{state}:/elsewhere") == state
    assert where(STATE_DIRECTORY=state, NETDISTILL_DATA_DIR="env-dir") == "env-dir"
    assert where("--data-dir", "flag-dir", STATE_DIRECTORY=state) == "flag-dir"


def test_query_help_imports_no_heavy_library():
    loaded = _run_and_list_modules(["query", "--help"])
    assert loaded["status"] == 0 and "Usage: netdistill query" in loaded["stdout"]
    assert not {*HEAVY, "pyarrow", "httpx", "numpy"} & set(loaded["modules"])


def test_query_through_a_running_manager_imports_no_server_or_store(tmp_path):
    port = free_udp_port()
    process = start_run(tmp_path, port)
    try:
        loaded = _run_and_list_modules(
            ["query", "--data-dir", str(tmp_path), "-f", "json", "select count(*) n from records"]
        )
    finally:
        stop_run(process)
    assert loaded["status"] == 0 and json.loads(loaded["stdout"]) == [{"n": 0}]
    assert "httpx" in loaded["modules"]  # it did go through the manager
    assert not set(HEAVY) & set(loaded["modules"])


def test_stages_shows_the_running_managers_stages_and_runs_a_round(tmp_path):
    port = free_udp_port()
    scheme = tmp_path / "scheme.yaml"
    scheme.write_text(
        textwrap.dedent(
            f"""
            manager: {{api_port: 0, stages_interval_s: 3600}}
            sources:
              - {{name: routers, type: netflow, listen: ["127.0.0.1:{port}"]}}
            stages:
              - {{name: conversations, type: aggregate, input: routers,
                 by: [src_ip, dst_ip, src_port, dst_port, protocol]}}
            """
        )
    )
    none = cli("stages", "--data-dir", str(tmp_path), check=False)
    assert none.returncode == 1 and "no manager is running on" in none.stderr
    process = subprocess.Popen(
        [*NETDISTILL, "run", "--data-dir", str(tmp_path), "-c", str(scheme), "--no-demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 30
        while not (tmp_path / "manager.json").exists() and time.time() < deadline:
            time.sleep(0.1)
        cli("replay", str(CAPTURES / "nfv5.pcap"), "--to", f"127.0.0.1:{port}")
        wait_for(tmp_path, "select count(*) n from records", [{"n": 29}])
        before = json.loads(cli("stages", "--data-dir", str(tmp_path), "-f", "json").stdout)
        ran = cli("stages", "run", "--data-dir", str(tmp_path)).stdout
        after = json.loads(cli("stages", "--data-dir", str(tmp_path), "-f", "json").stdout)
        table = cli("stages", "--data-dir", str(tmp_path)).stdout
    finally:
        stop_run(process)
    [stage] = before["stages"]
    # the interval is an hour: only the round at start ran, before the replay
    assert (stage["name"], stage["type"], stage["lag_records"]) == (
        "conversations",
        "aggregate",
        29,
    )
    assert ran.startswith("conversations: ")
    [stage] = after["stages"]
    assert stage["read_records"] == 29 and stage["lag_records"] == 0
    assert stage["round_seconds"]["count"] == after["rounds"] == before["rounds"] + 1
    assert "conversations" in table and "aggregate" in table and "read_records=29" in table


def test_python_m_netdistill_cli_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "netdistill.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent,
    )
    assert result.stdout.strip().startswith("netdistill ")
