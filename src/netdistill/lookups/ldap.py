"""``ldap``: functions over an LDAP directory (RFC 4511 search, RFC 4515 filters), e.g. the
department of the user RADIUS named (seed 001, Fig. 4B: the LDAP record)::

    LDAP.Person(uid:string) → (department:string, cn:string, mail:string, manager:string)

Each function is a filter template with ``{input}`` placeholders, filled with the key's
values escaped by ldap3's ``escape_filter_chars`` (so ``*``, ``(``, ``)``, ``\\`` and NUL in
a key cannot change the filter), searched under ``base_dn`` (subtree). The first value of
each mapped attribute becomes the output, cast to the output's field type. No entry is a
miss; several entries: the first by DN is used and ``ambiguous`` is counted.

Concurrency: a pool of ``concurrency`` bound connections (ldap3 ``SAFE_SYNC``), the keys of
a call spread over them by a thread pool. One search per key: an LDAP filter could OR
many keys together, but matching entries back to keys would then depend on the server's
matching rules for each attribute; per-key searches keep that the server's business.
A call ends within ``timeout_s``: a key not answered by then is null and counted in
``timeouts``; a server that cannot be reached fails the call's keys at once (``errors``).

Scheme::

    lookups:
      - name: LDAP
        type: ldap
        url: ldap://127.0.0.1:389
        bind_dn: cn=netdistill,dc=example,dc=org
        password: {file: ldap-bind.secret}   # or inline, or {env: LDAP_PASSWORD}
        base_dn: ou=people,dc=example,dc=org
        functions:
          - name: Person
            inputs: {uid: string}
            filter: "(&(objectClass=person)(uid={uid}))"
            outputs: {department: string, cn: string, mail: string, manager: string}
            attributes: {department: departmentNumber}
"""

from __future__ import annotations

import contextlib
import math
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from netdistill.errors import LookupUnavailableError
from netdistill.lookups.base import Function, LookupConfigBase, LookupCounters, Param
from netdistill.records.fields import FIELD_TYPES
from netdistill.scheme.secrets import Secret

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class LdapFunctionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    inputs: dict[str, str] = Field(min_length=1, description="input → field type")
    filter: str = Field(description="RFC 4515 filter with {input} placeholders")
    outputs: dict[str, str] = Field(min_length=1, description="output → field type")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="output → LDAP attribute, when the names differ"
    )
    base_dn: str | None = Field(None, description="instead of the lookup's base_dn")

    @model_validator(mode="after")
    def _check(self) -> LdapFunctionConfig:
        for name, type_ in {**self.inputs, **self.outputs}.items():
            if type_ not in FIELD_TYPES:
                raise ValueError(f"{name!r}: unknown type {type_!r}")
        used = set(_PLACEHOLDER.findall(self.filter))
        if used != set(self.inputs):
            raise ValueError(
                f"function {self.name}: the filter's placeholders {sorted(used)} must be "
                f"the inputs {sorted(self.inputs)}"
            )
        extra = set(self.attributes) - set(self.outputs)
        if extra:
            raise ValueError(f"function {self.name}: attributes for unknown outputs {extra}")
        return self


class LdapConfig(LookupConfigBase):
    type: Literal["ldap"] = "ldap"
    url: str = Field(pattern=r"^ldaps?://", description="ldap://host:port or ldaps://")
    bind_dn: str | None = None
    password: Secret | None = Field(None, description="bind password; read at each bind")
    base_dn: str
    functions_: list[LdapFunctionConfig] = Field(alias="functions", min_length=1)
    concurrency: int = Field(4, ge=1, le=64, description="connections in the pool")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def functions(self) -> list[Function]:
        return [
            Function(
                self.name,
                f.name,
                tuple(Param(n, t) for n, t in f.inputs.items()),
                tuple(Param(n, t) for n, t in f.outputs.items()),
                self.description or f"LDAP search {f.filter}",
            )
            for f in self.functions_
        ]


class _Unreachable(LookupUnavailableError):
    """The directory server did not answer; raised and caught in this module only."""


