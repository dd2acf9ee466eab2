"""Throughput of the stages (filter, aggregate, merge …), one core: records/s.

Each module in ``benchmarks/stage_bench/`` measures one stage (or a chain of them) and
returns its figures; this script runs them all (or those named) and prints one table.
``--smoke`` runs each on a small input, to check the benchmarks still work; its figures
mean little.

    .venv/bin/python benchmarks/stages.py [--smoke] [NAME ...]

The process is pinned to one CPU and polars to one thread *before* polars is imported
(``POLARS_MAX_THREADS`` is read once, at import), as the targets are stated per core.
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # before anything imports polars

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small inputs, quick check")
    parser.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    import stage_bench
    from stage_bench import Figure

    names = args.names or sorted(m.name for m in pkgutil.iter_modules(stage_bench.__path__))
    figures: list[Figure] = []
    for name in names:
        module = importlib.import_module(f"stage_bench.{name}")
        figures.extend(module.run(args.smoke))
    print(f"{'stage':<30}{'unit':<10}{'n':>12}{'rate/s':>14}{'target/s':>12}  note")
    for f in figures:
        target = f"{f.target_per_s:,.0f}" if f.target_per_s else ""
        print(f"{f.stage:<30}{f.unit:<10}{f.n:>12,}{f.rate:>14,.0f}{target:>12}  {f.note}")


if __name__ == "__main__":
    main()
