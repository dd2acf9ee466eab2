"""The dashboard's figures, each one query over ``records`` in the store with bound
parameters (never text pasted into SQL)::

    GET /api/dashboard/ingest?window_s=60          records and bytes per source ingested
                                                   in the last window, and the rate per s
    GET /api/dashboard/traffic?minutes=60&bucket_s=60&services=8
                                                   bytes per service per time bucket
                                                   (by start_time; past the top N
                                                   services the rest is ``other``)
    GET /api/dashboard/top?by=account|src|dst|service&minutes=60&limit=10
                                                   top accounts, talkers, destinations

``from``/``to`` (ISO-8601) replace ``minutes`` for ``traffic`` and ``top``. Buckets are
aligned on multiples of ``bucket_s`` since the epoch. Gatherer health comes from
``/api/gatherers`` (heartbeats, spool depth) and the local pipeline's counters from
``/api/status``: the dashboard page reads those as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from netdistill.console.access import Access
from netdistill.store import Store

#: what each ``by`` of ``/top`` groups on, and the label shown beside the key
_TOP = {
    "account": ("coalesce(account_id, user_name)", "NULL", ("account_id", "user_name")),
    "src": ("src_ip", "any_value(src_host)", ("src_ip", "src_host")),
    "dst": ("dst_ip", "any_value(dst_host)", ("dst_ip", "dst_host")),
    "service": ("service", "NULL", ("service",)),
}


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, detail=f"{name}: not an ISO-8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Dashboard:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    def _range(
        self, minutes: float, start: str | None, end: str | None
    ) -> tuple[datetime, datetime]:
        to = _parse_time(end, "to") if end else datetime.fromtimestamp(self._clock(), UTC)
        since = _parse_time(start, "from") if start else to - timedelta(minutes=minutes)
        if since >= to:
            raise HTTPException(400, detail="from must be before to")
        return since, to

    def _has(self, *names: str) -> bool:
        return all(self.store.fields.get(n) is not None for n in names)

    def ingest(self, window_s: float) -> dict[str, Any]:
        now = self._clock()
        rows = self.store.query(
            "SELECT coalesce(source, '') AS source, count(*) AS records, "
            "coalesce(sum(bytes), 0)::DOUBLE AS bytes FROM records "
            "WHERE ingested_at >= to_timestamp($since) AND ingested_at <= to_timestamp($now) "
            "GROUP BY ALL ORDER BY source",
            {"since": now - window_s, "now": now},
        ).to_pylist()
        for row in rows:
            row["records_per_s"] = row["records"] / window_s
            row["bytes"] = int(row["bytes"])
        return {"window_s": window_s, "at": now, "sources": rows}

    def traffic(
        self, minutes: float, bucket_s: int, services: int, start: str | None, end: str | None
    ) -> dict[str, Any]:
        since, to = self._range(minutes, start, end)
        rows = self.store.query(
            """
            WITH r AS (
                SELECT start_time, coalesce(service, '(none)') AS service, bytes FROM records
                WHERE start_time >= $since AND start_time < $to),
            top AS (
                SELECT service FROM r GROUP BY service
                ORDER BY sum(bytes) DESC NULLS LAST, service LIMIT $services)
            SELECT to_timestamp(floor(epoch(start_time) / $bucket) * $bucket) AS t,
                   CASE WHEN service IN (SELECT service FROM top) THEN service
                        ELSE 'other' END AS service,
                   coalesce(sum(bytes), 0)::DOUBLE AS bytes, count(*) AS records
            FROM r GROUP BY ALL ORDER BY t, service
            """,
            {"since": since, "to": to, "bucket": bucket_s, "services": services},
        ).to_pylist()
        series = [
            {
                "t": _iso(r["t"]),
                "service": r["service"],
                "bytes": int(r["bytes"]),
                "records": r["records"],
            }
            for r in rows
        ]
        return {"from": _iso(since), "to": _iso(to), "bucket_s": bucket_s, "series": series}

    def top(
        self, by: str, minutes: float, limit: int, start: str | None, end: str | None
    ) -> dict[str, Any]:
        if by not in _TOP:
            raise HTTPException(400, detail=f"by: one of {', '.join(_TOP)}, not {by!r}")
        key, label, needs = _TOP[by]
        since, to = self._range(minutes, start, end)
        if not self._has("start_time", "bytes", *needs[:1]):
            return {"by": by, "from": _iso(since), "to": _iso(to), "rows": []}
        if by == "account" and not self._has(*needs):
            key = needs[0] if self._has(needs[0]) else needs[1]
        if label != "NULL" and not self._has(*needs):
            label = "NULL"
        rows = self.store.query(
            f"SELECT {key} AS key, {label} AS label, coalesce(sum(bytes), 0)::DOUBLE AS bytes, "
            "coalesce(sum(packets), 0)::DOUBLE AS packets, count(*) AS records FROM records "
            f"WHERE start_time >= $since AND start_time < $to AND {key} IS NOT NULL "
            "GROUP BY 1 ORDER BY bytes DESC, key LIMIT $limit",
            {"since": since, "to": to, "limit": limit},
        ).to_pylist()
        for row in rows:
            row["bytes"] = int(row["bytes"])
            row["packets"] = int(row["packets"])
        return {"by": by, "from": _iso(since), "to": _iso(to), "rows": rows}


def dashboard_router(dashboard: Dashboard, access: Access) -> APIRouter:
    router = APIRouter(
        prefix="/api/dashboard", tags=["dashboard"], dependencies=[Depends(access.authorize)]
    )

    @router.get("/ingest")
    def get_ingest(window_s: float = Query(60, gt=0, le=86400)) -> dict[str, Any]:
        return dashboard.ingest(window_s)

    @router.get("/traffic")
    def get_traffic(
        minutes: float = Query(60, gt=0, le=525600),
        bucket_s: int = Query(60, ge=1, le=86400),
        services: int = Query(8, ge=1, le=100),
        start: str | None = Query(None, alias="from"),
        end: str | None = Query(None, alias="to"),
    ) -> dict[str, Any]:
        return dashboard.traffic(minutes, bucket_s, services, start, end)

    @router.get("/top")
    def get_top(
        by: str = "account",
        minutes: float = Query(60, gt=0, le=525600),
        limit: int = Query(10, ge=1, le=1000),
        start: str | None = Query(None, alias="from"),
        end: str | None = Query(None, alias="to"),
    ) -> dict[str, Any]:
        return dashboard.top(by, minutes, limit, start, end)

    return router
