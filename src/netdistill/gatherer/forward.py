"""Acknowledged forwarding: the spool's batches to each manager, oldest first (seed 000).

One ``Forwarder`` thread per destination reads the entries that destination has not
acknowledged, sends them (several per request when it is behind) over HTTP/1.1 with a
kept-alive httpx connection, and moves that destination's cursor only when the manager
answered ``{"acked": seq}`` — which it does after its own durable commit. A spool entry
is deleted when every destination's cursor has passed it. While a manager is down or
fails, the forwarder retries with exponential back-off (capped) and the gatherer
keeps spooling; nothing is skipped, so it catches up in order when the manager returns.
A resend after a lost answer is harmless: the manager's commit is idempotent.

A refusal for good (422 ``retriable: false``, ``delivery/ack.py``: e.g. a field the
manager does not know, or knows with another type) moves that entry to the gatherer's
dead-letter area (``gatherer/deadletter.py``) with the reason, and moves this manager's
cursor past it: the entries behind it flow on at once, the other manager is not
affected. It is logged as an error naming the entry, the field and both types, counted
(``dead_lettered``) and shown in the status until an operator re-sends it
(``netdistill gatherer dead-letter resend``).

A refusal of the gatherer itself (403 ``X-Netdistill-Refusal``: no room in the licence,
older than the manager's minimum version) concerns every entry, so nothing is set
aside: it is logged once as an error with the manager's message, shown in the status
(``refused_gatherer``), the spool kept, and that manager asked again only every
``refused_retry_s``.

Watermarks (``gatherer/watermark.py``, ``delivery/wire.py``): each request ends with a
mark saying how far in time this manager now has everything, and an idle forwarder
sends one alone every ``watermark_interval_s``; the manager closes report windows on
them. While idle it also applies the spool's lag limits (``Spool.trim_behind``).
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from netdistill import __version__
from netdistill.delivery.ack import REFUSAL_HEADER, VERSION_HEADER, Answer
from netdistill.delivery.entry import Entry
from netdistill.delivery.wire import pack_entries, pack_mark
from netdistill.errors import GathererRefused
from netdistill.gatherer.config import ForwardConfig
from netdistill.gatherer.deadletter import DeadLetters
from netdistill.gatherer.spool import Spool
from netdistill.gatherer.watermark import WatermarkLog

log = logging.getLogger(__name__)


def destination_name(url: str) -> str:
    """A file-name-safe name for a manager URL (the spool keeps one cursor per name)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", url.split("://", 1)[-1]).strip("_")


