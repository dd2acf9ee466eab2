"""Scheme entry of an sFlow v5 collector (``type: sflow``).

Sample::

    sources:
      - name: switches
        type: sflow
        listen: ["0.0.0.0:6343", "[::]:6343"]
        default_sampling_rate: 1   # only for samples that say 0
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator

from netdistill.sources.config import SourceConfigBase
from netdistill.sources.listen import parse_listen_address

SFLOW_PORT = 6343


class SflowSourceConfig(SourceConfigBase):
    type: Literal["sflow"]
    listen: list[str] = Field(default_factory=lambda: [f"0.0.0.0:{SFLOW_PORT}"], min_length=1)
    receive_buffer_bytes: PositiveInt = 64 * 1024 * 1024
    default_sampling_rate: PositiveInt = Field(
        1, description="used for flow samples whose sampling rate is 0 (not said)"
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_listen_address(item, default_port=SFLOW_PORT)
        return value
