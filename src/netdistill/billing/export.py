"""Invoice files: each batch of documents issued in one chunk of a round, written after
the round's transactions from the stored documents (so the bytes are the stored ones):

    <directory>/<first>-<last>.invoices.csv    one row per document (``documents.py``)
    <directory>/<first>-<last>.lines.csv       one row per line
    <directory>/<first>-<last>.jsonl           one document per line, with its lines,
                                                ``idempotency_key`` and ``sha256``

``<first>-<last>`` are the batch's sequence numbers. Each file is written to a temporary
name, fsynced and renamed (``files.write_atomic``); the batch's ``invoice_exports`` row
records it. After a crash between writing and recording, the next round writes the same
bytes again; a billing system reading the files deduplicates on ``idempotency_key``
(``invoice/<number>``), which never changes for a document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netdistill.billing.documents import to_csv
from netdistill.files import write_atomic

log = logging.getLogger(__name__)


def batch_files(store: Any, batch: dict[str, Any], formats: Sequence[str]) -> dict[str, bytes]:
    """The files of a batch, from the bodies rendered at issue (the API's ``load``
    renders again from the rows, to verify them)."""
    stored = store.query(
        "SELECT body, sha256 FROM invoices WHERE seq BETWEEN $lo AND $hi ORDER BY seq",
        {"lo": batch["first_seq"], "hi": batch["last_seq"]},
    ).to_pylist()
    docs = [{**json.loads(row["body"]), "sha256": row["sha256"]} for row in stored]
    name = batch["batch"]
    files: dict[str, bytes] = {}
    if "csv" in formats:
        heads, lines = to_csv(docs)
        files[f"{name}.invoices.csv"] = heads
        files[f"{name}.lines.csv"] = lines
    if "json" in formats:  # the body as issued, with its fingerprint added
        files[f"{name}.jsonl"] = "".join(
            f'{row["body"][:-1]},"sha256":"{row["sha256"]}"}}\n' for row in stored
        ).encode()
    return files


def write_pending(store: Any, directory: Path | None, formats: Sequence[str]) -> dict[str, int]:
    """Write every batch not written yet; returns {"files_written": n}."""
    pending = store.query(
        "SELECT * FROM invoice_exports WHERE written_at IS NULL ORDER BY first_seq"
    ).to_pylist()
    written = 0
    for batch in pending:
        names: list[str] = []
        if directory is not None:
            try:
                for name, data in batch_files(store, batch, formats).items():
                    write_atomic(directory / name, data)
                    names.append(name)
            except OSError as exc:
                log.warning("rating: invoice files %s not written: %s", batch["batch"], exc)
                break  # in order: a later batch waits behind this one
        with store.transaction() as tx:
            tx.execute(
                "UPDATE invoice_exports SET written_at = to_timestamp(?), files = ?"
                " WHERE batch = ?",
                (tx.now, ",".join(names), batch["batch"]),
            )
        written += len(names)
    return {"files_written": written}
