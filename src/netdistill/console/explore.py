"""The flow and record explorer: time series, top-N by any field and the matching
records, filtered by field values, for the dashboard and the ``/explore`` page::

    GET /api/explore/fields    the fields one may group and filter on (the registry's),
                               the metrics, and the default columns of the records table
    GET /api/explore/series?by=service&top=8&bucket_s=60&minutes=60&filter=account_id=acme
                               per time bucket and per value of ``by`` (the top N by the
                               metric, the rest ``other``): bytes, packets, records and the
                               rates bit/s and packets/s; every bucket of the range, empty
                               ones as zero
    GET /api/explore/top?by=dst_ip&label=dst_host&metric=bytes&limit=10&filter=…
                               the top values of any field, with bytes, packets, records
                               (and one value of ``label`` seen with each, if asked)
    GET /api/explore/records?filter=…&columns=start_time,src_ip&limit=100&offset=0
                               the matching records, newest first, with the total count;
                               ``format=csv`` downloads them (at most ``CSV_MAX_ROWS``)

Common parameters: ``from``/``to`` (ISO-8601, ``to`` exclusive) or ``minutes`` back from
now; ``time_field`` (a ``timestamp`` field, default ``start_time``) is the one the range
applies to; ``filter`` repeats, ``FIELD=VALUE`` or ``FIELD!=VALUE`` (``(none)`` meaning
no value), or ``<``, ``<=``, ``>``, ``>=`` on a number or time field (``bytes>=1000000``,
``record_id<=52000``); the filters are ANDed.

How the SQL is made (the guarantee): no text of the request is pasted into SQL. A field
name is used only when it is a field of the store's registry (``store.fields``), whose
names match ``^[a-z][a-z0-9_]*$``, and then double-quoted; a metric is one of a fixed
set; every value — filter values (parsed to the field's type first: ``protocol=tcp`` is
a 400, not a cast error), times, limits — is a bound ``$parameter``. The statement then
runs through the query sandbox (``Store.query_user``, ``store/sandbox.py``) within the
manager's query limits, so even a mistake here can read only the allowed tables and is
stopped by the time and row limits. A refusal is a 400 naming the parameter.

Buckets are aligned on multiples of ``bucket_s`` since the epoch. A bucket only partly
inside the range (the current, unfinished one; the first when ``from`` is not aligned)
is marked ``partial`` and its rates are per second of the part covered, so an unfinished
bucket is not drawn as a drop. A range may hold at most ``MAX_BUCKETS`` buckets.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from netdistill.console.access import Access
from netdistill.errors import QueryRefusedError, StoreError
from netdistill.records.fields import Field
from netdistill.store import Store
from netdistill.store.sandbox import QueryLimits

MAX_BUCKETS = 2000
CSV_MAX_ROWS = 100_000
NONE = "(none)"
OTHER = "other"
METRICS = ("bytes", "packets", "records")
#: the records table's columns when none are asked for (those the registry has)
DEFAULT_COLUMNS = (
    "start_time",
    "source",
    "exporter",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "protocol",
    "service",
    "account_id",
    "user_name",
    "bytes",
    "packets",
)
_NUMERIC = {"int64": int, "uint8": int, "uint16": int, "uint32": int, "uint64": int}


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(400, detail=f"{name}: not an ISO-8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Selection:
    """What a request selects: the range on ``time_field`` and the filters, as a WHERE
    clause with bound parameters."""

    since: datetime
    to: datetime
    time_field: str
    where: str
    params: dict[str, object]
    filters: list[dict[str, str]]


class Explorer:
    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        limits: Callable[[], QueryLimits] = QueryLimits,
    ) -> None:
        self.store = store
        self._clock = clock
        self._limits = limits

    # ---- names and values from the request -------------------------------------------

    def field(self, name: str, what: str) -> Field:
        """The registry's field called ``name``, or a 400 naming ``what``."""
        found = self.store.fields.get(name)
        if found is None:
            raise HTTPException(400, detail=f"{what}: no field named {name!r} in records")
        return found

    def column(self, name: str, what: str) -> str:
        """``name`` as a quoted SQL identifier, once the registry knows it."""
        return '"' + self.field(name, what).name + '"'

    @staticmethod
    def value(field: Field, text: str, what: str) -> object:
        """A filter value parsed to the field's type (bound, never pasted)."""
        try:
            if field.type in _NUMERIC:
                return int(text)
            if field.type == "float64":
                return float(text)
            if field.type == "bool":
                if text.lower() not in ("true", "false"):
                    raise ValueError("expected true or false")
                return text.lower() == "true"
            if field.type == "timestamp":
                return parse_time(text, what)
        except ValueError as exc:
            raise HTTPException(
                400, detail=f"{what}: {text!r} is not a {field.type} ({exc})"
            ) from None
        return text

    def select(
        self,
        minutes: float,
        start: str | None,
        end: str | None,
        filters: list[str],
        time_field: str = "start_time",
    ) -> Selection:
        to = parse_time(end, "to") if end else datetime.fromtimestamp(self._clock(), UTC)
        since = parse_time(start, "from") if start else to - timedelta(minutes=minutes)
        if since >= to:
            raise HTTPException(400, detail="from must be before to")
        tfield = self.field(time_field, "time_field")
        if tfield.type != "timestamp":
            raise HTTPException(400, detail=f"time_field: {time_field} is not a timestamp")
        clauses = [f'"{tfield.name}" >= $since', f'"{tfield.name}" < $to']
        params: dict[str, object] = {"since": since, "to": to}
        shown = []
        for index, text in enumerate(filters):
            name, op, raw = _split_filter(text)
            what = f"filter {text!r}"
            field = self.field(name, what)
            column = f'"{field.name}"'
            shown.append({"field": field.name, "op": op, "value": raw})
            if raw == NONE and op in ("=", "!="):
                clauses.append(f"{column} IS {'NOT ' if op == '!=' else ''}NULL")
                continue
            if op not in ("=", "!=") and field.type in ("string", "ip", "bool"):
                raise HTTPException(400, detail=f"{what}: {op} compares numbers and times only")
            key = f"f{index}"
            params[key] = self.value(field, raw, what)
            if op == "!=":
                clauses.append(f"({column} IS NULL OR {column} <> ${key})")
            else:
                clauses.append(f"{column} {_SQL_OPS[op]} ${key}")
        return Selection(since, to, tfield.name, " AND ".join(clauses), params, shown)

    def run(self, sql: str, params: dict[str, object]) -> list[dict[str, Any]]:
        try:
            return self.store.query_user(sql, params, limits=self._limits()).to_pylist()
        except QueryRefusedError as exc:
            raise HTTPException(400, detail=str(exc)) from None
        except StoreError as exc:
            raise HTTPException(400, detail=f"the query failed: {exc}") from None

    # ---- the three answers -------------------------------------------------------------

    def series(
        self, sel: Selection, by: str | None, top: int, bucket_s: int, metric: str
    ) -> dict[str, Any]:
        metric = _metric(metric)
        first = math.floor(sel.since.timestamp() / bucket_s) * bucket_s
        count = math.ceil((sel.to.timestamp() - first) / bucket_s)
        if count > MAX_BUCKETS:
            raise HTTPException(
                400,
                detail=f"bucket_s: {count} buckets of {bucket_s} s in this range; "
                f"at most {MAX_BUCKETS} (choose longer buckets)",
            )
        tcol = f'"{sel.time_field}"'  # checked against the registry by select()
        key = f"coalesce(CAST({self.column(by, 'by')} AS VARCHAR), '{NONE}')" if by else "'all'"
        params = {**sel.params, "bucket": bucket_s, "top": top}
        rows = self.run(
            f"""
            WITH r AS (SELECT {tcol} AS t, {key} AS k, bytes, packets FROM records
                       WHERE {sel.where}),
            top AS (SELECT k FROM r GROUP BY k
                    ORDER BY {_order(metric)} DESC NULLS LAST, k LIMIT $top)
            SELECT CAST(floor(epoch(t) / $bucket) * $bucket AS BIGINT) AS b,
                   CASE WHEN k IN (SELECT k FROM top) THEN k ELSE '{OTHER}' END AS k,
                   coalesce(sum(bytes), 0)::DOUBLE AS bytes,
                   coalesce(sum(packets), 0)::DOUBLE AS packets, count(*) AS records
            FROM r GROUP BY ALL ORDER BY b, k
            """,
            params,
        )
        starts = [first + i * bucket_s for i in range(count)]
        since_s, to_s = sel.since.timestamp(), sel.to.timestamp()
        covered = [min(s + bucket_s, to_s) - max(s, since_s) for s in starts]
        index = {s: i for i, s in enumerate(starts)}
        totals: dict[str, float] = {}
        values: dict[str, dict[str, list[float]]] = {}
        for row in rows:
            i = index.get(int(row["b"]))
            if i is None:
                continue
            series = values.setdefault(
                row["k"], {m: [0.0] * count for m in ("bytes", "packets", "records")}
            )
            for m in ("bytes", "packets", "records"):
                series[m][i] += float(row[m])
            totals[row["k"]] = totals.get(row["k"], 0.0) + float(row[metric])
        order = sorted(values, key=lambda k: (k == OTHER, -totals[k], k))
        out = []
        for k in order:
            v = values[k]
            out.append(
                {
                    "key": k,
                    "bytes": [int(x) for x in v["bytes"]],
                    "packets": [int(x) for x in v["packets"]],
                    "records": [int(x) for x in v["records"]],
                    "bits_per_s": [b * 8 / c for b, c in zip(v["bytes"], covered, strict=True)],
                    "packets_per_s": [p / c for p, c in zip(v["packets"], covered, strict=True)],
                    "total": totals[k],
                }
            )
        return {
            "from": iso(sel.since),
            "to": iso(sel.to),
            "by": by,
            "metric": metric,
            "bucket_s": bucket_s,
            "buckets": [iso(datetime.fromtimestamp(s, UTC)) for s in starts],
            "covered_s": covered,
            "partial": [c < bucket_s for c in covered],
            "series": out,
            "filters": sel.filters,
        }

    def top(
        self, sel: Selection, by: str, metric: str, limit: int, label: str | None = None
    ) -> dict[str, Any]:
        metric = _metric(metric)
        column = self.column(by, "by")
        shown = f"CAST(any_value({self.column(label, 'label')}) AS VARCHAR)" if label else "NULL"
        rows = self.run(
            f"""
            SELECT CAST({column} AS VARCHAR) AS key, {shown} AS label,
                   coalesce(sum(bytes), 0)::DOUBLE AS bytes,
                   coalesce(sum(packets), 0)::DOUBLE AS packets, count(*) AS records
            FROM records WHERE {sel.where} GROUP BY 1
            ORDER BY {_order(metric)} DESC NULLS LAST, key NULLS LAST LIMIT $limit
            """,
            {**sel.params, "limit": limit},
        )
        for row in rows:
            row["key"] = NONE if row["key"] is None else row["key"]
            row["bytes"] = int(row["bytes"])
            row["packets"] = int(row["packets"])
        return {
            "from": iso(sel.since),
            "to": iso(sel.to),
            "by": by,
            "metric": metric,
            "rows": rows,
            "filters": sel.filters,
        }

    def columns(self, names: str | None) -> list[str]:
        if not names:
            return [n for n in DEFAULT_COLUMNS if self.store.fields.get(n) is not None]
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        return [self.field(n, "columns").name for n in dict.fromkeys(wanted)]

    def records(
        self, sel: Selection, columns: list[str], limit: int, offset: int
    ) -> dict[str, Any]:
        listed = ", ".join(f'"{c}"' for c in columns)
        rows = self.run(
            f"SELECT {listed} FROM records WHERE {sel.where} "
            'ORDER BY "start_time" DESC NULLS LAST, "record_id" DESC LIMIT $limit OFFSET $offset',
            {**sel.params, "limit": limit, "offset": offset},
        )
        total = self.run(f"SELECT count(*) AS n FROM records WHERE {sel.where}", sel.params)
        for row in rows:
            for name, value in row.items():
                if isinstance(value, datetime):
                    row[name] = iso(value)
        return {
            "from": iso(sel.since),
            "to": iso(sel.to),
            "columns": columns,
            "rows": rows,
            "total": int(total[0]["n"]),
            "limit": limit,
            "offset": offset,
            "filters": sel.filters,
        }


