"""``asn``: the autonomous system that originates an address, from a MaxMind DB file in
the GeoLite2-ASN layout (``autonomous_system_number``, ``autonomous_system_organization``)::

    ASN.Origin(ip:ip) → (asn:uint32, as_organization:string, network:string)

``asn`` fits the records' ``src_as``/``dst_as`` fields (e.g. for flows whose exporter
sends no AS numbers). ``network`` is the announced network that holds the address. An
address the file does not cover is a miss (every output null). File handling, reloads,
the warm cache and batching: ``lookups/mmdb.py``.

Sample scheme entry::

    lookups:
      - name: ASN
        type: asn
        database: /var/lib/GeoIP/GeoLite2-ASN.mmdb
    procedures:
      - name: routers
        trigger: netflow
        fields:
          src_as: ASN.Origin(src_ip).asn
          dst_as: ASN.Origin(dst_ip).asn
"""

from __future__ import annotations

from typing import Any, Literal

from netdistill.lookups.base import Function, Param
from netdistill.lookups.mmdb import MmdbLookup, MmdbLookupConfig

ORIGIN_OUTPUTS = (
    Param("asn", "uint32"),
    Param("as_organization", "string"),
    Param("network", "string"),
)


class AsnConfig(MmdbLookupConfig):
    type: Literal["asn"]

    def functions(self) -> list[Function]:
        return [
            Function(
                self.name,
                "Origin",
                (Param("ip", "ip"),),
                ORIGIN_OUTPUTS,
                "origin autonomous system of an address",
            )
        ]


def origin_extract(record: dict[str, Any], network: str) -> tuple[Any, ...]:
    number = record.get("autonomous_system_number")
    return (
        number if isinstance(number, int) and 0 <= number < 2**32 else None,
        record.get("autonomous_system_organization"),
        network,
    )


class Asn(MmdbLookup):
    """Runtime of an ``asn`` lookup."""

    def __init__(self, config: AsnConfig, *, store: Any = None) -> None:
        super().__init__(config, store=store)
        self.extracts = {"Origin": origin_extract}
