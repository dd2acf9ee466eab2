"""The vendor's side: make a key pair and sign licences. Never imported by a running
manager or gatherer — only by ``netdistill licence keygen`` and ``netdistill licence
issue``, which need the vendor's private key file (PEM, PKCS#8, unencrypted or with a
passphrase).

    netdistill licence keygen --out vendor-2027.pem          # prints the public key
    netdistill licence issue --key vendor-2027.pem --key-id vendor-2027 \\
        --id ACME-2026-001 --customer "ACME Networks" --days 365 \\
        --gatherers 10 --exporters netflow=200 --exporters radius=20 \\
        --feature merge --feature rating --feature scale-out -o acme.lic

A new public key goes into ``licence/keys.py`` under its id, in a release; the private
key stays with the vendor.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from netdistill.errors import LicenceError
from netdistill.licence.signed import render, signed_message
from netdistill.licence.terms import Licence


def generate_key(path: Path) -> str:
    """Write a new private key to ``path`` (mode 0600, never overwritten); returns the
    public key's raw bytes in base64 (what ``keys.py`` holds)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with open(path, "xb", opener=lambda p, f: os.open(p, f, 0o600)) as out:
        out.write(pem)
    return public_b64(key)


def public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(path: Path, password: bytes | None = None) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=password)
    except (OSError, ValueError, TypeError) as exc:
        raise LicenceError(f"{path}: cannot read the vendor's private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LicenceError(f"{path}: not an Ed25519 private key")
    return key


def sign(licence: Licence, key: Ed25519PrivateKey, key_id: str) -> str:
    """The licence file's text for ``licence``, signed with ``key`` under ``key_id``."""
    body = json.dumps(licence.model_dump(mode="json", exclude_none=True), indent=2)
    return render(body, key_id, key.sign(signed_message(key_id, body)))
