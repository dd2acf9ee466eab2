"""Named source types: the ``type:`` of a scheme ``sources:`` entry → its config model and
runtime class (``plugins.Registry``), plus the entry-point group ``netdistill.sources``.

A new built-in device registers itself here in one line; a third-party one ships as a
package with an entry point (docs/plugins.md). What a runtime class must do is the
``Source`` protocol in ``sources/base.py``; ``sources.base.build_source`` builds one.
"""

from __future__ import annotations

from typing import Any

from netdistill.plugins import Registry
from netdistill.sources.config import SourceConfigBase

#: type → (config model, runtime class), as ``"module:Class"``
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

#: every source type, built in or from a distribution's ``netdistill.sources`` entry point
SOURCES: Registry[Any] = Registry(
    "source", SOURCE_TYPES, group="netdistill.sources", config_base=SourceConfigBase
)