class LdapLookup:
    """Runtime of ``type: ldap``; ``call`` may run in several threads."""

    concurrent_calls = True
    keys_per_call = None
    cached = True

    def __init__(self, config: LdapConfig, *, store: Any = None) -> None:
        self.name = config.name
        self.config = config
        self.counters = LookupCounters()
        self._functions = {f.name: f for f in config.functions_}
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(config.concurrency, thread_name_prefix="ldap")

    def functions(self) -> list[Function]:
        return self.config.functions()

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        while not self._pool.empty():
            with contextlib.suppress(Exception):  # closing a broken connection
                self._pool.get_nowait().unbind()

    def _connect(self) -> Any:
        import ldap3

        cfg = self.config
        server = ldap3.Server(cfg.url, connect_timeout=cfg.timeout_s, get_info=ldap3.NONE)
        try:
            return ldap3.Connection(
                server,
                user=cfg.bind_dn,
                password=cfg.password.reveal() if cfg.password is not None else None,
                client_strategy=ldap3.SAFE_SYNC,
                auto_bind=True,
                receive_timeout=max(1, math.ceil(cfg.timeout_s)),
                raise_exceptions=False,
            )
        except ldap3.core.exceptions.LDAPException as exc:
            raise _Unreachable(f"{cfg.url}: {exc}") from None

    def _search(self, spec: LdapFunctionConfig, values: dict[str, Any]) -> tuple[Any, ...]:
        """One key → its outputs as text (None: no such value); raises on failure."""
        from ldap3 import SUBTREE
        from ldap3.utils.conv import escape_filter_chars

        text = _PLACEHOLDER.sub(lambda m: escape_filter_chars(str(values[m.group(1)])), spec.filter)
        attributes = [spec.attributes.get(o, o) for o in spec.outputs]
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            _, result, response, _ = conn.search(
                spec.base_dn or self.config.base_dn,
                text,
                SUBTREE,
                attributes=attributes,
                time_limit=max(1, int(self.config.timeout_s)),
            )
        except Exception:
            conn.unbind()  # a broken connection is not returned to the pool
            raise
        self._pool.put(conn)
        if result.get("result") not in (0, 32):  # 32: noSuchObject (no base) = a miss
            raise RuntimeError(f"search {text}: {result.get('description')}")
        entries = sorted((e for e in response if e.get("type") == "searchResEntry"),
                         key=lambda e: e["dn"])  # fmt: skip
        if not entries:
            return ()
        if len(entries) > 1:
            with self._lock:
                self.counters.by_reason["ambiguous"] = (
                    self.counters.by_reason.get("ambiguous", 0) + 1
                )
        found = entries[0]["attributes"]
        out = []
        for attr in attributes:
            value = found.get(attr)
            if isinstance(value, list):
                value = value[0] if value else None
            out.append(None if value is None else str(value))
        return tuple(out)

    def call(self, function: str, keys: pa.Table) -> pa.Table:
        spec = self._functions.get(function)
        if spec is None:
            raise KeyError(f"lookup {self.name!r} has no function {function!r}")
        rows = keys.to_pylist()
        names = list(spec.inputs)
        n = len(rows)
        results: list[tuple[Any, ...] | None] = [None] * n
        local = LookupCounters(calls=1, keys=n)
        deadline = time.monotonic() + self.config.timeout_s * 0.9
        down = threading.Event()
        guard = threading.Lock()

        def one(i: int) -> None:
            if down.is_set():
                return
            values = dict(zip(names, rows[i].values(), strict=False))
            if any(v is None for v in values.values()):
                results[i] = ()
                return
            try:
                results[i] = self._search(spec, values)
            except _Unreachable as exc:
                down.set()
                local.last_error = str(exc)
            except Exception as exc:
                with guard:
                    local.errors += 1
                    local.last_error = f"{type(exc).__name__}: {exc}"

        futures = [self._threads.submit(one, i) for i in range(n)]
        _, not_done = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        for f in not_done:
            f.cancel()
        unanswered = [i for i in range(n) if results[i] is None]
        if down.is_set():
            local.errors += len(unanswered) - local.errors
            local.by_reason["unreachable"] = len(unanswered)
        else:
            local.timeouts += len(unanswered) - local.errors
        local.misses = sum(1 for r in results if r == ())
        self._merge(local)
        width = len(spec.outputs)
        columns: list[list[Any]] = [[] for _ in range(width)]
        for r in results:
            for c in range(width):
                columns[c].append(r[c] if r else None)
        arrays = {
            out: pa.array(columns[c], pa.string()).cast(FIELD_TYPES[type_][0])
            for c, (out, type_) in enumerate(spec.outputs.items())
        }
        arrays["_answered"] = pa.array([r is not None for r in results])
        return pa.table(arrays)

    def _merge(self, local: LookupCounters) -> None:
        with self._lock:
            self.counters.add(local)
