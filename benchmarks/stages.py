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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from suite import run_suite

    run_suite("stage_bench", "stage", (__doc__ or "").splitlines()[0])


if __name__ == "__main__":
    main()
