"""The ``log`` action: one line in the manager's log per alert transition.

Scheme: ``- log: {level: warning}``
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict

from netdistill.stages.actions.event import AlertEvent, Outcome

log = logging.getLogger("netdistill.alerts")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class LogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["debug", "info", "warning", "error"] = "warning"


class LogAction:
    kind = "log"

    def __init__(self, config: LogConfig) -> None:
        self.level = _LEVELS[config.level]

    def run(self, event: AlertEvent) -> Outcome:
        log.log(
            self.level,
            "ALERT %s %s %s (#%d): %s",
            event.rule,
            event.subject,
            event.state,
            event.alert_id,
            event.detail,
        )
        return Outcome(True, f"logged at {logging.getLevelName(self.level).lower()}")
