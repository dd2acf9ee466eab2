"""The ``rollup`` stage (being written)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from netdistill.stages.base import StageConfigBase


class RollupConfig(StageConfigBase):
    type: Literal["rollup"] = "rollup"
    placement: ClassVar[str] = "manager"


class RollupStage:
    def __init__(self, config: RollupConfig, context: Any) -> None:
        self.config = config
        self.name = config.name
