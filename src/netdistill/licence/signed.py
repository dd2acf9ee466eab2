"""The licence file: a JSON body and its Ed25519 signature, as text one can read.

::

    -----BEGIN NETDISTILL LICENCE-----
    {
      "format": 1,
      "licence_id": "ACME-2026-001",
      "customer": "ACME Networks",
      ...
    }
    -----END NETDISTILL LICENCE-----
    -----BEGIN NETDISTILL SIGNATURE-----
    key: vendor-2026
    signature: <base64 of 64 bytes>
    -----END NETDISTILL SIGNATURE-----

The signature is over ``b"netdistill licence 1\\n" + key id + b"\\n" + body``, where
the body is the exact text between the BEGIN and END lines (line ends normalized to
``\\n``, so a licence that went through a Windows mail client still verifies). Any
other change to the body — one byte — breaks the signature. Text outside the blocks is
ignored (a vendor may add a note above).

``verify`` checks, in this order, and raises ``LicenceError`` naming the first problem:
the blocks are there; the key id is one this netdistill trusts; the signature; the body
is a licence (``terms.Licence``); the install id (when the licence names one); and the
dates (not yet valid, or expired: a licence is installed before it expires; its grace
period is for an installed licence, while it is renewed). A licence is only ever read
through ``verify``: nothing uses an unverified body.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from netdistill.errors import LicenceError
from netdistill.licence.terms import Licence

BEGIN, END = "-----BEGIN NETDISTILL LICENCE-----", "-----END NETDISTILL LICENCE-----"
SIG_BEGIN, SIG_END = "-----BEGIN NETDISTILL SIGNATURE-----", "-----END NETDISTILL SIGNATURE-----"
_DOMAIN = b"netdistill licence 1\n"

_BLOCKS = re.compile(
    re.escape(BEGIN) + r"\n(?P<body>.*?)\n" + re.escape(END) + r"\s*\n"
    + re.escape(SIG_BEGIN) + r"\n(?P<sig>.*?)\n" + re.escape(SIG_END),
    re.DOTALL,
)  # fmt: skip


def signed_message(key_id: str, body: str) -> bytes:
    """The bytes the vendor's key signs."""
    return _DOMAIN + key_id.encode() + b"\n" + body.encode()


def render(body: str, key_id: str, signature: bytes) -> str:
    """The licence file's text."""
    return (
        f"{BEGIN}\n{body}\n{END}\n{SIG_BEGIN}\nkey: {key_id}\n"
        f"signature: {base64.b64encode(signature).decode()}\n{SIG_END}\n"
    )


@dataclass(frozen=True)
class Verified:
    """A licence whose signature was checked, with the file's text as installed."""

    licence: Licence
    key_id: str
    text: str


def _split(text: str) -> tuple[str, str, bytes]:
    """(body, key id, signature) of a licence file's text."""
    text = text.replace("\r\n", "\n")
    found = _BLOCKS.search(text)
    if found is None:
        raise LicenceError(
            f"not a netdistill licence: expected a {BEGIN} … {END} block followed by a "
            f"{SIG_BEGIN} … {SIG_END} block"
        )
    fields: dict[str, str] = {}
    for line in found.group("sig").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    if "key" not in fields or "signature" not in fields:
        raise LicenceError("licence signature block: needs 'key:' and 'signature:' lines")
    try:
        signature = base64.b64decode(fields["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise LicenceError("licence signature block: the signature is not base64") from None
    return found.group("body"), fields["key"], signature


def verify(
    text: str,
    *,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    now: datetime,
    install_id: str | None = None,
    check_dates: bool = True,
) -> Verified:
    """The licence in ``text`` if it is genuine and in force for this installation
    (``check_dates=False``: genuine and for this installation, whatever the dates —
    how installed licences are read back, so an expired one can be listed)."""
    body, key_id, signature = _split(text)
    key = trusted_keys.get(key_id)
    if key is None:
        known = ", ".join(sorted(trusted_keys)) or "none"
        raise LicenceError(
            f"licence signed with key {key_id!r}, which this netdistill does not trust "
            f"(it trusts: {known}); ask the vendor for a licence signed with its key"
        )
    try:
        key.verify(signature, signed_message(key_id, body))
    except InvalidSignature:
        raise LicenceError(
            f"licence signature is not valid for key {key_id!r}: the licence was changed "
            "after it was signed, or it was signed by another key; install the file as the "
            "vendor sent it"
        ) from None
    try:
        licence = Licence.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:  # signed, yet not a licence: a vendor bug
        raise LicenceError(f"licence body is not a valid licence: {exc}") from None
    if licence.install_id not in (None, install_id) and install_id is not None:
        raise LicenceError(
            f"licence {licence.licence_id} is for installation {licence.install_id}; "
            f"this installation is {install_id} (netdistill licence install-id)"
        )
    if check_dates:
        state = licence.state(now)
        if state == "not_yet_valid":
            raise LicenceError(
                f"licence {licence.licence_id} is not valid yet: it is valid from "
                f"{_day(licence.valid_from)} (now {_day(now)}); install it from that time on"
            )
        if state in ("grace", "expired"):  # grace is for installed licences, to renew
            raise LicenceError(
                f"licence {licence.licence_id} expired on {_day(licence.expires_at)} "
                f"(now {_day(now)}); ask the vendor for a renewal"
            )
    return Verified(licence, key_id, text.replace("\r\n", "\n"))


def _day(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
