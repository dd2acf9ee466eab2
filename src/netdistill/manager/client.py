"""A client of a running manager's API, used by the CLI and by remote gatherers.

It offers the same calls as a ``Store`` (query, commit, fields …), so the CLI treats a
running manager and a store file alike. It imports the wire helpers from
``delivery/arrow.py``, not from the API module, so a client loads no web framework
(``netdistill query`` starts faster).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pyarrow as pa

from netdistill.delivery.arrow import (
    ARROW_STREAM,
    ipc_to_table,
    quarantine_to_table,
    table_to_ipc,
)
from netdistill.errors import StoreError
from netdistill.manager.discovery import ManagerInfo, client_verify
from netdistill.records.batch import Quarantined


class ManagerClient:
    def __init__(self, info: ManagerInfo, *, timeout_s: float = 300.0) -> None:
        self._http = httpx.Client(
            base_url=info.api,
            headers={"authorization": f"Bearer {info.token}"},
            timeout=timeout_s,
            verify=client_verify(info),
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Any route of the API; an answer >= 400 raises ``StoreError`` with its message."""
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreError(f"manager at {self._http.base_url} did not answer: {exc}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                message = body.get("error") or body.get("detail")
            except ValueError:
                message = response.text
            raise StoreError(f"manager: {message}")
        return response

    def _send_arrow(self, url: str, table: pa.Table, **params: Any) -> httpx.Response:
        return self.request(
            "POST",
            url,
            params=params,
            content=table_to_ipc(table),
            headers={"content-type": ARROW_STREAM},
        )

    def query_user(self, sql: str, params: Mapping[str, object] | None = None) -> pa.Table:
        """``POST /api/query``: the manager runs ``sql`` in its query sandbox (and audits
        it); a refusal raises ``StoreError`` with the manager's message."""
        body = {"sql": sql, "params": dict(params) if params else None}
        return ipc_to_table(self.request("POST", "/api/query", json=body).content)

    #: everything a client sends is a person's SQL to the manager: the same call
    query = query_user

    def commit(self, batch: pa.Table, *, origin: str, sequence: int) -> int:
        response = self._send_arrow("/api/commit", batch, origin=origin, sequence=sequence)
        return int(response.json()["rows"])

    def commit_quarantine(self, items: Sequence[Quarantined]) -> int:
        if not items:
            return 0
        response = self._send_arrow("/api/quarantine", quarantine_to_table(items))
        return int(response.json()["rows"])

    def last_sequence(self, origin: str) -> int:
        response = self.request("GET", "/api/commit/last", params={"origin": origin})
        return int(response.json()["sequence"])

    def status(self) -> dict[str, Any]:
        return dict(self.request("GET", "/api/status").json())

    def fields(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/fields").json())

    def add_field(self, name: str, type_: str, description: str = "") -> None:
        body = {"name": name, "type": type_, "description": description}
        self.request("POST", "/api/fields", json=body)

    def drop_field(self, name: str) -> None:
        self.request("DELETE", f"/api/fields/{name}")

    def alter_field(self, name: str, type_: str) -> None:
        self.request("PATCH", f"/api/fields/{name}", json={"type": type_})

    def close(self) -> None:
        self._http.close()
