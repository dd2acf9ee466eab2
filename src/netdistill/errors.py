"""The one exception tree of netdistill.

Every error netdistill raises on purpose is a ``NetdistillError``; the command line
prints it as one line and exits 1, the HTTP API answers it with 400, and nothing else
is caught that broadly. The whole tree::

    NetdistillError
     ├── SchemeError                the scheme is invalid (carries every problem found)
     ├── StageCheckError            a stage entry does not fit the scheme (also a ValueError,
     │                              so pydantic reports it at the entry's line)
     ├── SchemeApplyError           a valid scheme the running process cannot take over live
     ├── SecretError                a scheme secret cannot be read where it is used
     ├── ProcedureChangeError       a change to an enabled procedure (disable it first)
     ├── PluginError                a plugin type name clashes, or a plugin fails to load
     ├── ExpressionError            an expression is malformed or ill-typed (carries the column)
     │    ├── ExprError             … in the boolean expression language (expr/)
     │    └── NotationError         … in the field-enhancement notation (enhance/)
     ├── DecodeError                input could not be decoded (carries the place)
     │    ├── FramingError          a syslog TCP stream left its framing (also a ValueError)
     │    ├── GatewayError          an sFlow extended gateway record cannot be read
     │    ├── WireError             a DNS answer cannot be read (also a ValueError)
     │    └── _Skip                 (sources/pcap.py, private) a packet that is no UDP datagram
     ├── FieldError                 a field name or type is unknown or clashes
     ├── StoreError                 the store refused an operation
     │    └── QueryRefusedError     a person's query broke a sandbox rule or limit
     ├── LookupDataError            a lookup's table could not be loaded
     ├── LookupUnavailableError     a lookup's peer did not answer (usably)
     │    ├── SnmpWalkError         an SNMP agent's interface walk did not complete
     │    └── _Unreachable          (lookups/ldap.py, private) the directory server is down
     ├── DeliveryError              a batch could not be taken on the way to the manager
     │    ├── SpoolFull             the spool is at its bound and the policy is ``block``
     │    ├── BatchRefused          a manager will never store a batch as it is (422)
     │    └── GathererRefused       every manager refused this gatherer for good (licence,
     │                              version): upgrade it or change the licence, not retry
     ├── ReportError                a report is badly defined, refused or given a bad value
     │    └── UnknownReportError    no report has this name
     ├── ExportError                an export could not be made
     ├── UserError                  a console user change that cannot be made
     └── LicenceError               a licence is not valid here (changed, signed by another
                                    key, expired, not yet valid, for another installation),
                                    or a licence limit or read-only mode refuses a change

Processes never die of a ``DecodeError``: the offending input is counted and quarantined.
Every public class is defined here, and imported from here; the two private ones stay
in the one module that raises and catches them (control flow, never seen outside).
``tests/test_errors.py`` fails when a class outside this tree, or one missing from the
drawing, appears in ``src/``.
"""

from __future__ import annotations

__all__ = [
    "BatchRefused",
    "DecodeError",
    "DeliveryError",
    "ExportError",
    "ExprError",
    "ExpressionError",
    "FieldError",
    "FramingError",
    "GatewayError",
    "GathererRefused",
    "LicenceError",
    "LookupDataError",
    "LookupUnavailableError",
    "NetdistillError",
    "NotationError",
    "PluginError",
    "ProcedureChangeError",
    "QueryRefusedError",
    "ReportError",
    "SchemeApplyError",
    "SchemeError",
    "SecretError",
    "SnmpWalkError",
    "SpoolFull",
    "StageCheckError",
    "StoreError",
    "UnknownReportError",
    "UserError",
    "WireError",
]


class NetdistillError(Exception):
    """Base of every error netdistill raises on purpose."""


# --- the scheme and the things configured in it -----------------------------------------


class SchemeError(NetdistillError):
    """The scheme is invalid. ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class StageCheckError(NetdistillError, ValueError):
    """A stage entry that does not fit the scheme; ``key`` is the entry's key at fault
    (the scheme loader reports the error at its line). A ``ValueError`` too, because it is
    raised inside pydantic validators, which turn exactly those into validation errors."""

    def __init__(self, message: str, *, key: str, value: object) -> None:
        super().__init__(message)
        self.key = key
        self.value = value


class SchemeApplyError(NetdistillError):
    """A valid scheme the running process cannot take over live."""


class SecretError(NetdistillError):
    """A secret could not be read where it is used (the file went away, the variable is
    unset, or the value was withheld from the store)."""


class ProcedureChangeError(NetdistillError):
    """A change to an enabled procedure's enhancements (disable it first)."""


class PluginError(NetdistillError):
    """A plugin's type name clashes with another one, or its entry point does not load;
    the message names the distribution that ships it."""


