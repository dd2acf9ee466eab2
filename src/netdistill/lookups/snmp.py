"""``snmp``: interface names, descriptions and speeds of the exporters, from their SNMP
agents (IF-MIB, RFC 2863)::

    SNMP.Interface(exporter:string, if_index:uint32) → (name:string, description:string,
                                                         alias:string, speed:uint64)

so a flow's ``input_if``/``output_if`` (ifIndex values) become ``Gi0/1``, ``uplink to
transit A``, 10 Gb/s. ``name`` is ifName (ifDescr where the agent has no ifXTable),
``description`` ifDescr, ``alias`` ifAlias (null when empty), ``speed`` in bit/s: ifSpeed,
or ifHighSpeed × 10⁶ where ifSpeed is saturated (4,294,967,295) or missing.

Polling. Each exporter's agent is walked once for the five columns (ifDescr, ifSpeed,
ifName, ifHighSpeed, ifAlias), all in one GETBULK per round (SNMPv2c, pysnmp's asyncio
API on one event-loop thread per lookup, at most ``concurrency`` walks at once), and its
table is kept. A call answers the batch's distinct (exporter, ifIndex) pairs from the
kept tables with one vectorized join (polars). An exporter seen for the first time
starts a walk; the call waits for it at most ``first_walk_wait_s`` and answers nulls
(counted as ``timeouts``) for an exporter whose walk has not finished by then; a later
batch gets the answers. A table older than ``refresh_s`` is walked again in the
background while calls keep answering from the old table. A failed walk (no answer,
wrong community, an SNMP error) is counted by reason and tried again after
``retry_s``; an exporter with a table keeps it meanwhile. An ifIndex the agent does not
list is a miss (null outputs).

Where an exporter is polled: its own address (the records' ``exporter`` value), port
``port``, community ``community``; ``agents`` overrides both per exporter (an exporter
known by name, an agent on another address or port, a different community).

Sample scheme entry::

    lookups:
      - name: SNMP
        type: snmp
        community: {env: SNMP_COMMUNITY}   # a secret: inline, {file: …} or {env: …}
        refresh_s: 900
        agents:
          192.0.2.1: {community: other}
          edge-1: {address: "192.0.2.7:1161"}
    procedures:
      - name: routers
        trigger: netflow
        add_fields: {in_if_name: string, in_if_speed: uint64}
        fields:
          in_if_name: SNMP.Interface(exporter, input_if).name
          in_if_speed: SNMP.Interface(exporter, input_if).speed
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from netdistill.errors import SnmpWalkError
from netdistill.lookups.base import Function, LookupConfigBase, LookupCounters, Param
from netdistill.scheme.secrets import Secret, SecretError

IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_SPEED = (1, 3, 6, 1, 2, 1, 2, 2, 1, 5)
IF_NAME = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
IF_HIGH_SPEED = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15)
IF_ALIAS = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18)
COLUMNS: dict[str, tuple[int, ...]] = {
    "description": IF_DESCR,
    "if_speed": IF_SPEED,
    "name": IF_NAME,
    "high_speed": IF_HIGH_SPEED,
    "alias": IF_ALIAS,
}
SATURATED = 4_294_967_295  # ifSpeed's maximum: the real speed is in ifHighSpeed

OUTPUTS = (
    Param("name", "string"),
    Param("description", "string"),
    Param("alias", "string"),
    Param("speed", "uint64"),
)
TABLE_SCHEMA = {
    "exporter": pl.String,
    "if_index": pl.UInt32,
    "name": pl.String,
    "description": pl.String,
    "alias": pl.String,
    "speed": pl.UInt64,
}


class SnmpAgentConfig(BaseModel):
    """Where and how one exporter's agent is asked (unset: the lookup's defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = Field(None, description="host, host:port or [v6]:port")
    community: Secret | None = None


