"""The ``command`` action: runs a program (no shell) with the alert in its environment
(``NETDISTILL_ALERT``, ``NETDISTILL_ALERT_ID``, ``NETDISTILL_SUBJECT``,
``NETDISTILL_STATE``, ``NETDISTILL_DETAIL``) and as JSON on stdin (the webhook's
payload). Exit code 0 is success; the code and the end of stderr are recorded. A program
still running after ``timeout_s`` is killed and counts as a failure.

Scheme: ``- command: {argv: [/usr/local/sbin/suspend-customer], timeout_s: 10}``
"""

from __future__ import annotations

import os
import subprocess

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from netdistill.stages.actions.event import AlertEvent, Outcome


class CommandConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: list[str] = Field(min_length=1, description="program and arguments, no shell")
    timeout_s: PositiveFloat = 10.0


def alert_environment(event: AlertEvent) -> dict[str, str]:
    return {
        "NETDISTILL_ALERT": event.rule,
        "NETDISTILL_ALERT_ID": str(event.alert_id),
        "NETDISTILL_SUBJECT": event.subject,
        "NETDISTILL_STATE": event.state,
        "NETDISTILL_DETAIL": event.detail,
    }


class CommandAction:
    kind = "command"

    def __init__(self, config: CommandConfig) -> None:
        self.config = config

    def run(self, event: AlertEvent) -> Outcome:
        try:
            done = subprocess.run(
                self.config.argv,
                input=event.payload_json(),
                env={**os.environ, **alert_environment(event)},
                capture_output=True,
                text=True,
                timeout=self.config.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Outcome(
                False, f"{self.config.argv[0]}: killed after {self.config.timeout_s:g} s"
            )
        except OSError as exc:
            return Outcome(False, f"{self.config.argv[0]}: {exc}")
        stderr = done.stderr.strip()[-300:]
        detail = f"exit {done.returncode}" + (f": {stderr}" if stderr else "")
        return Outcome(done.returncode == 0, detail)
