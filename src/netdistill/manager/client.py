"""A client of a running manager's API, used by the CLI and by remote gatherers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pyarrow as pa

from netdistill.errors import StoreError
from netdistill.manager.api import (
    ARROW_STREAM,
    ipc_to_table,
    quarantine_to_table,
    table_to_ipc,
)
from netdistill.manager.discovery import ManagerInfo
from netdistill.sources.base import Quarantined


class ManagerClient:
    def __init__(self, info: ManagerInfo, *, timeout_s: float = 300.0) -> None:
        self._http = httpx.Client(
            base_url=info.api,
            headers={"authorization": f"Bearer {info.token}"},
            timeout=timeout_s,
        )

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                message = response.json().get("error") or response.json().get("detail")
            except ValueError:
                message = response.text
            raise StoreError(f"manager: {message}")
        return response

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> pa.Table:
        response = self._check(
            self._http.post("/api/query", json={"sql": sql, "params": dict(params or {}) or None})
        )
        return ipc_to_table(response.content)

    def commit(self, batch: pa.Table, *, origin: str, sequence: int) -> int:
        response = self._check(
            self._http.post(
                "/api/commit",
                params={"origin": origin, "sequence": sequence},
                content=table_to_ipc(batch),
                headers={"content-type": ARROW_STREAM},
            )
        )
        return int(response.json()["rows"])

    def commit_quarantine(self, items: Sequence[Quarantined]) -> int:
        if not items:
            return 0
        response = self._check(
            self._http.post(
                "/api/quarantine",
                content=table_to_ipc(quarantine_to_table(items)),
                headers={"content-type": ARROW_STREAM},
            )
        )
        return int(response.json()["rows"])

    def last_sequence(self, origin: str) -> int:
        response = self._check(self._http.get("/api/commit/last", params={"origin": origin}))
        return int(response.json()["sequence"])

    def status(self) -> dict[str, Any]:
        return dict(self._check(self._http.get("/api/status")).json())

    def fields(self) -> list[dict[str, Any]]:
        return list(self._check(self._http.get("/api/fields")).json())

    def add_field(self, name: str, type_: str, description: str = "") -> None:
        self._check(
            self._http.post(
                "/api/fields", json={"name": name, "type": type_, "description": description}
            )
        )

    def drop_field(self, name: str) -> None:
        self._check(self._http.delete(f"/api/fields/{name}"))

    def alter_field(self, name: str, type_: str) -> None:
        self._check(self._http.patch(f"/api/fields/{name}", json={"type": type_}))

    def close(self) -> None:
        self._http.close()
