"""The vendor's Ed25519 public keys, built into the package: the only keys a running
netdistill trusts for licences.

Each key has an id, named in every licence it signs (``key: vendor-2026``), so a new key
can be added here and licences signed by the old one stay valid until they expire. The
private halves are kept by the vendor, never in this repository; ``netdistill licence
issue`` (``licence/issue.py``) needs one as a PEM file.

There is no way to add a trusted key from the scheme, the environment or the command
line: tests (and only code that constructs ``LicenceBook`` itself) pass their own key
explicitly (``LicenceBook(..., trusted_keys=...)``), so a user of the installed product
cannot make it trust a key of their own without changing the installed code.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

#: key id → the raw 32-byte Ed25519 public key, base64
_VENDOR_KEYS_B64 = {
    "vendor-2026": "RBPYnmLRN3lnXtI6lTbZkt+CIvvb+s3vXzQcBJxqLoY=",
}


def public_key(raw_b64: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its raw 32 bytes in base64."""
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(raw_b64, validate=True))


#: the keys a production netdistill trusts (read-only)
VENDOR_KEYS: Mapping[str, Ed25519PublicKey] = MappingProxyType(
    {key_id: public_key(raw) for key_id, raw in _VENDOR_KEYS_B64.items()}
)
