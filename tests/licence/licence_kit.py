"""Licences for tests: a key pair of the test's own (never the vendor's), and licence
files signed with it. The manager under test trusts the test key because the test
passes it to the constructor (``LicenceBook(trusted_keys=…)``, ``ManagerProcess(
licence_keys=…)``): nothing else can make netdistill trust it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from netdistill.licence.issue import sign
from netdistill.licence.terms import Licence

TEST_KEY_ID = "test-key"


class TestVendor:
    """A vendor with a fresh Ed25519 key pair."""

    __test__ = False  # not a test class

    def __init__(self, key_id: str = TEST_KEY_ID) -> None:
        self.key_id = key_id
        self.private = Ed25519PrivateKey.generate()
        self.public = self.private.public_key()

    @property
    def trusted(self) -> dict[str, Any]:
        return {self.key_id: self.public}

    def issue(
        self,
        licence_id: str = "TEST-1",
        *,
        now: datetime | None = None,
        days: float = 365,
        starts_in_days: float = -1,
        **terms: Any,
    ) -> str:
        now = now or datetime.now(UTC)
        licence = Licence(
            licence_id=licence_id,
            customer=terms.pop("customer", "Test Customer"),
            issued_at=now,
            valid_from=now + timedelta(days=starts_in_days),
            expires_at=now + timedelta(days=days),
            **terms,
        )
        return sign(licence, self.private, self.key_id)
