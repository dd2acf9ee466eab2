"""The ``rollup`` stage: one record per account and period carrying every service's usage,
and one record per company over its accounts (seed 002: "a single record reflecting
multiple services for accounting purposes", FIG. 6; FIG. 7's further roll-up 706 "of
all of the services associated with each of the particular companies").

Services are grouped into categories (``categories``: category → service names, as the
``ports`` lookup and the categorizer name them; a service in no category counts as
``other``). For each category ``<c>`` an account record has ``<c>_bytes``,
``<c>_seconds`` (summed session durations) and ``<c>_records`` (sessions; for mail, the
messages), then ``total_bytes``, ``total_seconds``, ``total_records``. The columns, in
order (``company`` only when configured)::

    period, period_start, period_end, account_id, company,
    http_*, mail_*, voip_*, streaming_*, ftp_*, p2p_*, other_*, total_*

A company record has ``company`` and ``accounts`` (how many account records it sums)
instead of ``account_id``, and the same usage columns. Records without an account (or
company) are grouped under ``''``, so no usage disappears from the export. An account
seen under two companies in one period gets one record per company.

Periods are calendar months, days or hours in UTC, named ``2026-11``, ``2026-11-23``,
``2026-11-23T14``; a record belongs to the period of its ``time_field`` (``end_time``,
``start_time`` when missing, or the other way round). A period closes — is computed
once, with one GROUPING SETS query in DuckDB, and stored in ``rollup_<name>_accounts``,
``rollup_<name>_companies`` and ``rollup_<name>_periods`` in one transaction with the
stage's watermark — when the stage clock passes its end + ``grace_s`` (+ the input's
own wait, for a merge), and not before ``grace_s`` after the manager started, so that
gatherers can first resend what they spooled. The series is contiguous from the period
of the earliest record: an empty period gets a period row and empty exports. A closed
period never changes; records that reach it later are counted in ``late_records``.
Durations are summed as integer microseconds, so figures do not depend on row order.

After closing, the periods are exported (``accounting/export.py``): files and/or an
HTTP POST, each period exactly once per target, re-sendable on demand (API below,
``netdistill export``).

Scheme::

    stages:
      - name: monthly
        type: rollup
        input: demo-routers         # optional: default every record
        period: month               # month | day | hour
        account: account_id
        company: company            # optional second level
        categories:                 # these are the defaults
          http: [http, https, http-alt, web, quic]
          mail: [smtp, submission, submissions, imap, imap2, imaps, pop3, pop3s, mail]
          voip: [sip, sip-tls, rtp, voip]
          streaming: [rtsp, rtmp, streaming]
          ftp: [ftp, ftp-data, ftps, ftps-data]
          p2p: [bittorrent, p2p]
        grace_s: 300
        export: {directory: exports, formats: [csv, jsonl], url: null, timeout_s: 10}

On a central manager, ``pops: [pop-east, pop-west]`` makes the rollup sum the periods
those points of presence forward (their rollup of the same name, ``upstream:`` on the
POP) instead of reading records: ``hierarchy/receive.py``, docs/hierarchy.md. A POP
whose ``upstream: stages`` names the rollup forwards each closed period: its account
rows join the outbox in the transaction that closes it.

API: ``GET /api/rollups/<name>/periods``, ``GET /api/rollups/<name>/periods/<period>``,
``POST /api/rollups/<name>/periods/<period>/resend?target=file|http``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, PositiveInt, model_validator

from netdistill.accounting.export import ExportConfig, ensure_exports_table, plain, render_body
from netdistill.errors import ExportError, StoreError
from netdistill.stages.base import (
    InputSpec,
    StageConfigBase,
    load_watermark,
    resolve_input,
    save_watermark,
)
from netdistill.stages.rollup_store import (
    METRICS,
    REGISTRY_DDL,
    closed_periods,
    load_period,
    make_exporter,
    period_floor,
    period_name,
    period_next,
    rollup_sql,
    table_ddl,
    table_names,
    time_expression,
)

if TYPE_CHECKING:
    from netdistill.hierarchy.receive import PopRollup

log = logging.getLogger(__name__)

DEFAULT_CATEGORIES: dict[str, list[str]] = {
    "http": ["http", "https", "http-alt", "web", "quic"],
    "mail": [
        "smtp",
        "submission",
        "submissions",
        "imap",
        "imap2",
        "imaps",
        "pop3",
        "pop3s",
        "mail",
    ],
    "voip": ["sip", "sip-tls", "rtp", "voip"],
    "streaming": ["rtsp", "rtmp", "streaming"],
    "ftp": ["ftp", "ftp-data", "ftps", "ftps-data"],
    "p2p": ["bittorrent", "p2p"],
}
_CATEGORY = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_SERVICE = re.compile(r"^[A-Za-z0-9][\w.+-]*$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RollupConfig(StageConfigBase):
    """A ``rollup`` stage: usage per account (and company) and period, every service in
    one record, exported to a billing system (see the module docstring)."""

    type: Literal["rollup"] = "rollup"
    placement: ClassVar[str] = "manager"

    input: str | None = Field(None, description="source/procedure/stage read; default all")
    period: Literal["month", "day", "hour"] = "month"
    account: str = Field("account_id", description="record field that names the account")
    company: str | None = Field(None, description="record field that names the company")
    categories: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_CATEGORIES.items()},
        description="category → service names; any other service counts as 'other'",
    )
    time_field: Literal["end_time", "start_time"] = "end_time"
    grace_s: float = Field(300.0, ge=0, description="wait after a period's end to close it")
    max_periods_per_run: PositiveInt = Field(1000, description="bound of one catch-up step")
    export: ExportConfig = Field(default_factory=ExportConfig)
    pops: list[str] | None = Field(
        None,
        description="central manager: sum the periods these POPs forward instead of "
        "reading records (docs/hierarchy.md)",
    )

    def references(self) -> list[str]:
        return [self.input] if self.input else []

    def check_in_scheme(self, scheme: Any) -> None:
        """Each POP named in ``pops`` is a gatherer of the scheme (its credential)."""
        known = {g.name for g in getattr(scheme, "gatherers", [])}
        for pop in self.pops or ():
            if pop not in known:
                error = ValueError(
                    f"stage {self.name!r}: pops: {pop!r} is not in gatherers: (a POP delivers "
                    "as a gatherer with its own token; known: "
                    f"{', '.join(sorted(known)) or 'none'})"
                )
                error.key = "pops"  # type: ignore[attr-defined]
                error.value = pop  # type: ignore[attr-defined]
                raise error

    @model_validator(mode="after")
    def _check(self) -> RollupConfig:
        if self.pops is not None:
            if not self.pops or len(set(self.pops)) != len(self.pops):
                raise ValueError("pops: name each POP once, at least one")
            if self.input is not None:
                raise ValueError("pops: a rollup of POPs reads no records; drop 'input'")
        for name in (self.account, self.company):
            if name is not None and not _FIELD.match(name):
                raise ValueError(f"field name {name!r}: letters, digits and _ only")
        owner: dict[str, str] = {}
        for category, services in self.categories.items():
            if not _CATEGORY.match(category) or category in ("other", "total"):
                raise ValueError(
                    f"category {category!r}: lower-case letters, digits and _, "
                    "and not 'other' or 'total'"
                )
            for service in services:
                if not _SERVICE.match(service):
                    raise ValueError(f"category {category!r}: bad service name {service!r}")
                key = service.lower()
                if key in owner:
                    raise ValueError(
                        f"service {service!r} is in categories {owner[key]!r} and {category!r}"
                    )
                owner[key] = category
        return self

    # --- the column set --------------------------------------------------------------------

    def all_categories(self) -> list[str]:
        return [*self.categories, "other", "total"]

    def metric_columns(self) -> list[str]:
        return [f"{c}_{m}" for c in self.all_categories() for m in METRICS]

    def account_columns(self) -> list[str]:
        keys = ["account_id", "company"] if self.company else ["account_id"]
        return ["period", "period_start", "period_end", *keys, *self.metric_columns()]

    def company_columns(self) -> list[str]:
        return [
            "period",
            "period_start",
            "period_end",
            "company",
            "accounts",
            *self.metric_columns(),
        ]


# --- the stage -------------------------------------------------------------------------------


class RollupStage:
    """Closes due periods and exports them; see the module docstring.

    ``run_once`` runs on the stages thread; the API's ``resend`` may run at the same time
    (the exporter serializes sending)."""

    def __init__(self, config: RollupConfig, context: Any) -> None:
        self.config = config
        self.name = config.name
        self.context = context
        self.store = context.store
        self.started_at = float(context.clock())
        self.spec = (
            resolve_input(config.input, context.scheme) if config.input else InputSpec("true", {})
        )
        self.exporter = make_exporter(self.store, config, context.data_dir, context.clock)
        self.closed = 0
        self._earliest: datetime | None = None  # of the records read, before a close
        self._scanned = False
        self.last_counts: dict[str, int] = {}
        self.central: PopRollup | None = None
        if config.pops:
            from netdistill.hierarchy.receive import PopRollup

            self.central = PopRollup(self)

    def ensure_tables(self) -> None:
        fields = {f.name for f in self.store.fields}
        for role, name in (("account", self.config.account), ("company", self.config.company)):
            if name is not None and name not in fields and self.central is None:
                raise StoreError(
                    f"rollup {self.name!r}: records have no field {name!r} (its {role}); "
                    "add it (a procedure's add_fields, or `netdistill fields add`)"
                )
        ensure_exports_table(self.store)
        with self.store.transaction() as tx:
            tx.execute(REGISTRY_DDL)
            for statement in table_ddl(self.config, self.name):
                tx.execute(statement)
            tx.execute(
                "INSERT OR REPLACE INTO _rollups VALUES (?, ?, to_timestamp(?))",
                # inline secrets (export headers) are not kept in the store: "***"
                (self.name, self.config.model_dump_json(context={"secrets": "stored"}), tx.now),
            )
        self._check_columns()
        if self.central is not None:
            self.central.ensure_tables()

    def _check_columns(self) -> None:
        _, accounts, companies = table_names(self.name)
        expected = {accounts: self.config.account_columns()}
        if self.config.company:
            expected[companies] = self.config.company_columns()
        for table, columns in expected.items():
            found = (
                self.store.query(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = $t"
                    " ORDER BY ordinal_position",
                    {"t": table},
                )
                .column("column_name")
                .to_pylist()
            )
            if found != columns:
                raise StoreError(
                    f"rollup {self.name!r}: table {table} was made by a different scheme "
                    f"(columns {', '.join(found)}); give the rollup a new name or drop it"
                )

    # --- closing ---------------------------------------------------------------------------

    def _closed_until(self) -> datetime | None:
        periods = table_names(self.name)[0]
        value = self.store.query(f'SELECT max(period_end) AS e FROM "{periods}"').column("e")[0]
        return value.as_py()

    def _first_start(self, watermark: int, high: int) -> datetime | None:
        """Start of the first period to close: the end of the last closed one, else the
        period of the earliest record — scanned in full once, then only the new records
        (a manager running a month before its first close must not rescan every round)."""
        closed = self._closed_until()
        if closed is not None:
            return closed
        t = time_expression(self.config)
        low = watermark if self._scanned else 0
        value = (
            self.store.query(
                f"SELECT min({t}) AS t FROM records"
                f" WHERE record_id > $low AND record_id <= $high AND ({self.spec.where})",
                {**self.spec.params, "low": low, "high": high},
            )
            .column("t")[0]
            .as_py()
        )
        self._scanned = True
        if value is not None and (self._earliest is None or value < self._earliest):
            self._earliest = value
        return None if self._earliest is None else period_floor(self.config.period, self._earliest)

    def _due(self, first: datetime, now: float) -> list[datetime]:
        """Starts of the periods from ``first`` that may close at ``now``."""
        wait = self.config.grace_s + self.spec.delay_s
        if now < self.started_at + self.config.grace_s:
            return []
        starts: list[datetime] = []
        start = first
        while len(starts) < self.config.max_periods_per_run:
            end = period_next(self.config.period, start)
            if end.timestamp() + wait > now:
                break
            starts.append(start)
            start = end
        return starts

    def run_once(self, now: float) -> dict[str, int]:
        if self.central is not None:  # a central rollup: sums what the POPs forward
            return self.central.run_once(now)
        watermark, state = load_watermark(self.store, self.name)
        row = self.store.query("SELECT max(record_id) AS m FROM records").column("m")[0]
        high = max(watermark, int(row.as_py() or 0))
        late = int(state.get("late_records", 0))
        closed_until = self._closed_until()
        new_late = 0
        if closed_until is not None and high > watermark:
            new_late = int(
                self.store.query(
                    "SELECT count(*) AS n FROM records WHERE record_id > $w"
                    f" AND record_id <= $high AND {time_expression(self.config)}"
                    " < to_timestamp($until)"
                    f" AND ({self.spec.where})",
                    {
                        **self.spec.params,
                        "w": watermark,
                        "high": high,
                        "until": closed_until.timestamp(),
                    },
                )
                .column("n")[0]
                .as_py()
            )
            if new_late:
                log.warning(
                    "rollup %s: %d records arrived after their period closed", self.name, new_late
                )
        first = self._first_start(watermark, high)
        starts = self._due(first, now) if first is not None else []
        rows: pa.Table | None = None
        if starts:
            lo, hi = starts[0], period_next(self.config.period, starts[-1])
            rows = self.store.query(
                rollup_sql(self.config, self.spec),
                {**self.spec.params, "high": high, "lo": lo.timestamp(), "hi": hi.timestamp()},
            )
        if high != watermark or starts:
            self._close(starts, rows, high, {"late_records": late + new_late})
        counts = {"periods_closed": len(starts), "late_records": new_late}
        counts.update(self.exporter.run_pending())
        self.last_counts = counts
        return counts

    def _close(
        self, starts: list[datetime], rows: pa.Table | None, high: int, state: dict[str, Any]
    ) -> None:
        periods_table, accounts_table, companies_table = table_names(self.name)
        period_rows = []
        accounts = companies = None
        if rows is not None:
            is_company = rows.column("is_company")
            accounts = rows.filter(pc.invert(is_company)).select(self.config.account_columns())
            if self.config.company:
                companies = rows.filter(is_company).select(self.config.company_columns())
            stats = (
                accounts.group_by("period")
                .aggregate(
                    [("total_records", "sum"), ("total_bytes", "sum"), ("account_id", "count")]
                )
                .to_pylist()
            )
            by_period = {s["period"]: s for s in stats}
            company_counts: dict[str, int] = {}
            if companies is not None:
                for item in (
                    companies.group_by("period").aggregate([("company", "count")]).to_pylist()
                ):
                    company_counts[item["period"]] = item["company_count"]
            for start in starts:
                name = period_name(self.config.period, start)
                s = by_period.get(name, {})
                period_rows.append(
                    {
                        "period": name,
                        "period_start": start,
                        "period_end": period_next(self.config.period, start),
                        "records": int(s.get("total_records_sum") or 0),
                        "bytes": int(s.get("total_bytes_sum") or 0),
                        "accounts": int(s.get("account_id_count") or 0),
                        "companies": company_counts.get(name, 0),
                    }
                )
        with self.store.transaction() as tx:
            for p in period_rows:
                tx.execute(
                    f'INSERT INTO "{periods_table}" (period, period_start, period_end, closed_at,'
                    " records, bytes, accounts, companies, high_record_id)"
                    " VALUES (?, ?, ?, to_timestamp(?), ?, ?, ?, ?, ?)",
                    (
                        p["period"],
                        p["period_start"],
                        p["period_end"],
                        tx.now,
                        p["records"],
                        p["bytes"],
                        p["accounts"],
                        p["companies"],
                        high,
                    ),
                )
            if accounts is not None:
                tx.insert_arrow(accounts_table, accounts)
            if companies is not None:
                tx.insert_arrow(companies_table, companies)
            if self.context.outbox is not None:  # a POP forwards each closed period
                self._forward(tx, period_rows, accounts)
            save_watermark(tx, self.name, high, state)
        self.closed += len(period_rows)
        for p in period_rows:
            log.info(
                "rollup %s period %s closed: %d records, %d accounts",
                self.name,
                p["period"],
                p["records"],
                p["accounts"],
            )

    def _forward(
        self, tx: Any, period_rows: list[dict[str, Any]], accounts: pa.Table | None
    ) -> None:
        """Each closed period's account rows to the outbox (``hierarchy/outbox.py``)."""
        assert self.context.outbox is not None
        for p in period_rows:
            rows = (
                accounts.filter(pc.equal(accounts.column("period"), p["period"]))
                if accounts is not None
                else pa.table({c: [] for c in self.config.account_columns()})
            )
            meta = {
                "type": "rollup",
                "output": "rollup",
                "period": p["period"],
                "unit": self.config.period,
                "period_start": p["period_start"].timestamp(),
                "period_end": p["period_end"].timestamp(),
                "closed_at": tx.now,
                "records": p["records"],
                "bytes": p["bytes"],
                "accounts": p["accounts"],
                "columns": self.config.account_columns(),
            }
            self.context.outbox(tx, self.name, rows, meta)

    # --- reading ---------------------------------------------------------------------------

    def periods(self) -> list[dict[str, Any]]:
        return closed_periods(self.store, self.name)

    def resend(self, period: str, target: str | None = None) -> list[dict[str, Any]]:
        return self.exporter.resend(period, target)

    def status(self) -> dict[str, Any]:
        _, state = load_watermark(self.store, self.name)
        closed_until = self._closed_until()
        return {
            "type": "rollup",
            "period": self.config.period,
            **(
                {"pops": self.config.pops, "waiting_for": self.central.waiting_for}
                if self.central is not None
                else {}
            ),
            "closed_until": plain(closed_until) if closed_until else None,
            "closed_since_start": self.closed,
            "late_records": int(state.get("late_records", 0)),
            "last_round": self.last_counts,
            "export": self.exporter.status(),
        }

    def router(self) -> Any:
        """The rollup's API (mounted by ``stages_router``)."""
        from fastapi import APIRouter, HTTPException

        router = APIRouter()
        base = f"/api/rollups/{self.name}/periods"

        @router.get(base)
        def list_periods() -> dict[str, Any]:
            return {"rollup": self.name, **self.status(), "periods": self.periods()}

        @router.get(base + "/{period}")
        def get_period(period: str) -> dict[str, Any]:
            try:
                export = load_period(self.store, self.config, period)
            except ExportError as exc:
                raise HTTPException(status_code=404, detail=str(exc)) from None
            return json.loads(render_body(export))

        @router.post(base + "/{period}/resend")
        def resend(period: str, target: str | None = None) -> dict[str, Any]:
            try:
                return {"results": self.resend(period, target)}
            except ExportError as exc:
                raise HTTPException(status_code=404, detail=str(exc)) from None

        return router
