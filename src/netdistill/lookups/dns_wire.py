"""The DNS wire format for the three questions the DNS lookup asks: PTR, A and AAAA.

RFC 1035 §4 (header, question, resource records, name compression §4.1.4), RFC 3596
(AAAA and ip6.arpa), RFC 2181 §10.1 (CNAME chains). Only what a stub resolver needs to
read an answer section: EDNS, DNSSEC and the authority/additional sections are not read.

Why not dnspython's ``Message`` here: building a query and parsing its answer with
``dns.message`` costs about 300 µs of CPU per name on the project's machine, which caps
a lookup at ~3,000 names/s, below what dnsmasq answers. These few functions do the same
for one question in ~10 µs. The rare truncated answer is asked again over TCP with the
same bytes and a two-octet length prefix (``dns.py``, ``_ask_tcp``, RFC 1035 §4.2.2).
dnspython is a test dependency only: the independent codec the tests check these
functions against.
"""

from __future__ import annotations

import ipaddress
import struct

from netdistill.errors import WireError

TYPE_A = 1
TYPE_CNAME = 5
TYPE_PTR = 12
TYPE_AAAA = 28
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NAMES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
}

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_QTAIL = struct.Struct("!HH")
_MAX_HOPS = 16


def encode_name(name: str) -> bytes:
    """``host.example.org`` (trailing dot optional) → wire labels. ValueError if invalid."""
    text = name.rstrip(".")
    if not text:
        return b"\x00"
    out = bytearray()
    for label in text.split("."):
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS label in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"DNS name longer than 255 octets: {name[:60]!r}…")
    return bytes(out)


def reverse_name(ip: str) -> bytes:
    """The PTR question name of an address (in-addr.arpa / ip6.arpa), as wire labels."""
    return encode_name(ipaddress.ip_address(ip).reverse_pointer)


def query(qid: int, qname: bytes, qtype: int) -> bytes:
    """One recursive question (RD set), no EDNS."""
    return _HEADER.pack(qid, 0x0100, 1, 0, 0, 0) + qname + _QTAIL.pack(qtype, CLASS_IN)


def reply_id(wire: bytes) -> int | None:
    return int.from_bytes(wire[:2], "big") if len(wire) >= 2 else None


def _read_name(wire: bytes, off: int) -> tuple[bytes, int]:
    """The name at ``off`` as lower-case wire labels (pointers expanded), and the offset
    after it in the message."""
    labels = bytearray()
    end = -1
    hops = 0
    n = len(wire)
    while True:
        if off >= n:
            raise WireError("name runs past the end of the message")
        length = wire[off]
        if length == 0:
            labels.append(0)
            return bytes(labels).lower(), (off + 1 if end < 0 else end)
        if length & 0xC0 == 0xC0:
            if off + 1 >= n:
                raise WireError("compression pointer cut short")
            target = ((length & 0x3F) << 8) | wire[off + 1]
            if end < 0:
                end = off + 2
            hops += 1
            if hops > 64 or target >= off:
                raise WireError("compression pointer loop or forward pointer")
            off = target
            continue
        if length & 0xC0:
            raise WireError(f"unknown label type 0x{length:02x}")
        labels += wire[off : off + 1 + length]
        if len(labels) > 255:
            raise WireError("name longer than 255 octets")
        off += 1 + length


def name_text(labels: bytes) -> str:
    """Wire labels → ``host.example.org`` (no final dot); odd bytes backslash-escaped."""
    parts = []
    off = 0
    while labels[off]:
        length = labels[off]
        parts.append(labels[off + 1 : off + 1 + length].decode("ascii", "backslashreplace"))
        off += 1 + length
    return ".".join(parts)


def parse_reply(wire: bytes, qname: bytes, qtype: int) -> tuple[int, bool, list[bytes | str]]:
    """(rcode, truncated, values) of an answer to ``qname``/``qtype``.

    ``values`` holds, after following CNAMEs from ``qname``, the PTR targets as text or
    the A/AAAA addresses as canonical text. Raises ``WireError`` when the message is not
    a response to this question or cannot be read."""
    if len(wire) < 12:
        raise WireError("shorter than a DNS header")
    _, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(wire)
    if not flags & 0x8000:
        raise WireError("not a response (QR bit clear)")
    rcode = flags & 0x000F
    truncated = bool(flags & 0x0200)
    if qdcount != 1:
        raise WireError(f"{qdcount} questions in the answer, expected 1")
    name, off = _read_name(wire, 12)
    if off + 4 > len(wire):
        raise WireError("question cut short")
    rtype, rclass = _QTAIL.unpack_from(wire, off)
    if name != qname.lower() or rtype != qtype or rclass != CLASS_IN:
        raise WireError("answer to another question")
    off += 4
    records: list[tuple[bytes, int, int, int]] = []  # owner, type, rdata offset, length
    for _ in range(ancount):
        owner, off = _read_name(wire, off)
        if off + 10 > len(wire):
            raise WireError("resource record cut short")
        rr_type, rr_class, _, rdlength = _RR.unpack_from(wire, off)
        off += 10
        if off + rdlength > len(wire):
            raise WireError("rdata runs past the end of the message")
        if rr_class == CLASS_IN:
            records.append((owner, rr_type, off, rdlength))
        off += rdlength
    values: list[bytes | str] = []
    current = name
    for _ in range(_MAX_HOPS):
        alias = None
        for owner, rr_type, rdata, rdlength in records:
            if owner != current:
                continue
            if rr_type == qtype:
                values.append(_rdata(wire, rr_type, rdata, rdlength))
            elif rr_type == TYPE_CNAME:
                alias = _read_name(wire, rdata)[0]
        if values or alias is None:
            break
        current = alias
    return rcode, truncated, values


def _rdata(wire: bytes, rr_type: int, off: int, length: int) -> str:
    if rr_type == TYPE_PTR:
        return name_text(_read_name(wire, off)[0])
    if rr_type == TYPE_A and length == 4:
        return str(ipaddress.IPv4Address(wire[off : off + 4]))
    if rr_type == TYPE_AAAA and length == 16:
        return ipaddress.IPv6Address(wire[off : off + 16]).compressed
    raise WireError(f"bad rdata length {length} for type {rr_type}")
