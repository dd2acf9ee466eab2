"""``manager.trusted_proxies``: X-Forwarded-For / X-Forwarded-Proto are believed only
from the reverse proxies named there. Tried the way a local user would: without the
setting, rotating X-Forwarded-For does not get round the per-address login limit, and a
forged X-Forwarded-Proto does not make the session cookie ``Secure``; with the setting,
the proxy's headers name the client and the scheme (real uvicorn, real HTTP)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from netdistill.errors import SchemeError
from netdistill.manager.serve import ManagerProcess
from netdistill.scheme.load import parse_scheme

PASSWORD = "proxy-test-password-1"


def _start(tmp_path: Path, proxies: str) -> ManagerProcess:
    path = tmp_path / "scheme.yaml"
    path.write_text(f"manager:\n  api_port: 0\n  trusted_proxies: {proxies}\n")
    process = ManagerProcess(path, tmp_path / "data")
    process.start()
    process.manager.console.users.add("olga", PASSWORD, "operator")
    return process


def _failures_until_429(url: str, spoof: bool) -> list[int]:
    codes = []
    with httpx.Client(base_url=url) as client:
        for i in range(7):
            headers = {"x-forwarded-for": f"198.51.100.{i + 1}"} if spoof else {}
            answer = client.post(
                "/api/auth/login", json={"user": "olga", "password": "wrong"}, headers=headers
            )
            codes.append(answer.status_code)
    return codes


def test_forwarded_headers_are_ignored_without_trusted_proxies(tmp_path: Path) -> None:
    process = _start(tmp_path, "[]")
    try:
        url = process.manager.api_url
        # five failures per user name and address, then 429: a rotating X-Forwarded-For
        # is not a new address
        assert _failures_until_429(url, spoof=True) == [401] * 5 + [429] * 2
        with httpx.Client(base_url=url) as client:
            process.manager.console.users.add("pia", PASSWORD, "viewer")
            answer = client.post(
                "/api/auth/login",
                json={"user": "pia", "password": PASSWORD},
                headers={"x-forwarded-proto": "https"},
            )
            assert answer.status_code == 200
            assert "secure" not in answer.headers["set-cookie"].lower()
    finally:
        process.stop()


def test_a_trusted_proxy_names_the_client_and_the_scheme(tmp_path: Path) -> None:
    process = _start(tmp_path, "[127.0.0.1]")
    try:
        url = process.manager.api_url
        # each failure comes from another client behind the proxy: none is limited
        assert _failures_until_429(url, spoof=True) == [401] * 7
        with httpx.Client(base_url=url) as client:
            process.manager.console.users.add("pia", PASSWORD, "viewer")
            answer = client.post(
                "/api/auth/login",
                json={"user": "pia", "password": PASSWORD},
                headers={"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"},
            )
            assert answer.status_code == 200
            assert "secure" in answer.headers["set-cookie"].lower()
    finally:
        process.stop()


def test_a_bad_proxy_entry_is_refused_at_its_place() -> None:
    with pytest.raises(SchemeError, match="trusted_proxies: 'the-proxy' is not an address"):
        parse_scheme("manager:\n  trusted_proxies: [the-proxy]\n")
