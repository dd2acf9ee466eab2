"""What a licence grants: its fields, the community edition, and the sum of several.

A licence names the customer, its id, when it was issued, from when and until when it
is valid (plus ``grace_days`` after expiry during which it still counts, with an
alert), optionally the installation it is bound to (``install_id``, shown by
``netdistill licence install-id``), and its entitlements:

* ``gatherers`` — remote gatherers that may deliver (the manager's own in-process
  sources, gatherer ``local``, are not counted);
* ``exporters`` — devices per source kind (the scheme's ``type:`` of the source that
  saw them: ``netflow``, ``sflow``, ``radius``, ``syslog``, ``file``, ``lines``, a
  plugin's type …); ``"*"`` applies to every kind not named;
* ``features`` — optional parts (``FEATURES``).

Several licences add up: the effective limit of an item is the larger of the community
edition's and the sum over the licences in force, and the features are the union. So
a licence never grants less than running without one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt

#: every feature a licence may name
FEATURES = ("merge", "rating", "scale-out")

#: the community edition (no licence installed): see README and docs/licences.md
COMMUNITY_GATHERERS = 2
COMMUNITY_EXPORTERS_PER_KIND = 25
COMMUNITY_FEATURES = ("merge", "rating")

#: the item of a gatherer in the admitted list; an exporter's is ``exporter:<kind>``
GATHERER = "gatherer"


def exporter_item(kind: str) -> str:
    return f"exporter:{kind}"


class Licence(BaseModel):
    """The signed body of a licence file (``licence/signed.py`` gives the file format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    licence_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    customer: str = Field(min_length=1, max_length=200)
    issued_at: AwareDatetime
    valid_from: AwareDatetime
    expires_at: AwareDatetime
    grace_days: float = Field(14.0, ge=0, le=365)
    install_id: str | None = None
    gatherers: NonNegativeInt = 0
    exporters: dict[str, NonNegativeInt] = Field(default_factory=dict)
    features: tuple[Literal["merge", "rating", "scale-out"], ...] = ()

    @property
    def grace_ends_at(self) -> datetime:
        return self.expires_at + timedelta(days=self.grace_days)

    def state(self, now: datetime) -> Literal["not_yet_valid", "valid", "grace", "expired"]:
        if now < self.valid_from:
            return "not_yet_valid"
        if now < self.expires_at:
            return "valid"
        if now < self.grace_ends_at:
            return "grace"
        return "expired"


class Entitlements(BaseModel):
    """The limits in force: of the community edition, or the sum of licences."""

    model_config = ConfigDict(frozen=True)

    gatherers: int
    exporters: dict[str, int]
    #: the limit of every kind ``exporters`` does not name
    exporters_other: int
    features: tuple[str, ...]

    def exporter_limit(self, kind: str) -> int:
        return self.exporters.get(kind, self.exporters_other)

    def limit(self, item: str) -> int:
        if item == GATHERER:
            return self.gatherers
        return self.exporter_limit(item.removeprefix("exporter:"))


COMMUNITY = Entitlements(
    gatherers=COMMUNITY_GATHERERS,
    exporters={},
    exporters_other=COMMUNITY_EXPORTERS_PER_KIND,
    features=COMMUNITY_FEATURES,
)


def combined(licences: Iterable[Licence]) -> Entitlements:
    """The community edition raised by the sum of ``licences`` (those in force)."""
    licences = list(licences)
    if not licences:
        return COMMUNITY
    kinds = {k for lic in licences for k in lic.exporters if k != "*"}
    other = sum(lic.exporters.get("*", 0) for lic in licences)
    exporters = {
        kind: max(
            COMMUNITY_EXPORTERS_PER_KIND,
            sum(lic.exporters.get(kind, lic.exporters.get("*", 0)) for lic in licences),
        )
        for kind in sorted(kinds)
    }
    features = set(COMMUNITY_FEATURES).union(*(lic.features for lic in licences))
    return Entitlements(
        gatherers=max(COMMUNITY_GATHERERS, sum(lic.gatherers for lic in licences)),
        exporters=exporters,
        exporters_other=max(COMMUNITY_EXPORTERS_PER_KIND, other),
        features=tuple(f for f in FEATURES if f in features),
    )
