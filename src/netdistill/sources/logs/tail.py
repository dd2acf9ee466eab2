"""Following log files through rotation, with offsets kept durably.

A file is known by its identity ``(st_dev, st_ino)``, not its name, so a rename does not
make it a new file. Every poll reads what was appended to each followed file, up to the
last newline: a partial last line stays in the file until its newline arrives.

Finding files: with ``watch`` (the default, where inotify can be had) a ``Watcher`` thread
(``watch.py``) opens every file that appears under a watched name — created or renamed
there — the moment inotify reports it, and keeps the descriptor, so a file that carried
the name for a few milliseconds is read to its end all the same; each ``read`` takes over
those descriptors and rescans the names at once when one changed. Every
``poll_interval_s`` the patterns are globbed again as well (the only way to find files
with ``watch`` off, with ``NETDISTILL_LOGS_POLL_ONLY=1``, or where inotify failed: then a
file renamed away within one poll is missed).

Rotation:

* **rename** (logrotate's default, ``squid -k rotate``): the path now names another
  file. The old one stays open and is read to its end, before the new one, so lines keep
  their order; it is closed once it has not grown for ``ROTATED_GRACE_S`` (a writer may
  still finish a line in it), and a last line without a newline is then read as a line.
  A renamed file that still matches a pattern (``access.log*``) is simply followed on.
* **truncation** (``copytruncate``): the size fell below the offset, or the first bytes
  are no longer those seen before (truncated and rewritten between two polls) — reading
  restarts at 0.

Offsets: ``read`` returns a ``Position`` snapshot with the chunks; the caller hands it to
``commit`` only after the lines' records are durably committed (a ``DecodeResult``'s
``after_commit``), which writes ``<state_dir>/<source>.offsets.json`` atomically (write,
fsync, rename). After a restart, a file of known identity resumes at its committed
offset — if its first bytes still match (the inode was not reused by another file); a
known file renamed away while netdistill was down is looked for in its old directory and
read to its end. So a clean stop and start neither loses nor repeats a line. A crash in
the instant between the sink's commit and the offset write repeats that one batch.

Line numbers (``path:line`` in the quarantine) count from the file's start, also with
``start_at: end`` (the skipped lines are counted once, at start).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netdistill.sources.logs.watch import Opened, Watcher, inotify_available

log = logging.getLogger(__name__)

#: how long a rotated file must stay unchanged before it is closed
ROTATED_GRACE_S = 2.0
#: bytes compared at the start of a file to tell it from another file on the same inode
HEAD_BYTES = 64
#: identities of finished files remembered, to drop a late duplicate descriptor
FINISHED_KEPT = 256
#: set to 1 to poll only, also where a scheme asks for inotify
POLL_ONLY_ENV = "NETDISTILL_LOGS_POLL_ONLY"

Key = tuple[int, int]


@dataclass(slots=True)
class Position:
    """How far a file has been consumed: bytes up to a line end, and the lines before."""

    dev: int
    ino: int
    path: str
    offset: int = 0
    line: int = 0
    head: str = ""  # hex of the file's first min(offset, HEAD_BYTES) bytes
    done: bool = False  # rotated away and read to its end: forget it once committed

    @property
    def key(self) -> Key:
        return (self.dev, self.ino)


@dataclass(slots=True)
class Chunk:
    """Whole lines read from one file: ``data`` ends with a newline."""

    path: str
    data: bytes
    first_line: int  # 1-based number of the first line of data in its file


@dataclass(slots=True)
class _Followed:
    position: Position
    fd: int
    rotated: bool = False
    changed_at: float = 0.0


@dataclass(slots=True)
class TailStats:
    rotations: int = 0
    truncations: int = 0
    long_lines_cut: int = 0
    files: list[str] = field(default_factory=list)


class Tailer:
    """Follows the files matching ``patterns``. Not thread-safe: one thread calls
    ``read`` and ``commit`` (the pipeline's), ``close`` after the last ``read``."""

    def __init__(
        self,
        patterns: Sequence[str],
        *,
        state_path: Path | None,
        start_at: str = "beginning",
        poll_interval_s: float = 1.0,
        read_chunk_bytes: int = 4 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        watch: bool = True,
    ) -> None:
        self.patterns = list(patterns)
        self.state_path = state_path
        self.start_at = start_at
        self.poll_interval_s = poll_interval_s
        self.read_chunk_bytes = read_chunk_bytes
        self._clock = clock
        self._files: dict[Key, _Followed] = {}
        self._committed: dict[Key, Position] = self._load()
        self._scanned_at: float | None = None
        self._first_scan = True
        self.backlog_bytes = 0
        self.rotated_grace_s = ROTATED_GRACE_S
        self.stats = TailStats()
        #: watch the patterns' directories with inotify (else: poll only)
        self.watch = watch and os.environ.get(POLL_ONLY_ENV, "") in ("", "0")
        self._watcher: Watcher | None = None
        #: ``inotify`` once a watcher thread opens new files at once, else ``poll``
        self.watching = "poll"
        self._overflows = 0
        self._finalizer: weakref.finalize[Any, Any] | None = None
        #: files read to their end and closed, by identity: a late second descriptor of
        #: one of them from the watcher is dropped, not read again (bounded)
        self._finished: dict[Key, Position] = {}

    # --- durable offsets -------------------------------------------------------------------

    def _load(self) -> dict[Key, Position]:
        if self.state_path is None or not self.state_path.exists():
            return {}
        try:
            items = json.loads(self.state_path.read_text())["files"]
            positions = [Position(**item) for item in items]
        except Exception as exc:  # a damaged state file costs the offsets, never the start
            log.warning("ignoring unreadable offsets %s: %s", self.state_path, exc)
            return {}
        return {p.key: p for p in positions}

    def commit(self, snapshot: Sequence[Position]) -> None:
        """Record ``snapshot`` (from ``read``) as durably consumed and write it down."""
        for position in snapshot:
            if position.done:
                self._committed.pop(position.key, None)
            else:
                self._committed[position.key] = position
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        body = json.dumps({"files": [asdict(p) for p in self._committed.values()]}, indent=1)
        with open(tmp, "w") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)
        dir_fd = os.open(self.state_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # --- finding files ---------------------------------------------------------------------

    def _matches(self) -> dict[Key, str]:
        seen: dict[Key, str] = {}
        for pattern in self.patterns:
            for path in sorted(glob.glob(pattern)):
                try:
                    st = os.stat(path)
                except OSError:
                    continue  # gone between glob and stat
                if os.path.isfile(path):
                    seen.setdefault((st.st_dev, st.st_ino), path)
        return seen

    def _scan(self, now: float) -> None:
        seen = self._matches()
        for key, followed in self._files.items():
            if key in seen:
                followed.position.path = seen[key]
            elif not followed.rotated:
                followed.rotated = True
                followed.changed_at = now
                self.stats.rotations += 1
        if self._first_scan:
            self._resume_renamed(seen, now)
        for key, path in seen.items():
            if key not in self._files:
                self._open(key, path, now)
        self._first_scan = False
        self.stats.files = [f.position.path for f in self._files.values()]

    def _resume_renamed(self, seen: dict[Key, str], now: float) -> None:
        """Files with committed offsets that were renamed away while we were down."""
        missing = {k: p for k, p in self._committed.items() if k not in seen}
        directories = {os.path.dirname(p.path) or "." for p in missing.values()}
        for directory in directories:
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in missing and entry.is_file() and key not in self._files:
                    followed = self._open(key, entry.path, now)
                    if followed is not None:
                        followed.rotated = True
                        followed.changed_at = now
        for key in missing:
            if key not in self._files:
                log.warning("file %s of the last run is gone", missing[key].path)
                self._committed.pop(key)

    def _open(self, key: Key, path: str, now: float) -> _Followed | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            log.warning("cannot open %s: %s", path, exc)
            return None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != key:  # replaced between stat and open: next scan
            os.close(fd)
            return None
        return self._follow(key, path, fd, now, skip=self._first_scan and self.start_at == "end")

    def _follow(self, key: Key, path: str, fd: int, now: float, *, skip: bool) -> _Followed:
        """Follow the open ``fd``: from its committed offset when it is a known file, from
        its last line end when ``skip``, else from its start."""
        position = Position(key[0], key[1], path)
        known = self._committed.get(key)
        if known is not None and _head_matches(fd, known):
            position.offset, position.line, position.head = known.offset, known.line, known.head
        elif skip:
            position.offset, position.line = _last_line_end(fd, os.fstat(fd).st_size)
            position.head = os.pread(fd, min(HEAD_BYTES, position.offset), 0).hex()
        followed = _Followed(position, fd, changed_at=now)
        self._files[key] = followed
        return followed

    def _adopt(self, opened: list[Opened], now: float) -> None:
        """Follow the files the watcher opened, unless followed or finished already."""
        for item in opened:
            key = (item.dev, item.ino)
            finished = self._finished.get(key)
            late = finished is not None and finished.head and _head_matches(item.fd, finished)
            if key in self._files or late:
                os.close(item.fd)
                continue
            self._follow(key, item.path, item.fd, now, skip=False)

    def _start_watching(self) -> None:
        if self.watch and self.patterns and inotify_available():
            try:
                self._watcher = Watcher(self.patterns)
            except OSError as exc:
                log.warning(
                    "inotify unavailable (%s): polling every %s s", exc, self.poll_interval_s
                )
                return
            self._finalizer = weakref.finalize(self, self._watcher.stop)
            self.watching = "inotify"

    # --- reading ---------------------------------------------------------------------------

    def read(self) -> tuple[list[Chunk], list[Position] | None]:
        """Whole lines appended since the last read, rotated files first; the positions to
        ``commit`` once they are durably consumed (None when nothing moved)."""
        now = self._clock()
        if self._first_scan and self._watcher is None:
            self._start_watching()  # before the first scan: no file falls between them
        changed = False
        if self._watcher is not None:
            opened, changed = self._watcher.take()
            if opened:  # new since the watcher started: read from their start
                self._adopt(opened, now)
                changed = True
        due = self._scanned_at is None or now - self._scanned_at >= self.poll_interval_s
        if due and self._watcher is not None and self._scanned_at is not None:
            self._watcher.ensure_watches()
        if changed or due:
            self._scan(now)
            self._scanned_at = now
        chunks: list[Chunk] = []
        moved: list[Position] = []
        self.backlog_bytes = 0
        order = sorted(self._files.values(), key=lambda f: not f.rotated)
        for followed in order:
            chunk = self._read_one(followed, now)
            if chunk is not None:
                chunks.append(chunk)
            if chunk is not None or followed.position.done:
                moved.append(_copy(followed.position))
        for key in [k for k, f in self._files.items() if f.position.done]:
            followed = self._files.pop(key)
            os.close(followed.fd)
            self._finished[key] = followed.position
            while len(self._finished) > FINISHED_KEPT:
                del self._finished[next(iter(self._finished))]
        return chunks, moved or None

    def _read_one(self, followed: _Followed, now: float) -> Chunk | None:
        position = followed.position
        size = os.fstat(followed.fd).st_size
        if size < position.offset or not _head_matches(followed.fd, position):
            log.info("%s was truncated: reading it again from the start", position.path)
            self.stats.truncations += 1
            position.offset, position.line, position.head = 0, 0, ""
        available = size - position.offset
        if available <= 0:
            return self._maybe_finish(followed, now, size)
        want = min(available, self.read_chunk_bytes)
        data = os.pread(followed.fd, want, position.offset)
        end = data.rfind(b"\n") + 1
        if end == 0:
            if len(data) < self.read_chunk_bytes:
                return self._maybe_finish(followed, now, size)
            self.stats.long_lines_cut += 1
            data, end = data + b"\n", len(data)  # a line longer than a chunk: cut it
        else:
            data = data[:end]
        if want < available:  # more whole lines may wait beyond this chunk
            self.backlog_bytes += available - end
        followed.changed_at = now
        return self._advance(position, data, end)

    def _maybe_finish(self, followed: _Followed, now: float, size: int) -> Chunk | None:
        """Close a rotated file that stopped growing; its unterminated tail is a line."""
        if not followed.rotated or now - followed.changed_at < self.rotated_grace_s:
            return None
        position = followed.position
        position.done = True
        if size > position.offset:
            data = os.pread(followed.fd, size - position.offset, position.offset)
            return self._advance(position, data + b"\n", len(data))
        return None

    def _advance(self, position: Position, data: bytes, consumed: int) -> Chunk:
        chunk = Chunk(position.path, data, position.line + 1)
        if position.offset < HEAD_BYTES:
            head = bytes.fromhex(position.head) + data[: HEAD_BYTES - position.offset]
            position.head = head.hex()
        position.offset += consumed
        position.line += data.count(b"\n")
        return chunk

    @property
    def watch_overflows(self) -> int:
        """inotify queue overflows (events the kernel dropped; the names were rescanned)."""
        return self._watcher.overflows if self._watcher is not None else self._overflows

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._overflows = self._watcher.overflows
            self._watcher = None
        for followed in self._files.values():
            os.close(followed.fd)
        self._files.clear()


def _copy(position: Position) -> Position:
    return Position(**asdict(position))


def _head_matches(fd: int, position: Position) -> bool:
    head = bytes.fromhex(position.head)
    return not head or os.pread(fd, len(head), 0) == head


def _last_line_end(fd: int, size: int) -> tuple[int, int]:
    """Offset just after the last newline before ``size``, and the lines before it."""
    lines, offset, last_end = 0, 0, 0
    while offset < size:
        block = os.pread(fd, min(1 << 22, size - offset), offset)
        if not block:
            break
        count = block.count(b"\n")
        if count:
            lines += count
            last_end = offset + block.rfind(b"\n") + 1
        offset += len(block)
    return last_end, lines
