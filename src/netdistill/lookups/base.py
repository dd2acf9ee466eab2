"""What every lookup shares: typed function signatures in the seeds' notation and the
per-batch call contract.

A lookup is a named instance from the scheme (``DNS``, ``LDAP``, ``NMS`` …) of a lookup
type (``dns``, ``ldap``, ``table`` …). It publishes functions with typed inputs and
outputs, written as in the seeds::

    DNS.Address(host_name:string) → (ip_address:ip)

``call`` gets the *distinct* keys of a batch (one row per key, one column per input) and
returns one row per key, in the same order, one column per output. A key that the
backing server does not know is an answer with null outputs (a miss, cached like any
other), not an error. Types are the field types of ``records/fields.py``.

Runtime contract (``lookups/registry.py``): a lookup type is a config model subclassing
``LookupConfigBase`` and a runtime class constructed as ``Class(config, *, store=None)``
(``store`` for lookups that read tables of the central database). Class attributes say
how the runner (``lookups/runner.py``) may drive it: ``concurrent_calls`` (``call`` may run
in several threads at once), ``keys_per_call`` (``None``: all distinct keys of a batch in
one call; ``n``: split into calls of at most ``n`` keys, run concurrently) and ``cached``
(answers go through the per-instance cache; local in-memory lookups skip it, since a
vectorized table probe is cheaper than a cache probe).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str

    def notation(self) -> str:
        return f"{self.name}:{self.type}"


@dataclass(frozen=True, slots=True)
class Function:
    """One typed function of a lookup instance."""

    lookup: str
    name: str
    inputs: tuple[Param, ...]
    outputs: tuple[Param, ...]
    description: str = ""

    @property
    def qualified_name(self) -> str:
        return f"{self.lookup}.{self.name}"

    def notation(self) -> str:
        """``DNS.Address(host_name:string) → (ip_address:ip)``"""
        inputs = ", ".join(p.notation() for p in self.inputs)
        outputs = ", ".join(p.notation() for p in self.outputs)
        return f"{self.qualified_name}({inputs}) → ({outputs})"

    def output(self, name: str) -> Param | None:
        return next((p for p in self.outputs if p.name == name), None)


@dataclass(slots=True)
class LookupCounters:
    """Per lookup instance, shown in status and heartbeats."""

    calls: int = 0
    keys: int = 0
    misses: int = 0
    timeouts: int = 0
    errors: int = 0
    cache_hits: int = 0
    last_error: str = ""
    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, other: LookupCounters) -> None:
        """Add the counts of ``other`` (one call's own counters) to these."""
        self.calls += other.calls
        self.keys += other.keys
        self.misses += other.misses
        self.timeouts += other.timeouts
        self.errors += other.errors
        self.cache_hits += other.cache_hits
        if other.last_error:
            self.last_error = other.last_error
        for reason, n in other.by_reason.items():
            self.by_reason[reason] = self.by_reason.get(reason, 0) + n


class Lookup(Protocol):
    """A synchronous device. ``call`` may be called from several threads at once."""

    name: str

    def functions(self) -> list[Function]: ...

    def call(self, function: str, keys: pa.Table) -> pa.Table:
        """Outputs of ``function`` for each row of ``keys`` (distinct), same order."""

    def close(self) -> None: ...


class CacheConfig(BaseModel):
    """Answers kept per lookup instance: bounded in entries and in age."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(100_000, ge=0, description="entries kept; 0 turns the cache off")
    ttl_s: float = Field(300.0, gt=0, description="how long an answer is reused")
    negative_ttl_s: float = Field(60.0, ge=0, description="how long a miss is reused; 0: never")


class LookupConfigBase(BaseModel):
    """What every lookup entry of the scheme has; each type adds ``type: Literal[...]``.

    ``functions()`` derives the typed signatures from the configuration alone (no I/O), so
    the scheme validator can type-check procedures before anything starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,62}$", description="e.g. DNS, NMS")
    type: str
    description: str = ""
    cache: CacheConfig = CacheConfig()
    timeout_s: float = Field(2.0, gt=0, description="longest wait for one backend call")
    concurrency: int = Field(8, ge=1, le=256, description="backend calls in flight at once")

    @abstractmethod
    def functions(self) -> list[Function]:
        """The typed signatures this entry publishes, from its settings alone."""