class Forwarder:
    """Sends one destination's unacknowledged spool entries; owns its thread."""

    def __init__(
        self,
        spool: Spool,
        url: str,
        *,
        gatherer: str,
        token: str,
        config: ForwardConfig = ForwardConfig(),
        verify: ssl.SSLContext | bool = True,
        clock: Callable[[], float] = time.monotonic,
        convert: Callable[[Entry], Entry] | None = None,
        dead_letters: DeadLetters | None = None,
        watermarks: WatermarkLog | None = None,
    ) -> None:
        self.spool = spool
        self.url = url.rstrip("/")
        self.destination = destination_name(url)
        self.gatherer = gatherer
        self.config = config
        self._clock = clock
        #: applied to each entry before it is sent (format-1 entries, gatherer/upgrade.py)
        self._convert = convert
        self._http = httpx.Client(
            base_url=self.url,
            headers={
                "authorization": f"Bearer {token}",
                "content-type": "application/vnd.netdistill.batches",
                VERSION_HEADER: __version__,
            },
            timeout=config.timeout_s,
            verify=verify,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"forward-{self.destination}", daemon=True
        )
        self.sent_batches = 0
        self.sent_records = 0
        self.requests = 0
        self.answered_requests = 0
        self.failures = 0
        self.last_error = ""
        self.backoff_s = 0.0
        self.connected = False
        self.dead_letters = dead_letters
        self.watermarks = watermarks
        #: entries this manager refused for good, moved to the dead-letter area
        self.dead_lettered = 0
        self.last_refusal: dict[str, Any] | None = None
        #: False once this manager refused a mark (a version older than marks)
        self.marks = watermarks is not None
        self.last_mark: dict[str, Any] | None = None
        #: requests that carried only a mark (not counted in ``requests``)
        self.marks_sent = 0
        self._last_mark_at = 0.0
        #: why this manager refuses this gatherer for good ("" : it does not)
        self.refused_gatherer = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.spool.appended:
            self.spool.appended.notify_all()
        self._thread.join(timeout=self.config.timeout_s + 5)
        self._http.close()

    def _mark(self, seq: int) -> bytes:
        """The mark for a request whose entries end at ``seq`` (b"": none known)."""
        if not self.marks or self.watermarks is None:
            return b""
        known = self.watermarks.at(seq)
        if known is None:
            return b""
        watermark, per_source = known
        lost_until = float(self.spool.lag_status(self.spool_destination)["lost_until"])  # type: ignore[arg-type]
        self.last_mark = {"seq": seq, "watermark": watermark, "lost_until": lost_until}
        self._last_mark_at = self._clock()
        return pack_mark(seq, self.gatherer, watermark, per_source, lost_until)

    def _post(self, body: bytes, *, mark_only: bool = False) -> tuple[int, Answer, str]:
        if mark_only:
            self.marks_sent += 1
        else:
            self.requests += 1
        response = self._http.post("/api/ingest", params={"gatherer": self.gatherer}, content=body)
        try:
            parsed: dict[str, Any] = response.json()
        except ValueError:
            parsed = {}
        refusal = response.headers.get(REFUSAL_HEADER)
        if response.status_code == 403 and refusal:
            detail = parsed.get("detail") if isinstance(parsed, dict) else None
            raise GathererRefused(
                str(detail or response.text[:300]), reason=refusal, manager=self.url
            )
        if self.refused_gatherer:
            log.warning("manager %s accepts this gatherer again", self.url)
            self.refused_gatherer = ""
        answer = Answer.parse(response.status_code, parsed if isinstance(parsed, dict) else {})
        return response.status_code, answer, response.text

    def send_mark(self) -> bool:
        """While idle: tell the manager the watermark of what it acknowledged."""
        mark = self._mark(self.spool.cursor(self.spool_destination))
        if not mark:
            return False
        status, answer, text = self._post(mark, mark_only=True)
        if status == 200:
            return True
        if not answer.retriable:
            self._marks_refused(answer)
            return False
        raise RuntimeError(f"manager answered {status}: {answer.error or text[:200]}")

    def _marks_refused(self, answer: Answer) -> None:
        self.marks = False
        log.warning(
            "manager %s does not take watermark marks (%s): not sending them; its report "
            "windows close on its own clock",
            self.url,
            answer.error,
        )

    def send_once(self) -> int:
        """Send the next unacknowledged entries (and a mark); returns how many were
        acknowledged or set aside. Raises on a transport error or a retriable failure."""
        entries = self.spool.read(
            self.spool_destination,
            max_entries=self.config.max_batches_per_request,
            max_bytes=self.config.max_request_bytes,
        )
        if not entries:
            return 0
        if self._convert is not None:
            entries = [self._convert(entry) for entry in entries]
        status, answer, text = self._post(pack_entries(entries) + self._mark(entries[-1].seq))
        done = [e for e in entries if e.seq <= answer.acked]
        if done:
            self.spool.ack(self.spool_destination, done[-1].seq)
            self.sent_batches += len(done)
            self.sent_records += sum(e.rows for e in done)
        if status == 200:
            self.answered_requests += 1
            return len(done)
        if not answer.retriable:
            if len(done) == len(entries):  # every entry taken: it was the mark
                self._marks_refused(answer)
                return len(done)
            if self.dead_letters is None:  # nowhere to set it aside: keep it, retry
                raise RuntimeError(f"manager refused an entry for good: {answer.error}")
            refused = next(
                (e for e in entries if e.seq == answer.refused_seq),
                next(e for e in entries if e.seq > answer.acked),
            )
            self._dead_letter(refused, answer)
            return len(done) + 1
        detail = answer.error or text[:200]
        raise RuntimeError(f"manager answered {status}: {detail}")

    def _dead_letter(self, entry: Entry, answer: Answer) -> None:
        """Set ``entry`` aside (durably) and move past it; see the module docstring."""
        if self.dead_letters is not None:
            self.dead_letters.put(
                entry,
                destination=self.spool_destination,
                url=self.url,
                reason=answer.error,
                field=answer.field,
            )
        self.spool.ack(self.spool_destination, entry.seq)
        self.dead_lettered += 1
        self.last_refusal = {
            "seq": entry.seq,
            "origin": entry.origin,
            "field": answer.field,
            "error": answer.error,
        }
        self.last_error = f"refused: {answer.error}"
        log.error(
            "manager %s REFUSED spool entry %d (%s, %d records) for good: %s — moved to the "
            "dead-letter area%s; the entries behind it go on",
            self.url,
            entry.seq,
            entry.origin,
            entry.rows,
            answer.error,
            f" ({self.dead_letters.directory})" if self.dead_letters is not None else "",
        )

    @property
    def spool_destination(self) -> str:
        return self.destination

    def _loop(self) -> None:
        backoff = self.config.backoff_initial_s
        while not self._stop.is_set():
            try:
                n = self.send_once()
                if n == 0:
                    self.spool.trim_behind()
                    if self._clock() - self._last_mark_at >= self.config.watermark_interval_s:
                        self.send_mark()
            except GathererRefused as refusal:
                if str(refusal) != self.refused_gatherer:
                    log.error(
                        "manager %s REFUSES this gatherer (%s): %s — the spool is kept; "
                        "asking again every %gs",
                        self.url,
                        refusal.reason,
                        refusal,
                        self.config.refused_retry_s,
                    )
                self.refused_gatherer = str(refusal)
                self.last_error = f"refused ({refusal.reason}): {refusal}"
                self.connected = True  # it answered
                self.backoff_s = self.config.refused_retry_s
                self._stop.wait(self.config.refused_retry_s)
                backoff = self.config.backoff_initial_s
                continue
            except Exception as exc:
                self.failures += 1
                self.connected = False
                message = f"{type(exc).__name__}: {exc}"
                if message != self.last_error:
                    log.warning("forwarding to %s failed (retrying): %s", self.url, message)
                self.last_error = message
                self.backoff_s = backoff
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.config.backoff_max_s)
                continue
            self.connected = True
            self.backoff_s = 0.0
            backoff = self.config.backoff_initial_s
            if n == 0:
                with self.spool.appended:
                    if not self._stop.is_set():
                        self.spool.appended.wait(0.1)

    def status(self) -> dict[str, Any]:
        batches, records = self.spool.pending(self.spool_destination)
        return {
            "url": self.url,
            "connected": self.connected,
            "acked_seq": self.spool.cursor(self.spool_destination),
            "pending_batches": batches,
            "pending_records": records,
            "sent_batches": self.sent_batches,
            "sent_records": self.sent_records,
            "requests": self.requests,
            "answered_requests": self.answered_requests,
            "failures": self.failures,
            "backoff_s": self.backoff_s,
            "last_error": self.last_error,
            "dead_lettered": self.dead_lettered,
            "last_refusal": self.last_refusal,
            "last_mark": self.last_mark,
            "refused_gatherer": self.refused_gatherer,
            "marks_sent": self.marks_sent,
            **self.spool.lag_status(self.spool_destination),
        }
