"""The scheme: the whole configuration of a deployment, one YAML file, validated.

``load_scheme`` is the only place that decides what a valid scheme is; the CLI's
``check-config``, ``run`` and the console all call it.

The names below are imported on first use: the config models of sources, lookups and
gatherers import ``netdistill.scheme.secrets``, and the models of the whole scheme
import them, so importing the package must not import the models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netdistill.scheme.load import demo_scheme_path, load_scheme, parse_scheme
    from netdistill.scheme.models import ManagerConfig, Scheme, StoreConfig

__all__ = [
    "ManagerConfig",
    "Scheme",
    "StoreConfig",
    "demo_scheme_path",
    "load_scheme",
    "parse_scheme",
]


def __getattr__(name: str) -> Any:
    if name in ("demo_scheme_path", "load_scheme", "parse_scheme"):
        from netdistill.scheme import load

        return getattr(load, name)
    if name in ("ManagerConfig", "Scheme", "StoreConfig"):
        from netdistill.scheme import models

        return getattr(models, name)
    raise AttributeError(f"module 'netdistill.scheme' has no attribute {name!r}")
