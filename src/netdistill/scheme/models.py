"""Pydantic models of the scheme. Defaults live here and nowhere else.

Every model is frozen and rejects unknown keys, so a typo in a scheme is an error with
its line number rather than a silently ignored setting.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from netdistill.sources.netflow.config import NetflowSourceConfig


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


class StoreConfig(Model):
    type: Literal["duckdb"] = "duckdb"
    path: str = Field("records.duckdb", description="relative to the data directory")


class DemoExporterConfig(Model):
    protocol: Literal["v9", "ipfix"]
    flows_per_second: PositiveFloat = 300.0
    seed: int = 0
    observation_domain: int = 1


class DemoConfig(Model):
    """Synthetic exporters on loopback, sending to the first NetFlow source."""

    exporters: list[DemoExporterConfig] = Field(
        default_factory=lambda: [
            DemoExporterConfig(protocol="v9", seed=1, observation_domain=1),
            DemoExporterConfig(protocol="ipfix", seed=2, observation_domain=2),
        ]
    )


SourceConfig = Annotated[NetflowSourceConfig, Field(discriminator="type")]


class Scheme(Model):
    """A whole deployment: the manager, its store, the sources and an optional demo."""

    version: Literal[1] = 1
    manager: ManagerConfig = ManagerConfig()
    store: StoreConfig = StoreConfig()
    sources: list[SourceConfig] = Field(default_factory=list)
    demo: DemoConfig | None = None

    @model_validator(mode="after")
    def _unique_source_names(self) -> Scheme:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}; names must be unique")
            seen.add(source.name)
        if self.demo is not None and not any(s.type == "netflow" for s in self.sources):
            raise ValueError("demo exporters need a netflow source to send to")
        return self
