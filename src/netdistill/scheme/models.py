"""Pydantic models of the scheme. Defaults live here and nowhere else.

Every model is frozen and rejects unknown keys, so a typo in a scheme is an error with
its line number rather than a silently ignored setting.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from netdistill.billing.config import RatingConfig
from netdistill.enhance.config import LookupsSection, ProceduresSection
from netdistill.gatherer.config import GathererConfig, TlsConfig
from netdistill.hierarchy.config import UpstreamConfig
from netdistill.manager.monitor import MonitorConfig
from netdistill.manager.windows import WindowsConfig
from netdistill.scheme.secrets import Secret
from netdistill.sources.config import SourceConfigBase
from netdistill.sources.quarantine import QuarantineLimits
from netdistill.sources.registry import SOURCES
from netdistill.stages.config import StagesSection, check_references
from netdistill.store.sandbox import QueryLimits


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ManagerConfig(Model):
    """The manager process: its API, commit cadence and aging."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=0, le=65535, description="0 picks a free port")
    retention_days: PositiveFloat = Field(90.0, description="records older than this are deleted")
    aging_interval_s: PositiveFloat = 3600.0
    commit_interval_s: PositiveFloat = Field(
        0.5, description="longest time a received datagram waits before it is committed"
    )
    max_batch_datagrams: PositiveInt = Field(20_000, description="decode at most this many at once")
    queue_datagrams: PositiveInt = Field(
        500_000, description="bound of the queue between receive and decode; overflow is counted"
    )
    windows: WindowsConfig = WindowsConfig()
    monitor: MonitorConfig = MonitorConfig()
    tls: TlsConfig | None = Field(None, description="serve the API over HTTPS")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; none by default (the peer address is the client)",
    )
    stages_interval_s: PositiveFloat = Field(
        1.0, description="how often the manager's stages (merge, aggregate …) run"
    )
    query: QueryLimits = Field(
        QueryLimits(), description="limits of SQL a person wrote (API, saved reports)"
    )
    quarantine: QuarantineLimits = Field(
        QuarantineLimits(),
        description="how much bad input each source may store (a source's own "
        "quarantine block overrides keys); beyond it rejects are only counted",
    )
    metrics_listen: str | None = Field(
        None,
        description="HOST:PORT serving /metrics with no authentication, for Prometheus "
        "(e.g. 127.0.0.1:9108); off when unset (docs/monitoring.md)",
    )
    min_gatherer_version: str | None = Field(
        None,
        description="gatherers older than this netdistill version (or sending none) are "
        "refused with a message naming it (manager/versions.py); none by default",
    )

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_address(cls, value: str | None) -> str | None:
        from netdistill.sources.listen import parse_listen_address

        if value is not None:
            parse_listen_address(value, default_port=9108)  # ValueError names the problem
        return value

    @field_validator("min_gatherer_version")
    @classmethod
    def _check_min_version(cls, value: str | None) -> str | None:
        from packaging.version import InvalidVersion, Version

        if value is not None:
            try:
                Version(value)
            except InvalidVersion:
                raise ValueError(
                    f"min_gatherer_version: {value!r} is not a version (e.g. 0.2.0)"
                ) from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an address or network "
                    "(e.g. 127.0.0.1, 10.0.0.0/8, ::1)"
                ) from None
        return value


class StoreConfig(Model):
    type: Literal["duckdb"] = "duckdb"
    path: str = Field("records.duckdb", description="relative to the data directory")


class DemoExporterConfig(Model):
    protocol: Literal["v9", "ipfix"]
    flows_per_second: PositiveFloat = 300.0
    seed: int = 0
    observation_domain: int = 1


class DemoConfig(Model):
    """Synthetic devices on loopback: routers sending to the first NetFlow source, and a
    NAS, a firewall and a proxy for the first RADIUS, syslog and Squid-format file
    sources, when the scheme has them (``netdistill.demo_devices``)."""

    exporters: list[DemoExporterConfig] = Field(
        default_factory=lambda: [
            DemoExporterConfig(protocol="v9", seed=1, observation_domain=1),
            DemoExporterConfig(protocol="ipfix", seed=2, observation_domain=2),
        ]
    )
    nas: bool = Field(True, description="RADIUS accounting for every demo customer host")
    radius_secret: Secret = Secret("demo-secret")
    firewall: bool = Field(True, description="netfilter LOG lines over syslog (UDP)")
    proxy: bool = Field(True, description="a Squid access.log the demo proxy appends to")


def _union(classes: list[Any]) -> Any:
    """One config class stays itself; several become a union keyed by ``type``."""
    return classes[0] if len(classes) == 1 else Union[tuple(classes)]  # noqa: UP007


if TYPE_CHECKING:
    SourceConfig = SourceConfigBase
else:
    SourceConfig = Annotated[_union(SOURCES.config_classes()), Field(discriminator="type")]


class Scheme(Model):
    """A whole deployment: the manager, its store, the sources and an optional demo."""

    version: Literal[1] = 1
    manager: ManagerConfig = ManagerConfig()
    store: StoreConfig = StoreConfig()
    sources: list[SourceConfig] = Field(default_factory=list)
    gatherers: list[GathererConfig] = Field(default_factory=list)
    demo: DemoConfig | None = None
    lookups: LookupsSection = Field(default_factory=list)
    # stages before procedures: a procedure's trigger may name a stage (output: records)
    stages: StagesSection = Field(default_factory=list)
    procedures: ProceduresSection = Field(default_factory=list)
    rating: RatingConfig | None = Field(None, description="prices and invoices (docs/rating.md)")
    upstream: UpstreamConfig | None = Field(
        None, description="forward chosen stages' output to a parent manager (docs/hierarchy.md)"
    )

    @model_validator(mode="after")
    def _unique_source_names(self) -> Scheme:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}; names must be unique")
            seen.add(source.name)
        if self.demo is not None and not any(s.type == "netflow" for s in self.sources):
            raise ValueError("demo exporters need a netflow source to send to")
        check_references(self)
        if self.rating is not None:
            self.rating.check_in_scheme(self)
        if self.upstream is not None:
            self.upstream.check_in_scheme(self)
        return self
