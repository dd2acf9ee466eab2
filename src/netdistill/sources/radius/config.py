"""Scheme entry of a RADIUS accounting server (``type: radius``, RFC 2866 / RFC 2869).

Sample::

    sources:
      - name: bras
        type: radius
        listen: ["0.0.0.0:1813"]
        clients:
          192.0.2.10: {secret: "s3cret"}        # one NAS
          198.51.100.0/24: {secret: {file: pop-2.secret}}   # every NAS of a network
          203.0.113.7: {secret: {env: NAS3_SECRET}}
        duplicate_window_s: 300

A request from an address that matches no ``clients`` entry is dropped
(``unknown_client``): without its secret its authenticator cannot be checked. The most
specific network wins when entries overlap. A secret is inline, ``{file: …}`` (relative to
the scheme file) or ``{env: …}`` (``scheme/secrets.py``); it is read when the listener
starts.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

from netdistill.scheme.secrets import Secret
from netdistill.sources.config import SourceConfigBase
from netdistill.sources.listen import parse_listen_address

DEFAULT_PORT = 1813


class RadiusClientConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: Secret = Field(description="shared secret of the NAS (RFC 2865 §3)")


class RadiusSourceConfig(SourceConfigBase):
    type: Literal["radius"]
    listen: list[str] = Field(default_factory=lambda: [f"0.0.0.0:{DEFAULT_PORT}"], min_length=1)
    receive_buffer_bytes: PositiveInt = 16 * 1024 * 1024
    clients: dict[str, RadiusClientConfig] = Field(
        min_length=1, description="NAS address or network → its shared secret"
    )
    duplicate_window_s: PositiveFloat = Field(
        300.0,
        description="how long an answered request is remembered, to answer a "
        "retransmission again without a second record",
    )
    duplicate_limit: PositiveInt = Field(
        500_000, description="most answered requests remembered (oldest forgotten first)"
    )
    closed_session_retention_s: PositiveFloat = Field(
        86_400.0,
        description="how long a stopped session's totals are kept, so that a late or "
        "repeated Interim-Update or Stop adds nothing",
    )
    idle_session_timeout_s: PositiveFloat = Field(
        7 * 86_400.0, description="an open session with no update for this long is forgotten"
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_listen_address(item, default_port=DEFAULT_PORT)
        return value

    @field_validator("clients")
    @classmethod
    def _check_clients(cls, value: dict[str, RadiusClientConfig]) -> dict[str, RadiusClientConfig]:
        for key in value:
            try:
                ipaddress.ip_network(key, strict=False)
            except ValueError:
                raise ValueError(f"client {key!r} is not an IP address or network") from None
        return value
