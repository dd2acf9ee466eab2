"""Parser throughput of every source, one core: lines/s (or requests/s answered).

Each module in ``benchmarks/source_bench/`` measures one source and returns its figures;
this script runs them all (or those named) and prints one table. ``--smoke`` runs each
on a small input, to check the benchmarks still work; its figures mean little.

    .venv/bin/python benchmarks/sources.py [--smoke] [NAME ...]
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small inputs, quick check")
    parser.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # one core, as the targets are stated
    import source_bench
    from source_bench import Figure

    names = args.names or sorted(m.name for m in pkgutil.iter_modules(source_bench.__path__))
    figures: list[Figure] = []
    for name in names:
        module = importlib.import_module(f"source_bench.{name}")
        figures.extend(module.run(args.smoke))
    print(f"{'parser':<28}{'unit':<12}{'n':>10}{'rate/s':>14}{'target/s':>12}  note")
    for f in figures:
        target = f"{f.target_per_s:,.0f}" if f.target_per_s else ""
        print(f"{f.parser:<28}{f.unit:<12}{f.n:>10,}{f.rate:>14,.0f}{target:>12}  {f.note}")


if __name__ == "__main__":
    main()
