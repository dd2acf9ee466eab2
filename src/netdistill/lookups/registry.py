"""Named lookup types: the ``type:`` of a scheme ``lookups:`` entry → config model and
runtime class, both as ``"module:Class"`` (imported lazily, as ``sources/registry.py``).

Runtime contract: ``Class(config, *, store=None)``; ``functions()``, ``call(function,
keys)`` and ``close()`` as in ``lookups/base.py``. A new lookup registers itself here in
one line.
"""

from __future__ import annotations

import importlib
from typing import Any

#: type → (config model, runtime class)
LOOKUP_TYPES: dict[str, tuple[str, str]] = {
    "ports": ("netdistill.lookups.ports:PortsConfig", "netdistill.lookups.ports:Ports"),
    "prefix": ("netdistill.lookups.prefix:PrefixConfig", "netdistill.lookups.prefix:Prefix"),
    "table": ("netdistill.lookups.table:TableConfig", "netdistill.lookups.table:Table"),
    "categorizer": (
        "netdistill.lookups.categorizer:CategorizerConfig",
        "netdistill.lookups.categorizer:Categorizer",
    ),
    "dns": ("netdistill.lookups.dns:DnsLookupConfig", "netdistill.lookups.dns:DnsLookup"),
    "radius_sessions": (
        "netdistill.lookups.radius_sessions:RadiusSessionsConfig",
        "netdistill.lookups.radius_sessions:RadiusSessions",
    ),
    "ldap": ("netdistill.lookups.ldap:LdapConfig", "netdistill.lookups.ldap:LdapLookup"),
    "geoip": ("netdistill.lookups.geoip:GeoIPConfig", "netdistill.lookups.geoip:GeoIP"),
    "asn": ("netdistill.lookups.asn:AsnConfig", "netdistill.lookups.asn:Asn"),
    "snmp": ("netdistill.lookups.snmp:SnmpConfig", "netdistill.lookups.snmp:SnmpLookup"),
}


def _load(target: str) -> Any:
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def config_classes() -> list[Any]:
    return [_load(config) for config, _ in LOOKUP_TYPES.values()]


def lookup_class(type_name: str) -> Any:
    return _load(LOOKUP_TYPES[type_name][1])


def build_lookup(config: Any, *, store: Any = None) -> Any:
    """The runtime lookup of ``config``, wrapped in its cache/timeout/concurrency runner."""
    from netdistill.lookups.runner import LookupRunner

    return LookupRunner(lookup_class(config.type)(config, store=store), config)
