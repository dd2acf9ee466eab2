"""The scheme: the whole configuration of a deployment, one YAML file, validated.

``load_scheme`` is the only place that decides what a valid scheme is; the CLI's
``check-config``, ``run`` and (later) the console all call it.
"""

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
