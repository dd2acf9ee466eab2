"""The built-in reports (seed 003 claims 2–12: network activity, resource consumption,
auditing, billing and accounting reports).

Every report places a record in time by ``coalesce(start_time, end_time)`` (the usage's
own time, not when it reached the store), reads ``[from, to)``, and binds every value.
Sums of ``bytes``/``packets`` are exact integers; durations are rounded to the
millisecond. Missing names show as ``(none)`` so a chart has a label for them.

``chargeback_department`` groups by a ``department`` field of ``records``. Nothing fills
it by default: a procedure does, e.g. with the LDAP lookup
``department: LDAP.Person(user_name).department`` (docs/reports.md); until one does,
the report says "no data yet".
"""

from __future__ import annotations

from netdistill.reports.catalogue import ChartSpec, Report, ReportParam

FROM = ReportParam(name="from", type="timestamp", default="now-24h", description="start, inclusive")
TO = ReportParam(name="to", type="timestamp", default="now", description="end, exclusive")
SOURCE = ReportParam(name="source", description="only this source (default: all)")
ACCOUNT = ReportParam(name="account", description="only this account (default: all)")
TOP = ReportParam(name="top", type="int", default=20, description="at most this many rows")

#: records with their time ``t``, inside ``[from, to)``
_IN_RANGE = """WITH r AS (
    SELECT *, coalesce(start_time, end_time) AS t FROM records
    WHERE coalesce(start_time, end_time) >= $from AND coalesce(start_time, end_time) < $to)
"""

NETWORK_ACTIVITY = Report(
    name="network_activity",
    title="Network activity per hour and service",
    description="Records, bytes and packets per hour and service.",
    sql=_IN_RANGE
    + """SELECT date_trunc('hour', t) AS hour, coalesce(service, '(none)') AS service,
       count(*) AS records, sum(bytes) AS bytes, sum(packets) AS packets
FROM r WHERE ($source IS NULL OR source = $source)
GROUP BY ALL ORDER BY hour, service""",
    params=(FROM, TO, SOURCE),
    columns=("hour", "service", "records", "bytes", "packets"),
    chart=ChartSpec(kind="line", x="hour", y="bytes", series="service"),
)

TOP_DESTINATIONS = Report(
    name="top_destinations",
    title="Top destinations by bytes",
    description="The destinations (host name, else address) that received the most bytes.",
    sql=_IN_RANGE
    + """SELECT coalesce(dst_host, dst_ip, '(none)') AS destination, count(*) AS records,
       sum(bytes) AS bytes, sum(packets) AS packets
FROM r WHERE ($account IS NULL OR account_id = $account)
GROUP BY ALL ORDER BY bytes DESC, destination LIMIT $top""",
    params=(FROM, TO, ACCOUNT, TOP),
    columns=("destination", "records", "bytes", "packets"),
    chart=ChartSpec(kind="bar", x="destination", y="bytes"),
)

RESOURCE_CONSUMPTION = Report(
    name="resource_consumption",
    title="Resource consumption per account",
    description="Usage per account: records, bytes, packets, session time, distinct users.",
    sql=_IN_RANGE
    + """SELECT coalesce(account_id, '(none)') AS account_id, count(*) AS records,
       sum(bytes) AS bytes, sum(packets) AS packets,
       round(sum(duration_s), 3) AS duration_s, count(DISTINCT user_name) AS users
FROM r WHERE ($account IS NULL OR account_id = $account)
GROUP BY ALL ORDER BY bytes DESC, account_id LIMIT $top""",
    params=(FROM, TO, ACCOUNT, TOP),
    columns=("account_id", "records", "bytes", "packets", "duration_s", "users"),
    chart=ChartSpec(kind="bar", x="account_id", y="bytes"),
)