_OPS = ("!=", "<=", ">=", "=", "<", ">")
_SQL_OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _split_filter(text: str) -> tuple[str, str, str]:
    """``FIELD<op>VALUE`` at the first operator character (no field name holds one)."""
    cut = min((i for i, ch in enumerate(text) if ch in "!<>="), default=-1)
    op = next((o for o in _OPS if text.startswith(o, cut)), None) if cut > 0 else None
    if op is None or not text[:cut].strip():
        raise HTTPException(
            400, detail=f"filter {text!r}: expected FIELD=VALUE, FIELD!=VALUE, or <, <=, >, >="
        )
    return text[:cut].strip(), op, text[cut + len(op) :]


def _metric(metric: str) -> str:
    if metric not in METRICS:
        raise HTTPException(400, detail=f"metric: one of {', '.join(METRICS)}, not {metric!r}")
    return metric


def _order(metric: str) -> str:
    """The ORDER BY expression of a metric (from the fixed set, never the request)."""
    return {"bytes": "sum(bytes)", "packets": "sum(packets)", "records": "count(*)"}[metric]


def to_csv(answer: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(answer["columns"])
    for row in answer["rows"]:
        writer.writerow(["" if row[c] is None else row[c] for c in answer["columns"]])
    return out.getvalue()


def explore_router(explorer: Explorer, access: Access) -> APIRouter:
    router = APIRouter(
        prefix="/api/explore", tags=["explorer"], dependencies=[Depends(access.authorize)]
    )
    minutes_q = Query(60, gt=0, le=525600, description="the range, back from now")
    from_q = Query(None, alias="from", description="start, ISO-8601 (instead of minutes)")
    to_q = Query(None, alias="to", description="end, exclusive, ISO-8601 (default now)")
    filter_q = Query([], description="FIELD=VALUE, FIELD!=VALUE, FIELD<=VALUE …, repeated")
    time_q = Query("start_time", description="the timestamp field the range applies to")

    @router.get("/fields")
    def get_fields() -> dict[str, Any]:
        return {
            "fields": [
                {"name": f.name, "type": f.type, "description": f.description}
                for f in explorer.store.fields
            ],
            "metrics": list(METRICS),
            "default_columns": explorer.columns(None),
        }

    @router.get("/series")
    def get_series(
        by: str | None = Query(None, description="a field; none: one series 'all'"),
        top: int = Query(8, ge=1, le=50),
        bucket_s: int = Query(60, ge=1, le=86400 * 31),
        metric: str = Query("bytes", description="what picks the top N"),
        minutes: float = minutes_q,
        start: str | None = from_q,
        end: str | None = to_q,
        filter: list[str] = filter_q,
        time_field: str = time_q,
    ) -> dict[str, Any]:
        sel = explorer.select(minutes, start, end, filter, time_field)
        return explorer.series(sel, by or None, top, bucket_s, metric)

    @router.get("/top")
    def get_top(
        by: str = Query("source", description="any field of records"),
        label: str | None = Query(None, description="a field shown beside each value"),
        metric: str = "bytes",
        limit: int = Query(10, ge=1, le=1000),
        minutes: float = minutes_q,
        start: str | None = from_q,
        end: str | None = to_q,
        filter: list[str] = filter_q,
        time_field: str = time_q,
    ) -> dict[str, Any]:
        sel = explorer.select(minutes, start, end, filter, time_field)
        return explorer.top(sel, by, metric, limit, label or None)

    @router.get("/records", response_model=None)
    def get_records(
        columns: str | None = Query(None, description="comma-separated fields"),
        limit: int = Query(100, ge=1, le=CSV_MAX_ROWS),
        offset: int = Query(0, ge=0),
        format: str = Query("json", description="json or csv"),
        minutes: float = minutes_q,
        start: str | None = from_q,
        end: str | None = to_q,
        filter: list[str] = filter_q,
        time_field: str = time_q,
    ) -> Any:
        if format not in ("json", "csv"):
            raise HTTPException(400, detail=f"format: json or csv, not {format!r}")
        if format == "json" and limit > 1000:
            raise HTTPException(400, detail="limit: at most 1000 rows as JSON (use format=csv)")
        sel = explorer.select(minutes, start, end, filter, time_field)
        answer = explorer.records(sel, explorer.columns(columns), limit, offset)
        if format == "json":
            return answer
        return Response(
            to_csv(answer),
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": 'attachment; filename="records.csv"',
                "x-netdistill-total": str(answer["total"]),
            },
        )

    return router
