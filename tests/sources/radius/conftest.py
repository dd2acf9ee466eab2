"""The RADIUS collector fixture; the helpers are in ``radius_support.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from radius_support import Collector


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    c = Collector(tmp_path)
    yield c
    c.stop()
