"""Which manager's report of a window the accounting consumer delivers, and which
corrections it delivers after it (issue 13: exactly once all the way to the bill).

Both managers report every window; a report says whether it is ``complete`` (every
gatherer had delivered past it, ``manager/windows.py``) and carries a ``checksum`` of
its rows. ``choose`` picks, for the next window in order, between the report of the
manager ``decide`` chose (health and stalls, ``consumer.py``) and the other's:

* that report is complete and the other is missing, incomplete or equal → take it;
* it is incomplete and the other is complete → take the other's;
* it is incomplete and the other has not closed the window while answering → wait
  (at most ``stall_s``: then take the incomplete one; its correction follows);
* both incomplete → take it (marked incomplete; corrections follow);
* both complete with different checksums → take the one with more records (a manager
  that lost records cannot have more), and say so.

Every choice other than "the chosen manager's, complete" comes with a reason, which the
consumer logs and writes into the delivered file (``choice``).

``correction`` decides on a report of a window already delivered, with a version above
1 (re-issued after late records, or completed): it is delivered when its checksum
differs from the last delivered one, or when it completes an incomplete one — never to
replace a complete delivery by an incomplete report.
"""

from __future__ import annotations

from typing import Any


def _missing(report: dict[str, Any]) -> str:
    return ", ".join(
        f"{m.get('gatherer')} {m.get('reason')}" for m in report.get("incomplete") or []
    )


def choose(
    role: str,
    other: str,
    report: dict[str, Any] | None,
    other_report: dict[str, Any] | None,
    *,
    other_healthy: bool,
    waited_s: float,
    stall_s: float,
) -> tuple[str | None, str | None]:
    """(the role to deliver from, or None to wait; the reason, or None)."""
    if report is None:
        return None, None
    complete = bool(report.get("complete", True))
    if other_report is None:
        if complete or not other_healthy or waited_s >= stall_s:
            reason = None if complete else f"the {role} marks it incomplete ({_missing(report)})"
            if not complete and other_healthy:
                reason = f"{reason}; the {other} did not close it within {stall_s:g} s"
            return role, reason
        return None, None  # the other may still close it complete
    other_complete = bool(other_report.get("complete", True))
    if not complete and other_complete:
        return other, (
            f"the {role} marks it incomplete ({_missing(report)}); the {other} has it complete"
        )
    if not complete:
        return role, f"both managers mark it incomplete ({_missing(report)})"
    if other_complete and other_report.get("checksum") != report.get("checksum"):
        mine, theirs = int(report.get("records") or 0), int(other_report.get("records") or 0)
        if theirs > mine:
            return other, (
                f"checksums differ: the {other} has {theirs} records, the {role} {mine}; "
                f"taking the {other}'s"
            )
        return role, (
            f"checksums differ: the {role} has {mine} records, the {other} {theirs}; "
            f"taking the {role}'s"
        )
    return role, None


def correction(report: dict[str, Any], delivered: dict[str, Any] | None) -> str | None:
    """Why ``report`` (a re-issued version) is to be delivered over ``delivered`` (the
    last delivered report of that window), or None."""
    if delivered is None or int(report.get("version") or 1) <= 1:
        return None
    complete = bool(report.get("complete", True))
    was_complete = bool(delivered.get("complete", True))
    if report.get("checksum") == delivered.get("checksum"):
        if complete and not was_complete:
            return "the window is now complete (same rows)"
        return None
    if not complete and was_complete:
        return None
    return (
        f"version {report.get('version')} with {report.get('late_records', 0)} late "
        f"record(s): {delivered.get('records')} → {report.get('records')} records"
    )
