"""The ``webhook`` action: an HTTP POST of the alert as JSON (``AlertEvent.payload``:
``alert``, ``id``, ``subject``, ``state``, ``detail``, ``at``). A 2xx answer is success;
any other status, a refused connection or a timeout is a failure, retried by the stage.

Scheme: ``- webhook: {url: "https://ops.example.net/hooks/netdistill", timeout_s: 5,
headers: {Authorization: {env: OPS_HOOK_AUTH}}}``. Every header value is a secret
(``scheme/secrets.py``): inline, ``{file: …}`` or ``{env: …}``, read at each POST and shown
as ``***`` below admin.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from netdistill.scheme.secrets import Secret, SecretError, reveal_all
from netdistill.stages.actions.event import AlertEvent, Outcome


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://", description="where the JSON is posted")
    timeout_s: PositiveFloat = 5.0
    headers: dict[str, Secret] = Field(default_factory=dict, description="secret values")


class WebhookAction:
    kind = "webhook"

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config

    def run(self, event: AlertEvent) -> Outcome:
        try:
            headers = reveal_all(self.config.headers)
        except SecretError as exc:
            return Outcome(False, f"POST {self.config.url}: {exc}")
        try:
            response = httpx.post(
                self.config.url,
                content=event.payload_json(),
                headers={"content-type": "application/json", **headers},
                timeout=self.config.timeout_s,
            )
        except httpx.HTTPError as exc:
            return Outcome(False, f"POST {self.config.url}: {type(exc).__name__}: {exc}")
        ok = 200 <= response.status_code < 300
        return Outcome(ok, f"POST {self.config.url}: HTTP {response.status_code}")
