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
manager does not know, or knows with another type) is logged as an error naming the
entry, the field and both types, counted (``refused_batches``, ``refused``) and kept in
the spool; that manager is tried again only every ``refused_retry_s``, since it will
refuse the same bytes until an operator fixes its registry. Until then the entries
behind it wait for that manager (in order: nothing is skipped) while the other one
gets everything.

A refusal of the gatherer itself (403 ``X-Netdistill-Refusal``: no room in the licence,
older than the manager's minimum version) is handled the same way: logged once as an
error with the manager's message, shown in the status (``refused_gatherer``), the spool
kept, and that manager asked again only every ``refused_retry_s``.
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
from netdistill.delivery.wire import pack_entries
from netdistill.errors import BatchRefused, GathererRefused
from netdistill.gatherer.config import ForwardConfig
from netdistill.gatherer.spool import Spool

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
        self.refused_batches = 0
        self.refusals = 0
        #: the entry this manager refuses now (None: none)
        self.refused: dict[str, Any] | None = None
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

    def send_once(self) -> int:
        """Send the next unacknowledged entries; returns how many were acknowledged.
        Raises on a transport error or a refusal."""
        entries = self.spool.read(
            self.spool_destination,
            max_entries=self.config.max_batches_per_request,
            max_bytes=self.config.max_request_bytes,
        )
        if not entries:
            return 0
        if self._convert is not None:
            entries = [self._convert(entry) for entry in entries]
        self.requests += 1
        response = self._http.post(
            "/api/ingest", params={"gatherer": self.gatherer}, content=pack_entries(entries)
        )
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {}
        refusal = response.headers.get(REFUSAL_HEADER)
        if response.status_code == 403 and refusal:
            detail = body.get("detail") if isinstance(body, dict) else None
            message = str(detail or response.text[:300])
            raise GathererRefused(message, reason=refusal, manager=self.url)
        if self.refused_gatherer:
            log.warning("manager %s accepts this gatherer again", self.url)
            self.refused_gatherer = ""
        answer = Answer.parse(response.status_code, body if isinstance(body, dict) else {})
        done = [e for e in entries if e.seq <= answer.acked]
        if done:
            self.spool.ack(self.spool_destination, done[-1].seq)
            self.sent_batches += len(done)
            self.sent_records += sum(e.rows for e in done)
        if response.status_code == 200:
            self.answered_requests += 1
            if self.refused is not None and answer.acked >= self.refused["seq"]:
                log.warning(
                    "manager %s took spool entry %d it had refused", self.url, self.refused["seq"]
                )
                self.refused = None
            return len(done)
        if not answer.retriable:
            origin = next((e.origin for e in entries if e.seq == answer.refused_seq), "")
            raise BatchRefused(
                answer.error, seq=answer.refused_seq, field=answer.field, origin=origin
            )
        detail = answer.error or response.text[:200]
        raise RuntimeError(f"manager answered {response.status_code}: {detail}")

    @property
    def spool_destination(self) -> str:
        return self.destination

    def _loop(self) -> None:
        backoff = self.config.backoff_initial_s
        while not self._stop.is_set():
            try:
                n = self.send_once()
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
            except BatchRefused as refusal:
                self._refused(refusal)
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

    def _refused(self, refusal: BatchRefused) -> None:
        self.refusals += 1
        if self.refused is None or self.refused["seq"] != refusal.seq:
            self.refused_batches += 1
            log.error(
                "manager %s REFUSED spool entry %d (%s) and will refuse it again: %s — the "
                "entry is kept in the spool and retried every %gs; the entries after it "
                "wait for this manager",
                self.url,
                refusal.seq,
                refusal.origin,
                refusal,
                self.config.refused_retry_s,
            )
        self.refused = {
            "seq": refusal.seq,
            "origin": refusal.origin,
            "field": refusal.field,
            "error": str(refusal),
        }
        self.last_error = f"refused: {refusal}"

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
            "refused_batches": self.refused_batches,
            "refusals": self.refusals,
            "refused": self.refused,
            "refused_gatherer": self.refused_gatherer,
        }
