"""MaxMind DB files for tests and benchmarks, written with ``mmdb-writer`` (independent of
the ``maxminddb`` reader the lookups use).

``write_mmdb`` takes networks → records in insertion order (a supernet before the
networks nested in it: the writer splits the supernet's leaf around them) and replaces
the target by a rename, as ``geoipupdate`` does, so a live reader never sees a half-written
file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet


def write_mmdb(
    path: Path,
    networks: Mapping[str, Any],
    *,
    database_type: str = "GeoLite2-City",
    ip_version: int = 6,
) -> None:
    writer = MMDBWriter(
        ip_version=ip_version,
        ipv4_compatible=ip_version == 6,
        database_type=database_type,
        languages=["en", "de"],
        description="netdistill test data",
    )
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    partial = path.with_name(path.name + ".partial")
    writer.to_db_file(str(partial))
    os.replace(partial, path)


def city(
    country: tuple[str, str, str] | None,
    name: str | None = None,
    *,
    continent: str | None = None,
    region: tuple[str, str] | None = None,
    postal: str | None = None,
    location: tuple[float, float, str] | None = None,
    registered: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """A record in the GeoIP2-City layout; countries as (iso_code, en name, de name)."""
    record: dict[str, Any] = {}
    if country:
        record["country"] = {
            "iso_code": country[0],
            "names": {"en": country[1], "de": country[2]},
            "geoname_id": MmdbU32(len(country[1])),
        }
    if registered:
        record["registered_country"] = {
            "iso_code": registered[0],
            "names": {"en": registered[1], "de": registered[2]},
        }
    if continent:
        record["continent"] = {"code": continent, "names": {"en": continent}}
    if name:
        record["city"] = {"names": {"en": name}}
    if region:
        record["subdivisions"] = [{"iso_code": region[0], "names": {"en": region[1]}}]
    if postal:
        record["postal"] = {"code": postal}
    if location:
        record["location"] = {
            "latitude": location[0],
            "longitude": location[1],
            "time_zone": location[2],
        }
    return record


def asn(number: int, organization: str) -> dict[str, Any]:
    return {
        "autonomous_system_number": MmdbU32(number),
        "autonomous_system_organization": organization,
    }
