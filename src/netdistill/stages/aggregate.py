"""The ``aggregate`` stage (being written)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from netdistill.stages.base import StageConfigBase


class AggregateConfig(StageConfigBase):
    type: Literal["aggregate"] = "aggregate"
    placement: ClassVar[str] = "manager"


class AggregateStage:
    def __init__(self, config: AggregateConfig, context: Any) -> None:
        self.config = config
        self.name = config.name
