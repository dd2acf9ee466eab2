#!/usr/bin/env bash
# The whole test suite on a fresh machine: bootstrap, lint, unit and integration tests,
# and the benchmarks in smoke mode (they print figures; they never fail on speed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
# Every benchmark once on a small input: they still run and print their figures.
for benchmark in netflow_decode netflow_ingest sources enrich delivery stages flood billing; do
  .venv/bin/python "benchmarks/$benchmark.py" --smoke
done
