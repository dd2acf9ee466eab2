"""Scheme entry of a NetFlow v5/v9/IPFIX collector (``type: netflow``).

Sample::

    sources:
      - name: edge
        type: netflow
        listen: ["0.0.0.0:2055", "[::]:2055"]
        default_sampling_rate: 1
        exporters:
          192.0.2.1: {sampling_rate: 1000}   # a router that never sends its rate
          192.0.2.2: {}
        allow_unknown: false                 # only these two: others are counted, dropped

With ``allow_unknown: false`` (or ``allowed_exporters``) the source takes data only from
the ``exporters`` named and the ``allowed_exporters`` networks; a datagram from another
address is dropped in the receive thread, before decode, and counted as
``unknown_exporter`` (per address in the status). The default takes every exporter.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from netdistill.sources.config import SourceConfigBase
from netdistill.sources.listen import parse_listen_address


class ExporterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sampling_rate: PositiveInt = Field(
        1, description="used when the exporter sends no sampling rate of its own"
    )


class NetflowSourceConfig(SourceConfigBase):
    type: Literal["netflow"]
    listen: list[str] = Field(default_factory=lambda: ["0.0.0.0:2055"], min_length=1)
    receive_buffer_bytes: PositiveInt = 64 * 1024 * 1024
    default_sampling_rate: PositiveInt = 1
    exporters: dict[str, ExporterConfig] = Field(default_factory=dict)
    allow_unknown: bool = Field(
        True, description="false: only the exporters named here (and allowed_exporters)"
    )
    allowed_exporters: list[str] | None = Field(
        None, description="networks allowed to send; others are dropped as unknown_exporter"
    )
    template_timeout_s: PositiveFloat = 1800.0
    hold_before_template_s: PositiveFloat = Field(
        10.0, description="how long data waits for its template before it is quarantined"
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_listen_address(item, default_port=2055)
        return value

    @field_validator("exporters")
    @classmethod
    def _check_exporters(cls, value: dict[str, ExporterConfig]) -> dict[str, ExporterConfig]:
        import ipaddress

        for key in value:
            try:
                ipaddress.ip_address(key)
            except ValueError:
                raise ValueError(f"exporter {key!r} is not an IP address") from None
        return value

    @field_validator("allowed_exporters")
    @classmethod
    def _check_networks(cls, value: list[str] | None) -> list[str] | None:
        import ipaddress

        for key in value or []:
            try:
                ipaddress.ip_network(key, strict=False)
            except ValueError:
                raise ValueError(f"{key!r} is not an IP network") from None
        return value

    @model_validator(mode="after")
    def _check_allow_list(self) -> NetflowSourceConfig:
        if not self.allow_unknown and not self.exporters and not self.allowed_exporters:
            raise ValueError(
                "allow_unknown is false but no exporters are named: nothing would be "
                "accepted; name them under exporters (or allowed_exporters)"
            )
        return self

    def allow_list(self) -> list[str] | None:
        """The networks allowed to send, or None when every exporter is taken."""
        if self.allow_unknown and self.allowed_exporters is None:
            return None
        return [*self.exporters, *(self.allowed_exporters or [])]