class ExpressionError(NetdistillError):
    """An expression is malformed or ill-typed; ``column`` is 1-based."""

    def __init__(self, message: str, *, column: int) -> None:
        self.message = message
        self.column = column
        super().__init__(f"column {column}: {message}")


class ExprError(ExpressionError):
    """A boolean expression (``expr/``) is malformed or ill-typed."""


class NotationError(ExpressionError):
    """An enhancement expression (``enhance/notation.py``) is malformed or ill-typed."""


# --- input --------------------------------------------------------------------------------


class DecodeError(NetdistillError):
    """Input could not be decoded. ``offset`` is the byte offset inside the datagram."""

    def __init__(self, reason: str, *, offset: int | None = None, detail: str = "") -> None:
        self.reason = reason
        self.offset = offset
        self.detail = detail
        where = f" at offset {offset}" if offset is not None else ""
        super().__init__(f"{reason}{where}{': ' + detail if detail else ''}")


class FramingError(DecodeError, ValueError):
    """A syslog TCP stream is not in the framing it started with; ``offset`` is the
    stream byte (RFC 6587 §3.4)."""

    def __init__(self, message: str, offset: int, messages: list[bytes] | None = None) -> None:
        super().__init__(f"{message} at stream byte {offset}")
        self.offset = offset
        #: the complete messages that came before the error in the same chunk
        self.messages = messages or []


class GatewayError(DecodeError):
    """An sFlow extended gateway record that cannot be read: ``offset`` is where in the
    datagram, ``value`` the count or type found there."""

    def __init__(self, offset: int, value: int) -> None:
        super().__init__("unreadable sFlow gateway record", offset=offset, detail=f"{value}")
        self.value = value


class WireError(DecodeError, ValueError):
    """A DNS answer that cannot be read (truncated, bad pointer, wrong question …)."""


# --- the store and the fields -------------------------------------------------------------


class FieldError(NetdistillError):
    """A field name or type is unknown, reserved or clashes with another field."""


class StoreError(NetdistillError):
    """The store refused an operation."""


class QueryRefusedError(StoreError):
    """The query sandbox (``store/sandbox.py``) refused or stopped a person's query.

    ``rule`` names the rule or limit (``one-select``, ``table``, ``table-function``,
    ``function``, ``syntax``, ``time-limit``, ``row-limit``); the message starts with
    ``refused (rule: <rule>):``."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(message)


# --- lookups --------------------------------------------------------------------------------


class LookupDataError(NetdistillError):
    """A lookup's table could not be loaded (file, query or column types)."""


class LookupUnavailableError(NetdistillError):
    """A lookup's peer (a directory server, an SNMP agent) did not answer, or not usably."""


class SnmpWalkError(LookupUnavailableError):
    """An SNMP walk that did not complete; ``reason`` is what the counters show."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# --- delivery ---------------------------------------------------------------------------------


class DeliveryError(NetdistillError):
    """A batch could not be taken on its way from a source to the manager."""


class SpoolFull(DeliveryError):
    """The spool is at its bound and the policy is ``block``: try again later."""


class BatchRefused(DeliveryError):
    """A batch a manager will never store as it is (a field it does not know, or knows
    with another type; a payload it cannot read): answered 422 and not retried
    (``delivery/ack.py``). Names the spool entry and, for a field, both types."""

    def __init__(
        self,
        message: str,
        *,
        seq: int = 0,
        field: str | None = None,
        sent_type: str | None = None,
        registered_type: str | None = None,
        origin: str = "",
    ) -> None:
        super().__init__(message)
        self.seq = seq
        self.field = field
        self.sent_type = sent_type
        self.registered_type = registered_type
        self.origin = origin


# --- reports, exports, users ------------------------------------------------------------------


class ReportError(NetdistillError):
    """A report is badly defined, refused, or was given a bad parameter value."""


class UnknownReportError(ReportError):
    """No report has this name."""


class ExportError(NetdistillError):
    """An export could not be made (unknown period, target not configured …)."""


class UserError(NetdistillError):
    """A user change that cannot be made (bad name, short password, last admin …)."""


class GathererRefused(DeliveryError):
    """A manager refused this gatherer for good (its licence has no room for another
    gatherer, or the gatherer is older than ``manager.min_gatherer_version``). The
    manager says so with ``X-Netdistill-Refusal`` on a 403 (``delivery/ack.py``)."""

    def __init__(self, message: str, *, reason: str = "", manager: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.manager = manager


# --- licences ---------------------------------------------------------------------------------


class LicenceError(NetdistillError):
    """A licence that is not valid here, or a change a licence limit or the read-only
    mode of an expired licence refuses (``licence/``). The message says which and why."""
