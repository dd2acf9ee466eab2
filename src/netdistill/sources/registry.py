"""Named source types: the ``type:`` of a scheme entry → its config model and runtime class.

Both are named as ``"module:Class"``. Config models are imported when the scheme model is
built (``check-config`` validates every source before anything starts); runtime classes
are imported on first use, so a deployment loads only the protocol libraries its scheme
uses. A new device registers itself here in one line.

Runtime contract (what ``gatherer.pipeline.PolledSource`` calls): constructed as
``Class(config, state_dir=Path, queue_limit=int)``; ``fields`` lists the ``FieldSpec``
values it produces beyond the standard fields; lifecycle ``start`` → repeated ``poll``
from one thread → ``stop`` → ``flush``; ``status()`` for the API and heartbeats.
"""

from __future__ import annotations

import importlib
from typing import Any

#: type → (config model, runtime class)
SOURCE_TYPES: dict[str, tuple[str, str]] = {
    "netflow": (
        "netdistill.sources.netflow.config:NetflowSourceConfig",
        "netdistill.sources.netflow.listener:NetflowSource",
    ),
    "sflow": (
        "netdistill.sources.sflow.config:SflowSourceConfig",
        "netdistill.sources.sflow.listener:SflowSource",
    ),
    "file": (
        "netdistill.sources.logs.config:FileSourceConfig",
        "netdistill.sources.logs.listener:FileSource",
    ),
    "radius": (
        "netdistill.sources.radius.config:RadiusSourceConfig",
        "netdistill.sources.radius.listener:RadiusSource",
    ),
    "syslog": (
        "netdistill.sources.syslog.config:SyslogSourceConfig",
        "netdistill.sources.syslog.listener:SyslogSource",
    ),
    "lines": (
        "netdistill.sources.syslog.config:LinesSourceConfig",
        "netdistill.sources.syslog.listener:LinesSource",
    ),
}


def _load(target: str) -> Any:
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def config_classes() -> list[Any]:
    return [_load(config) for config, _ in SOURCE_TYPES.values()]


def source_class(type_name: str) -> Any:
    return _load(SOURCE_TYPES[type_name][1])
