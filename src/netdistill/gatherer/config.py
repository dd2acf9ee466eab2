"""Scheme models for remote gatherers: who may deliver, their spool, and the API's TLS.

A scheme lists its gatherers with their credential and spool settings; the manager hands
each gatherer its part of the flow plan (its sources and their filters, its spool and
forwarding settings) at ``GET /api/plan``. Sample::

    manager:
      api_host: 0.0.0.0
      api_port: 8443
      tls: {cert: /etc/netdistill/manager.pem, key: /etc/netdistill/manager.key,
            key_password: {env: MANAGER_KEY_PASSWORD}}   # only for an encrypted key
    gatherers:
      - name: pop-paris
        token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        spool: {max_bytes: 2000000000, policy: block}
      - name: pop-lyon
        token_file: lyon.token        # holds the token itself; relative to the scheme
      - name: pop-nice
        token: {env: POP_NICE_TOKEN}  # a secret (scheme/secrets.py): inline, {file:}, {env:}
      - name: pop-old
        token_sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
        revoked: true
    sources:
      - {type: netflow, name: paris-nf, gatherer: pop-paris, listen: ["0.0.0.0:2055"]}
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from netdistill.scheme.secrets import Secret


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpoolConfig(_Model):
    """The gatherer's durable spool (``gatherer/spool.py``)."""

    max_bytes: PositiveInt = Field(1 << 30, description="bound of the spool on disk")
    segment_bytes: PositiveInt = Field(16 << 20, description="size at which a segment rolls")
    policy: Literal["block", "drop_oldest"] = Field(
        "block",
        description="at the bound: block (stop reading sources, their queues fill and count "
        "drops) or drop_oldest (evict the oldest unacknowledged batches, counted)",
    )
    fsync: bool = Field(True, description="fsync every batch before it counts as received")


class ForwardConfig(_Model):
    """How a gatherer sends its spool to its managers."""

    max_batches_per_request: PositiveInt = Field(32, description="when catching up")
    max_request_bytes: PositiveInt = 64 << 20
    backoff_initial_s: PositiveFloat = 0.2
    backoff_max_s: PositiveFloat = 10.0
    timeout_s: PositiveFloat = 60.0
    refused_retry_s: PositiveFloat = Field(
        60.0,
        description="how often a manager that refuses this gatherer itself (licence, "
        "minimum version) is asked again; a batch refused for good goes to the "
        "dead-letter area instead (docs/delivery.md)",
    )
    max_lag_bytes: PositiveInt | None = Field(
        None,
        description="how far behind (spool bytes not yet acknowledged) one manager may "
        "fall while another keeps up; past it that manager is 'behind' and its oldest "
        "entries are skipped for it (counted as not delivered). Default: half of "
        "spool.max_bytes",
    )
    max_lag_s: PositiveFloat = Field(
        7 * 86400.0,
        description="how old its oldest unacknowledged entry may get, likewise; also "
        "bounds how long a committed entry may be resent (managers prune their "
        "idempotency keys past it, manager/main.py)",
    )
    watermark_interval_s: PositiveFloat = Field(
        1.0, description="how often an idle forwarder tells its manager its watermark"
    )
    heartbeat_interval_s: PositiveFloat = Field(10.0, description="between two heartbeats")
    plan_poll_s: PositiveFloat = Field(5.0, description="how often the plan version is checked")


class GathererConfig(_Model):
    """One gatherer allowed to deliver to this manager."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    token_file: str | None = Field(
        None, description="file holding the token; relative to the scheme"
    )
    token: Secret | None = Field(None, description="the token itself, as a secret")
    revoked: bool = False
    spool: SpoolConfig = SpoolConfig()
    forward: ForwardConfig = ForwardConfig()
    commit_interval_s: PositiveFloat = 0.5
    max_batch_datagrams: PositiveInt = 20_000
    queue_datagrams: PositiveInt = 500_000

    @model_validator(mode="after")
    def _lag_below_bound(self) -> GathererConfig:
        lag = self.forward.max_lag_bytes
        if lag is not None and lag >= self.spool.max_bytes:
            raise ValueError(
                f"forward.max_lag_bytes ({lag}) must be below spool.max_bytes "
                f"({self.spool.max_bytes}): a manager is 'behind' before the spool is full"
            )
        return self

    @model_validator(mode="after")
    def _one_credential(self) -> GathererConfig:
        given = [x for x in (self.token_sha256, self.token_file, self.token) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of token_sha256, token_file and token")
        return self

    def expected_sha256(self, base_dir: Path) -> str:
        """The hex SHA-256 of this gatherer's token (reading ``token_file`` if given)."""
        if self.token_sha256 is not None:
            return self.token_sha256
        if self.token is not None:
            token = self.token.reveal().strip()
        else:
            assert self.token_file is not None
            token = (base_dir / self.token_file).read_text().strip()
        return hashlib.sha256(token.encode()).hexdigest()


class TlsConfig(_Model):
    """Serve the API over HTTPS; gatherers verify the certificate with ``--ca``."""

    cert: str
    key: str = Field(description="the private key file (PEM)")
    key_password: Secret | None = Field(None, description="the key's password, if encrypted")
