"""Sampling rates: learnt from options data, applied to every data record.

Where a rate comes from (RFC 3954 §8 fields 34 SAMPLING_INTERVAL, 48 FLOW_SAMPLER_ID,
50 FLOW_SAMPLER_RANDOM_INTERVAL; RFC 7012 §5.2 and RFC 5477 §8.2 samplingPacketInterval
305 / samplingPacketSpace 306, samplingSize 309 / samplingPopulation 310, selectorId
302), first match wins, per data record:

1. the record carries a sampler / selector id (48 or 302) whose rate options data gave;
2. options data gave a rate for the record's exporter and domain, without a sampler id;
3. the record carries a sampling interval itself (34, 50, 305/306, 309/310);
4. the operator's rate for the exporter (``exporter_sampling_rates``);
5. the operator's default rate.

A rate of 0 in any of them means "not said" and falls through: NetFlow uses 0 for
"unsampled or unknown", and multiplying by 0 would erase the traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from netdistill.sources.netflow import elements as ie
from netdistill.sources.netflow.extract import Columns
from netdistill.sources.netflow.templates import DomainKey, TemplateCache

_U32_MAX = np.uint64(0xFFFFFFFF)


def interval_in_record(columns: Columns, n: int) -> np.ndarray:
    """Sampling rate stated inside each record (0 where none): 1-in-N."""
    rate = np.zeros(n, dtype=np.uint64)
    for element_id in (ie.SAMPLING_INTERVAL, ie.SAMPLER_RANDOM_INTERVAL):
        column = columns.get(element_id)
        if column is not None:
            column = column.astype(np.uint64)
            rate = np.where(rate == 0, column, rate)
    interval = columns.get(ie.SAMPLING_PACKET_INTERVAL)
    if interval is not None:
        interval = interval.astype(np.uint64)
        space = columns.get(ie.SAMPLING_PACKET_SPACE)
        space = np.zeros(n, np.uint64) if space is None else space.astype(np.uint64)
        # n packets selected then m skipped: 1 in (n + m) / n (RFC 5477 §8.2.2)
        with np.errstate(divide="ignore", invalid="ignore"):
            systematic = np.where(interval > 0, (interval + space) // np.maximum(interval, 1), 0)
        rate = np.where(rate == 0, systematic, rate)
    size, population = columns.get(ie.SAMPLING_SIZE), columns.get(ie.SAMPLING_POPULATION)
    if size is not None and population is not None:
        size, population = size.astype(np.uint64), population.astype(np.uint64)
        random = np.where(size > 0, population // np.maximum(size, 1), 0)
        rate = np.where(rate == 0, random, rate)
    return np.minimum(rate, _U32_MAX)


def _sampler_ids(columns: Columns) -> np.ndarray | None:
    column = columns.get(ie.SAMPLER_ID)
    if column is None:
        column = columns.get(ie.SELECTOR_ID)
    return None if column is None else column.astype(np.uint64)


def learn_options(columns: Columns, n: int, domain: DomainKey, cache: TemplateCache) -> None:
    """Fold the records of one options data set into the cache. One Python step per
    options record: options records are a handful per exporter per minute, never the
    hot path."""
    rates = interval_in_record(columns, n)
    sampler_ids = _sampler_ids(columns)
    for i in range(n):
        rate = int(rates[i])
        if rate == 0:
            continue
        if sampler_ids is not None:
            cache.set_sampler_rate(domain, int(sampler_ids[i]), rate)
        else:
            cache.set_domain_rate(domain, rate)
    init = columns.get(ie.SYSTEM_INIT_TIME_MILLISECONDS)
    if init is not None and n:
        cache.set_init_time(domain, int(init[-1]))


def record_rates(
    columns: Columns,
    counts: np.ndarray,
    set_domain: np.ndarray,
    domains: Sequence[DomainKey],
    cache: TemplateCache,
    exporter_rates: Mapping[str, int],
    default_rate: int,
) -> np.ndarray:
    """Sampling rate of every record of a template group (uint32, ≥ 1). ``counts[s]`` is
    the number of records of set ``s``, whose domain is ``domains[set_domain[s]]``
    (distinct domains: look-ups are per domain, not per set or record)."""
    n = int(counts.sum())
    domain_rate = np.array([cache.domain_rates.get(d, 0) for d in domains], np.uint64)
    fallback = np.array(
        [max(1, int(exporter_rates.get(d[0], default_rate))) for d in domains], np.uint64
    )
    record_domain = np.repeat(set_domain, counts)
    rate = domain_rate[record_domain]
    sampler_ids = _sampler_ids(columns)
    if sampler_ids is not None and cache.sampler_rates:
        # one dictionary look-up per distinct (domain, sampler), not per record
        pairs, inverse = np.unique(
            np.stack([record_domain.astype(np.uint64), sampler_ids]), axis=1, return_inverse=True
        )
        known = np.array(
            [
                cache.sampler_rates.get((*domains[int(c)], int(sid)), 0)
                for c, sid in zip(pairs[0], pairs[1], strict=True)
            ],
            np.uint64,
        )
        by_sampler = known[inverse.reshape(-1)]
        rate = np.where(by_sampler > 0, by_sampler, rate)
    if not rate.all():
        rate = np.where(rate > 0, rate, interval_in_record(columns, n))
        rate = np.where(rate > 0, rate, fallback[record_domain])
    return np.minimum(rate, _U32_MAX).astype(np.uint32)
