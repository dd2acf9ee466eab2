"""The gatherer's durable spool: a batch counts as received once it is here (seed 000).

Why segment files and not SQLite: a spool entry is an opaque, already-encoded Arrow IPC
stream (written once, read once per destination, deleted in whole segments); an
append-only log does that with one ``write`` + ``fsync`` per batch and no page
rewrites, and deleting a segment frees its space at once (SQLite would need VACUUM).

On-disk format (directory ``<data-dir>/spool``)::

    spool.id               creation time in ms: the base of sequence numbers
    <first_seq:020d>.seg   segments, append-only, rolled at ``segment_bytes``
    cursor.<destination>   the highest sequence that destination acknowledged (text)

    frame  = length:u32 | crc32(body):u32 | body                       (little endian)
    body   = kind:u8 | seq:u64 | origin_seq:u64 | rows:u32 | origin_len:u16 | origin
             | [appended_ms:u64 when kind & 0x80] | payload

``kind`` is the entry's kind (``delivery/entry.py``: 1 records, 2 quarantine items);
its bit 0x80 says an
``appended_ms`` follows the origin: the wall-clock time of the append in ms, from which
the status gives ``oldest_age_s`` (the age of the oldest entry some destination has not
acknowledged; 0 when none). Every frame written now has it; a frame without it (written
before it existed) is read as before, its time taken from its segment file's mtime.

``seq`` is the spool's own sequence, increasing by one per entry and never reused: it starts at
``creation_ms * 1_000_000``, so a spool deleted and made anew still numbers above the
old one (the manager's commit is idempotent on (origin, seq) and would otherwise take a
new batch for an old one). ``origin_seq`` is the pipeline's sequence of the batch, kept
so that a commit retried after a failed ``fsync`` is not spooled twice.

Independent destinations: each destination may have a lag limit (``lag_limits``:
bytes not yet acknowledged, age of its oldest unacknowledged entry). A destination past
its limit is *behind*. While at least one destination is not behind, the oldest entries
of a behind one are skipped for it until it is within its limit again: its cursor moves
past them, they are counted as not delivered to it (``not_delivered_batches``,
``not_delivered_records``, ``lost_until``: the append time of the newest one skipped)
and its status says ``behind``, while the others keep receiving everything. Only when
every destination is behind does the spool grow to ``max_bytes``, where ``policy``
applies (``block`` stops the sources; ``drop_oldest`` evicts, also counted per
destination as not delivered). ``behind`` clears when that destination has caught up.

Invariants: (1) ``append`` returns only after the frame is written and fsynced; (2)
every frame before the last one of the newest segment is complete, and opening the
spool cuts a torn or corrupt tail of the newest segment (an append interrupted by a
crash, which was never acknowledged to its caller); (3) a segment is deleted only when
every destination's cursor is at or past its last entry, or when the ``drop_oldest``
policy evicts it at the size bound, which is counted; (4) cursors only move forward;
(5) a cursor moves past an entry its destination did not acknowledge only by a
counted skip (lag limit) or eviction (``drop_oldest``).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from netdistill.delivery.entry import QUARANTINE, RECORDS, Entry
from netdistill.errors import SpoolFull
from netdistill.files import write_atomic

__all__ = ["QUARANTINE", "RECORDS", "Entry", "Spool", "SpoolFull"]

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")
_HEAD = struct.Struct("<BQQIH")
_TIME = struct.Struct("<Q")
_TIMED = 0x80
_SEGMENT_SUFFIX = ".seg"


@dataclass(slots=True)
class _Index:
    seq: int
    kind: int
    origin: str
    origin_seq: int
    rows: int
    offset: int
    length: int
    appended_ms: int


@dataclass(slots=True)
class _Segment:
    path: Path
    first_seq: int
    entries: list[_Index] = field(default_factory=list)
    size: int = 0


@dataclass(slots=True)
class Lag:
    """One destination's lag limit and what it was not delivered because of it."""

    max_bytes: int | None = None
    max_age_s: float | None = None
    behind: bool = False
    not_delivered_batches: int = 0
    not_delivered_records: int = 0
    #: append time (Unix s) of the newest entry skipped or evicted for it; 0: none
    lost_until: float = 0.0
    #: the sequence its cursor was last moved to by a skip (``behind`` clears only
    #: once it acknowledged past that and has nothing pending)
    skipped_to: int = 0


