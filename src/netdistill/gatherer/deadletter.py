"""The gatherer's dead-letter area: batches a manager refused for good (seed 000: nothing
lost — a batch that can never be stored is set aside, not dropped, and not in the way).

A manager answers 422 ``retriable: false`` (``delivery/ack.py``) for an entry it can
never store as it is (a field it does not know, another type, an unreadable payload).
The forwarder then writes that entry here, with the reason, and moves that manager's
cursor past it, so the entries behind it flow on; the other manager is not affected
(it may well have stored the same entry). An operator fixes the cause (``netdistill
fields add`` on the manager …) and re-sends it with ``netdistill gatherer dead-letter
resend``: the entry keeps its spool sequence, so the manager's commit stays idempotent
on (origin, seq) and a re-send after a lost answer stores nothing twice.

On-disk format (directory ``<data-dir>/dead-letter``), one pair per refused entry and
manager::

    <seq:020d>-<destination>.entry   the entry exactly as it was sent: the request body
                                     of ``delivery/wire.pack_entries([entry])``
    <seq:020d>-<destination>.json    {seq, origin, kind, rows, destination, url,
                                      reason, field, refused_at, attempts}
    resent/                          pairs taken by the manager on a re-send (kept for
                                     the record; delete them at will)

The ``.entry`` file is written and fsynced before the ``.json``, and the ``.json``
before the forwarder moves the cursor: a crash in between leaves the entry in the spool
(it is refused again and set aside again, the pair overwritten), never lost. A ``.entry``
without its ``.json`` is such a leftover and is ignored.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netdistill.delivery.entry import Entry
from netdistill.delivery.wire import pack_entries, unpack_entries
from netdistill.files import write_atomic


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused entry as listed: its metadata and where its bytes are."""

    key: str
    meta: dict[str, Any]
    body_path: Path

    def body(self) -> bytes:
        return self.body_path.read_bytes()


class DeadLetters:
    """The dead-letter directory; safe to use from several processes (files only)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def put(
        self, entry: Entry, *, destination: str, url: str, reason: str, field: str | None
    ) -> DeadLetter:
        """Set ``entry`` aside durably (see the module docstring for the order)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        key = f"{entry.seq:020d}-{destination}"
        body_path = self.directory / f"{key}.entry"
        _write_durably(body_path, pack_entries([entry]))
        meta = {
            "seq": entry.seq,
            "origin": entry.origin,
            "kind": entry.kind,
            "rows": entry.rows,
            "destination": destination,
            "url": url,
            "reason": reason,
            "field": field,
            "refused_at": round(time.time(), 3),
            "attempts": 0,
        }
        write_atomic(self.directory / f"{key}.json", json.dumps(meta, indent=1))
        return DeadLetter(key, meta, body_path)

    def list(self) -> list[DeadLetter]:
        """The entries set aside and not yet re-sent, oldest first."""
        out = []
        for path in sorted(self.directory.glob("*.json")):
            body = path.with_suffix(".entry")
            try:
                meta = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if body.exists():
                out.append(DeadLetter(path.stem, meta, body))
        return out

    def summary(self, *, last: int = 20) -> dict[str, Any]:
        """For the gatherer's status: counts and the newest ``last`` entries."""
        letters = self.list()
        return {
            "batches": len(letters),
            "records": sum(int(d.meta.get("rows") or 0) for d in letters),
            "directory": str(self.directory),
            "entries": [d.meta for d in letters[-last:]],
        }

    def update(self, letter: DeadLetter, **changes: Any) -> None:
        meta = {**letter.meta, **changes}
        write_atomic(self.directory / f"{letter.key}.json", json.dumps(meta, indent=1))

    def resent(self, letter: DeadLetter) -> None:
        """The manager took it: move the pair to ``resent/``."""
        done = self.directory / "resent"
        done.mkdir(exist_ok=True)
        os.replace(letter.body_path, done / letter.body_path.name)
        os.replace(self.directory / f"{letter.key}.json", done / f"{letter.key}.json")


def resend(
    letters: DeadLetters,
    letter: DeadLetter,
    *,
    gatherer: str,
    token: str,
    url: str | None = None,
    verify: Any = True,
    timeout_s: float = 60.0,
) -> tuple[bool, str]:
    """Send ``letter`` again to its manager (or ``url``), exactly as it was spooled;
    on acknowledgement move it to ``resent/``. Returns (taken, what the manager said)."""
    import httpx

    from netdistill.delivery.ack import Answer

    target = (url or str(letter.meta["url"])).rstrip("/")
    with httpx.Client(timeout=timeout_s, verify=verify) as http:
        response = http.post(
            f"{target}/api/ingest",
            params={"gatherer": gatherer},
            content=letter.body(),
            headers={
                "authorization": f"Bearer {token}",
                "content-type": "application/vnd.netdistill.batches",
            },
        )
    try:
        body = response.json()
    except ValueError:
        body = {}
    answer = Answer.parse(response.status_code, body if isinstance(body, dict) else {})
    attempts = int(letter.meta.get("attempts") or 0) + 1
    if response.status_code == 200 and answer.acked >= int(letter.meta["seq"]):
        letters.update(letter, attempts=attempts, resent_at=round(time.time(), 3))
        letters.resent(letter)
        return True, f"taken by {target} ({body.get('rows', 0)} records stored)"
    reason = answer.error or response.text[:200]
    letters.update(letter, attempts=attempts, last_attempt_error=reason)
    return False, f"{target} answered {response.status_code}: {reason}"


def entry_of(letter: DeadLetter) -> tuple[dict[str, object], bytes]:
    """The (header, payload) of a dead letter's stored request body."""
    ((header, payload),) = list(unpack_entries(letter.body()))
    return header, bytes(payload)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
