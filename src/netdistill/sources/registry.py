"""Named source types: the ``type:`` of a scheme entry → its runtime class.

Classes are named as ``"module:Class"`` and imported on first use, so a deployment
loads only the protocol libraries its scheme uses.
"""

from __future__ import annotations

import importlib
from typing import Any

SOURCE_TYPES: dict[str, str] = {
    "netflow": "netdistill.sources.netflow.listener:NetflowSource",
}


def source_class(type_name: str) -> Any:
    module_name, _, class_name = SOURCE_TYPES[type_name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
