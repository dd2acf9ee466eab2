"""The event an action receives and the outcome it returns (see ``actions/__init__``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class AlertEvent:
    """One transition of one alert, as actions see it."""

    rule: str
    alert_id: int
    subject: str
    state: Literal["raised", "cleared"]
    detail: str
    at: float
    #: the records column the subject is a value of (``account_id``, ``user_name``), or
    #: "" when the subject is not an account (a gatherer, the quarantine)
    per: str = ""

    def payload(self) -> dict[str, Any]:
        """The JSON a webhook posts and a command reads on stdin."""
        return {
            "alert": self.rule,
            "id": self.alert_id,
            "subject": self.subject,
            "state": self.state,
            "detail": self.detail,
            "at": datetime.fromtimestamp(self.at, UTC).isoformat(),
        }

    def payload_json(self) -> str:
        return json.dumps(self.payload(), sort_keys=True)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str


class Action(Protocol):
    """A built action. ``run`` may block (bounded by the action's own timeouts); it is
    called from the stage runner's thread only, one event at a time."""

    kind: str

    def run(self, event: AlertEvent) -> Outcome: ...
