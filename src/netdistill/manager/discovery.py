"""How other processes find a running manager: ``<data-dir>/manager.json``.

Written (mode 0600) when the manager's API is listening, removed when it stops. A file
left by a killed manager is recognised as stale (its process is gone or its API does
not answer) and ignored.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "manager.json"


@dataclass(frozen=True)
class ManagerInfo:
    pid: int
    api: str
    token: str
    #: the certificate an HTTPS manager serves: local clients trust exactly it
    ca: str | None = None


def client_verify(info: ManagerInfo) -> ssl.SSLContext | bool:
    """How a local client checks the manager's certificate: against the manager's own
    certificate (pinned; it may be self-signed or issued by a private CA), else the
    system's trust store."""
    if not info.ca:
        return True
    context = ssl.create_default_context(cafile=info.ca)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the leaf itself is the anchor
    return context


def write_manager_info(data_dir: Path, info: ManagerInfo) -> Path:
    path = data_dir / FILE_NAME
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"pid": info.pid, "api": info.api, "token": info.token, "ca": info.ca}, handle)
    os.replace(tmp, path)
    return path


def remove_manager_info(data_dir: Path, pid: int) -> None:
    info = read_manager_info(data_dir, check_alive=False)
    if info is not None and info.pid == pid:
        (data_dir / FILE_NAME).unlink(missing_ok=True)


def read_manager_info(data_dir: Path, *, check_alive: bool = True) -> ManagerInfo | None:
    """The running manager of ``data_dir``, or None when there is none."""
    path = data_dir / FILE_NAME
    try:
        raw = json.loads(path.read_text())
        ca = raw.get("ca")
        info = ManagerInfo(int(raw["pid"]), str(raw["api"]), str(raw["token"]), ca and str(ca))
    except (OSError, ValueError, KeyError):
        return None
    if not check_alive:
        return info
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    import httpx  # here: a data directory with no manager needs no HTTP client

    try:
        response = httpx.get(
            f"{info.api}/api/status",
            headers={"authorization": f"Bearer {info.token}"},
            timeout=5.0,
            verify=client_verify(info),
        )
    except httpx.HTTPError:
        return None
    return info if response.status_code == 200 else None