class SnmpConfig(LookupConfigBase):
    type: Literal["snmp"]
    function: str = Field("Interface", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    version: Literal["2c"] = "2c"
    community: Secret = Field(Secret("public"), description="SNMPv2c community (a secret)")
    port: int = Field(161, ge=1, le=65535)
    agents: dict[str, SnmpAgentConfig] = Field(
        default_factory=dict, description="exporter → its agent's address/community"
    )
    refresh_s: float = Field(900.0, gt=0, description="walk an agent again after this")
    retry_s: float = Field(60.0, gt=0, description="after a failed walk, try again after this")
    first_walk_wait_s: float = Field(
        1.0, ge=0, description="how long a batch waits for an unknown exporter's first walk"
    )
    request_timeout_s: float = Field(1.0, gt=0, description="wait for one SNMP answer")
    retries: int = Field(1, ge=0, le=5, description="re-sends of an unanswered request")
    max_repetitions: int = Field(25, ge=1, le=200, description="rows per GETBULK")
    max_interfaces: int = Field(100_000, ge=1, description="a walk stops past this many rows")
    timeout_s: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _wait_within_timeout(self) -> SnmpConfig:
        if self.first_walk_wait_s >= self.timeout_s:
            raise ValueError("first_walk_wait_s must be below timeout_s")
        for exporter, agent in self.agents.items():
            if agent.address is not None:
                try:
                    split_address(agent.address, self.port)
                except ValueError as exc:
                    raise ValueError(f"agents.{exporter}.address: {exc}") from None
        return self

    def functions(self) -> list[Function]:
        return [
            Function(
                self.name,
                self.function,
                (Param("exporter", "string"), Param("if_index", "uint32")),
                OUTPUTS,
                self.description or "interface name, description, alias and speed (IF-MIB)",
            )
        ]


def split_address(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``v6``, ``[v6]:port`` → (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r} is not [address]:port")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"{text!r} has no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: bad port {port_text!r}")
    return host, int(port_text)


def _dotted(oid: tuple[int, ...]) -> str:
    return ".".join(map(str, oid))


@dataclass(slots=True)
class SnmpStats:
    """Per lookup instance, shown under ``stats`` in the status."""

    walks: int = 0
    walks_failed: int = 0
    requests: int = 0
    agents: int = 0  # exporters with a table
    interfaces: int = 0  # rows over all tables
    last_walk_ms: float = 0.0


@dataclass(slots=True)
class _Agent:
    exporter: str
    table: pl.DataFrame | None = None
    walked_at: float = -math.inf
    failed_at: float = -math.inf
    walk: Future[None] | None = None


def interface_rows(columns: dict[str, dict[int, Any]]) -> dict[str, list[Any]]:
    """The walked columns (ifIndex → value) as output rows, sorted by ifIndex."""

    def text(value: Any) -> str | None:
        if value is None:
            return None
        return bytes(value.asOctets()).decode("utf-8", "replace") or None

    indexes = sorted(set().union(*(c.keys() for c in columns.values())))
    rows: dict[str, list[Any]] = {k: [] for k in ("if_index", "name", "description", "alias")}
    rows["speed"] = []
    for index in indexes:
        description = text(columns["description"].get(index))
        if_speed = columns["if_speed"].get(index)
        high_speed = columns["high_speed"].get(index)
        if high_speed is not None and (if_speed is None or int(if_speed) >= SATURATED):
            speed: int | None = int(high_speed) * 1_000_000
        else:
            speed = None if if_speed is None else int(if_speed)
        rows["if_index"].append(index)
        rows["name"].append(text(columns["name"].get(index)) or description)
        rows["description"].append(description)
        rows["alias"].append(text(columns["alias"].get(index)))
        rows["speed"].append(speed)
    return rows


class SnmpLookup:
    """Runtime of an ``snmp`` lookup; ``call`` is thread-safe. Walks run on this lookup's
    own event-loop thread, started with the first walk and stopped by ``close``."""

    concurrent_calls = True
    keys_per_call = None
    cached = False  # the interface tables are the cache

    def __init__(
        self,
        config: SnmpConfig,
        *,
        store: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.name = config.name
        self.counters = LookupCounters()
        self.stats = SnmpStats()
        self._clock = clock
        self._agents: dict[str, _Agent] = {}
        self._lock = threading.Lock()
        self._version = 0  # bumped when a table changes
        self._combined: tuple[int, pl.DataFrame] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: Any = None  # pysnmp's SnmpEngine, used on the loop thread only
        self._slots: asyncio.Semaphore | None = None

    def functions(self) -> list[Function]:
        return self.config.functions()

    # --- answering -----------------------------------------------------------------------

    def call(self, function: str, keys: pa.Table) -> pa.Table:
        exporters = keys.column(0)
        self.counters.calls += 1
        self.counters.keys += keys.num_rows
        now = self._clock()
        waiting: list[Future[None]] = []
        with self._lock:
            for exporter in pc.unique(exporters).drop_null().to_pylist():
                agent = self._agents.get(exporter)
                if agent is None:
                    agent = self._agents[exporter] = _Agent(exporter)
                if agent.walk is not None and agent.walk.done():
                    agent.walk = None
                if agent.walk is None and self._due(agent, now):
                    agent.walk = self._start_walk(agent)
                if agent.table is None and agent.walk is not None:
                    waiting.append(agent.walk)
        if waiting:
            wait(waiting, timeout=self.config.first_walk_wait_s)
        asked = pl.from_arrow(
            pa.table({"exporter": exporters.cast(pa.string()), "if_index": keys.column(1)})
        )
        assert isinstance(asked, pl.DataFrame)
        asked = asked.with_columns(pl.col("if_index").cast(pl.UInt32))
        joined = asked.join(
            self._table(), on=["exporter", "if_index"], how="left", maintain_order="left"
        )
        out = joined.select(p.name for p in OUTPUTS).to_arrow()
        self._count_unanswered(joined)
        return out

    def _count_unanswered(self, joined: pl.DataFrame) -> None:
        missing = joined.filter(pl.col("name").is_null() & pl.col("speed").is_null())
        if missing.height == 0:
            return
        with self._lock:
            tabled = {e for e, a in self._agents.items() if a.table is not None}
        no_table = missing.filter(
            pl.col("exporter").is_not_null() & ~pl.col("exporter").is_in(list(tabled))
        ).height
        self.counters.timeouts += no_table  # not walked (yet, or the walk failed)
        self.counters.misses += missing.height - no_table

    def _due(self, agent: _Agent, now: float) -> bool:
        if now - agent.failed_at < self.config.retry_s:
            return False
        return agent.table is None or now - agent.walked_at >= self.config.refresh_s

    def _table(self) -> pl.DataFrame:
        """Every agent's table with its exporter, rebuilt when one changed."""
        with self._lock:
            combined = self._combined
            if combined is not None and combined[0] == self._version:
                return combined[1]
            parts = [
                a.table.with_columns(pl.lit(e, pl.String).alias("exporter"))
                for e, a in self._agents.items()
                if a.table is not None
            ]
            frame = (
                pl.concat(parts).select(list(TABLE_SCHEMA))
                if parts
                else pl.DataFrame(schema=TABLE_SCHEMA)
            )
            self._combined = (self._version, frame)
            return frame

    # --- walking -------------------------------------------------------------------------

    def _start_walk(self, agent: _Agent) -> Future[None]:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name=f"snmp-{self.name}", daemon=True
            )
            thread.start()
            self._loop, self._thread = loop, thread
        return asyncio.run_coroutine_threadsafe(self._walk(agent), self._loop)

    async def _walk(self, agent: _Agent) -> None:
        """Walk one agent and keep the outcome (before the future is done, so a caller
        that waited on it sees the table)."""
        if self._engine is None:
            from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

            self._engine = SnmpEngine()
            self._slots = asyncio.Semaphore(self.config.concurrency)
        assert self._slots is not None
        async with self._slots:
            started = time.monotonic()
            try:
                columns = await self._walk_columns(agent.exporter)
            except Exception as exc:
                failure = exc if isinstance(exc, SnmpWalkError) else None
                reason = failure.reason if failure else f"{type(exc).__name__}"
                with self._lock:
                    agent.failed_at = self._clock()
                    self.stats.walks_failed += 1
                    self.counters.errors += 1
                    self.counters.last_error = f"{agent.exporter}: {exc}"
                    self.counters.by_reason[reason] = self.counters.by_reason.get(reason, 0) + 1
                return
            schema = {k: v for k, v in TABLE_SCHEMA.items() if k != "exporter"}
            table = pl.DataFrame(interface_rows(columns), schema=schema)
            with self._lock:
                agent.table = table
                agent.walked_at = self._clock()
                self._version += 1
                self.stats.walks += 1
                self.stats.last_walk_ms = (time.monotonic() - started) * 1000
                tables = [a.table for a in self._agents.values() if a.table is not None]
                self.stats.agents = len(tables)
                self.stats.interfaces = sum(t.height for t in tables)

    def _where(self, exporter: str) -> tuple[str, int, str]:
        agent = self.config.agents.get(exporter)
        address = agent.address if agent and agent.address else exporter
        host, port = split_address(address, self.config.port)
        community = agent.community if agent and agent.community else self.config.community
        return host, port, community.reveal()  # read at each walk: a rotated file is taken

    async def _walk_columns(self, exporter: str) -> dict[str, dict[int, Any]]:
        """The five IF-MIB columns of one agent: ifIndex → value, one GETBULK per round
        for every column still inside its subtree."""
        from pysnmp.hlapi.v3arch.asyncio import (
            CommunityData,
            ContextData,
            ObjectIdentity,
            ObjectType,
            Udp6TransportTarget,
            UdpTransportTarget,
            bulk_cmd,
        )
        from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

        config = self.config
        try:
            host, port, community = self._where(exporter)
        except SecretError as exc:
            raise SnmpWalkError("community unreadable", str(exc)) from None
        except ValueError as exc:
            raise SnmpWalkError("bad address", str(exc)) from None
        target_class = Udp6TransportTarget if ":" in host else UdpTransportTarget
        try:
            target = await target_class.create(
                (host, port), timeout=config.request_timeout_s, retries=config.retries
            )
        except Exception as exc:  # pysnmp wraps resolver failures in its own errors
            raise SnmpWalkError("unresolvable", f"{host}: {exc}") from None
        auth = CommunityData(community, mpModel=1)
        results: dict[str, dict[int, Any]] = {name: {} for name in COLUMNS}
        asking = dict(COLUMNS)
        rounds = 0
        limit = config.max_interfaces // config.max_repetitions + 2
        while asking:
            rounds += 1
            if rounds > limit:
                raise SnmpWalkError("too many interfaces", f"more than {config.max_interfaces}")
            names = list(asking)
            self.stats.requests += 1
            error, status, index, var_binds = await bulk_cmd(
                self._engine,
                auth,
                target,
                ContextData(),
                0,
                config.max_repetitions,
                *[ObjectType(ObjectIdentity(_dotted(asking[n]))) for n in names],
                lookupMib=False,
            )
            if error:
                reason = "timeout" if "timeout" in str(error).lower() else "request failed"
                raise SnmpWalkError(reason, str(error))
            if status:
                raise SnmpWalkError("snmp error", f"{status.prettyPrint()} at {index}")
            done: set[str] = set()
            last: dict[str, tuple[int, ...]] = {}
            for position, (oid, value) in enumerate(var_binds):
                name = names[position % len(names)]
                if name in done:
                    continue
                column = COLUMNS[name]
                oid_t = tuple(oid)
                outside = oid_t[: len(column)] != column or len(oid_t) != len(column) + 1
                if outside or isinstance(value, EndOfMibView | NoSuchObject | NoSuchInstance):
                    done.add(name)
                    continue
                results[name][oid_t[-1]] = value
                last[name] = oid_t
            for name in names:
                # a column ends when it leaves its subtree; an agent that does not move
                # forward (a broken agent) ends it too, so the walk always terminates
                if name in done or name not in last or last[name] <= asking[name]:
                    del asking[name]
                else:
                    asking[name] = last[name]
        return results

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def stop() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            if self._engine is not None:
                self._engine.close_dispatcher()

        with contextlib.suppress(Exception):  # closing anyway: the loop is stopped below
            asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None