AUDIT_SOURCES = Report(
    name="audit_sources",
    title="Audit: records per source per hour",
    description="How many records each source delivered in each hour.",
    sql=_IN_RANGE
    + """SELECT coalesce(source, '(none)') AS source, date_trunc('hour', t) AS hour,
       count(*) AS records, sum(bytes) AS bytes
FROM r WHERE ($source IS NULL OR source = $source)
GROUP BY ALL ORDER BY source, hour""",
    params=(FROM, TO, SOURCE),
    columns=("source", "hour", "records", "bytes"),
    chart=ChartSpec(kind="line", x="hour", y="records", series="source"),
)

AUDIT_GAPS = Report(
    name="audit_gaps",
    title="Audit: gaps in a source's data",
    description=(
        "Runs of empty time buckets between a source's first and last record in the "
        "period: each row is one gap, [gap_start, gap_end)."
    ),
    sql=_IN_RANGE
    + """, seen AS (
    SELECT DISTINCT coalesce(source, '(none)') AS source,
           time_bucket(to_minutes($bucket_minutes), t) AS b
    FROM r WHERE ($source IS NULL OR source = $source)),
span AS (SELECT source, min(b) AS first_b, max(b) AS last_b FROM seen GROUP BY source),
grid AS (
    SELECT source, unnest(generate_series(first_b, last_b, to_minutes($bucket_minutes))) AS b
    FROM span),
missing AS (SELECT source, b FROM grid ANTI JOIN seen USING (source, b)),
runs AS (
    SELECT source, b,
           b - to_minutes($bucket_minutes) * row_number() OVER (PARTITION BY source ORDER BY b)
           AS run
    FROM missing)
SELECT source, min(b) AS gap_start, max(b) + to_minutes($bucket_minutes) AS gap_end,
       count(*) AS empty_buckets
FROM runs GROUP BY source, run ORDER BY source, gap_start""",
    params=(
        FROM,
        TO,
        SOURCE,
        ReportParam(name="bucket_minutes", type="int", default=60, description="bucket length"),
    ),
    columns=("source", "gap_start", "gap_end", "empty_buckets"),
)

AUDIT_QUARANTINE = Report(
    name="audit_quarantine",
    title="Audit: quarantined input",
    description="Input set aside as unusable, per source and reason (by receive time).",
    sql="""SELECT coalesce(source, '(none)') AS source, reason, count(*) AS items,
       min(received_at) AS first_at, max(received_at) AS last_at
FROM quarantine
WHERE received_at >= $from AND received_at < $to AND ($source IS NULL OR source = $source)
GROUP BY ALL ORDER BY source, reason""",
    params=(FROM, TO, SOURCE),
    columns=("source", "reason", "items", "first_at", "last_at"),
    chart=ChartSpec(kind="bar", x="source", y="items", series="reason"),
    requires=("quarantine",),
)

AUDIT_MERGES = Report(
    name="audit_merges",
    title="Audit: records made by merges and stages",
    description="Records whose procedure is a manager stage (a merge …), per stage and hour.",
    sql=_IN_RANGE
    + """SELECT "procedure" AS stage, date_trunc('hour', t) AS hour, count(*) AS records,
       sum(bytes) AS bytes
FROM r WHERE "procedure" IN (SELECT stage FROM _stage_state)
GROUP BY ALL ORDER BY stage, hour""",
    params=(FROM, TO),
    columns=("stage", "hour", "records", "bytes"),
    chart=ChartSpec(kind="bar", x="hour", y="records", series="stage"),
    requires=("_stage_state",),
    why_missing="no merge or other manager stage has run",
)

AUDIT_DELIVERIES = Report(
    name="audit_deliveries",
    title="Audit: deliveries per origin per hour",
    description="Batches committed per origin (gatherer, import) and hour, with their rows.",
    sql="""SELECT origin, date_trunc('hour', committed_at) AS hour, count(*) AS batches,
       sum(rows) AS rows, min(sequence) AS first_sequence, max(sequence) AS last_sequence
FROM _commits WHERE committed_at >= $from AND committed_at < $to
GROUP BY ALL ORDER BY origin, hour""",
    params=(FROM, TO),
    columns=("origin", "hour", "batches", "rows", "first_sequence", "last_sequence"),
    requires=("_commits",),
)

