"""The one exception tree of netdistill.

::

    NetdistillError
     ├── SchemeError          the configuration is invalid (carries every problem found)
     ├── DecodeError          a datagram, file or line could not be decoded (carries the place)
     ├── StoreError           the store refused an operation
     │    └── ReadOnlyQueryError  a query tried to change the store
     └── FieldError           a field name or type is unknown or clashes

Processes never die of a ``DecodeError``: the offending input is counted and quarantined.
"""

from __future__ import annotations


class NetdistillError(Exception):
    """Base of every error netdistill raises on purpose."""


class SchemeError(NetdistillError):
    """The scheme is invalid. ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DecodeError(NetdistillError):
    """Input could not be decoded. ``offset`` is the byte offset inside the datagram."""

    def __init__(self, reason: str, *, offset: int | None = None, detail: str = "") -> None:
        self.reason = reason
        self.offset = offset
        self.detail = detail
        where = f" at offset {offset}" if offset is not None else ""
        super().__init__(f"{reason}{where}{': ' + detail if detail else ''}")


class StoreError(NetdistillError):
    """The store refused an operation."""


class ReadOnlyQueryError(StoreError):
    """A query given to a read-only entry point would change the store."""


class FieldError(NetdistillError):
    """A field name or type is unknown, reserved or clashes with another field."""
