"""One module per stage benchmark, each with ``run(smoke: bool) -> list[Figure]``.

``benchmarks/stages.py`` imports every module of this package and prints their figures
in one table; a module measures its stage on one core (the script pins the process
before importing any module here) and reports records per second.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured rate: ``n`` units went through ``stage`` at ``rate`` units per second."""

    stage: str
    unit: str
    n: int
    rate: float
    target_per_s: float = 0.0
    note: str = ""
