"""Named stage types: the ``type:`` of a scheme ``stages:`` entry → config model and
runtime class (``plugins.Registry``), plus the entry-point group ``netdistill.stages``.

Runtime contract: a config class says where it runs with ``placement`` (``"pipeline"``:
built by ``stages/filter.py``'s flow hook; ``"manager"``: ``Class(config, context)``
driven by ``StageRunner``, the ``Stage`` protocol of ``stages/base.py``). A new built-in
stage type registers itself here in one line; a third-party one ships as a package
(docs/plugins.md).
"""

from __future__ import annotations

from typing import Any

from netdistill.plugins import Registry
from netdistill.stages.base import StageConfigBase

#: type → (config model, runtime class), as ``"module:Class"``
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

#: every stage type, built in or from a distribution's ``netdistill.stages`` entry point
STAGES: Registry[Any] = Registry(
    "stage", STAGE_TYPES, group="netdistill.stages", config_base=StageConfigBase
)
