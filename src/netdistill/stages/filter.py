"""The ``filter`` stage (being written)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from netdistill.stages.base import StageConfigBase


class FilterConfig(StageConfigBase):
    type: Literal["filter"] = "filter"
    placement: ClassVar[str] = "pipeline"


class Filter:
    def __init__(self, config: FilterConfig, context: Any) -> None:
        self.config = config
        self.name = config.name
