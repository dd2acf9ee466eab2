"""Opening every file that appears under a watched name, at once, with inotify.

Polling the names finds only the files that still carry them at the next poll: a file
that lived under ``access.log`` for less than ``poll_interval_s`` (two rotations in quick
succession) would never be seen. A ``Watcher`` thread blocks on inotify events of the
patterns' directories and, on each

* ``IN_CREATE`` / ``IN_MOVED_TO`` of a name that matches a pattern,
* ``IN_MOVED_FROM`` of such a name — the file is opened at the ``IN_MOVED_TO`` of the same
  cookie, under its new name, when that is in a watched directory,

opens the file straight away and keeps the descriptor until the ``Tailer`` takes it
(``take``): from then on a rename or an unlink cannot lose the file, it is read to its end
through the descriptor. Each opened file is handed over with its identity
``(st_dev, st_ino)`` taken from the descriptor (``fstat``), so a name that already names
another file by the time it is opened yields that other file, never a wrong identity;
the Tailer drops descriptors of files it already follows. A file created *and* renamed
away before the thread ran holds no name when its ``IN_CREATE`` is handled; its
``IN_MOVED_FROM``/``IN_MOVED_TO`` pair still finds it where it went — unless that name,
too, was renamed over or unlinked before the thread got there: inotify reports names,
not files, so a file whose whole life under the watched names is shorter than the
thread's reaction time (microseconds idle, milliseconds under load) is missed.

An event queue overflow (``IN_Q_OVERFLOW``: the kernel dropped events) is counted and
logged; the Tailer rescans the names at once. A directory that does not exist yet (or
was removed) is watched from the first poll after it appears; until then its files are
found by polling only.

Library: ``inotify_simple`` — a thin ctypes wrapper that hands over the kernel's events
as they come, in order, with their cookies. ``watchdog`` was not used: its inotify
backend holds events back (about 0.5 s) to pair moves, and reports them through its own
observer thread and event classes — the delay is what this module exists to avoid.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import logging
import os
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: how long the thread blocks on inotify before looking at its stop flag
WAIT_MS = 200


@dataclass(slots=True)
class Opened:
    """A file the watcher opened: its identity, the name it was opened by, the fd."""

    dev: int
    ino: int
    path: str
    fd: int


def inotify_available() -> bool:
    try:
        import inotify_simple  # noqa: F401
    except ImportError:
        return False
    return hasattr(os, "pread")


class Watcher:
    """Watches the directories of ``patterns``; ``take`` hands over what it opened.

    Raises ``OSError`` at construction when inotify cannot be had (no kernel support, the
    per-user instance limit): the caller then polls."""

    def __init__(self, patterns: Sequence[str]) -> None:
        from inotify_simple import INotify, flags

        self._flags = flags
        self._inotify: Any = INotify()
        self._dirs: dict[int, tuple[str, list[str]]] = {}  # wd → (directory, name patterns)
        self._patterns = list(patterns)
        self._mask = flags.CREATE | flags.MOVED_TO | flags.MOVED_FROM
        self._lock = threading.Lock()
        self._missing: set[str] = set()
        self.ensure_watches()
        self._opened: list[Opened] = []
        self._moved_from: set[int] = set()  # cookies of watched names renamed away
        self.changed = False  # a watched name changed: the Tailer should rescan now
        self.overflows = 0
        self.events = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="logs-watch", daemon=True)
        self._thread.start()

    def ensure_watches(self) -> None:
        """Watch every directory of the patterns that exists and is not watched yet (a
        directory made after the start, or removed and made again). Called at start and
        by the Tailer at each poll."""
        by_dir: dict[str, list[str]] = {}
        for pattern in self._patterns:
            directory, name = os.path.split(pattern)
            directories = glob.glob(directory) if glob.has_magic(directory) else [directory]
            for d in directories:
                by_dir.setdefault(os.path.abspath(d or "."), []).append(name)
        with self._lock:
            watched = {d for d, _ in self._dirs.values()}
        for directory, names in by_dir.items():
            if directory in watched:
                continue
            try:
                wd = self._inotify.add_watch(directory, self._mask)
            except OSError as exc:
                if directory not in self._missing:
                    log.warning("cannot watch %s (polling only there): %s", directory, exc)
                    self._missing.add(directory)
                continue
            self._missing.discard(directory)
            with self._lock:
                self._dirs[wd] = (directory, names)

    @property
    def directories(self) -> list[str]:
        with self._lock:
            return [d for d, _ in self._dirs.values()]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                events = self._inotify.read(timeout=WAIT_MS)
            except OSError as exc:  # the fd was closed by stop(), or a kernel error
                if not self._stop.is_set():
                    log.error("inotify read failed, polling only from now: %s", exc)
                return
            for event in events:
                self._handle(event)

    def _handle(self, event: Any) -> None:
        flags = self._flags
        self.events += 1
        if event.mask & flags.Q_OVERFLOW:
            self.overflows += 1
            log.warning("inotify queue overflow: events were lost, rescanning the names")
            self._changed()
            return
        if event.mask & flags.IGNORED:  # the directory is gone: watched again once back
            with self._lock:
                self._dirs.pop(event.wd, None)
            return
        with self._lock:
            watched = self._dirs.get(event.wd)
        if watched is None or not event.name:
            return
        directory, names = watched
        path = os.path.join(directory, event.name)
        matches = any(fnmatch.fnmatch(event.name, n) for n in names)
        if event.mask & flags.MOVED_FROM:
            if matches:
                if len(self._moved_from) > 1024:  # moved out of the watched directories
                    self._moved_from.clear()
                self._moved_from.add(event.cookie)
                self._changed()
            return
        if event.mask & flags.MOVED_TO and event.cookie in self._moved_from:
            self._moved_from.discard(event.cookie)
            self._open(path)
            return
        if matches and event.mask & (flags.CREATE | flags.MOVED_TO):
            self._open(path)
            self._changed()

    def _changed(self) -> None:
        with self._lock:
            self.changed = True

    def _open(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # gone already: a later event or the next scan tells where
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return
        with self._lock:
            self._opened.append(Opened(st.st_dev, st.st_ino, path, fd))

    def take(self) -> tuple[list[Opened], bool]:
        """The files opened since the last call (the caller owns their fds) and whether a
        watched name changed since."""
        with self._lock:
            opened, self._opened = self._opened, []
            changed, self.changed = self.changed, False
        return opened, changed

    def stop(self) -> None:
        """Stop the thread, close inotify and the fds nobody took."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * WAIT_MS / 1000 + 1)
        with contextlib.suppress(OSError):
            self._inotify.close()
        for opened in self.take()[0]:
            os.close(opened.fd)
