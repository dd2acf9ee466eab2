"""Scheme entry of a NetFlow v5/v9/IPFIX collector (``type: netflow``).

Sample::

    sources:
      - name: edge
        type: netflow
        listen: ["0.0.0.0:2055", "[::]:2055"]
        default_sampling_rate: 1
        exporters:
          192.0.2.1: {sampling_rate: 1000}   # a router that never sends its rate
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

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
