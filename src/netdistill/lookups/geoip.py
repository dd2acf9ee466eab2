"""``geoip``: where an address is, from a MaxMind DB file in the GeoIP2/GeoLite2 layout
(GeoLite2-Country, GeoLite2-City, GeoIP2-City, DB-IP's lite files …).

Two functions, answered from the same file::

    GeoIP.Country(ip:ip) → (country_code:string, country_name:string,
                            continent_code:string, network:string)
    GeoIP.City(ip:ip) → (city:string, region_code:string, region_name:string,
                         postal_code:string, country_code:string, country_name:string,
                         latitude:float64, longitude:float64, time_zone:string,
                         network:string)

``country_*`` is the record's ``country``, else its ``registered_country`` (networks of
anycast or satellite providers carry only the latter); ``region_*`` is the first (largest)
entry of ``subdivisions``; names are in ``language`` (``en`` by default; a name missing
in that language is null). ``network`` is the file's network that holds the address. An
address the file does not cover is a miss (every output null). File handling, reloads,
the warm cache and batching: ``lookups/mmdb.py``.

Sample scheme entry::

    lookups:
      - name: GeoIP
        type: geoip
        database: /var/lib/GeoIP/GeoLite2-City.mmdb
        language: en
        reload_check_s: 1.0       # look for a new file at most every second
        cache: {size: 100000}     # distinct addresses kept warm per function
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from netdistill.lookups.base import Function, Param
from netdistill.lookups.mmdb import Extract, MmdbLookup, MmdbLookupConfig

COUNTRY_OUTPUTS = (
    Param("country_code", "string"),
    Param("country_name", "string"),
    Param("continent_code", "string"),
    Param("network", "string"),
)
CITY_OUTPUTS = (
    Param("city", "string"),
    Param("region_code", "string"),
    Param("region_name", "string"),
    Param("postal_code", "string"),
    Param("country_code", "string"),
    Param("country_name", "string"),
    Param("latitude", "float64"),
    Param("longitude", "float64"),
    Param("time_zone", "string"),
    Param("network", "string"),
)


class GeoIPConfig(MmdbLookupConfig):
    type: Literal["geoip"]
    language: str = Field("en", description="language of the names (a key of 'names')")

    def functions(self) -> list[Function]:
        ip = (Param("ip", "ip"),)
        return [
            Function(self.name, "Country", ip, COUNTRY_OUTPUTS, "country of an address"),
            Function(self.name, "City", ip, CITY_OUTPUTS, "city, region and country of an address"),
        ]


def _map(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _country(record: dict[str, Any]) -> dict[str, Any]:
    return _map(record, "country") or _map(record, "registered_country")


def _name(entry: dict[str, Any], language: str) -> Any:
    return _map(entry, "names").get(language)


def country_extract(language: str) -> Extract:
    def extract(record: dict[str, Any], network: str) -> tuple[Any, ...]:
        country = _country(record)
        return (
            country.get("iso_code"),
            _name(country, language),
            _map(record, "continent").get("code"),
            network,
        )

    return extract


def city_extract(language: str) -> Extract:
    def extract(record: dict[str, Any], network: str) -> tuple[Any, ...]:
        country = _country(record)
        subdivisions = record.get("subdivisions")
        region = subdivisions[0] if isinstance(subdivisions, list) and subdivisions else {}
        location = _map(record, "location")
        return (
            _name(_map(record, "city"), language),
            region.get("iso_code"),
            _name(region, language),
            _map(record, "postal").get("code"),
            country.get("iso_code"),
            _name(country, language),
            location.get("latitude"),
            location.get("longitude"),
            location.get("time_zone"),
            network,
        )

    return extract


class GeoIP(MmdbLookup):
    """Runtime of a ``geoip`` lookup."""

    def __init__(self, config: GeoIPConfig, *, store: Any = None) -> None:
        super().__init__(config, store=store)
        self.extracts = {
            "Country": country_extract(config.language),
            "City": city_extract(config.language),
        }
