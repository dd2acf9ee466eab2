"""``manager.tls.key_password`` is a secret (``scheme/secrets.py``): a manager serves
HTTPS with a private key encrypted by the real openssl, the password read from a file
named relative to the scheme; the password never shows in ``GET /api/scheme``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import peers

from netdistill.manager.serve import ManagerProcess

PASSWORD = "key-pass-5e2b"


def test_manager_serves_tls_with_an_encrypted_key(tmp_path: Path) -> None:
    peers.require("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-days", "1",
         "-passout", f"pass:{PASSWORD}", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert "ENCRYPTED" in key.read_text()
    (tmp_path / "key.pass").write_text(PASSWORD + "\n")
    path = tmp_path / "scheme.yaml"
    path.write_text(
        "manager:\n  api_port: 0\n"
        f"  tls: {{cert: {cert}, key: {key}, key_password: {{file: key.pass}}}}\n"
    )
    process = ManagerProcess(path, tmp_path / "data")
    process.start()
    try:
        assert process.manager.api_url.startswith("https://127.0.0.1:")
        client = httpx.Client(
            base_url=process.manager.api_url,
            verify=str(cert),
            headers={"authorization": f"Bearer {process.manager.token}"},
        )
        answer = client.get("/api/scheme")
        assert answer.status_code == 200
        assert answer.json()["scheme"]["manager"]["tls"]["key_password"] == {"file": "key.pass"}
        assert PASSWORD not in answer.text
        client.close()
    finally:
        process.stop()
