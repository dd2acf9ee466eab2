"""A plugin shipped as a package: a temp-dir distribution ``netdistill-ticker`` with a
``netdistill.sources`` entry point is pip-installed into the running venv (offline, no
build isolation) and used from a scheme by fresh ``netdistill`` processes; uninstalled
afterwards. Also: a name clash and a broken entry point name the distribution."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from netdistill.errors import PluginError
from netdistill.plugins import Registry

NETDISTILL = [sys.executable, "-m", "netdistill"]
DISTRIBUTION = "netdistill-ticker"

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "netdistill-ticker"
version = "0.1.0"
dependencies = ["netdistill"]

[project.entry-points."netdistill.sources"]
ticker = "netdistill_ticker:TickerSource"

# for the load-failure tests only (groups netdistill never reads)
[project.entry-points."netdistill.tests_broken"]
missing = "netdistill_ticker:NoSuchClass"
mislabelled = "netdistill_ticker:TickerSource"

[tool.setuptools]
packages = ["netdistill_ticker"]
"""


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


@pytest.fixture(scope="module")
def ticker_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("netdistill-ticker")
    (root / "pyproject.toml").write_text(PYPROJECT)
    package = root / "netdistill_ticker"
    package.mkdir()
    shutil.copy(Path(__file__).with_name("ticker_plugin.py"), package / "__init__.py")
    pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", str(root))
    importlib.invalidate_caches()
    try:
        yield root
    finally:
        pip("uninstall", "--yes", "--quiet", DISTRIBUTION)


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*NETDISTILL, *args], capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"netdistill {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def test_a_plugin_source_validates_and_its_records_arrive(ticker_installed, tmp_path):
    scheme = tmp_path / "ticker.yaml"
    scheme.write_text(
        textwrap.dedent(
            """\
            manager: {api_port: 0}
            sources:
              - {name: tick-tock, type: ticker, count: 250, per_batch: 100, bytes_each: 1500}
            """
        )
    )
    assert cli("check-config", str(scheme)).stdout.strip() == f"{scheme}: ok (1 source(s))"

    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - {name: t, type: ticker, count: 0}\n")
    refused = cli("check-config", str(bad), check=False)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"{bad}:2:36: sources.0.count: Input should be greater than 0 (found 0)"
    ]

    data = tmp_path / "data"
    cli(
        "run",
        "--config",
        str(scheme),
        "--data-dir",
        str(data),
        "--no-demo",
        "--ui-port",
        "0",
        "--duration",
        "3",
    )
    rows = json.loads(
        cli(
            "query",
            "--data-dir",
            str(data),
            "--format",
            "json",
            "select source, exporter, count(*) n, sum(bytes) b, sum(tick) t, min(tick) lo, "
            "max(tick) hi, count(distinct tick) d from records group by all",
        ).stdout
    )
    assert rows == [
        {
            "source": "tick-tock",
            "exporter": "ticker",
            "n": 250,
            "b": 250 * 1500,
            "t": 250 * 249 // 2,
            "lo": 0,
            "hi": 249,
            "d": 250,
        }
    ]


def test_a_name_clash_names_both_distributions(ticker_installed):
    builtins = {"ticker": ("netdistill.sources.netflow.config:NetflowSourceConfig", "x:Y")}
    registry: Registry[object] = Registry("source", builtins, group="netdistill.sources")
    with pytest.raises(PluginError) as raised:
        registry.names()
    message = str(raised.value)
    assert "source type 'ticker' of distribution 'netdistill-ticker'" in message
    assert "clashes with the one of 'netdistill (built in)'" in message


def test_two_packages_offering_one_type_stop_check_config(ticker_installed, tmp_path):
    twin = tmp_path / "twin"
    (twin / "netdistill_ticker_twin").mkdir(parents=True)
    (twin / "netdistill_ticker_twin" / "__init__.py").write_text(
        "from netdistill_ticker import TickerSource\n"
    )
    (twin / "pyproject.toml").write_text(
        PYPROJECT.split("# for the load-failure")[0]
        .replace('name = "netdistill-ticker"', 'name = "netdistill-ticker-twin"')
        .replace("netdistill_ticker:", "netdistill_ticker_twin:")
        + '[tool.setuptools]\npackages = ["netdistill_ticker_twin"]\n'
    )
    pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", str(twin))
    try:
        scheme = tmp_path / "s.yaml"
        scheme.write_text("sources:\n  - {name: t, type: ticker, count: 1}\n")
        refused = cli("check-config", str(scheme), check=False)
    finally:
        pip("uninstall", "--yes", "--quiet", "netdistill-ticker-twin")
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    message = " ".join(refused.stderr.split())
    assert message.startswith("error: source type 'ticker' of distribution 'netdistill-ticker")
    assert "clashes with the one of 'netdistill-ticker" in message
    assert "uninstall one of them" in message


def test_a_broken_entry_point_names_its_distribution(ticker_installed):
    registry: Registry[object] = Registry("source", {}, group="netdistill.tests_broken")
    assert registry.distribution("missing") == DISTRIBUTION
    with pytest.raises(
        PluginError,
        match=r"source type 'missing' of distribution "
        r"'netdistill-ticker': entry point 'netdistill_ticker:NoSuchClass' "
        r"failed to load: AttributeError",
    ):
        registry.runtime_class("missing")
    with pytest.raises(
        PluginError,
        match=r"'mislabelled' of distribution 'netdistill-ticker'"
        r": its config model TickerConfig must declare type: "
        r"Literal\['mislabelled'\]",
    ):
        registry.config_classes()


def test_without_the_package_the_type_is_unknown(tmp_path):
    """The type comes from the installed package only (runs before or after the module's
    install; the fixture is not used here, so the package may or may not be present)."""
    registry: Registry[object] = Registry("source", {}, group="netdistill.no_such_group")
    assert registry.names() == []
    with pytest.raises(PluginError, match="unknown source type 'ticker' \\(known: none\\)"):
        registry.runtime_class("ticker")
