"""The manager's Prometheus metric families, built at scrape time from plain data.

Names follow Prometheus conventions: base units, ``_total`` for counters (which
prometheus-client appends), no rates — a rate is PromQL's job (``rate(…_total[5m])``).
Gatherer figures are the gatherer's own running totals as its last heartbeat reported
them: they restart from zero when the gatherer restarts, which ``rate()`` handles as a
counter reset. In ``netdistill run`` (and for sources a ``manager`` runs itself) the
local pipeline is a gatherer too (``gatherer="local"`` or its name), always up; it
commits straight to the store, so its spool gauges are 0.

=================================================  =========  ==============================
metric                                             type       labels
=================================================  =========  ==============================
netdistill_build_info                              gauge (1)  version, python
netdistill_gatherer_up                             gauge      gatherer
netdistill_gatherer_last_seen_timestamp_seconds    gauge      gatherer
netdistill_gatherer_uptime_seconds                 gauge      gatherer
netdistill_gatherer_spool_depth_batches            gauge      gatherer
netdistill_gatherer_spool_depth_bytes              gauge      gatherer
netdistill_gatherer_spool_oldest_age_seconds       gauge      gatherer
netdistill_gatherer_records_total                  counter    gatherer
netdistill_gatherer_errors_total                   counter    gatherer
netdistill_gatherer_source_datagrams_total         counter    gatherer, source
netdistill_gatherer_source_received_bytes_total    counter    gatherer, source
netdistill_gatherer_source_records_total           counter    gatherer, source
netdistill_gatherer_dropped_total                  counter    gatherer, source, reason
netdistill_gatherer_sequence_lost_total            counter    gatherer, source, exporter
netdistill_gatherer_quarantined_total              counter    gatherer, source, reason
netdistill_gatherer_quarantine_counted_only_total  counter    gatherer, source, reason
netdistill_lookup_keys_total                       counter    gatherer, lookup
netdistill_lookup_cache_hits_total                 counter    gatherer, lookup
netdistill_lookup_misses_total                     counter    gatherer, lookup
netdistill_lookup_timeouts_total                   counter    gatherer, lookup
netdistill_lookup_errors_total                     counter    gatherer, lookup
netdistill_lookup_call_duration_seconds            histogram  gatherer, lookup
netdistill_manager_commits_total                   counter
netdistill_manager_committed_records_total         counter
netdistill_source_datagrams_total                  counter    source  (the local pipeline)
netdistill_source_records_total                    counter    source
netdistill_source_dropped_total                    counter    source, reason
netdistill_source_quarantined_total                counter    source, reason
netdistill_source_quarantine_counted_only_total    counter    source, reason
netdistill_stage_rounds_total                      counter
netdistill_stage_round_duration_seconds            histogram  stage, type
netdistill_stage_lag_records                       gauge      stage, type
netdistill_stage_failing                           gauge      stage, type
netdistill_stage_late_records_total                counter    stage, type  (rollups)
netdistill_alerts_open                             gauge
netdistill_windows_closed_total                    counter
netdistill_window_last_closed_start_seconds        gauge
netdistill_window_late_records                     gauge
netdistill_window_late_records_by_window           gauge      window_start (20 newest)
netdistill_windows_incomplete                      gauge
netdistill_windows_corrected                       gauge
=================================================  =========  ==============================

Spool drops are reported with ``source="spool"``. ``quarantined`` counts the bad inputs
stored in the quarantine, ``quarantine_counted_only`` those past the source's quarantine
cap, only counted (``sources/quarantine.py``); both by the reason they were rejected for.
``netdistill_window_late_records`` is
the number of stored records that arrived after the report window they belong to had
closed (``WindowJob.late_records``, a sum over the ``windows`` table, at most once a
minute); ``netdistill_window_late_records_by_window`` the late records of each of the 20
newest windows that have some, and ``netdistill_windows_incomplete`` /
``netdistill_windows_corrected`` the windows closed incomplete (not yet re-issued
complete) and re-issued at least once (``manager/windows.py``).

Besides these, the scrape has prometheus-client's default ``process_*`` (CPU, memory,
open files, start time), ``python_info`` and ``python_gc_*`` families
(``registry()``).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from netdistill import __version__

G = "netdistill_gatherer_"
L = "netdistill_lookup_"
S = "netdistill_stage_"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _add_histogram(family: HistogramMetricFamily, labels: list[str], snapshot: Any) -> None:
    """A ``DurationHistogram.snapshot()`` (``netdistill/timing.py``) as one labelled series."""
    if not isinstance(snapshot, dict) or not snapshot.get("buckets"):
        return
    buckets = [
        ("+Inf" if bound == "+Inf" else repr(float(bound)), float(count))
        for bound, count in snapshot["buckets"]
    ]
    family.add_metric(labels, buckets, float(snapshot.get("sum") or 0.0))


def build_info() -> Metric:
    info = GaugeMetricFamily(
        "netdistill_build_info", "always 1; the version running", labels=["version", "python"]
    )
    info.add_metric([__version__, platform.python_version()], 1.0)
    return info


def local_gatherer(status: dict[str, Any], now: float) -> tuple[str, bool, float, dict[str, Any]]:
    """The local pipeline of ``run`` (its status merged into the manager's) as a gatherer
    that is always up and has no spool."""
    return (
        str(status["gatherer"]),
        False,
        now,
        {
            "uptime_s": status.get("uptime_s"),
            "status": {
                **status,
                "spool": {"depth_batches": 0, "depth_bytes": 0, "oldest_age_s": 0.0},
            },
        },
    )


def gatherer_families(gatherers: Sequence[tuple[str, bool, float, dict[str, Any]]]) -> list[Metric]:
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
    per_source = {
        key: CounterMetricFamily(G + name, help_, labels=["gatherer", "source"])
        for key, name, help_ in (
            ("datagrams", "source_datagrams", "datagrams (or lines) received per source"),
            ("bytes_received", "source_received_bytes", "bytes received per source"),
            ("records", "source_records", "records per source"),
        )
    }
    dropped = CounterMetricFamily(
        G + "dropped", "inputs it could not use", labels=["gatherer", "source", "reason"]
    )
    g_quarantine = _quarantine_families(G, ["gatherer", "source", "reason"])
    lost = CounterMetricFamily(
        G + "sequence_lost",
        "export datagrams (or records) missing from the exporter's sequence numbers",
        labels=["gatherer", "source", "exporter"],
    )
    lookup = {
        key: CounterMetricFamily(L + key, help_, labels=["gatherer", "lookup"])
        for key, help_ in (
            ("keys", "keys asked by procedures"),
            ("cache_hits", "keys answered from the cache"),
            ("misses", "keys the backend had no answer for"),
            ("timeouts", "keys not answered in time"),
            ("errors", "backend calls that failed"),
        )
    }
    lookup_seconds = HistogramMetricFamily(
        L + "call_duration_seconds", "one backend call", labels=["gatherer", "lookup"]
    )
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
            for key, counter in per_source.items():
                if (value := _num(source.get(key))) is not None:
                    counter.add_metric([name, label], value)
            for reason, n in (source.get("dropped") or {}).items():
                dropped.add_metric([name, label, str(reason)], float(n))
            _add_quarantine(g_quarantine, [name, label], source)
            for exporter, n in (source.get("sequence_lost") or {}).items():
                lost.add_metric([name, label, str(exporter)], float(n))
        for reason, n in ((status_g.get("spool") or {}).get("dropped") or {}).items():
            dropped.add_metric([name, "spool", str(reason)], float(n))
        for item in status_g.get("lookups") or []:
            label = str(item.get("name", "?"))
            for key, counter in lookup.items():
                if (value := _num(item.get(key))) is not None:
                    counter.add_metric([name, label], value)
            _add_histogram(lookup_seconds, [name, label], item.get("latency"))
    return [
        up,
        seen,
        uptime,
        *spool.values(),
        records,
        errors,
        *per_source.values(),
        dropped,
        *g_quarantine,
        lost,
        *lookup.values(),
        lookup_seconds,
    ]


def stage_families(stages: dict[str, Any]) -> list[Metric]:
    """From ``StageRunner.status()``."""
    rounds = CounterMetricFamily(S + "rounds", "rounds of the manager's stage runner")
    rounds.add_metric([], float(stages.get("rounds") or 0))
    labels = ["stage", "type"]
    duration = HistogramMetricFamily(S + "round_duration_seconds", "one stage round", labels=labels)
    lag = GaugeMetricFamily(
        S + "lag_records", "records committed that the stage has not read yet", labels=labels
    )
    failing = GaugeMetricFamily(S + "failing", "1 while its last round failed", labels=labels)
    late = CounterMetricFamily(
        S + "late_records", "records that reached a period already closed", labels=labels
    )
    for stage in stages.get("stages") or []:
        key = [str(stage.get("name", "?")), str(stage.get("type", "?"))]
        _add_histogram(duration, key, stage.get("round_seconds"))
        if (value := _num(stage.get("lag_records"))) is not None:
            lag.add_metric(key, value)
        failing.add_metric(key, 1.0 if stage.get("error") else 0.0)
        if (value := _num(stage.get("late_records"))) is not None:
            late.add_metric(key, value)
    return [rounds, duration, lag, failing, late]


def families(
    *,
    now: float,
    gatherers: Sequence[tuple[str, bool, float, dict[str, Any]]],
    commits: dict[str, Any],
    status: dict[str, Any],
    open_alerts: int,
    window_late_records: int | None = None,
) -> Iterator[Metric]:
    """Every family of one scrape; ``status`` is the manager's ``/api/status``."""
    yield build_info()
    everyone = list(gatherers)
    if status.get("gatherer") and all(g[0] != status["gatherer"] for g in everyone):
        everyone.append(local_gatherer(status, now))
    yield from gatherer_families(everyone)

    commits_total = CounterMetricFamily("netdistill_manager_commits", "batches committed")
    commits_total.add_metric([], float(commits["n"]))
    committed = CounterMetricFamily(
        "netdistill_manager_committed_records", "records committed by this manager's store"
    )
    committed.add_metric([], float(commits["r"]))
    yield from (commits_total, committed)
    yield from _local_sources(status.get("sources") or [])
    if isinstance(status.get("stages"), dict):
        yield from stage_families(status["stages"])

    alerts = GaugeMetricFamily("netdistill_alerts_open", "alerts raised and not yet cleared")
    alerts.add_metric([], float(open_alerts))
    yield alerts
    windows = status.get("windows") or {}
    closed = CounterMetricFamily("netdistill_windows_closed", "report windows closed")
    closed.add_metric([], float(windows.get("closed_since_start") or 0))
    yield closed
    last = windows.get("last_closed")
    if last is not None:
        window = GaugeMetricFamily(
            "netdistill_window_last_closed_start_seconds", "start of the last closed window"
        )
        window.add_metric([], float(last))
        yield window
    if window_late_records is not None:
        late = GaugeMetricFamily(
            "netdistill_window_late_records",
            "stored records that arrived after their report window closed",
        )
        late.add_metric([], float(window_late_records))
        yield late
    per_window = GaugeMetricFamily(
        "netdistill_window_late_records_by_window",
        "late records of one window (the 20 newest windows that have some)",
        labels=["window_start"],
    )
    for row in windows.get("late_or_incomplete") or []:
        if row.get("late_records"):
            per_window.add_metric([str(row["start"])], float(row["late_records"]))
    yield per_window
    for key, name, help_ in (
        ("incomplete_windows", "netdistill_windows_incomplete", "windows closed incomplete"),
        ("corrected_windows", "netdistill_windows_corrected", "windows re-issued"),
    ):
        if (value := _num(windows.get(key))) is not None:
            family = GaugeMetricFamily(name, help_)
            family.add_metric([], value)
            yield family


def _local_sources(sources: Iterable[dict[str, Any]]) -> list[Metric]:
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
    for source in sources:
        label = str(source.get("name", "?"))
        for counter, key in zip(local, ("datagrams", "records"), strict=True):
            if (value := _num(source.get(key))) is not None:
                counter.add_metric([label], value)
        for reason, n in (source.get("dropped") or {}).items():
            local_dropped.add_metric([label, str(reason)], float(n))
        _add_quarantine(local_quarantine, [label], source)
    return [*local, local_dropped, *local_quarantine]


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
