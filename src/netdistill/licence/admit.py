"""Where exporter admission (``LicenceBook.admit_exporters``) meets the record flow.

A batch's exporters are counted per source *kind*: the scheme's ``type:`` of the source
that produced it (the source name is the part of the origin after the gatherer). A
source the scheme no longer names (batches spooled before it was removed) counts as
kind ``other``.

* ``Exporters`` — the callable ``(source name, records) → records admitted`` that the
  manager's ingest applies to every gatherer batch before enhancement
  (``manager/ingest.py``);
* ``AdmittingSink`` — the same in front of the store for the sources a manager runs
  itself (``netdistill run``, gatherer ``local`` of ``netdistill manager``).

Both are pure per batch given the admitted lists, so a batch retried after a failed
commit is admitted the same way (admissions are durable before the commit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from netdistill.licence.book import LicenceBook
from netdistill.records.batch import Quarantined
from netdistill.scheme.models import Scheme


def kind_of(scheme: Scheme, source_name: str) -> str:
    return next((s.type for s in scheme.sources if s.name == source_name), "other")


class Exporters:
    """``(source name, records) → the records of admitted exporters``."""

    def __init__(self, book: Callable[[], LicenceBook], scheme: Callable[[], Scheme]) -> None:
        self._book = book
        self._scheme = scheme

    def __call__(self, source_name: str, records: pa.Table) -> pa.Table:
        return self._book().admit_exporters(kind_of(self._scheme(), source_name), records)


class AdmittingSink:
    """A pipeline sink: ``sink`` (the store) behind exporter admission."""

    def __init__(self, sink: Any, admit: Callable[[str, pa.Table], pa.Table]) -> None:
        self.sink = sink
        self.admit = admit

    def commit(self, batch: pa.Table, *, origin: str, sequence: int) -> int:
        batch = self.admit(origin.partition("/")[2], batch)
        return int(self.sink.commit(batch, origin=origin, sequence=sequence))

    def commit_quarantine(self, items: Sequence[Quarantined]) -> int:
        return int(self.sink.commit_quarantine(items))

    def last_sequence(self, origin: str) -> int:
        return int(self.sink.last_sequence(origin))
