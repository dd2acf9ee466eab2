"""The runner shared by the benchmark scripts made of modules (``sources.py`` over
``source_bench/``, ``stages.py`` over ``stage_bench/``): options, one pinned core, every
module's ``run(smoke)`` figures (or those named), one table."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
from typing import Any


def run_suite(package: str, label: str, description: str) -> None:
    """Run the modules of ``package``; ``label`` is the figure attribute naming a row."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="small inputs, quick check")
    parser.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    modules = importlib.import_module(package)
    names = args.names or sorted(m.name for m in pkgutil.iter_modules(modules.__path__))
    figures: list[Any] = []
    for name in names:
        figures.extend(importlib.import_module(f"{package}.{name}").run(args.smoke))
    print(f"{label:<30}{'unit':<10}{'n':>12}{'rate/s':>14}{'target/s':>12}  note")
    for f in figures:
        target = f"{f.target_per_s:,.0f}" if f.target_per_s else ""
        row = getattr(f, label)
        print(f"{row:<30}{f.unit:<10}{f.n:>12,}{f.rate:>14,.0f}{target:>12}  {f.note}")
