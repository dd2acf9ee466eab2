"""``radius_sessions``: which RADIUS session held an address at a moment (seed 001, Fig. 4B:
the NetFlow record's user name comes from the RADIUS record).

``RADIUS.User(ip_address:ip, at:timestamp) → (user_name:string, session_id:string, nas:ip)``

Built from the RADIUS accounting records the RADIUS source stores (RFC 2866): one record
per Accounting-Request with ``exporter`` = NAS address, ``session_id`` (Acct-Session-Id),
``user_name``, ``src_ip`` = Framed-IP-Address, ``start_time`` = session start,
``end_time`` = event time and ``acct_status_type`` (Start, Interim-Update, Stop,
Accounting-On, Accounting-Off). A session (NAS, session id) spans
[min(start_time), end_time of its Stop]; with no Stop yet it is open, unless its NAS
sent Accounting-On/Off after the session was last heard of (RFC 2866 §5.1: the NAS
restarted, so every session it had is over) — then it ends there. When several sessions
held the address at ``at`` (an old one never stopped), the one that started last wins.

One SQL statement per call, for all keys of the batch: the keys go in as list
parameters, the session table is aggregated from the records of just the batch's
addresses, and an interval join picks each key's session (DuckDB, vectorized; no query
per key). There is no copy of the session table to refresh: every call reads the store
as it is, so a session committed a moment ago is found. Caching is the runner's: a hit
needs the same (address, moment), so it helps little for flows and is off by default;
a miss of a flow that arrived before its RADIUS Start is therefore not remembered.

Scheme::

    lookups:
      - name: RADIUS
        type: radius_sessions
        sources: [radius]        # RADIUS source names; empty = every record with a status
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from netdistill.lookups.base import CacheConfig, Function, LookupConfigBase, LookupCounters, Param


class RadiusSessionsConfig(LookupConfigBase):
    type: Literal["radius_sessions"] = "radius_sessions"
    sources: list[str] = Field(default_factory=list, description="RADIUS source names")
    cache: CacheConfig = CacheConfig(size=0)
    concurrency: int = Field(2, ge=1, le=256, description="batches asked at once")

    def functions(self) -> list[Function]:
        return [
            Function(
                self.name,
                "User",
                (Param("ip_address", "ip"), Param("at", "timestamp")),
                (
                    Param("user_name", "string"),
                    Param("session_id", "string"),
                    Param("nas", "ip"),
                ),
                self.description or "the RADIUS session that held an address at a moment",
            )
        ]


_SQL = """
WITH keys AS (
    SELECT unnest($k) AS k, unnest($ip) AS ip, unnest($at) AS at
),
recs AS (
    SELECT exporter, session_id, src_ip, user_name, epoch_us(start_time) AS s_us,
           epoch_us(end_time) AS e_us, acct_status_type AS st
    FROM records
    WHERE src_ip IN (SELECT ip FROM keys) AND session_id IS NOT NULL {source_filter}
),
sessions AS (
    SELECT exporter AS nas, session_id, src_ip,
           arg_max(user_name, e_us) FILTER (WHERE user_name IS NOT NULL) AS user_name,
           min(coalesce(s_us, e_us)) AS s_start,
           max(e_us) FILTER (WHERE st = 'Stop') AS s_stop,
           max(e_us) AS last_seen
    FROM recs GROUP BY exporter, session_id, src_ip
),
resets AS (
    SELECT exporter AS nas, epoch_us(end_time) AS t FROM records
    WHERE acct_status_type IN ('Accounting-On', 'Accounting-Off') {source_filter}
),
bounded AS (
    SELECT s.*, coalesce(s.s_stop, (
        SELECT min(r.t) FROM resets r WHERE r.nas = s.nas AND r.t >= s.last_seen
    )) AS s_end
    FROM sessions s
)
SELECT k, arg_max(b.user_name, b.s_start) AS user_name,
       arg_max(b.session_id, b.s_start) AS session_id, arg_max(b.nas, b.s_start) AS nas
FROM keys JOIN bounded b
  ON b.src_ip = keys.ip AND b.s_start <= keys.at AND (b.s_end IS NULL OR keys.at <= b.s_end)
GROUP BY k
"""


class RadiusSessions:
    """Runtime of ``radius_sessions``; reads the store given at construction."""

    concurrent_calls = True
    keys_per_call = None
    cached = True

    def __init__(self, config: RadiusSessionsConfig, *, store: Any = None) -> None:
        if store is None:
            raise ValueError(f"lookup {config.name!r} (radius_sessions) needs the store")
        self.name = config.name
        self.config = config
        self.store = store
        self.counters = LookupCounters()
        source_filter = "AND source IN (SELECT unnest($sources))" if config.sources else ""
        self._sql = _SQL.format(source_filter=source_filter)

    def functions(self) -> list[Function]:
        return self.config.functions()

    def close(self) -> None:
        pass

    def call(self, function: str, keys: pa.Table) -> pa.Table:
        if function != "User":
            raise KeyError(f"lookup {self.name!r} has no function {function!r}")
        n = keys.num_rows
        self.counters.calls += 1
        self.counters.keys += n
        ips = keys.column(0).cast(pa.string())
        at_us = keys.column(1).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        valid = pc.and_(pc.is_valid(ips), pc.is_valid(at_us))
        index = pc.indices_nonzero(valid)
        empty = pa.nulls(n, pa.string())
        user, session, nas = empty, empty, empty
        found_rows = 0
        if len(index):
            params: dict[str, object] = {
                "k": index.to_pylist(),
                "ip": pc.take(ips, index).to_pylist(),
                "at": pc.take(at_us, index).to_pylist(),
            }
            if self.config.sources:
                params["sources"] = list(self.config.sources)
            found = self.store.query(self._sql, params)
            found_rows = found.num_rows
            # scatter the found rows back to their key positions
            positions = pa.array(found.column("k").to_pylist(), pa.int64())
            order = pa.array(range(n), pa.int64())
            where = pc.index_in(order, value_set=positions)
            user = pc.take(found.column("user_name").cast(pa.string()), where)
            session = pc.take(found.column("session_id").cast(pa.string()), where)
            nas = pc.take(found.column("nas").cast(pa.string()), where)
        self.counters.misses += n - found_rows
        return pa.table({"user_name": user, "session_id": session, "nas": nas})
