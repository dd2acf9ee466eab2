"""The manager's licences: installed, checked, and what they admit (seed 001: the CEM
"maintains a list of licenses installed in the system and verifies periodically if the
system is properly licensed … it also prevents unlicensed use of the system").

``LicenceBook`` keeps the installed licence files in the store (``tables.py``) and
verifies each one again (signature, installation) whenever it reads them, at start and
on every change. ``check`` (every ``check_interval_s``, a thread of its own) takes the
clock into account: a licence nearing its end, in its grace period, or past it raises
an alert (``manager/monitor.py``'s ``alerts`` table), once per licence and state.

Admission. Every gatherer (at its plan fetch, delivery and heartbeat) and every
exporter (the ``exporter`` column of each batch, per source kind, before the batch is
enhanced and committed) is admitted against the limits in force (``terms.combined``):
the first N are admitted and remembered in ``licence_admitted`` (so a restart does not
reshuffle who is licensed); past N a gatherer is refused (``LicenceError``; the manager
answers 403 with ``X-Netdistill-Refusal: licence``) and an exporter's records are left
out of the batch — counted per exporter (records, first and last refusal), alerted
once per exporter and logged, not stored. Admitted ones are never refused later, even
if the limits shrink: collection and storing of what runs never stop for a licence.
The gatherer ``local`` (the manager's own sources) is not counted. Per batch the work
is one ``unique`` over the exporter column and a set lookup per distinct exporter;
a batch with only admitted exporters is returned as it is.

Read-only. When every installed licence is past its grace period, or more gatherers or
exporters are admitted than the limits in force allow (a licence was removed or
expired), ``read_only()`` says why, and the manager refuses configuration changes with
that message (``licence/api.py``); collection, storing, reports, queries and licence
changes go on. Without any licence the product is the community edition
(``terms.COMMUNITY``), which is never read-only by itself.

Thread-safe: one lock around the admitted lists and the licences in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from netdistill.errors import LicenceError
from netdistill.licence import tables
from netdistill.licence.keys import VENDOR_KEYS
from netdistill.licence.signed import Verified, verify
from netdistill.licence.terms import GATHERER, Entitlements, Licence, combined, exporter_item
from netdistill.manager.jobs import Every
from netdistill.manager.monitor import clear_alert, raise_alert
from netdistill.store import Store

log = logging.getLogger(__name__)

#: the in-process gatherer of ``run`` and ``manager``: the manager itself, not counted
LOCAL_GATHERER = "local"
#: an alert is raised this long before a licence expires
EXPIRY_WARNING = timedelta(days=30)
#: alert kinds
REFUSED, EXPIRING, GRACE, EXPIRED, READ_ONLY = (
    "licence_refused",
    "licence_expiring",
    "licence_grace",
    "licence_expired",
    "licence_read_only",
)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class LicenceBook:
    """Installed licences, the limits in force, the admitted lists, read-only mode.

    ``trusted_keys`` defaults to the vendor's built-in keys; only code that builds the
    book itself (tests) can give others — no setting, variable or option reaches it."""

    def __init__(
        self,
        store: Store,
        *,
        trusted_keys: Mapping[str, Ed25519PublicKey] = VENDOR_KEYS,
        clock: Callable[[], float] = time.time,
        check_interval_s: float = 60.0,
    ) -> None:
        self.store = store
        self.trusted_keys = dict(trusted_keys)
        self._clock = clock
        self._lock = threading.RLock()
        tables.ensure_tables(store)
        self.install_id = tables.install_id(store, clock())
        self._licences: list[tuple[Verified, dict[str, Any]]] = []
        #: item → subject → first seen (epoch s)
        self._admitted: dict[str, dict[str, float]] = {}
        for row in tables.admitted(store):
            self._admitted.setdefault(row["item"], {})[row["subject"]] = row["first_seen"]
        #: refusals: gatherer → count; kind → exporter → {records, first, last}
        self.refused_gatherers: dict[str, int] = {}
        self.refused_exporters: dict[str, dict[str, dict[str, float]]] = {}
        self.last_refusal = ""
        self._alerted: set[tuple[str, str]] = set()
        self._states: dict[str, str] = {}
        self._read_only = ""
        self._load()
        self._job = Every(check_interval_s, self.check, name="licence check")

    # --- installed licences --------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _load(self) -> None:
        loaded = []
        for row in tables.installed(self.store):
            try:
                verified = verify(
                    row["text"],
                    trusted_keys=self.trusted_keys,
                    now=self._now(),
                    install_id=self.install_id,
                    check_dates=False,
                )
            except LicenceError as exc:  # edited in the store, or a key withdrawn
                log.error("installed licence %s is ignored: %s", row["licence_id"], exc)
                continue
            loaded.append((verified, row))
        with self._lock:
            self._licences = loaded

    def add(self, text: str, *, user: str = "cli") -> Licence:
        """Verify and install a licence file's text (a licence with the same id is
        replaced: a renewal); ``LicenceError`` says why one is refused."""
        verified = verify(
            text, trusted_keys=self.trusted_keys, now=self._now(), install_id=self.install_id
        )
        licence = verified.licence
        tables.put_licence(self.store, licence.licence_id, verified.text, user, self._clock())
        self._load()
        log.warning(
            "licence %s of %s installed by %s (until %s)",
            licence.licence_id,
            licence.customer,
            user,
            _iso(licence.expires_at),
        )
        self.check()
        return licence

    def remove(self, licence_id: str, *, user: str = "cli") -> None:
        if not any(v.licence.licence_id == licence_id for v, _ in self._licences):
            raise LicenceError(f"no licence {licence_id!r} is installed")
        tables.delete_licence(self.store, licence_id)
        self._load()
        log.warning("licence %s removed by %s", licence_id, user)
        self.check()

    def licences(self) -> list[dict[str, Any]]:
        now = self._now()
        out = []
        for verified, row in self._licences:
            lic = verified.licence
            out.append(
                {
                    **lic.model_dump(mode="json", exclude_none=True),
                    "state": lic.state(now),
                    "grace_ends_at": _iso(lic.grace_ends_at),
                    "key": verified.key_id,
                    "installed_at": row["installed_at"],
                    "installed_by": row["installed_by"],
                }
            )
        return out

    def in_force(self) -> list[Licence]:
        now = self._now()
        return [v.licence for v, _ in self._licences if v.licence.state(now) in ("valid", "grace")]

    def entitlements(self) -> Entitlements:
        return combined(self.in_force())

    def allows(self, feature: str) -> bool:
        """Whether ``feature`` (``terms.FEATURES``) is licensed."""
        return feature in self.entitlements().features

    def edition(self) -> str:
        """``community`` (no licence installed), ``licensed`` (one valid), ``grace``
        (none valid, one in its grace period) or ``expired`` (all past grace)."""
        if not self._licences:
            return "community"
        states = {v.licence.state(self._now()) for v, _ in self._licences}
        for state in ("valid", "grace"):
            if state in states:
                return "licensed" if state == "valid" else "grace"
        return "expired"

    # --- admission -----------------------------------------------------------------------

    def _admit(self, item: str, subject: str, limit: int) -> bool:
        """Admit ``subject`` under ``item`` if it is or there is room (caller locks)."""
        known = self._admitted.setdefault(item, {})
        if subject in known:
            return True
        if len(known) >= limit:
            return False
        now = self._clock()
        tables.admit(self.store, item, subject, now)
        known[subject] = now
        log.info("licence: %s %r admitted (%d of %d)", item, subject, len(known), limit)
        return True

    def admit_gatherer(self, name: str) -> None:
        """Raise ``LicenceError`` unless gatherer ``name`` is, or can be, admitted."""
        if name == LOCAL_GATHERER or name in self._admitted.get(GATHERER, {}):
            return
        with self._lock:
            limit = self.entitlements().gatherers
            if self._admit(GATHERER, name, limit):
                return
            admitted = ", ".join(sorted(self._admitted[GATHERER]))
            message = (
                f"gatherer {name!r} refused: the licence allows {limit} gatherers and "
                f"{len(self._admitted[GATHERER])} are admitted ({admitted}); install a "
                "licence for more (netdistill licence add) or free a place "
                "(netdistill licence forget gatherer NAME)"
            )
            self.refused_gatherers[name] = self.refused_gatherers.get(name, 0) + 1
            self._refused(f"gatherer {name}", message)
        raise LicenceError(message)

    def admit_exporters(self, kind: str, records: pa.Table) -> pa.Table:
        """``records`` without the rows of exporters of source kind ``kind`` that the
        limits leave out (counted, alerted once, logged)."""
        if not records.num_rows or "exporter" not in records.column_names:
            return records
        item = exporter_item(kind)
        column = pc.fill_null(records.column("exporter").cast(pa.string()), "")
        distinct = pc.unique(column).to_pylist()  # in order of first appearance
        known = self._admitted.get(item, {})
        if all(e in known for e in distinct):
            return records
        refused: list[str] = []
        with self._lock:
            limit = self.entitlements().exporter_limit(kind)
            for exporter in distinct:
                if not self._admit(item, exporter, limit):
                    refused.append(exporter)
        if not refused:
            return records
        mask = pc.is_in(column, value_set=pa.array(refused, pa.string()))
        counts = pc.value_counts(column.filter(mask)).to_pylist()
        now = self._clock()
        with self._lock:
            seen = self.refused_exporters.setdefault(kind, {})
            for entry in counts:
                exporter, n = entry["values"], entry["counts"]
                count = seen.setdefault(exporter, {"records": 0, "first": now, "last": now})
                count["records"] += n
                count["last"] = now
                message = (
                    f"{kind} exporter {exporter!r} refused: the licence allows {limit} "
                    f"{kind} exporters and {len(self._admitted[item])} are admitted; its "
                    "records are counted, not stored (install a licence for more, or "
                    f"netdistill licence forget exporter {kind} ADDRESS)"
                )
                self._refused(f"exporter {kind} {exporter}", message)
        return records.filter(pc.invert(mask))

    def _refused(self, subject: str, message: str) -> None:
        """Log and alert a refusal once per subject (caller locks)."""
        self.last_refusal = message
        if (REFUSED, subject) in self._alerted:
            return
        self._alerted.add((REFUSED, subject))
        log.error("licence: %s", message)
        raise_alert(self.store, REFUSED, subject, message, self._clock())

    def admitted(self) -> list[dict[str, Any]]:
        return tables.admitted(self.store)

    def forget(self, item: str, subject: str) -> None:
        """Free ``subject``'s place under ``item`` (a replaced router, a retired
        gatherer); it is admitted again, if there is room, when it is seen again."""
        with self._lock:
            if subject not in self._admitted.get(item, {}):
                raise LicenceError(f"{item} {subject!r} is not admitted")
            tables.forget(self.store, item, subject)
            del self._admitted[item][subject]
            self._alerted.discard((REFUSED, f"{item.replace(':', ' ')} {subject}"))
        self.check()

    # --- periodic check, read-only ---------------------------------------------------------

    def over_limit(self) -> list[str]:
        """What is admitted beyond the limits in force, one line per item."""
        limits = self.entitlements()
        out = []
        for item, subjects in sorted(self._admitted.items()):
            limit = limits.limit(item)
            if len(subjects) > limit:
                what = "gatherers" if item == GATHERER else f"{item.partition(':')[2]} exporters"
                out.append(f"{len(subjects)} {what} are admitted and the licence allows {limit}")
        return out

    def read_only(self) -> str:
        """Why configuration changes are refused now ("": they are not)."""
        return self._read_only

    def check(self) -> str:
        """Take the clock into account: alerts on licences nearing their end, in grace
        and past it; read-only mode on and off. Returns ``read_only()``."""
        now = self._now()
        when = self._clock()
        with self._lock:
            for verified, _ in self._licences:
                lic = verified.licence
                state: str = lic.state(now)
                if state == "valid" and lic.expires_at - now < EXPIRY_WARNING:
                    state = "expiring"
                if self._states.get(lic.licence_id) == state:
                    continue
                self._states[lic.licence_id] = state
                detail = {
                    "expiring": (EXPIRING, f"expires on {_iso(lic.expires_at)}"),
                    "grace": (
                        GRACE,
                        f"expired on {_iso(lic.expires_at)}; it counts until the end of its "
                        f"grace period, {_iso(lic.grace_ends_at)}",
                    ),
                    "expired": (
                        EXPIRED,
                        f"expired on {_iso(lic.expires_at)}, grace period over on "
                        f"{_iso(lic.grace_ends_at)}",
                    ),
                }.get(state)
                if detail is not None:
                    raise_alert(
                        self.store, detail[0], lic.licence_id,
                        f"licence {lic.licence_id} of {lic.customer} {detail[1]}", when,
                    )  # fmt: skip
            reasons = []
            if self.edition() == "expired":
                reasons.append("every installed licence is past its grace period")
            reasons += self.over_limit()
            reason = ""
            if reasons:
                reason = (
                    "read-only: " + "; ".join(reasons) + ". Configuration changes are refused "
                    "until a valid licence is installed (netdistill licence add); collection, "
                    "storing and reports go on"
                )
            if reason != self._read_only:
                if reason:
                    log.error("licence: %s", reason)
                    clear_alert(self.store, READ_ONLY, "manager", when)
                    raise_alert(self.store, READ_ONLY, "manager", reason, when)
                else:
                    log.warning("licence: configuration changes are allowed again")
                    clear_alert(self.store, READ_ONLY, "manager", when)
                self._read_only = reason
        return reason

    def start(self) -> None:
        self._job.start()

    def stop(self) -> None:
        self._job.stop()

    # --- status ---------------------------------------------------------------------------

    def usage(self) -> dict[str, dict[str, int]]:
        limits = self.entitlements()
        items = set(self._admitted) | {GATHERER}
        items |= {exporter_item(k) for k in limits.exporters}
        return {
            item: {"admitted": len(self._admitted.get(item, {})), "limit": limits.limit(item)}
            for item in sorted(items)
        }

    def status(self) -> dict[str, Any]:
        """The summary ``/api/status`` shows (``licence``)."""
        with self._lock:
            refused_records = sum(
                int(c["records"]) for by in self.refused_exporters.values() for c in by.values()
            )
            return {
                "edition": self.edition(),
                "install_id": self.install_id,
                "licences": [
                    {
                        "licence_id": v.licence.licence_id,
                        "state": v.licence.state(self._now()),
                        "expires_at": _iso(v.licence.expires_at),
                    }
                    for v, _ in self._licences
                ],
                "read_only": self._read_only,
                "features": list(self.entitlements().features),
                "usage": self.usage(),
                "refused_gatherers": dict(self.refused_gatherers),
                "refused_exporters": {
                    kind: {e: dict(c) for e, c in by.items()}
                    for kind, by in self.refused_exporters.items()
                },
                "refused_records": refused_records,
                "last_refusal": self.last_refusal,
            }
