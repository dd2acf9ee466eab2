"""RADIUS accounting decoder: Accounting-Requests in, session records and answers out.

Implements the server side of RFC 2866 (RADIUS Accounting) with the RFC 2869 extensions
(Acct-Input/Output-Gigawords, Event-Timestamp, Message-Authenticator) and the IPv6
framed addresses of RFC 3162 / RFC 6911. Pure: datagrams in, a record table plus the
Accounting-Response of each accepted request out; the UDP shell sends the answers once
the records are committed, and persists the state (``sessions.py``).

For each datagram, in this order (each failure counted in ``counters.dropped`` under
its reason, nothing raises out of ``decode``):

1. the peer must be a configured client (``unknown_client``): its secret is needed to
   check anything else;
2. the header must be whole (``malformed``, quarantined with the byte offset) and the
   code Accounting-Request (``wrong_code``: Status-Server and access packets sent to the
   accounting port are not answered);
3. the Request Authenticator (RFC 2866 §3) must be the MD5 of the packet with the
   shared secret (``bad_authenticator``), and a Message-Authenticator, when present, must
   verify (RFC 3579 §3.2, ``bad_message_authenticator``); neither is quarantined, since
   unauthenticated bytes are not worth keeping;
4. a request already seen (same client, identifier and authenticator) is answered again
   with the response kept for it, and not recorded again;
5. the attributes are split and decoded (``malformed`` on a bad length, an absent
   Acct-Status-Type, a session update without Acct-Session-Id, an implausible counter).

RADIUS packets are small (≤ 4096 bytes) and attribute-structured, one request per
datagram, so the work is inherently per packet: there is no batch of fixed-layout rows
to decode with numpy. What is per batch is done per batch: each request's record row is
appended to one flat list, and each column is a strided slice of it turned into Arrow
once at the end (no per-record container left for the cyclic GC to walk). Attribute
names, codes, types and value names come from the pyrad dictionary shipped in this
folder; the attribute walk itself is a few lines here rather than pyrad's
``Packet.DecodePacket``, which costs ~30 µs per request — more than half of the 50 µs a
request may take at the 20,000 requests/s target (measured with
``benchmarks/source_bench/radius.py``). Values are decoded with pyrad's ``tools`` except
32-bit integers (``int.from_bytes``), the hot case.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pyarrow as pa
from pyrad import packet as pyrad_packet
from pyrad import tools
from pyrad.dictionary import Dictionary

from netdistill.errors import DecodeError
from netdistill.records.batch import FieldSpec, Quarantined, SourceCounters
from netdistill.records.schema import conform
from netdistill.sources.base import MALFORMED, Datagram
from netdistill.sources.radius.sessions import AnsweredRequests, SessionTable, Totals

UNKNOWN_CLIENT = "unknown_client"
WRONG_CODE = "wrong_code"
BAD_AUTHENTICATOR = "bad_authenticator"
BAD_MESSAGE_AUTHENTICATOR = "bad_message_authenticator"

ACCOUNTING_REQUEST = 4
ACCOUNTING_RESPONSE = 5
#: RFC 2865 §3: the largest packet a peer may send
MAX_LENGTH = 4096
#: a counter above this (4.6 EB in one session) is a bad packet, and keeps sums in int64
MAX_COUNTER = 1 << 62
_ZERO_AUTHENTICATOR = bytes(16)
_ZERO = bytes(4)
_MAX_GIGAWORDS = MAX_COUNTER >> 32


def load_dictionary() -> Dictionary:
    """The pyrad dictionary shipped with this package (RFC 2865/2866/2869 attributes)."""
    with resources.as_file(resources.files(__package__) / "dictionary") as path:
        return Dictionary(str(path))


DICTIONARY = load_dictionary()


def _code(name: str) -> int:
    return int(DICTIONARY.attributes[name].code)


def _value_names(name: str) -> dict[int, str]:
    values = DICTIONARY.attributes[name].values
    return {int.from_bytes(values.GetForward(n), "big"): str(n) for n in values.forward}


USER_NAME = _code("User-Name")
NAS_IP_ADDRESS = _code("NAS-IP-Address")
NAS_PORT = _code("NAS-Port")
FRAMED_IP_ADDRESS = _code("Framed-IP-Address")
CALLED_STATION_ID = _code("Called-Station-Id")
CALLING_STATION_ID = _code("Calling-Station-Id")
NAS_IDENTIFIER = _code("NAS-Identifier")
PROXY_STATE = _code("Proxy-State")
ACCT_STATUS_TYPE = _code("Acct-Status-Type")
ACCT_DELAY_TIME = _code("Acct-Delay-Time")
ACCT_INPUT_OCTETS = _code("Acct-Input-Octets")
ACCT_OUTPUT_OCTETS = _code("Acct-Output-Octets")
ACCT_SESSION_ID = _code("Acct-Session-Id")
ACCT_SESSION_TIME = _code("Acct-Session-Time")
ACCT_INPUT_PACKETS = _code("Acct-Input-Packets")
ACCT_OUTPUT_PACKETS = _code("Acct-Output-Packets")
ACCT_TERMINATE_CAUSE = _code("Acct-Terminate-Cause")
ACCT_INPUT_GIGAWORDS = _code("Acct-Input-Gigawords")
ACCT_OUTPUT_GIGAWORDS = _code("Acct-Output-Gigawords")
EVENT_TIMESTAMP = _code("Event-Timestamp")
MESSAGE_AUTHENTICATOR = _code("Message-Authenticator")
FRAMED_IPV6_PREFIX = _code("Framed-IPv6-Prefix")
FRAMED_IPV6_ADDRESS = _code("Framed-IPv6-Address")

STATUS_NAMES = _value_names("Acct-Status-Type")
TERMINATE_CAUSES = _value_names("Acct-Terminate-Cause")
START, STOP, INTERIM_UPDATE, ACCOUNTING_ON, ACCOUNTING_OFF = 1, 2, 3, 7, 8
_SESSION_STATUSES = frozenset((START, INTERIM_UPDATE, STOP))
_NO_USAGE = (0, 0, 0, 0, 0)

#: 32-bit integer attributes: decoded with int.from_bytes, length checked
_INTEGERS = frozenset(
    int(a.code)
    for a in DICTIONARY.attributes.values()
    if a.type in ("integer", "date") and not a.vendor
)

#: fields this source fills beyond the standard ones (the RADIUS lookup reads them)
FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("acct_status_type", "string", "Start, Interim-Update, Stop, Accounting-On/Off"),
    FieldSpec("bytes_in", "uint64", "Acct-Input-Octets (+ Gigawords << 32) added by the record"),
    FieldSpec("bytes_out", "uint64", "Acct-Output-Octets (+ Gigawords << 32) added"),
    FieldSpec("packets_in", "uint64", "Acct-Input-Packets added by the record"),
    FieldSpec("packets_out", "uint64", "Acct-Output-Packets added by the record"),
    FieldSpec("session_time_s", "uint32", "Acct-Session-Time, the session's running total"),
    FieldSpec("terminate_cause", "string", "Acct-Terminate-Cause name (RFC 2866 §5.10)"),
    FieldSpec("nas_identifier", "string", "NAS-Identifier"),
    FieldSpec("nas_port", "uint32", "NAS-Port"),
    FieldSpec("calling_station_id", "string", "Calling-Station-Id (e.g. the user's MAC)"),
    FieldSpec("called_station_id", "string", "Called-Station-Id"),
)
_EXTRA_TYPES = {
    "string": pa.string(),
    "uint64": pa.uint64(),
    "uint32": pa.uint32(),
}


class ClientTable:
    """Shared secrets by client address; the most specific configured network wins."""

    _CACHE_LIMIT = 65_536

    def __init__(self, clients: Mapping[str, bytes]) -> None:
        networks = [(ipaddress.ip_network(k, strict=False), v) for k, v in clients.items()]
        self._networks = sorted(networks, key=lambda item: -item[0].prefixlen)
        self._cache: dict[str, bytes | None] = {}

    def secret_for(self, address: str) -> bytes | None:
        try:
            return self._cache[address]
        except KeyError:
            pass
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        secret = next((s for n, s in self._networks if ip in n), None)
        if len(self._cache) >= self._CACHE_LIMIT:  # spoofed sources must not grow it
            self._cache.clear()
        self._cache[address] = secret
        return secret


def split_attributes(raw: bytes, length: int) -> tuple[dict[int, bytes], list[bytes]]:
    """Attribute code → first value, and the Proxy-State values in order (RFC 2865 §5).

    Raises ``DecodeError`` with the offset of an attribute whose length is wrong."""
    attributes: dict[int, bytes] = {}
    proxy_states: list[bytes] = []
    position = 20
    while position < length:
        if position + 2 > length:
            raise DecodeError("attribute header cut short", offset=position)
        code = raw[position]
        end = position + raw[position + 1]
        if end < position + 2 or end > length:
            raise DecodeError(
                f"attribute {code} has length {raw[position + 1]}",
                offset=position,
                detail=f"{length - position} bytes left in the packet",
            )
        value = raw[position + 2 : end]
        if code in _INTEGERS and len(value) != 4:
            raise DecodeError(f"attribute {code} is {len(value)} bytes, not 4", offset=position)
        if code == PROXY_STATE:
            proxy_states.append(value)
        elif code not in attributes:
            attributes[code] = value
        position = end
    return attributes, proxy_states


def accounting_response(
    identifier: int, request_authenticator: bytes, proxy_states: Sequence[bytes], secret: bytes
) -> bytes:
    """The Accounting-Response to a request (RFC 2866 §3), Proxy-States copied in order
    (RFC 2865 §5.33)."""
    attributes = b"".join(bytes((PROXY_STATE, len(p) + 2)) + p for p in proxy_states)
    header = bytes((ACCOUNTING_RESPONSE, identifier)) + (20 + len(attributes)).to_bytes(2, "big")
    digest = hashlib.md5(header + request_authenticator + attributes + secret).digest()
    return header + digest + attributes


def _framed_address(attributes: dict[int, bytes], offset: int) -> str | None:
    value = attributes.get(FRAMED_IP_ADDRESS)
    if value is not None:
        if len(value) != 4:
            raise DecodeError("Framed-IP-Address is not 4 bytes", offset=offset)
        return socket.inet_ntoa(value)
    value = attributes.get(FRAMED_IPV6_ADDRESS)
    if value is not None:
        if len(value) != 16:
            raise DecodeError("Framed-IPv6-Address is not 16 bytes", offset=offset)
        return str(ipaddress.IPv6Address(value))
    value = attributes.get(FRAMED_IPV6_PREFIX)
    if value is not None:
        if not 2 <= len(value) <= 18 or value[1] > 128:
            raise DecodeError("Framed-IPv6-Prefix is malformed", offset=offset)
        return str(ipaddress.ip_network(tools.DecodeIPv6Prefix(value), strict=False)[0])
    return None


#: the order of a record row's values (``_record``): the standard fields, then FIELDS
_ROW_FIELDS = (
    "exporter",
    "session_id",
    "user_name",
    "src_ip",
    "start_time",
    "end_time",
    "duration_s",
    "bytes",
    "packets",
    *(spec.name for spec in FIELDS),
)
_WIDTH = len(_ROW_FIELDS)
_MICROSECONDS = pa.timestamp("us", tz="UTC")
_STANDARD_TYPES = {
    "exporter": pa.string(),
    "session_id": pa.string(),
    "user_name": pa.string(),
    "src_ip": pa.string(),
    "start_time": _MICROSECONDS,
    "end_time": _MICROSECONDS,
    "duration_s": pa.float64(),
    "bytes": pa.uint64(),
    "packets": pa.uint64(),
}


def records_table(source: str, rows: list[Any]) -> pa.Table:
    """The record table of a batch from its rows laid end to end (``_WIDTH`` values
    each): every column is one strided slice, turned into Arrow with one ``pa.array``."""
    n = len(rows) // _WIDTH
    arrays = {name: rows[i::_WIDTH] for i, name in enumerate(_ROW_FIELDS)}
    standard = {
        "source": pa.array([source] * n, pa.string()),
        **{name: pa.array(arrays[name], _STANDARD_TYPES[name]) for name in _STANDARD_TYPES},
        "service": pa.array(["access"] * n, pa.string()),
    }
    table = conform(pa.table(standard))
    for spec in FIELDS:
        table = table.append_column(spec.name, pa.array(arrays[spec.name], _EXTRA_TYPES[spec.type]))
    return table


@dataclass(slots=True)
class Decoded:
    """One ``decode`` call: the records, what was set aside, and the answers to send —
    ``(index of the datagram, Accounting-Response)`` — once the records are committed."""

    records: pa.Table
    quarantined: list[Quarantined]
    answers: list[tuple[int, bytes]]


class AccountingDecoder:
    """Turns Accounting-Requests into session records. Not thread-safe: one caller."""

    def __init__(
        self,
        *,
        source: str,
        clients: ClientTable,
        sessions: SessionTable,
        answered: AnsweredRequests,
    ) -> None:
        self.source = source
        self.clients = clients
        self.sessions = sessions
        self.answered = answered
        self.counters = SourceCounters()
        #: retransmissions answered again without a record
        self.duplicates = 0
        #: sessions closed by Accounting-On/Off
        self.sessions_closed_by_nas = 0

    def decode(self, datagrams: Sequence[Datagram]) -> Decoded:
        #: the record rows one after another, ``_WIDTH`` values each: one flat list, so
        #: that a batch leaves no container per record for the cyclic GC to walk
        rows: list[Any] = []
        extend = rows.extend
        quarantined: list[Quarantined] = []
        answers: list[tuple[int, bytes]] = []
        counters = self.counters
        dropped = counters.dropped
        md5 = hashlib.md5
        compare = hmac.compare_digest
        secret_for = self.clients.secret_for
        answered = self.answered
        record = self._record
        received_bytes = 0
        for index, datagram in enumerate(datagrams):
            raw = datagram.payload
            received_bytes += len(raw)
            secret = secret_for(datagram.exporter)
            if secret is None:
                dropped[UNKNOWN_CLIENT] += 1
                continue
            try:
                length = _check_header(raw)
            except DecodeError as exc:
                quarantined.append(self._quarantine(datagram, exc))
                continue
            if raw[0] != ACCOUNTING_REQUEST:
                dropped[WRONG_CODE] += 1
                continue
            if length != len(raw):
                raw = raw[:length]  # RFC 2865 §3: octets beyond Length are padding
            authenticator = raw[4:20]
            digest = md5(raw[:4] + _ZERO_AUTHENTICATOR + raw[20:] + secret).digest()
            if not compare(digest, authenticator):
                dropped[BAD_AUTHENTICATOR] += 1
                continue
            key = (datagram.exporter, raw[1], authenticator)
            response = answered.get(key)
            try:
                attributes, proxy_states = split_attributes(raw, length)
                if response is not None:
                    self.duplicates += 1
                    if not response:  # answered before a restart: rebuild the answer
                        response = accounting_response(raw[1], authenticator, proxy_states, secret)
                    answers.append((index, response))
                    continue
                if MESSAGE_AUTHENTICATOR in attributes and not _message_authenticator_ok(
                    raw, secret
                ):
                    dropped[BAD_MESSAGE_AUTHENTICATOR] += 1
                    continue
                extend(record(datagram, attributes))
            except DecodeError as exc:
                quarantined.append(self._quarantine(datagram, exc))
                continue
            response = accounting_response(raw[1], authenticator, proxy_states, secret)
            answered.add(key, response, datagram.received_at)
            answers.append((index, response))
        counters.datagrams += len(datagrams)
        counters.bytes_received += received_bytes
        counters.records += len(rows) // _WIDTH
        return Decoded(records_table(self.source, rows), quarantined, answers)

    def _record(self, datagram: Datagram, attributes: dict[int, bytes]) -> tuple[Any, ...]:
        """The record row of one authenticated request, in ``_ROW_FIELDS`` order (raises
        ``DecodeError``)."""
        get = attributes.get
        status_value = get(ACCT_STATUS_TYPE)
        if status_value is None:
            raise DecodeError("no Acct-Status-Type", offset=20)
        status = int.from_bytes(status_value, "big")
        event = get(EVENT_TIMESTAMP)
        if event is not None:
            event_s = float(int.from_bytes(event, "big"))
        else:  # RFC 2866 §5.2: the event happened Acct-Delay-Time seconds before sending
            event_s = datagram.received_at - int.from_bytes(get(ACCT_DELAY_TIME, _ZERO), "big")
        event_us = int(event_s * 1_000_000)
        nas_ip = get(NAS_IP_ADDRESS)
        exporter = (
            socket.inet_ntoa(nas_ip)
            if nas_ip is not None and len(nas_ip) == 4
            else datagram.exporter
        )
        value = get(ACCT_SESSION_ID)
        session_id = None if value is None else value.decode("utf-8", "backslashreplace")
        session_time: int | None = None
        cause: str | None = None
        if status in _SESSION_STATUSES:
            if not session_id:
                raise DecodeError(f"{STATUS_NAMES[status]} without Acct-Session-Id", offset=20)
            if status == START:  # RFC 2866: a Start carries no usage
                session_time = 0
                totals: Totals = (0, 0, 0, 0, 0)
            else:
                session_time = int.from_bytes(get(ACCT_SESSION_TIME, _ZERO), "big")
                totals = (
                    int.from_bytes(
                        get(ACCT_INPUT_GIGAWORDS, _ZERO) + get(ACCT_INPUT_OCTETS, _ZERO), "big"
                    ),
                    int.from_bytes(
                        get(ACCT_OUTPUT_GIGAWORDS, _ZERO) + get(ACCT_OUTPUT_OCTETS, _ZERO), "big"
                    ),
                    int.from_bytes(get(ACCT_INPUT_PACKETS, _ZERO), "big"),
                    int.from_bytes(get(ACCT_OUTPUT_PACKETS, _ZERO), "big"),
                    session_time,
                )
            if status != START:
                if totals[0] >= MAX_COUNTER or totals[1] >= MAX_COUNTER:
                    raise DecodeError("octet counter beyond 2**62", offset=20)
            elif (
                int.from_bytes(get(ACCT_INPUT_GIGAWORDS, _ZERO), "big") >= _MAX_GIGAWORDS
                or int.from_bytes(get(ACCT_OUTPUT_GIGAWORDS, _ZERO), "big") >= _MAX_GIGAWORDS
            ):
                raise DecodeError("octet counter beyond 2**62", offset=20)
            deltas, start_us = self.sessions.update(
                (exporter, session_id),
                totals,
                start_us=event_us - session_time * 1_000_000,
                closing=status == STOP,
                at=datagram.received_at,
            )
            if status == STOP:
                value = get(ACCT_TERMINATE_CAUSE)
                if value is not None:
                    code = int.from_bytes(value, "big")
                    cause = TERMINATE_CAUSES.get(code) or str(code)
        else:
            deltas, start_us = _NO_USAGE, event_us
            if status in (ACCOUNTING_ON, ACCOUNTING_OFF):
                self.sessions_closed_by_nas += self.sessions.close_exporter(
                    exporter, datagram.received_at
                )
        user = get(USER_NAME)
        nas_identifier = get(NAS_IDENTIFIER)
        port = get(NAS_PORT)
        calling = get(CALLING_STATION_ID)
        called = get(CALLED_STATION_ID)
        framed = get(FRAMED_IP_ADDRESS)
        if framed is not None and len(framed) == 4:
            src_ip: str | None = socket.inet_ntoa(framed)
        else:
            src_ip = _framed_address(attributes, 20)
        return (
            exporter,
            session_id,
            None if user is None else user.decode("utf-8", "backslashreplace"),
            src_ip,
            start_us,
            event_us,
            float(deltas[4]),
            deltas[0] + deltas[1],
            deltas[2] + deltas[3],
            STATUS_NAMES.get(status) or str(status),
            deltas[0],
            deltas[1],
            deltas[2],
            deltas[3],
            session_time,
            cause,
            None if nas_identifier is None else nas_identifier.decode("utf-8", "backslashreplace"),
            None if port is None else int.from_bytes(port, "big"),
            None if calling is None else calling.decode("utf-8", "backslashreplace"),
            None if called is None else called.decode("utf-8", "backslashreplace"),
        )

    def _quarantine(self, datagram: Datagram, exc: DecodeError) -> Quarantined:
        self.counters.dropped[MALFORMED] += 1
        return Quarantined(
            source=self.source,
            exporter=datagram.exporter,
            received_at=datagram.received_at,
            reason=MALFORMED,
            detail=str(exc),
            payload=datagram.payload,
            offset=exc.offset,
            location=f"{datagram.exporter}:{datagram.port}",
        )


def _check_header(raw: bytes) -> int:
    """The packet's Length (RFC 2865 §3), checked against what arrived."""
    if len(raw) < 20:
        raise DecodeError(f"{len(raw)} bytes, shorter than the 20-byte header", offset=0)
    length = int.from_bytes(raw[2:4], "big")
    if length < 20 or length > MAX_LENGTH or length > len(raw):
        raise DecodeError(f"Length {length} with {len(raw)} bytes received", offset=2)
    return length


def _message_authenticator_ok(raw: bytes, secret: bytes) -> bool:
    """RFC 3579 §3.2 / RFC 2869 §5.14, checked by pyrad (rare in accounting: no hot path)."""
    try:
        request: Any = pyrad_packet.AcctPacket(packet=raw, secret=secret, dict=DICTIONARY)
        return bool(request.verify_message_authenticator())
    except Exception:  # pyrad raises on what our walk accepted: treat as not verified
        return False
