"""Named stage types: the ``type:`` of a scheme ``stages:`` entry → config model and
runtime class, both as ``"module:Class"`` (imported lazily, as ``sources/registry.py``).

Runtime contract: a config class says where it runs with ``placement`` (``"pipeline"``:
built by ``stages/filter.py``'s flow hook; ``"manager"``: ``Class(config, context)``
driven by ``StageRunner``). A new stage type registers itself here in one line.
"""

from __future__ import annotations

import importlib
from typing import Any

#: type → (config model, runtime class)
STAGE_TYPES: dict[str, tuple[str, str]] = {
    "filter": ("netdistill.stages.filter:FilterConfig", "netdistill.stages.filter:Filter"),
    "merge": ("netdistill.stages.merge:MergeConfig", "netdistill.stages.merge:MergeStage"),
    "aggregate": (
        "netdistill.stages.aggregate:AggregateConfig",
        "netdistill.stages.aggregate:AggregateStage",
    ),
    "rollup": ("netdistill.stages.rollup:RollupConfig", "netdistill.stages.rollup:RollupStage"),
    "alert": ("netdistill.stages.alerts:AlertConfig", "netdistill.stages.alerts:AlertStage"),
}


def _load(target: str) -> Any:
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def config_classes() -> list[Any]:
    return [_load(config) for config, _ in STAGE_TYPES.values()]


def stage_class(type_name: str) -> Any:
    return _load(STAGE_TYPES[type_name][1])
