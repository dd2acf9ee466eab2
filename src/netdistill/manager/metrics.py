"""The manager's Prometheus metric families, built at scrape time from plain data.

Names follow Prometheus conventions (base units, ``_total`` for counters, which
prometheus-client appends). Gatherer counters are the gatherer's own running totals as
its last heartbeat reported them: they restart from zero when the gatherer restarts,
which Prometheus' ``rate()`` handles as a counter reset.

==============================================  =======  ===============================
metric                                          type     labels
==============================================  =======  ===============================
netdistill_gatherer_up                          gauge    gatherer
netdistill_gatherer_last_seen_timestamp_seconds gauge    gatherer
netdistill_gatherer_uptime_seconds              gauge    gatherer
netdistill_gatherer_spool_depth_batches         gauge    gatherer
netdistill_gatherer_spool_depth_bytes           gauge    gatherer
netdistill_gatherer_spool_oldest_age_seconds    gauge    gatherer
netdistill_gatherer_records_total               counter  gatherer
netdistill_gatherer_errors_total                counter  gatherer
netdistill_gatherer_source_records_total        counter  gatherer, source
netdistill_gatherer_source_records_per_second   gauge    gatherer, source
netdistill_gatherer_dropped_total               counter  gatherer, source, reason
netdistill_gatherer_quarantined_total           counter  gatherer, source, reason
netdistill_gatherer_quarantine_counted_only_total counter gatherer, source, reason
netdistill_manager_commits_total                counter
netdistill_manager_committed_records_total      counter
netdistill_source_datagrams_total               counter  source  (the local pipeline)
netdistill_source_records_total                 counter  source
netdistill_source_dropped_total                 counter  source, reason
netdistill_source_quarantined_total             counter  source, reason
netdistill_source_quarantine_counted_only_total counter  source, reason
netdistill_alerts_open                          gauge
netdistill_window_last_closed_start_seconds     gauge
==============================================  =======  ===============================

Spool drops are reported with ``source="spool"``. ``quarantined`` counts the bad inputs
stored in the quarantine, ``quarantine_counted_only`` those past the source's quarantine
cap, only counted (``sources/quarantine.py``); both by the reason they were rejected for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

G = "netdistill_gatherer_"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def families(
    *,
    now: float,
    gatherers: Sequence[tuple[str, bool, float, dict[str, Any]]],
    commits: dict[str, Any],
    status: dict[str, Any],
    open_alerts: int,
) -> Iterator[Metric]:
    """``gatherers`` holds (name, silent, last_seen, last heartbeat) per gatherer."""
    up = GaugeMetricFamily(
        G + "up", "1 while heartbeats arrive, 0 once silent", labels=["gatherer"]
    )
    seen = GaugeMetricFamily(
        G + "last_seen_timestamp_seconds", "when its last heartbeat arrived", labels=["gatherer"]
    )
    uptime = GaugeMetricFamily(G + "uptime_seconds", "as it reported", labels=["gatherer"])
    spool = {
        key: GaugeMetricFamily(G + name, help_, labels=["gatherer"])
        for key, name, help_ in (
            ("depth_batches", "spool_depth_batches", "batches not yet acknowledged by all"),
            ("depth_bytes", "spool_depth_bytes", "bytes of those batches"),
            ("oldest_age_s", "spool_oldest_age_seconds", "age of the oldest spooled batch"),
        )
    }
    records = CounterMetricFamily(G + "records", "records it committed", labels=["gatherer"])
    errors = CounterMetricFamily(G + "errors", "errors it counted", labels=["gatherer"])
    src_records = CounterMetricFamily(
        G + "source_records", "records per source", labels=["gatherer", "source"]
    )
    src_rate = GaugeMetricFamily(
        G + "source_records_per_second",
        "since the previous heartbeat",
        labels=["gatherer", "source"],
    )
    dropped = CounterMetricFamily(
        G + "dropped", "inputs it could not use", labels=["gatherer", "source", "reason"]
    )
    g_quarantine = _quarantine_families(G, ["gatherer", "source", "reason"])
    for name, silent, last_seen, beat in gatherers:
        status_g: dict[str, Any] = beat.get("status") or {}
        up.add_metric([name], 0.0 if silent else 1.0)
        seen.add_metric([name], last_seen)
        if (value := _num(beat.get("uptime_s"))) is not None:
            uptime.add_metric([name], value)
        for key, family in spool.items():
            if (value := _num((status_g.get("spool") or {}).get(key))) is not None:
                family.add_metric([name], value)
        total = status_g.get("committed_records", status_g.get("records"))
        if (value := _num(total)) is not None:
            records.add_metric([name], value)
        if (value := _num(status_g.get("errors"))) is not None:
            errors.add_metric([name], value)
        for source in status_g.get("sources") or []:
            label = str(source.get("name", "?"))
            if (value := _num(source.get("records"))) is not None:
                src_records.add_metric([name, label], value)
            for reason, n in (source.get("dropped") or {}).items():
                dropped.add_metric([name, label, str(reason)], float(n))
            _add_quarantine(g_quarantine, [name, label], source)
        for reason, n in ((status_g.get("spool") or {}).get("dropped") or {}).items():
            dropped.add_metric([name, "spool", str(reason)], float(n))
        for label, rate in (beat.get("rates") or {}).items():
            src_rate.add_metric([name, str(label)], float(rate))
    yield from (up, seen, uptime, *spool.values(), records, errors, src_records, src_rate)
    yield dropped
    yield from g_quarantine

    commits_total = CounterMetricFamily("netdistill_manager_commits", "batches committed")
    commits_total.add_metric([], float(commits["n"]))
    committed = CounterMetricFamily(
        "netdistill_manager_committed_records", "records committed by this manager's store"
    )
    committed.add_metric([], float(commits["r"]))
    yield from (commits_total, committed)

    local = [
        CounterMetricFamily(f"netdistill_source_{key}", help_, labels=["source"])
        for key, help_ in (("datagrams", "datagrams received"), ("records", "records decoded"))
    ]
    local_dropped = CounterMetricFamily(
        "netdistill_source_dropped",
        "inputs the local pipeline could not use",
        labels=["source", "reason"],
    )
    local_quarantine = _quarantine_families("netdistill_source_", ["source", "reason"])
    for source in status.get("sources") or []:
        label = str(source.get("name", "?"))
        for counter, key in zip(local, ("datagrams", "records"), strict=True):
            if (value := _num(source.get(key))) is not None:
                counter.add_metric([label], value)
        for reason, n in (source.get("dropped") or {}).items():
            local_dropped.add_metric([label, str(reason)], float(n))
        _add_quarantine(local_quarantine, [label], source)
    yield from (*local, local_dropped, *local_quarantine)

    alerts = GaugeMetricFamily("netdistill_alerts_open", "alerts raised and not yet cleared")
    alerts.add_metric([], float(open_alerts))
    yield alerts
    last = (status.get("windows") or {}).get("last_closed")
    if last is not None:
        window = GaugeMetricFamily(
            "netdistill_window_last_closed_start_seconds", "start of the last closed window"
        )
        window.add_metric([], float(last))
        yield window


def _quarantine_families(prefix: str, labels: list[str]) -> tuple[Metric, Metric]:
    return (
        CounterMetricFamily(
            prefix + "quarantined", "bad inputs stored in the quarantine", labels=labels
        ),
        CounterMetricFamily(
            prefix + "quarantine_counted_only",
            "bad inputs past the quarantine cap: counted, not stored",
            labels=labels,
        ),
    )


def _add_quarantine(families: tuple[Metric, Metric], labels: list[str], source: Any) -> None:
    """A source status's ``quarantine`` counts (``Pipeline.status``) into ``families``."""
    quarantine = source.get("quarantine") or {}
    for family, key in zip(families, ("stored", "counted_only"), strict=True):
        for reason, n in (quarantine.get(key) or {}).items():
            if (value := _num(n)) is not None:
                family.add_metric([*labels, str(reason)], value)  # type: ignore[attr-defined]
