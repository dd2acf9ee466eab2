"""Shared by the console's browser and API-access tests: a live ``netdistill run`` of the
demo scheme on free loopback ports, Debian's Chromium driven by Playwright, and
screenshots kept as test artifacts.

* ``DemoRun`` — ``netdistill run --config SCHEME --ui-port 0`` where SCHEME is the
  built-in demo scheme with every listening port set to 0 (the kernel picks free ones,
  so tests never collide with another run on 2055/1813/5514) and, optionally, extra
  procedures. It reads the API address and token from ``<data-dir>/manager.json`` and
  the first admin's password from the line the console prints once on stderr (so the
  data directory must be a fresh one). That password must be changed before the admin
  may do anything else: ``settle_admin`` does it through the API.
* ``require_browser`` — skips when Chromium or Playwright is missing, except on CI
  (``CI=true``) where it fails: the bootstrap installs both.
* ``launch_chromium`` — ``/usr/bin/chromium`` headless, no sandbox, no background
  networking (the tests talk to 127.0.0.1 only). We never run ``playwright install``.
* ``Artifacts`` — numbered screenshots under ``test-artifacts/browser/<test>/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import peers
import pytest
import yaml

from netdistill.scheme import demo_scheme_path

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = peers.REPO / "test-artifacts" / "browser"
PASSWORD_LINE = re.compile(r"console: created user admin with password (\S+) ")


def require_browser() -> None:
    """Skip without Chromium or Playwright; fail instead on CI."""
    reasons = []
    if not Path(CHROMIUM).exists():
        reasons.append(f"{CHROMIUM} not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reasons.append("playwright not installed (pip install -e '.[test]')")
    if reasons:
        reason = "; ".join(reasons)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (scripts/bootstrap.sh should have installed it)")
        pytest.skip(reason)


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"],
    )


def demo_scheme(path: Path, *, extra_procedures: Sequence[dict[str, Any]] = ()) -> Path:
    """The demo scheme with every ``listen`` port set to 0, plus ``extra_procedures``."""
    scheme = yaml.safe_load(demo_scheme_path().read_text())
    for source in scheme["sources"]:
        if "listen" in source:
            source["listen"] = [re.sub(r":\d+$", ":0", address) for address in source["listen"]]
    scheme["procedures"] = [*scheme["procedures"], *extra_procedures]
    path.write_text(yaml.safe_dump(scheme, sort_keys=False))
    return path


class DemoRun(peers.PeerProcess):
    """``netdistill run`` of the demo scheme (``demo_scheme``) as a subprocess."""

    def __init__(self, data_dir: Path, scheme: Path, *, demo: bool = True) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            *peers.netdistill_command(),
            "run",
            "--config",
            str(scheme),
            "--data-dir",
            str(data_dir),
            "--ui-port",
            "0",
        ]
        if not demo:
            cmd.append("--no-demo")
        self.log_path = data_dir.parent / f"{data_dir.name}-run.log"
        self._spawn(cmd, self.log_path, None)
        self.api = ""
        self.token = ""
        self.admin_password = ""
        self.generated_password = ""

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        manager = self.data_dir / "manager.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"netdistill run exited {self.proc.returncode}: {self.output()}")
            with contextlib.suppress(FileNotFoundError, ValueError):
                found = json.loads(manager.read_text())
                self.api, self.token = str(found["api"]).rstrip("/"), str(found["token"])
                match = PASSWORD_LINE.search(self.output())
                if match:
                    self.admin_password = self.generated_password = match.group(1)
                    return
            time.sleep(0.1)
        raise TimeoutError(f"netdistill run not ready in {timeout_s}s: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def client(self) -> httpx.Client:
        """A client with the manager's bearer token (counts as admin)."""
        return httpx.Client(
            base_url=self.api, headers={"authorization": f"Bearer {self.token}"}, timeout=30
        )

    def settle_admin(self, password: str = "admin-chosen-1") -> None:
        """Change the first admin's generated password (once), as the console makes a
        new admin do before anything else; ``admin_password`` is the new one after."""
        if self.admin_password != self.generated_password:
            return
        admin = self.session("admin", self.generated_password)
        try:
            changed = admin.post(
                "/api/auth/password",
                json={"old_password": self.generated_password, "new_password": password},
            )
            assert changed.status_code == 200, changed.text
        finally:
            admin.close()
        self.admin_password = password

    def session(self, user: str, password: str) -> httpx.Client:
        """A client logged in as ``user``, sending the session's CSRF token."""
        client = httpx.Client(base_url=self.api, timeout=30)
        response = client.post("/api/auth/login", json={"user": user, "password": password})
        assert response.status_code == 200, response.text
        client.headers["x-csrf-token"] = response.json()["csrf_token"]
        return client


class Artifacts:
    """Screenshots of one test, numbered in the order taken."""

    def __init__(self, test_name: str) -> None:
        self.dir = ARTIFACTS / re.sub(r"[^\w.-]+", "_", test_name)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.count = 0
        print(f"browser test artifacts: {self.dir}")

    def path(self, name: str) -> Path:
        self.count += 1
        return self.dir / f"{self.count:02d}-{name}"

    def shot(self, page: Any, name: str) -> Path:
        path = self.path(f"{name}.png")
        page.screenshot(path=str(path), full_page=True)
        return path

    @contextlib.contextmanager
    def on_failure(self, pages: list[Any]) -> Iterator[None]:
        """Screenshot every page of ``pages`` (added to as the block goes) still open
        when the block fails, then re-raise."""
        try:
            yield
        except BaseException:
            for index, page in enumerate(pages):
                with contextlib.suppress(Exception):
                    if not page.is_closed():
                        self.shot(page, f"failure-{index}")
            raise
