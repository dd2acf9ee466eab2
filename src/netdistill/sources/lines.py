"""Line-oriented input: formats that turn batches of text lines into record batches.

Transports and formats are separate, so every format works over every transport: files
followed through rotation (``sources/logs/``), syslog and plain line sockets
(``sources/syslog/``) cut their input into lines and hand them to a **format** in
batches. Formats are pure (lines in, records out, no I/O) and work on whole columns;
stateful ones (Postfix joins a message's lines by queue id) keep their state between
calls and give it up in ``flush``.

A batch of lines is an Arrow table with a ``line`` column (string) and, where the
transport knows them, ``exporter`` (device address or host name), ``received_at``
(timestamp, UTC) and, from syslog, ``host``, ``app`` and ``time`` (the header's own
time). A format returns the records it made (any subset of the record fields plus its
own ``fields``; the pipeline conforms them) and, for each line it could not use, its
index in the batch and the reason. The transport turns those into quarantine items with
their place (``file:line``, ``peer``). Lines a format recognises and does not need
(Postfix ``connect from``) are neither records nor bad.

A format registers itself in ``FORMATS`` in one line, with an optional pydantic model of
its options (``format_options:`` in the scheme, validated by ``check-config``); they are
imported lazily through the same ``plugins.Registry`` as sources, lookups and stages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from netdistill.plugins import Registry
from netdistill.records.batch import FieldSpec

#: format name → (options model or "", format class), both as "module:Class"
FORMATS: dict[str, tuple[str, str]] = {
    "squid": ("", "netdistill.sources.logs.squid:SquidFormat"),
    "clf": ("netdistill.sources.logs.clf:ClfOptions", "netdistill.sources.logs.clf:ClfFormat"),
    "combined": (
        "netdistill.sources.logs.clf:ClfOptions",
        "netdistill.sources.logs.clf:CombinedFormat",
    ),
    "postfix": (
        "netdistill.sources.mail.postfix:PostfixOptions",
        "netdistill.sources.mail.postfix:PostfixFormat",
    ),
    "asterisk": (
        "netdistill.sources.voip.asterisk:AsteriskOptions",
        "netdistill.sources.voip.asterisk:AsteriskFormat",
    ),
    "csv": (
        "netdistill.sources.generic.csv:CsvOptions",
        "netdistill.sources.generic.csv:CsvFormat",
    ),
    "jsonl": (
        "netdistill.sources.generic.jsonl:JsonLinesOptions",
        "netdistill.sources.generic.jsonl:JsonLinesFormat",
    ),
    "netfilter": ("", "netdistill.sources.syslog.netfilter:NetfilterFormat"),
    "asa": ("", "netdistill.sources.syslog.asa:AsaFormat"),
    "cef": ("", "netdistill.sources.syslog.cef:CefFormat"),
}

#: the line formats by name (built in only: no entry-point group yet)
LINE_FORMATS: Registry[Any] = Registry("line format", FORMATS)


@dataclass(slots=True)
class Parsed:
    """What a format made of one batch of lines."""

    records: pa.Table
    #: (index of the line in the batch, reason) for each line that could not be used
    bad: list[tuple[int, str]] = field(default_factory=list)


class LineFormat(Protocol):
    """One log format. ``parse`` and ``flush`` are called from one thread."""

    #: fields this format fills beyond the standard ones
    fields: tuple[FieldSpec, ...]

    def parse(self, lines: pa.Table) -> Parsed: ...

    def flush(self) -> Parsed:
        """Records held back waiting for more lines (end of input or shutdown)."""


def check_format(name: str, options: Mapping[str, Any]) -> Any:
    """Validate a format name and its options; returns the options model (or None).

    Raises ``ValueError`` with a message for the scheme's error report."""
    if name not in LINE_FORMATS:
        known = ", ".join(sorted(LINE_FORMATS)) or "none"
        raise ValueError(f"unknown format {name!r} (known: {known})")
    options_model = LINE_FORMATS.config_class(name)
    if options_model is None:
        if options:
            raise ValueError(f"format {name!r} takes no format_options")
        return None
    return options_model.model_validate(dict(options))


def make_format(name: str, options: Mapping[str, Any] | None = None) -> LineFormat:
    """A new, independent instance of format ``name`` (formats may keep state)."""
    checked = check_format(name, options or {})
    cls = LINE_FORMATS.runtime_class(name)
    return cls(checked) if checked is not None else cls()
