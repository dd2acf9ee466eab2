"""Named lookup types: the ``type:`` of a scheme ``lookups:`` entry → config model and
runtime class (``plugins.Registry``), plus the entry-point group ``netdistill.lookups``.

Runtime contract: ``Class(config, *, store=None)``; ``functions()``, ``call(function,
keys)`` and ``close()`` as in ``lookups/base.py``. A new built-in lookup registers itself
here in one line; a third-party one ships as a package (docs/plugins.md).
"""

from __future__ import annotations

from typing import Any

from netdistill.lookups.base import LookupConfigBase
from netdistill.plugins import Registry

#: type → (config model, runtime class), as ``"module:Class"``
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

#: every lookup type, built in or from a distribution's ``netdistill.lookups`` entry point
LOOKUPS: Registry[Any] = Registry(
    "lookup", LOOKUP_TYPES, group="netdistill.lookups", config_base=LookupConfigBase
)


def build_lookup(config: Any, *, store: Any = None) -> Any:
    """The runtime lookup of ``config``, wrapped in its cache/timeout/concurrency runner."""
    from netdistill.lookups.runner import LookupRunner

    return LookupRunner(LOOKUPS.runtime_class(config.type)(config, store=store), config)
