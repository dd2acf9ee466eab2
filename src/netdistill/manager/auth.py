"""Gatherer credentials: each gatherer has its own token, checked in constant time.

The scheme keeps only the token's SHA-256 (``gatherers: [{name, token_sha256}]``) or a
file holding the token, so reading the scheme does not give a gatherer's credential.
A request names its gatherer (``?gatherer=G``); the bearer token must be G's token. An
unknown token is refused with 401, a known token used under another gatherer's name or
a revoked gatherer with 403; every refusal is logged with the peer address. A gatherer
whose credential passed is then handed to ``admit`` (when set: the manager's licence and
minimum-version checks, ``Manager.admit_gatherer``), which may refuse it for good.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from pathlib import Path

from fastapi import HTTPException, Request

from netdistill.scheme.models import Scheme
from netdistill.scheme.secrets import SecretError

log = logging.getLogger(__name__)


class GathererAuth:
    """Checks gatherer requests against the scheme's ``gatherers`` section (live: a
    reloaded scheme applies to the next request)."""

    def __init__(self, scheme: Callable[[], Scheme], base_dir: Path) -> None:
        self._scheme = scheme
        self._base_dir = base_dir
        self.refused = 0
        #: called with (request, gatherer) once the credential passed; raises to refuse
        self.admit: Callable[[Request, str], None] | None = None

    def _digests(self) -> dict[str, tuple[str, bool]]:
        out = {}
        for gatherer in self._scheme().gatherers:
            try:
                out[gatherer.name] = (gatherer.expected_sha256(self._base_dir), gatherer.revoked)
            except (OSError, SecretError) as exc:
                log.error("gatherer %s: cannot read its token: %s", gatherer.name, exc)
        return out

    def check(self, request: Request, gatherer: str) -> None:
        """Raise 401/403 unless the request carries ``gatherer``'s own valid token."""
        given = request.headers.get("authorization", "")
        token = given.removeprefix("Bearer ").strip() if given.startswith("Bearer ") else ""
        digest = hashlib.sha256(token.encode()).hexdigest().encode()
        owner = None
        for name, (expected, revoked) in self._digests().items():
            if hmac.compare_digest(digest, expected.encode()):
                owner = (name, revoked)
        peer = request.client.host if request.client else "?"
        if owner is None:
            self._refuse(401, f"unknown gatherer credential from {peer} (as {gatherer!r})")
        assert owner is not None
        name, revoked = owner
        if name != gatherer:
            self._refuse(403, f"gatherer {name!r} at {peer} tried to deliver as {gatherer!r}")
        if revoked:
            self._refuse(403, f"revoked gatherer {name!r} at {peer} was refused")
        if self.admit is not None:
            self.admit(request, gatherer)

    def _refuse(self, status: int, message: str) -> None:
        self.refused += 1
        log.warning("%s", message)
        raise HTTPException(status_code=status, detail=message)
