"""The POP's ``upstream:`` section: where its chosen stages' output goes.

Sample::

    upstream:
      url: https://central.example.net:8443   # the parent manager's API
      name: pop-east                            # the gatherer name the parent knows us by
      token_file: central.token                 # or token: {env: …} / inline (a secret)
      stages: [hourly, conversations]           # rollups, and aggregates (table or records)
      ca: /etc/netdistill/central-ca.pem        # optional, to verify the parent's TLS
      spool: {max_bytes: 2000000000, policy: block}
      forward: {backoff_max_s: 30}

The parent lists the POP in its own ``gatherers:`` (name + token digest, file or secret)
and authenticates it like any gatherer (``manager/auth.py``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from netdistill.gatherer.config import ForwardConfig, SpoolConfig
from netdistill.scheme.secrets import Secret


class UpstreamConfig(BaseModel):
    """Forward the output of ``stages`` to the parent manager at ``url``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://", description="the parent manager's API")
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="this POP's name: a gatherer of the parent's scheme",
    )
    token_file: str | None = Field(
        None, description="file holding the token; relative to the scheme"
    )
    token: Secret | None = Field(None, description="the token itself, as a secret")
    stages: list[str] = Field(min_length=1, description="rollup and aggregate stages forwarded")
    ca: str | None = Field(None, description="CA file that verifies the parent's certificate")
    spool: SpoolConfig = SpoolConfig()
    forward: ForwardConfig = ForwardConfig()

    @model_validator(mode="after")
    def _one_credential(self) -> UpstreamConfig:
        if (self.token_file is None) == (self.token is None):
            raise ValueError("upstream: give exactly one of token_file and token")
        if len(set(self.stages)) != len(self.stages):
            raise ValueError("upstream: stages: a stage is listed twice")
        return self

    def read_token(self, base_dir: Path) -> str:
        if self.token is not None:
            return self.token.reveal().strip()
        assert self.token_file is not None
        return (base_dir / self.token_file).read_text().strip()

    def check_in_scheme(self, scheme: object) -> None:
        """Each forwarded stage is a rollup or an aggregate of the scheme."""
        stages = {s.name: s for s in getattr(scheme, "stages", [])}
        for name in self.stages:
            stage = stages.get(name)
            if stage is None or stage.type not in ("rollup", "aggregate"):
                kinds = ", ".join(n for n, s in stages.items() if s.type in ("rollup", "aggregate"))
                raise ValueError(
                    f"upstream: stages: {name!r} is not a rollup or aggregate stage of this "
                    f"scheme (those: {kinds or 'none'})"
                )
            if getattr(stage, "pops", None):
                raise ValueError(
                    f"upstream: stages: {name!r} sums other POPs' roll-ups; forward a roll-up "
                    "of this manager's own records"
                )