AUDIT_WINDOWS = Report(
    name="audit_windows",
    title="Audit: report windows, late records and corrections",
    description=(
        "Each report window closed in the period: its version (above 1 once re-issued), "
        "whether it is complete (else the gatherers it lacked and why), the records that "
        "arrived after it closed, and its totals."
    ),
    sql="""SELECT to_timestamp(window_start) AS window_start, version,
       incomplete = '' AS complete, nullif(incomplete, '') AS incomplete,
       late_records, late_pending, records, bytes, checksum, closed_at
FROM windows
WHERE to_timestamp(window_start) >= $from AND to_timestamp(window_start) < $to
ORDER BY window_start""",
    params=(FROM, TO),
    columns=(
        "window_start",
        "version",
        "complete",
        "incomplete",
        "late_records",
        "late_pending",
        "records",
        "bytes",
        "checksum",
        "closed_at",
    ),
    requires=("windows",),
)

BILLING_USAGE = Report(
    name="billing_usage",
    title="Billing: usage per account and period",
    description="Usage per account, service and period, the input of rating.",
    sql=_IN_RANGE
    + """SELECT date_trunc($period, t) AS period_start,
       coalesce(account_id, '(none)') AS account_id, coalesce(service, '(none)') AS service,
       count(*) AS records, sum(bytes) AS bytes,
       sum(packets) AS packets, round(sum(duration_s), 3) AS duration_s
FROM r WHERE ($account IS NULL OR account_id = $account)
GROUP BY ALL ORDER BY period_start, account_id, service""",
    params=(
        FROM,
        TO,
        ACCOUNT,
        ReportParam(
            name="period",
            default="day",
            choices=("hour", "day", "week", "month"),
            description="billing period",
        ),
    ),
    columns=(
        "period_start",
        "account_id",
        "service",
        "records",
        "bytes",
        "packets",
        "duration_s",
    ),
    chart=ChartSpec(kind="bar", x="period_start", y="bytes", series="account_id"),
)

CHARGEBACK_DEPARTMENT = Report(
    name="chargeback_department",
    title="Accounting: charge-back per department",
    description="Usage per department (records.department, filled from LDAP) and its share.",
    sql=_IN_RANGE
    + """SELECT coalesce(department, '(none)') AS department,
       count(DISTINCT account_id) AS accounts, count(*) AS records, sum(bytes) AS bytes,
       sum(packets) AS packets, round(sum(duration_s), 3) AS duration_s,
       round(100 * sum(bytes) / sum(sum(bytes)) OVER (), 2) AS bytes_pct
FROM r GROUP BY ALL ORDER BY bytes DESC, department""",
    params=(FROM, TO),
    columns=(
        "department",
        "accounts",
        "records",
        "bytes",
        "packets",
        "duration_s",
        "bytes_pct",
    ),
    chart=ChartSpec(kind="bar", x="department", y="bytes"),
    requires_columns=("department",),
    why_missing=(
        "no procedure fills a department field; add one, e.g. "
        "department: LDAP.Person(user_name).department"
    ),
)

NETWORK_ALERTS = Report(
    name="network_alerts",
    title="Alerts raised",
    description="Alerts raised in the period, newest first, with when they cleared.",
    sql="""SELECT raised_at, kind, subject, detail, cleared_at FROM alerts
WHERE raised_at >= $from AND raised_at < $to ORDER BY raised_at DESC, id DESC""",
    params=(FROM, TO),
    columns=("raised_at", "kind", "subject", "detail", "cleared_at"),
    requires=("alerts",),
    why_missing="the manager's monitor has not started in this store",
)