@dataclass(slots=True)
class SpoolCounters:
    appended_batches: int = 0
    appended_records: int = 0
    dropped_batches: int = 0
    dropped_records: int = 0
    blocked: int = 0
    truncated_bytes: int = 0


def _frame(entry: Entry, appended_ms: int) -> bytes:
    origin = entry.origin.encode()
    body = (
        _HEAD.pack(entry.kind | _TIMED, entry.seq, entry.origin_seq, entry.rows, len(origin))
        + origin
        + _TIME.pack(appended_ms)
        + entry.payload
    )
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _parse(body: bytes) -> tuple[int, int, int, int, str, int | None, int]:
    """kind, seq, origin_seq, rows, origin, appended_ms (None in an old frame), and
    where the payload starts."""
    kind, seq, origin_seq, rows, origin_len = _HEAD.unpack_from(body)
    start = _HEAD.size
    origin = body[start : start + origin_len].decode()
    start += origin_len
    appended_ms = None
    if kind & _TIMED:
        (appended_ms,) = _TIME.unpack_from(body, start)
        start += _TIME.size
    return kind & ~_TIMED, seq, origin_seq, rows, origin, appended_ms, start


class Spool:
    """Append-only segment log with per-destination acknowledgement cursors.

    Thread-safe: the pipeline appends from its thread while one forwarder thread per
    destination reads and acknowledges. ``append`` returning means durably written.
    """

    def __init__(
        self,
        directory: Path,
        destinations: Sequence[str],
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        policy: str = "block",
        fsync: bool = True,
        clock: Callable[[], float] = time.time,
        lag_limits: dict[str, tuple[int | None, float | None]] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.destinations = list(destinations)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.policy = policy
        self.fsync = fsync
        self._clock = clock
        self.counters = SpoolCounters()
        self.full = False
        self._lock = threading.Lock()
        self.appended = threading.Condition(self._lock)
        self._segments: list[_Segment] = []
        self._file: int | None = None
        self._origins: dict[str, int] = {}
        id_path = self.directory / "spool.id"
        if not id_path.exists():
            write_atomic(id_path, str(int(clock() * 1000)), fsync=self.fsync)
        self._base = int(id_path.read_text().strip()) * 1_000_000
        self._cursors = {d: self._read_cursor(d) for d in self.destinations}
        self.lag = {d: Lag(*(lag_limits or {}).get(d, (None, None))) for d in self.destinations}
        self._open()

    # --- opening -------------------------------------------------------------------------

    def _read_cursor(self, destination: str) -> int:
        try:
            return int((self.directory / f"cursor.{destination}").read_text().strip())
        except (OSError, ValueError):
            return 0

    def _open(self) -> None:
        paths = sorted(self.directory.glob(f"*{_SEGMENT_SUFFIX}"))
        for number, path in enumerate(paths):
            segment = _Segment(path, int(path.stem))
            self._scan(segment, last=number == len(paths) - 1)
            self._segments.append(segment)
        for segment in self._segments:
            for entry in segment.entries:
                self._origins[entry.origin] = max(
                    self._origins.get(entry.origin, 0), entry.origin_seq
                )
        last = max(
            [self._base, *self._cursors.values()]
            + [s.entries[-1].seq for s in self._segments if s.entries]
        )
        self._next_seq = last + 1
        # a destination that never acknowledged starts at the oldest entry kept
        oldest = self._oldest_seq()
        for destination, cursor in self._cursors.items():
            if cursor < oldest - 1:
                self._cursors[destination] = oldest - 1

    def _scan(self, segment: _Segment, *, last: bool) -> None:
        data = segment.path.read_bytes()
        mtime_ms = int(segment.path.stat().st_mtime * 1000)
        offset = 0
        while offset + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, offset)
            body = data[offset + _FRAME.size : offset + _FRAME.size + length]
            if len(body) < length or length < _HEAD.size or zlib.crc32(body) != crc:
                break
            kind, seq, origin_seq, rows, origin, appended_ms, _ = _parse(body)
            at_ms = mtime_ms if appended_ms is None else appended_ms
            index = _Index(seq, kind, origin, origin_seq, rows, offset, _FRAME.size + length, at_ms)
            segment.entries.append(index)
            offset += _FRAME.size + length
        if offset < len(data):
            cut = len(data) - offset
            self.counters.truncated_bytes += cut
            where = "torn tail" if last else "corrupt frame"
            log.warning("spool %s: %s at offset %d, %d bytes cut", segment.path, where, offset, cut)
            with open(segment.path, "r+b") as handle:
                handle.truncate(offset)
                os.fsync(handle.fileno())
        segment.size = offset

    def _oldest_seq(self) -> int:
        for segment in self._segments:
            if segment.entries:
                return segment.entries[0].seq
        return self._next_seq

    # --- writing -------------------------------------------------------------------------

    def next_seq(self) -> int:
        """The sequence the next append gets: every entry spooled so far is below it."""
        with self._lock:
            return self._next_seq

    def last_origin_seq(self, origin: str) -> int:
        with self._lock:
            return self._origins.get(origin, 0)

    def append(self, kind: int, origin: str, origin_seq: int, rows: int, payload: bytes) -> int:
        """Write one batch durably; return its spool sequence (0: spooled before).

        At the bound, ``block`` raises ``SpoolFull`` (the caller keeps the batch and
        stops reading its source) and ``drop_oldest`` evicts the oldest segments."""
        with self._lock:
            if origin_seq and origin_seq <= self._origins.get(origin, 0):
                return 0
            seq = self._next_seq
            now_ms = int(self._clock() * 1000)
            frame = _frame(Entry(seq, kind, origin, origin_seq, rows, payload), now_ms)
            self._trim_behind()
            if self._size() + len(frame) > self.max_bytes:
                self._release_acknowledged(seq)
                self._skip_laggards(len(frame), seq)
            if self._size() + len(frame) > self.max_bytes:
                self._at_bound(len(frame))
            segment = self._writable_segment(seq)
            assert self._file is not None
            os.write(self._file, frame)
            if self.fsync:
                os.fsync(self._file)
            segment.entries.append(
                _Index(seq, kind, origin, origin_seq, rows, segment.size, len(frame), now_ms)
            )
            segment.size += len(frame)
            self._next_seq = seq + 1
            if origin_seq:
                self._origins[origin] = origin_seq
            self.counters.appended_batches += 1
            self.counters.appended_records += rows
            self._trim_behind()  # a behind destination stays within its limit
            self.appended.notify_all()
            return seq

    def _at_bound(self, needed: int) -> None:
        if self.policy == "block":
            if not self.full:
                log.error(
                    "spool full (%d bytes): not reading sources until it drains", self._size()
                )
            self.full = True
            self.counters.blocked += 1
            raise SpoolFull(f"spool at its bound of {self.max_bytes} bytes")
        while self._segments and self._size() + needed > self.max_bytes:
            victim = self._segments[0]
            if victim is self._segments[-1]:
                self._close_file()  # the only segment: evict it and start a new one
            self._segments.pop(0)
            for destination, lag in self.lag.items():
                lost = [e for e in victim.entries if e.seq > self._cursors[destination]]
                if lost:
                    lag.not_delivered_batches += len(lost)
                    lag.not_delivered_records += sum(e.rows for e in lost if e.kind == RECORDS)
                    lag.lost_until = max(lag.lost_until, lost[-1].appended_ms / 1000)
            self.counters.dropped_batches += len(victim.entries)
            self.counters.dropped_records += sum(
                e.rows for e in victim.entries if e.kind == RECORDS
            )
            victim.path.unlink(missing_ok=True)
            if not self.full:
                log.error("spool full: dropping its oldest batches (policy drop_oldest)")
            self.full = True
        oldest = self._oldest_seq()
        for destination, cursor in self._cursors.items():
            if cursor < oldest - 1:
                self._cursors[destination] = oldest - 1

    def _release_acknowledged(self, seq: int) -> None:
        """At the bound: the newest segment is kept even when every destination passed
        it (it carries the sequence); roll to a new one so that it can go. Lock held."""
        done = min(self._cursors.values(), default=self._next_seq)
        last = self._segments[-1] if self._segments else None
        if last is not None and last.entries and last.entries[-1].seq <= done:
            self._writable_segment(seq, roll=True)

    def _writable_segment(self, seq: int, *, roll: bool = False) -> _Segment:
        current = self._segments[-1] if self._segments else None
        if current is not None and current.size < self.segment_bytes and not roll:
            if self._file is None:  # the newest segment, after start-up or an eviction
                self._file = os.open(current.path, os.O_WRONLY | os.O_APPEND)
            return current
        self._close_file()
        current = _Segment(self.directory / f"{seq:020d}{_SEGMENT_SUFFIX}", seq)
        self._segments.append(current)
        self._collect()  # the one it rolled from may have been acknowledged already
        self._file = os.open(current.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self.fsync:  # the new file's name must survive a crash too
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return current

    def _close_file(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def _size(self) -> int:
        return sum(s.size for s in self._segments)

    # --- reading and acknowledging ---------------------------------------------------------

    def read(
        self, destination: str, *, max_entries: int = 1, max_bytes: int = 64 << 20
    ) -> list[Entry]:
        """The oldest entries ``destination`` has not acknowledged, in order."""
        with self._lock:
            after = self._cursors[destination]
            wanted: list[tuple[Path, _Index]] = []
            size = 0
            for segment in self._segments:
                if not segment.entries or segment.entries[-1].seq <= after:
                    continue
                for entry in segment.entries:
                    if entry.seq <= after:
                        continue
                    if wanted and (len(wanted) >= max_entries or size + entry.length > max_bytes):
                        break
                    wanted.append((segment.path, entry))
                    size += entry.length
                if len(wanted) >= max_entries:
                    break
        out = []
        for path, index in wanted:
            try:
                with open(path, "rb") as handle:
                    handle.seek(index.offset + _FRAME.size)
                    body = handle.read(index.length - _FRAME.size)
            except FileNotFoundError:  # evicted by drop_oldest meanwhile
                break
            *_, start = _parse(body)
            out.append(
                Entry(
                    index.seq, index.kind, index.origin, index.origin_seq, index.rows, body[start:]
                )
            )
        return out

    def ack(self, destination: str, seq: int) -> None:
        """``destination`` durably committed every entry up to ``seq``."""
        with self._lock:
            if seq <= self._cursors[destination]:
                return
            self._cursors[destination] = seq
            write_atomic(self.directory / f"cursor.{destination}", str(seq), fsync=self.fsync)
            self._collect()
            if self.full and self._size() < self.max_bytes * 0.9:
                self.full = False
                log.warning("spool below its bound again")

    # --- lag limits ------------------------------------------------------------------------

    def _pending_bytes(self, destination: str) -> int:
        after = self._cursors[destination]
        total = 0
        for segment in self._segments:
            if not segment.entries or segment.entries[-1].seq <= after:
                continue
            if segment.entries[0].seq > after:
                total += segment.size
            else:
                total += sum(e.length for e in segment.entries if e.seq > after)
        return total

    def _oldest_pending_ms(self, destination: str) -> int | None:
        after = self._cursors[destination]
        for segment in self._segments:
            if segment.entries and segment.entries[-1].seq > after:
                for entry in segment.entries:
                    if entry.seq > after:
                        return entry.appended_ms
        return None

    def _over_limit(self, destination: str) -> bool:
        lag = self.lag[destination]
        if lag.max_bytes is not None and self._pending_bytes(destination) > lag.max_bytes:
            return True
        if lag.max_age_s is not None:
            oldest = self._oldest_pending_ms(destination)
            if oldest is not None and self._clock() - oldest / 1000 > lag.max_age_s:
                return True
        return False

    def trim_behind(self) -> None:
        """Apply the lag limits now (``append`` does it too; forwarders call this while
        idle, so an age limit acts without new appends)."""
        with self._lock:
            self._trim_behind()

    def _trim_behind(self) -> None:
        """See the module docstring, independent destinations. Lock held."""
        over = {d: self._over_limit(d) for d in self.destinations}
        for destination, lag in self.lag.items():
            if (
                lag.behind
                and self._cursors[destination] > lag.skipped_to
                and self._pending_bytes(destination) == 0
            ):
                lag.behind = False
                log.warning("spool: destination %s caught up, no longer behind", destination)
        if not any(over.values()) or all(over.values()):
            return
        now = self._clock()
        for destination in (d for d, o in over.items() if o):
            lag = self.lag[destination]
            pending = self._pending_bytes(destination)
            after = self._cursors[destination]
            skipped: list[_Index] = []
            for segment in self._segments:
                if not segment.entries or segment.entries[-1].seq <= after:
                    continue
                for entry in segment.entries:
                    if entry.seq <= after:
                        continue
                    too_big = lag.max_bytes is not None and pending > lag.max_bytes
                    too_old = (
                        lag.max_age_s is not None and now - entry.appended_ms / 1000 > lag.max_age_s
                    )
                    if not (too_big or too_old):
                        break
                    skipped.append(entry)
                    pending -= entry.length
                else:
                    continue
                break
            if skipped:
                self._skip(destination, skipped)
        self._collect()
        if self.full and self._size() < self.max_bytes * 0.9:
            self.full = False
            log.warning("spool below its bound again")

    def _skip_laggards(self, needed: int, seq: int) -> None:
        """At the bound, while some destination keeps within its limit: skip the oldest
        entries of the one furthest behind (counted) until ``needed`` bytes fit. Lock
        held. With every destination past its limit nothing is skipped (the policy
        applies)."""
        keepers = [d for d in self.destinations if not self._over_limit(d)]
        if not keepers or not any(lag.max_bytes or lag.max_age_s for lag in self.lag.values()):
            return
        for _ in range(sum(len(s.entries) for s in self._segments)):
            if self._size() + needed <= self.max_bytes:
                return
            pending = {d: self._pending_bytes(d) for d in self.destinations}
            floor = min(pending[d] for d in keepers)
            worst = max(self.destinations, key=lambda d: pending[d])
            if pending[worst] <= floor:
                return  # nobody is further behind than those keeping up
            after = self._cursors[worst]
            entry = next(e for segment in self._segments for e in segment.entries if e.seq > after)
            self._skip(worst, [entry])
            self._collect()
            self._release_acknowledged(seq)

    def _skip(self, destination: str, skipped: list[_Index]) -> None:
        """Move ``destination``'s cursor past ``skipped`` (its oldest), counted."""
        lag = self.lag[destination]
        if not lag.behind:
            log.error(
                "spool: destination %s is behind; skipping its oldest entries (counted as "
                "not delivered to it) while the others keep up",
                destination,
            )
        lag.behind = True
        lag.not_delivered_batches += len(skipped)
        lag.not_delivered_records += sum(e.rows for e in skipped if e.kind == RECORDS)
        lag.lost_until = max(lag.lost_until, skipped[-1].appended_ms / 1000)
        self._cursors[destination] = lag.skipped_to = skipped[-1].seq
        write_atomic(
            self.directory / f"cursor.{destination}", str(skipped[-1].seq), fsync=self.fsync
        )

    def lag_status(self, destination: str) -> dict[str, object]:
        with self._lock:
            lag = self.lag[destination]
            return {
                "behind": lag.behind,
                "max_lag_bytes": lag.max_bytes,
                "max_lag_s": lag.max_age_s,
                "pending_bytes": self._pending_bytes(destination),
                "not_delivered_batches": lag.not_delivered_batches,
                "not_delivered_records": lag.not_delivered_records,
                "lost_until": lag.lost_until,
            }

    def _collect(self) -> None:
        """Delete the segments every destination acknowledged, except the newest (it
        carries the sequence across restarts). Called with the lock held."""
        done = min(self._cursors.values(), default=self._next_seq)
        while len(self._segments) > 1 and (
            not self._segments[0].entries or self._segments[0].entries[-1].seq <= done
        ):
            self._segments.pop(0).path.unlink(missing_ok=True)

    def cursor(self, destination: str) -> int:
        with self._lock:
            return self._cursors[destination]

    def pending(self, destination: str) -> tuple[int, int]:
        """(batches, records) not yet acknowledged by ``destination``."""
        with self._lock:
            after = self._cursors[destination]
            batches = records = 0
            for segment in self._segments:
                for entry in segment.entries:
                    if entry.seq > after:
                        batches += 1
                        records += entry.rows if entry.kind == RECORDS else 0
            return batches, records

    def oldest_age_s(self) -> float:
        """Seconds since the oldest entry some destination has not acknowledged was
        appended; 0.0 when every destination has acknowledged everything."""
        with self._lock:
            after = min(self._cursors.values(), default=self._next_seq)
            for segment in self._segments:
                for entry in segment.entries:
                    if entry.seq > after:
                        return max(0.0, round(self._clock() - entry.appended_ms / 1000, 3))
            return 0.0

    def status(self) -> dict[str, object]:
        with self._lock:
            size = self._size()
        return {
            "bytes": size,
            "max_bytes": self.max_bytes,
            "policy": self.policy,
            "full": self.full,
            "appended_batches": self.counters.appended_batches,
            "appended_records": self.counters.appended_records,
            "dropped_batches": self.counters.dropped_batches,
            "dropped_records": self.counters.dropped_records,
            "blocked": self.counters.blocked,
            "truncated_bytes": self.counters.truncated_bytes,
            "oldest_age_s": self.oldest_age_s(),
            "destinations": {
                d: {
                    **dict(zip(("batches", "records"), self.pending(d), strict=True)),
                    **self.lag_status(d),
                }
                for d in self.destinations
            },
        }

    def close(self) -> None:
        with self._lock:
            self._close_file()
