"""Spool entries written before batches carried field names (wire format 1).

Before issue 12 a gatherer renamed each records batch's columns to the field ids of the
manager that gave it its plan, and kept that plan, with that manager's field registry,
in ``<data-dir>/plan.json``. The first start of this version finds such a plan (one
with ``fields``) before it fetches a new one, and records in
``<data-dir>/spool/format1-fields.json`` that registry (id → name, type) and the spool
sequence from which entries are new (``before_seq``). The forwarders convert each
records entry below ``before_seq`` that is format 1 with that registry before sending
it (``delivery.wire.from_field_ids``); the spool itself is not rewritten.

Exact when the entries were encoded with the registry of the plan's manager: always
with one manager (a registry never reuses an id), and with two as long as the same
manager served every plan (the gatherer asks its managers in order, so the first one
unless it was down). An id the recorded registry does not name (a field dropped before
the upgrade) is left out, as format 1 did, logged and counted (``format1_left_out``).
Without a recorded registry (no plan.json from before the upgrade), a format-1 entry is
sent as it is and refused by the manager (422, kept in the spool): drain the spool
before upgrading then (docs/delivery.md, "Upgrading").
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from pathlib import Path
from typing import Any

from netdistill.delivery.entry import RECORDS, Entry
from netdistill.delivery.wire import decode_table, encode_table, from_field_ids, is_legacy
from netdistill.files import write_atomic

log = logging.getLogger(__name__)

FILE_NAME = "format1-fields.json"


class Format1Entries:
    """Converts the format-1 records entries of a spool with the registry recorded at
    upgrade. Thread-safe (every forwarder calls ``convert``)."""

    def __init__(self, fields: dict[int, tuple[str, str]], before_seq: int) -> None:
        self.fields = fields
        self.before_seq = before_seq
        self.converted = 0
        self.left_out = 0
        self._lock = threading.Lock()
        self._logged: set[int] = set()

    @classmethod
    def at_start(
        cls, spool_dir: Path, next_seq: int, old_plan: dict[str, Any] | None
    ) -> Format1Entries | None:
        """The converter recorded in ``spool_dir``, or recorded now from ``old_plan``
        (the plan.json found at start, before a new plan replaced it); None when this
        spool never held format-1 entries."""
        path = Path(spool_dir) / FILE_NAME
        if not path.exists():
            if not old_plan or not old_plan.get("fields"):
                return None
            recorded = {"before_seq": next_seq, "fields": old_plan["fields"]}
            write_atomic(path, json.dumps(recorded))
            log.warning(
                "spool entries below seq %d may name their columns by field id (written "
                "before this version): they are converted with the registry of plan %s",
                next_seq,
                old_plan.get("version"),
            )
        data = json.loads(path.read_text())
        fields = {int(f["id"]): (str(f["name"]), str(f["type"])) for f in data["fields"]}
        return cls(fields, int(data["before_seq"]))

    def convert(self, entry: Entry) -> Entry:
        """``entry`` in wire format 2 (unchanged when it is already, or not records)."""
        if entry.kind != RECORDS or entry.seq >= self.before_seq:
            return entry
        table = decode_table(entry.payload)
        if not is_legacy(table.schema):
            return entry
        named, unknown = from_field_ids(table, self.fields)
        with self._lock:
            self.converted += 1
            if unknown and entry.seq not in self._logged:
                self._logged.add(entry.seq)
                self.left_out += len(unknown)
                log.warning(
                    "spool entry %d: field ids %s are not in the registry recorded at "
                    "upgrade (fields dropped before it): those columns are left out",
                    entry.seq,
                    unknown,
                )
        return dataclasses.replace(entry, payload=encode_table(named))

    def status(self) -> dict[str, int]:
        return {
            "format1_before_seq": self.before_seq,
            "format1_converted": self.converted,
            "format1_left_out": self.left_out,
        }
