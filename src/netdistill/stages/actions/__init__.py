"""What an alert does when it is raised (``actions``) and when it clears (``restore``):
log, webhook, command, radius — one module each (seed 003, claims 8–9 and 17–18: an
alert that ceases a service and one that provides it again).

An action is built once per stage from its scheme entry (``build_action``) and run by
the alert stage outside any store transaction (it does network or process I/O), at most
once per attempt; it never raises for an expected failure but returns an ``Outcome``,
which the stage records in ``alert_actions`` and retries with back-off when it failed.

Scheme: each entry names exactly one kind::

    actions:
      - log: {level: warning}
      - webhook: {url: "http://127.0.0.1:9000/hook", timeout_s: 5}
      - command: {argv: [/usr/local/bin/suspend, --quiet], timeout_s: 10}
      - radius: {request: disconnect, secret: s3cret}
    restore:
      - radius: {request: coa, secret: s3cret, attributes: {Filter-Id: standard}}
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from netdistill.stages.actions.command import CommandConfig
from netdistill.stages.actions.event import Action, AlertEvent, Outcome
from netdistill.stages.actions.log import LogConfig
from netdistill.stages.actions.radius import RadiusConfig
from netdistill.stages.actions.webhook import WebhookConfig

__all__ = ["Action", "ActionEntry", "AlertEvent", "Outcome", "build_action"]


class ActionEntry(BaseModel):
    """One scheme entry of ``actions`` / ``restore``: exactly one kind set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log: LogConfig | None = None
    webhook: WebhookConfig | None = None
    command: CommandConfig | None = None
    radius: RadiusConfig | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ActionEntry:
        kinds = [k for k in ("log", "webhook", "command", "radius") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError(
                "an action names exactly one of log, webhook, command, radius"
                f" (got {', '.join(kinds) or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("log", "webhook", "command", "radius") if getattr(self, k))


def build_action(entry: ActionEntry, context: Any) -> Action:
    """The runtime action of ``entry``; ``context`` is the stage's ``StageContext``."""
    from netdistill.stages.actions import command, log, radius, webhook

    if entry.log is not None:
        return log.LogAction(entry.log)
    if entry.webhook is not None:
        return webhook.WebhookAction(entry.webhook)
    if entry.command is not None:
        return command.CommandAction(entry.command)
    assert entry.radius is not None
    return radius.RadiusAction(entry.radius, context)
