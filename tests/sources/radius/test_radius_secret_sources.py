"""A RADIUS client secret given as ``{file: …}`` or ``{env: …}`` (``scheme/secrets.py``)
is the one the real radclient must use: the right secret is answered and recorded, the
wrong one is dropped as ``bad_authenticator``; the file is read when the listener starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from radius_support import Collector, radclient

REQUEST = {
    "User-Name": "alice",
    "Acct-Session-Id": "s-1",
    "Acct-Status-Type": "Stop",
    "NAS-IP-Address": "192.0.2.10",
    "Framed-IP-Address": "10.1.0.1",
    "Acct-Input-Octets": 100,
    "Acct-Output-Octets": 2_000,
    "Acct-Session-Time": 60,
}


@pytest.mark.parametrize("form", ["file", "env"])
def test_secret_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    path = tmp_path / "nas.secret"
    path.write_text("from-the-" + form + "\n")
    monkeypatch.setenv("ND_TEST_NAS_SECRET", "from-the-env")
    secret = {"file": str(path)} if form == "file" else {"env": "ND_TEST_NAS_SECRET"}
    collector = Collector(tmp_path, clients={"127.0.0.1": secret})
    try:
        path.write_text("rotated-after-start\n")  # read at start: the running one is kept
        wrong = radclient(collector.port, [REQUEST], tmp_path, secret="testing123",
                          args=["-r", "1", "-t", "1"])  # fmt: skip
        assert "Received Accounting-Response" not in wrong.stdout
        done = radclient(collector.port, [REQUEST], tmp_path, secret="from-the-" + form)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("Received Accounting-Response") == 1
        assert collector.rows("select user_name, bytes from records") == [
            {"user_name": "alice", "bytes": 2_100}
        ]
        assert collector.source.counters.dropped["bad_authenticator"] == 1  # -r 1: one try
    finally:
        collector.stop()
