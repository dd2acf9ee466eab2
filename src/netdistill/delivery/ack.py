"""Acknowledgement rules: what a manager's answer to ``POST /api/ingest`` means.

The manager commits the entries of a request in order and answers:

* ``200 {"acked": S, "rows": N}`` — every entry up to spool sequence ``S`` is durably
  committed (the store's commit returned; resends of them insert nothing: commits are
  idempotent on (origin, seq)). The gatherer moves that manager's cursor to ``S``; an
  entry is deleted from the spool once every manager's cursor passed it.
* ``503 {"acked": S, "error": …, "retriable": true}`` — a transient failure (the store
  failed to commit, an enhancement lookup raised): the entries up to ``S`` (those before
  the failing one, or before its group when several are committed in one transaction)
  are committed and acknowledged; the rest is sent again, with exponential back-off.
* ``422 {"acked": S, "retriable": false, "seq": R, "error": …, "field": …,
  "sent_type": …, "registered_type": …}`` — entry ``R`` can never be stored by this
  manager as it is (a field it does not know, a field it knows with another type, a
  payload it cannot read, an origin that is not the gatherer's): sending the same bytes
  again gives the same answer. The entries before ``R`` are committed and acknowledged
  up to ``S``; ``R`` and what follows are **not** acknowledged by the answer. The
  gatherer sets ``R`` aside in its dead-letter area with the error
  (``gatherer/deadletter.py``), moves that manager's cursor past it and sends what
  follows at once; an operator re-sends ``R`` once the cause is fixed (``netdistill
  gatherer dead-letter resend``, with the same sequence: the commit stays idempotent).
  A 422 for a watermark mark (kind 3) from a manager older than marks acknowledges
  every entry before it; the gatherer then stops sending marks to that manager.
* ``401``/``403`` — the gatherer's credential is refused (``manager/auth.py``); retried
  with back-off, since an operator fixes it on the manager.
* ``403`` with ``X-Netdistill-Refusal: licence`` or ``version`` — the gatherer itself is
  refused for good: the licence has no room for another gatherer, or it is older than
  ``manager.min_gatherer_version`` (``manager/versions.py``); ``detail`` says which and
  what to do. Nothing is acknowledged; the gatherer raises ``errors.GathererRefused``,
  logs it, shows it in its status, keeps its spool and asks that manager again only
  every ``refused_retry_s``; refused by every manager at start, it exits.

Every request of a gatherer (plan, delivery, heartbeat) carries its version in
``X-Netdistill-Version``.

Anything else (a transport error, no JSON) acknowledges nothing and is retried.
A refusal is raised as ``errors.BatchRefused`` on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netdistill.errors import BatchRefused

#: every gatherer request: the gatherer's netdistill version
VERSION_HEADER = "X-Netdistill-Version"
#: on a 403: the manager refuses this gatherer for good (``licence`` or ``version``)
REFUSAL_HEADER = "X-Netdistill-Refusal"


def refusal_answer(refusal: BatchRefused, acked: int) -> dict[str, Any]:
    """The 422 body for ``refusal`` (see the module docstring)."""
    return {
        "acked": acked,
        "retriable": False,
        "seq": refusal.seq,
        "error": str(refusal),
        "field": refusal.field,
        "sent_type": refusal.sent_type,
        "registered_type": refusal.registered_type,
    }


@dataclass(frozen=True, slots=True)
class Answer:
    """A manager's answer to one request, as the forwarder reads it."""

    status: int
    acked: int
    retriable: bool
    error: str
    refused_seq: int = 0
    field: str | None = None

    @classmethod
    def parse(cls, status: int, body: dict[str, Any], text: str = "") -> Answer:
        acked = int(body.get("acked") or 0)
        error = str(body.get("error") or body.get("detail") or text[:200]) if status != 200 else ""
        retriable = not (status == 422 and body.get("retriable") is False)
        return cls(
            status,
            acked,
            retriable,
            error,
            int(body.get("seq") or 0) if not retriable else 0,
            body.get("field") if not retriable else None,
        )
