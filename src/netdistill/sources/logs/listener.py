"""The ``type: file`` source at run time: the tailer cuts files into lines, a line format
turns them into records, bad lines go to the quarantine as ``path:line``.

Per poll, every chunk of whole lines read from every file becomes one column of lines
(Polars ``str.split`` on newlines), the format parses the whole column at once, and the
tailer's positions are committed in the result's ``after_commit`` — only once the
records and quarantined lines are durably accepted. ``netdistill import`` reads whole
files through ``read_whole_file``, the same line cutting and the same format.

Counters: ``datagrams`` counts lines read (blank ones included), ``bytes_received`` the
bytes, ``dropped["malformed"]`` the lines the format could not use; blank lines are
skipped and counted apart (``blank_lines``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow as pa

from netdistill.records.batch import DecodeResult, FieldSpec, Quarantined, SourceCounters
from netdistill.records.schema import constant_column, with_constant
from netdistill.sources.base import MALFORMED, SourceKind
from netdistill.sources.lines import make_format
from netdistill.sources.logs.config import FileSourceConfig
from netdistill.sources.logs.tail import Chunk, Tailer

#: lines are read from a whole file in blocks of this size by ``read_whole_file``
IMPORT_BLOCK_BYTES = 8 * 1024 * 1024


class FileSource:
    """One ``type: file`` scheme entry at run time.

    Lifecycle: ``start`` → repeated ``poll`` from one thread → ``stop`` → ``flush``.
    """

    kind: ClassVar[SourceKind] = "polled"

    def __init__(
        self,
        config: FileSourceConfig,
        *,
        state_dir: Path | None = None,
        queue_limit: int = 500_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.name = config.name
        self.exporter = config.device or socket.gethostname()
        self.format = make_format(config.format, config.format_options)
        self.fields: tuple[FieldSpec, ...] = self.format.fields
        self._clock = clock
        self.counters = SourceCounters()
        self.blank_lines = 0
        self.tailer = Tailer(
            config.paths,
            state_path=state_dir / f"{config.name}.offsets.json" if state_dir else None,
            start_at=config.start_at,
            poll_interval_s=config.poll_interval_s,
            read_chunk_bytes=config.read_chunk_bytes,
            watch=config.watch == "auto",
        )

    # --- live --------------------------------------------------------------------------------

    def start(self) -> None:
        """Nothing runs in the background: files are read in ``poll``."""

    def poll(self, max_datagrams: int) -> DecodeResult:
        chunks, positions = self.tailer.read()
        result = self.decode_chunks(chunks)
        if positions is not None:
            tailer = self.tailer
            result.after_commit.append(lambda: tailer.commit(positions))
        return result

    @property
    def bound(self) -> list[tuple[str, int]]:
        """No sockets: listed with the listening sources' addresses, it adds none."""
        return []

    def pending(self) -> int:
        """Lines known to wait in the files (estimated from the bytes left unread)."""
        return (self.tailer.backlog_bytes + 99) // 100

    def stop(self) -> None:
        """Nothing to stop: the last ``poll`` calls drain what is there."""

    def flush(self) -> DecodeResult:
        parsed = self.format.flush()
        self.tailer.close()
        return self._result(parsed.records, [])

    def status(self) -> dict[str, object]:
        stats = self.tailer.stats
        return {
            "name": self.name,
            "type": "file",
            **self.counters.as_dict(),
            "files": list(stats.files),
            "watching": self.tailer.watching,
            "watch_overflows": self.tailer.watch_overflows,
            "rotations": stats.rotations,
            "truncations": stats.truncations,
            "long_lines_cut": stats.long_lines_cut,
            "blank_lines": self.blank_lines,
            "unread_bytes": self.tailer.backlog_bytes,
        }

    # --- whole files (netdistill import) --------------------------------------------------------

    def read_whole_file(self, path: Path) -> Iterator[tuple[DecodeResult, int]]:
        """Decode every line of ``path``; yields results and the bytes read so far. A last
        line without a newline is a line."""
        line_number = 1
        carry = b""
        done = 0
        with open(path, "rb") as f:
            while True:
                block = f.read(IMPORT_BLOCK_BYTES)
                done += len(block)
                if not block:
                    break
                data = carry + block
                end = data.rfind(b"\n") + 1
                carry = data[end:]
                if end:
                    chunk = Chunk(str(path), data[:end], line_number)
                    line_number += data.count(b"\n", 0, end)
                    yield self.decode_chunks([chunk]), done
        if carry:
            yield self.decode_chunks([Chunk(str(path), carry + b"\n", line_number)]), done

    # --- lines → records -----------------------------------------------------------------------

    def decode_chunks(self, chunks: Sequence[Chunk]) -> DecodeResult:
        """Parse chunks of whole lines with the format; bad lines → quarantine."""
        if not chunks:
            return self._result(pa.table({}), [])
        now = self._clock()
        lines, chunk_index, line_numbers = _split_lines(chunks)
        self.counters.datagrams += len(lines)
        self.counters.bytes_received += sum(len(c.data) for c in chunks)
        keep = (lines.str.strip_chars() != "").to_numpy()
        self.blank_lines += int(len(keep) - keep.sum())
        if not keep.all():
            lines = lines.filter(pl.Series(keep))
            chunk_index, line_numbers = chunk_index[keep], line_numbers[keep]
        if not len(lines):
            return self._result(pa.table({}), [])
        n = len(lines)
        batch = pa.table(
            {
                "line": lines.to_arrow(),
                "exporter": constant_column(self.exporter, n),
                "received_at": pa.array(np.full(n, int(now * 1e6), dtype="datetime64[us]")).cast(
                    pa.timestamp("us", tz="UTC")
                ),
            }
        )
        parsed = self.format.parse(batch)
        quarantined = []
        texts = lines.gather([index for index, _ in parsed.bad]).to_list() if parsed.bad else []
        for (index, reason), text in zip(parsed.bad, texts, strict=True):
            quarantined.append(
                Quarantined(
                    source=self.name,
                    exporter=self.exporter,
                    received_at=now,
                    reason=MALFORMED,
                    detail=reason,
                    payload=text.encode(),
                    location=f"{chunks[chunk_index[index]].path}:{line_numbers[index]}",
                )
            )
        self.counters.dropped[MALFORMED] += len(quarantined)
        return self._result(parsed.records, quarantined)

    def _result(self, records: pa.Table, quarantined: list[Quarantined]) -> DecodeResult:
        if records.num_rows:
            records = with_constant(records, "source", self.name)
            if "exporter" not in records.column_names:
                records = with_constant(records, "exporter", self.exporter)
            self.counters.records += records.num_rows
        return DecodeResult(records, quarantined)


def _split_lines(chunks: Sequence[Chunk]) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """All lines of ``chunks`` as one column (invalid UTF-8 replaced, ``\\r\\n`` ends
    accepted), with each line's chunk index and 1-based line number in its file."""
    columns = []
    indexes = []
    numbers = []
    for i, chunk in enumerate(chunks):
        text = chunk.data.decode("utf-8", "replace")
        column = pl.Series("line", [text]).str.split("\n").explode()
        column = column.head(len(column) - 1).str.strip_suffix("\r")  # data ends with \n
        columns.append(column)
        indexes.append(np.full(len(column), i, dtype=np.int32))
        numbers.append(np.arange(chunk.first_line, chunk.first_line + len(column)))
    return pl.concat(columns), np.concatenate(indexes), np.concatenate(numbers)
