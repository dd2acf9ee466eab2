"""Shared helpers of the sFlow decoder tests: ``sflowref`` (an independent reference
decoder and datagram builders) is put on the path so that test modules can import it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
