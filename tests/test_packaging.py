"""packaging/: the systemd units pass ``systemd-analyze verify`` (with ExecStart pointed at
this environment's netdistill, since verify checks the program exists) and carry the
hardening they promise; the compose file and the Containerfile agree with the CLI;
constraints.txt pins what pyproject.toml asks for. A container is not built here: no
container runtime runs on the project's machines (docs/service.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "packaging" / "systemd"
NETDISTILL = Path(sys.executable).parent / "netdistill"
ANALYZE = shutil.which("systemd-analyze")

needs_systemd = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)"
)


def _settings(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def _verify(tmp_path: Path, name: str, text: str, instance: str | None = None) -> str:
    assert NETDISTILL.exists()
    (tmp_path / name).write_text(text.replace("/opt/netdistill/bin/netdistill", str(NETDISTILL)))
    target = tmp_path / (name.replace("@.", f"@{instance}.") if instance else name)
    result = subprocess.run(
        [str(ANALYZE), "verify", str(target)], capture_output=True, text=True, timeout=120
    )
    # unknown or misspelled keys are only warnings (exit 0): any output is a finding
    return f"{result.returncode}\n{result.stdout}{result.stderr}".strip()


@needs_systemd
@pytest.mark.parametrize(
    ("name", "instance"),
    [("netdistill-manager.service", None), ("netdistill-gatherer@.service", "edge-1")],
)
def test_units_pass_systemd_analyze_verify(tmp_path, name, instance):
    assert _verify(tmp_path, name, (UNITS / name).read_text(), instance) == "0"


@needs_systemd
def test_verify_would_catch_a_broken_unit(tmp_path):
    """The check above can fail: a misspelled key and a missing program are reported."""
    text = (UNITS / "netdistill-manager.service").read_text()
    misspelled = _verify(tmp_path, "a.service", text.replace("ProtectHome=", "ProtectHomes="))
    assert "Unknown key 'ProtectHomes'" in misspelled
    missing = _verify(
        tmp_path, "b.service", text.replace("/opt/netdistill/bin/netdistill", "/nonexistent/nd")
    )
    assert missing.startswith("1") and "/nonexistent/nd" in missing


@pytest.mark.parametrize("name", ["netdistill-manager.service", "netdistill-gatherer@.service"])
def test_units_are_hardened_and_keep_state_in_var_lib(name):
    settings = _settings(UNITS / name)
    for key, value in {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "KillSignal": "SIGTERM",
    }.items():
        assert settings[key] == [value], key
    assert settings["StateDirectory"][0].startswith("netdistill")
    [start] = settings["ExecStart"]
    # no --data-dir: $STATE_DIRECTORY (/var/lib/<StateDirectory>) is the data directory
    assert "--data-dir" not in start and start.startswith("/opt/netdistill/bin/netdistill ")
    if name.startswith("netdistill-manager"):
        assert settings["CapabilityBoundingSet"] == [""]  # no capability at all
        assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    else:  # only the one needed to listen below 1024 (syslog 514)
        assert settings["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
        assert settings["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]


def test_compose_commands_are_commands_the_cli_has():
    compose = yaml.safe_load((ROOT / "packaging" / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"manager-a", "manager-b", "gatherer-edge-1", "accounting"}
    for name, service in services.items():
        command = service["command"]
        # every option given exists in that command's help
        help_text = subprocess.run(
            [str(NETDISTILL), command[0], "--help"], capture_output=True, text=True, timeout=60
        ).stdout
        for option in command[1:]:
            if option.startswith("--"):
                assert option.split("=", 1)[0] in help_text, (name, option)
    gatherer = services["gatherer-edge-1"]["command"]
    assert gatherer.count("--manager=http://manager-a:8080") == 1
    assert "--manager=http://manager-b:8080" in gatherer
    containerfile = (ROOT / "packaging" / "Containerfile").read_text()
    assert "-c constraints.txt" in containerfile
    assert "NETDISTILL_DATA_DIR=/var/lib/netdistill" in containerfile


def test_constraints_pin_every_dependency_of_pyproject():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    names = {re.split(r"[<>=!~\[ ]", spec, maxsplit=1)[0].lower() for spec in wanted}
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert not {n.replace("_", "-") for n in names} - pinned
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "-c constraints.txt -e '.[test]'" in bootstrap
