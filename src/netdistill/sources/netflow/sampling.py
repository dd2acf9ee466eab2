"""Sampling rates: learnt from options data, applied to every data record.

Where a rate comes from, first match wins, per data record:

1. the record carries a sampler / selector id (v9 FLOW_SAMPLER_ID 48, IPFIX selectorId
   302) whose rate options data gave;
2. options data gave a rate for the record's exporter and domain without a sampler id;
3. the record carries a sampling interval itself;
4. the record names no sampler, and the domain's samplers all share one rate (IOS XR
   announces its sampler by selectorId but puts no id in its flow records);
5. the operator's rate for the exporter (``exporter_sampling_rates``);
6. the operator's default rate.

A rate of 0 in any of them means "not said" and falls through: NetFlow uses 0 for
"unsampled or unknown", and multiplying by 0 would erase the traffic.

How a rate ("1 in N": the factor counters are multiplied by) is read from the elements
(RFC 3954 §8, RFC 7012 §5.2, RFC 5477 §8.2, algorithms of the IANA PSAMP registry):

========================================  ===============================================
v9 SAMPLING_INTERVAL 34, FLOW_SAMPLER_      N. SAMPLING_ALGORITHM 35 / FLOW_SAMPLER_MODE 49
RANDOM_INTERVAL 50                          (deterministic or random) do not change it
1 systematic count-based                    (samplingPacketInterval 305 + samplingPacket
                                            Space 306) / 305; 305 without 306 is N itself,
                                            as Cisco IOS XR sends it (bug CSCwe26529)
2 systematic time-based                     (samplingTimeInterval 307 + Space 308) / 307:
                                            an estimate, exact for steady traffic
3 random n-out-of-N                         samplingPopulation 310 / samplingSize 309; 305
                                            alone is N (IOS XR, as above)
4 uniform probabilistic                     1 / samplingProbability 311 (float64, or float32
                                            in reduced size)
5 property match filtering                  none: a filter keeps every matching packet, it
                                            estimates nothing; records keep 3.–5. above
6-8 hash-based filtering                    (hashOutputRangeMax 330 − Min 329 + 1) /
                                            (hashSelectedRangeMax 332 − Min 331 + 1): the
                                            share of a uniform hash's range selected
========================================  ===============================================

With selectorAlgorithm 304 in the record, its own elements are read; without it, the
first of 34/50, 309/310, 305/306, 307/308, 311, 329-332 present. Ratios are rounded to
the nearest integer (rates are whole numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from netdistill.sources.netflow import elements as ie
from netdistill.sources.netflow.extract import Columns
from netdistill.sources.netflow.templates import DomainKey, TemplateCache

_U32_MAX = np.uint64(0xFFFFFFFF)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """round(numerator / denominator) as uint64, 0 where the denominator is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.rint(numerator.astype(np.float64) / denominator.astype(np.float64))
    value = np.where((denominator > 0) & np.isfinite(value), value, 0)
    return np.clip(value, 0, float(_U32_MAX)).astype(np.uint64)


def _probability(column: np.ndarray) -> np.ndarray:
    """samplingProbability bits → float64: 4-byte fields are float32; a value below
    2**32 in an 8-byte column is a float32 too (a float64 that small is < 1e-300)."""
    if column.dtype.itemsize == 4:
        return column.astype(np.uint32).view(np.float32).astype(np.float64)
    bits = column.astype(np.uint64)
    as32 = (bits & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
    return np.where(bits < np.uint64(1 << 32), as32.astype(np.float64), bits.view(np.float64))


def _first_nonzero(candidates: list[np.ndarray], n: int) -> np.ndarray:
    rate = np.zeros(n, np.uint64)
    for candidate in candidates:
        rate = np.where(rate == 0, candidate, rate)
    return rate


def interval_in_record(columns: Columns, n: int) -> np.ndarray:
    """Sampling rate stated inside each record (0 where none): 1-in-N."""
    zero = np.zeros(n, np.uint64)

    def get(element_id: int) -> np.ndarray | None:
        column = columns.get(element_id)
        return None if column is None else column.astype(np.uint64)

    v9 = _first_nonzero(
        [c for c in (get(ie.SAMPLING_INTERVAL), get(ie.SAMPLER_RANDOM_INTERVAL)) if c is not None],
        n,
    )
    interval, space = get(ie.SAMPLING_PACKET_INTERVAL), get(ie.SAMPLING_PACKET_SPACE)
    count_based = zero
    if interval is not None:
        count_based = interval if space is None else _ratio(interval + space, interval)
    size, population = get(ie.SAMPLING_SIZE), get(ie.SAMPLING_POPULATION)
    random = zero if size is None or population is None else _ratio(population, size)
    t_interval, t_space = get(ie.SAMPLING_TIME_INTERVAL), get(ie.SAMPLING_TIME_SPACE)
    time_based = (
        zero if t_interval is None or t_space is None else _ratio(t_interval + t_space, t_interval)
    )
    probability = columns.get(ie.SAMPLING_PROBABILITY)
    probabilistic = zero
    if probability is not None:
        p = _probability(probability)
        ok = (p > 0) & (p <= 1)
        probabilistic = _ratio(np.where(ok, 1.0, 0.0), np.where(ok, p, 0.0))
    bounds = [get(e) for e in range(ie.HASH_OUTPUT_RANGE_MIN, ie.HASH_SELECTED_RANGE_MAX + 1)]
    hashed = zero
    if not any(b is None for b in bounds):
        out_min, out_max, sel_min, sel_max = (b for b in bounds if b is not None)
        hashed = _ratio(out_max - out_min + 1, sel_max - sel_min + 1)
    rate = _first_nonzero([v9, random, count_based, time_based, probabilistic, hashed], n)
    algorithm = get(ie.SELECTOR_ALGORITHM)
    if algorithm is not None:
        chosen = np.select(
            [
                algorithm == 1,
                algorithm == 2,
                algorithm == 3,
                algorithm == 4,
                (algorithm >= 6) & (algorithm <= 8),
            ],
            [count_based, time_based, np.where(random > 0, random, count_based),
             probabilistic, hashed],
            default=0,
        )  # fmt: skip
        rate = np.where(chosen > 0, chosen, np.where(algorithm == 5, 0, rate))
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
    sampler_ids = _sampler_ids(columns)
    rate = domain_rate[record_domain]
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
    if sampler_ids is None and not rate.all():
        # no selector named: the domain's selectors, when they agree on one rate
        only = np.array([cache.only_sampler_rate(d) for d in domains], np.uint64)
        rate = np.where(rate > 0, rate, only[record_domain])
    if not rate.all():
        rate = np.where(rate > 0, rate, fallback[record_domain])
    return np.minimum(rate, _U32_MAX).astype(np.uint32)
