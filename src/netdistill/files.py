"""Replacing a file so that a crash leaves the old content or the new one, never a mix:
a uniquely named temporary file in the same directory, fsync, rename over the target,
then fsync of the directory so the rename itself survives a power cut. The spool's
cursors, the accounting consumer's window files, the rollup exports and the scheme file
written by the console all go through it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(
    path: Path, data: bytes | str, *, fsync: bool = True, mode: int | None = None
) -> None:
    """Replace ``path`` by ``data``; ``fsync=False`` skips both syncs (the caller's own
    durability setting), ``mode`` sets the permissions (else mkstemp's 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if fsync:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
