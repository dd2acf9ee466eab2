"""Parser throughput of every source, one core: lines/s (or requests/s answered).

Each module in ``benchmarks/source_bench/`` measures one source and returns its figures;
this script runs them all (or those named) and prints one table. ``--smoke`` runs each
on a small input, to check the benchmarks still work; its figures mean little.

    .venv/bin/python benchmarks/sources.py [--smoke] [NAME ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from suite import run_suite

    run_suite("source_bench", "parser", (__doc__ or "").splitlines()[0])


if __name__ == "__main__":
    main()
