"""The ``merge`` stage (being written)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from netdistill.stages.base import StageConfigBase


class MergeConfig(StageConfigBase):
    type: Literal["merge"] = "merge"
    placement: ClassVar[str] = "manager"


class MergeStage:
    def __init__(self, config: MergeConfig, context: Any) -> None:
        self.config = config
        self.name = config.name