#: natEvent values (IANA "natEvent" registry) that open and close a mapping; NSEL's
#: firewallEvent 1 (flow created) and 2 (flow deleted) likewise
_NAT_OPEN = "(1, 4, 6, 8, 12, 14)"
_NAT_CLOSE = "(2, 5, 7, 9, 13, 15)"
_NAT_KEY = ("exporter", "src_ip", "src_port", "protocol", "dst_ip", "dst_port",
            "post_nat_src_ip", "post_nat_src_port")  # fmt: skip

NAT_HOLDER = Report(
    name="nat_holder",
    title="Who had this public address and port at this time (NAT)",
    description=(
        "The inside hosts a NAT device mapped to public address ip (and port) at a given "
        "time: mappings opened by a NAT or firewall create event and closed by the next "
        "matching delete event (open when none came yet), and flow records with post-NAT "
        "fields whose [start, end] covers the time. margin_s widens the time both ways."
    ),
    sql=f"""WITH ev AS (
    SELECT *, coalesce(start_time, end_time) AS t,
           CASE WHEN nat_event IN {_NAT_OPEN} OR firewall_event = 1 THEN 'create'
                WHEN nat_event IN {_NAT_CLOSE} OR firewall_event = 2 THEN 'delete'
                ELSE 'flow' END AS kind
    FROM records
    WHERE post_nat_src_ip = $ip AND ($port IS NULL OR post_nat_src_port = $port)),
opened AS (
    SELECT c.record_id, min(d.t) AS until
    FROM ev c LEFT JOIN ev d ON d.kind = 'delete' AND d.t >= c.t AND {
        " AND ".join(f"d.{k} IS NOT DISTINCT FROM c.{k}" for k in _NAT_KEY)
    }
    WHERE c.kind = 'create' GROUP BY c.record_id),
held AS (
    SELECT ev.*, ev.t AS since, opened.until, 'nat_event ' || coalesce(nat_event::VARCHAR,
           'firewall_event ' || firewall_event::VARCHAR) AS evidence
    FROM ev JOIN opened USING (record_id)
    UNION ALL BY NAME
    SELECT ev.*, start_time AS since, end_time AS until, 'flow' AS evidence
    FROM ev WHERE kind = 'flow')
SELECT src_ip AS inside_ip, src_port AS inside_port, post_nat_src_ip AS public_ip,
       post_nat_src_port AS public_port, protocol, dst_ip, dst_port, since, until,
       user_name, account_id, exporter, evidence
FROM held
WHERE since <= $time + to_seconds($margin_s)
  AND (until IS NULL OR until >= $time - to_seconds($margin_s))
ORDER BY since, inside_ip, inside_port""",
    params=(
        ReportParam(name="ip", required=True, description="the public (post-NAT) address"),
        ReportParam(name="port", type="int", description="the public port (default: any)"),
        ReportParam(name="time", type="timestamp", required=True, description="when"),
        ReportParam(name="margin_s", type="int", default=0, description="clock tolerance, seconds"),
    ),
    columns=(
        "inside_ip",
        "inside_port",
        "public_ip",
        "public_port",
        "protocol",
        "dst_ip",
        "dst_port",
        "since",
        "until",
        "user_name",
        "account_id",
        "exporter",
        "evidence",
    ),
    requires_columns=("post_nat_src_ip", "post_nat_src_port", "nat_event", "firewall_event"),
    why_missing="no NetFlow/IPFIX source has run in this store",
)

BUILTIN_REPORTS: tuple[Report, ...] = (
    NETWORK_ACTIVITY,
    TOP_DESTINATIONS,
    RESOURCE_CONSUMPTION,
    AUDIT_SOURCES,
    AUDIT_GAPS,
    AUDIT_QUARANTINE,
    AUDIT_MERGES,
    AUDIT_DELIVERIES,
    AUDIT_WINDOWS,
    BILLING_USAGE,
    CHARGEBACK_DEPARTMENT,
    NETWORK_ALERTS,
    NAT_HOLDER,
)
