"""The ``alert`` stage (being written)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from netdistill.stages.base import StageConfigBase


class AlertConfig(StageConfigBase):
    type: Literal["alert"] = "alert"
    placement: ClassVar[str] = "manager"


class AlertStage:
    def __init__(self, config: AlertConfig, context: Any) -> None:
        self.config = config
        self.name = config.name
