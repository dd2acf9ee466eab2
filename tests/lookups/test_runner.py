"""The runner: TTL, size bound, negative answers, single-flight and timeouts, counted."""

from __future__ import annotations

import threading
import time
from typing import Literal

import pyarrow as pa

from netdistill.lookups.base import CacheConfig, Function, LookupConfigBase, Param
from netdistill.lookups.runner import LookupRunner


class SquareConfig(LookupConfigBase):
    type: Literal["square"] = "square"

    def functions(self):
        return [Function(self.name, "Square", (Param("n", "int64"),), (Param("sq", "int64"),))]


class SquareBackend:
    """Answers n*n for n >= 0 and a miss for n < 0, after ``delay_s``; counts keys asked."""

    keys_per_call = 1
    concurrent_calls = True

    def __init__(self, config, delay_s=0.0, gate=None):
        self.config = config
        self.delay_s = delay_s
        self.gate = gate
        self.asked: list[int] = []
        self.lock = threading.Lock()

    def functions(self):
        return self.config.functions()

    def call(self, function, keys):
        if self.gate is not None:
            self.gate.wait()
        time.sleep(self.delay_s)
        values = keys.column(0).to_pylist()
        with self.lock:
            self.asked += values
        return pa.table({"sq": pa.array([v * v if v >= 0 else None for v in values], pa.int64())})

    def close(self):
        pass


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def keys(*values):
    return pa.table({"n": pa.array(values, pa.int64())})


def test_ttl_negative_ttl_and_counters():
    config = SquareConfig(name="Sq", cache=CacheConfig(size=100, ttl_s=10, negative_ttl_s=2))
    backend, clock = SquareBackend(config), Clock()
    runner = LookupRunner(backend, config, clock=clock)
    assert runner.call("Square", keys(1, 2, -1)).column("sq").to_pylist() == [1, 4, None]
    assert sorted(backend.asked) == [-1, 1, 2]
    clock.now = 1.9
    assert runner.call("Square", keys(1, 2, -1)).column("sq").to_pylist() == [1, 4, None]
    assert len(backend.asked) == 3  # everything from the cache, the miss too
    clock.now = 2.0  # the negative answer expired, the positive ones not
    runner.call("Square", keys(1, 2, -1))
    assert backend.asked[3:] == [-1]
    clock.now = 10.0
    runner.call("Square", keys(1, 2))
    assert sorted(backend.asked[4:]) == [1, 2]
    c = runner.counters
    assert (c.keys, c.cache_hits, c.calls, c.misses) == (11, 5, 6, 3)


def test_size_bound_evicts_least_recently_used():
    config = SquareConfig(name="Sq", cache=CacheConfig(size=2))
    backend = SquareBackend(config)
    runner = LookupRunner(backend, config)
    runner.call("Square", keys(1, 2))
    runner.call("Square", keys(1))  # 1 is now the most recent
    runner.call("Square", keys(3))  # evicts 2
    assert len(runner.cache) == 2
    runner.call("Square", keys(1, 2))
    assert backend.asked == [1, 2, 3, 2]


def test_single_flight_one_backend_call_for_identical_concurrent_keys():
    config = SquareConfig(name="Sq", timeout_s=5)
    gate = threading.Event()
    backend = SquareBackend(config, gate=gate)
    runner = LookupRunner(backend, config)
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                runner.call("Square", keys(7, 8)).column("sq").to_pylist()
            )
        )
        for _ in range(5)
    ]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join()
    assert results == [[49, 64]] * 5
    assert sorted(backend.asked) == [7, 8]


def test_timeout_gives_nulls_counts_them_and_caches_nothing():
    config = SquareConfig(name="Sq", timeout_s=0.3, concurrency=4)
    backend = SquareBackend(config, delay_s=2.0)
    runner = LookupRunner(backend, config)
    started = time.monotonic()
    got = runner.call("Square", keys(1, 2, 3, 4))
    elapsed = time.monotonic() - started
    assert got.column("sq").to_pylist() == [None] * 4
    assert 0.3 <= elapsed < 0.6
    assert runner.counters.timeouts == 4
    assert len(runner.cache) == 0
    runner.close()


def test_null_keys_are_not_asked():
    config = SquareConfig(name="Sq")
    backend = SquareBackend(config)
    runner = LookupRunner(backend, config)
    assert runner.call("Square", keys(None, 3)).column("sq").to_pylist() == [None, 9]
    assert backend.asked == [3]
