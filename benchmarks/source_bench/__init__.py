"""One module per source parser, each with ``run(smoke: bool) -> list[Figure]``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured rate: ``n`` units went through ``parser`` in ``seconds``."""

    parser: str
    unit: str
    n: int
    seconds: float
    target_per_s: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0
