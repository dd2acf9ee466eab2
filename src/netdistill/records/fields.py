"""The field registry: field name ↔ small id, type and length (the seeds' key directory).

A field keeps its id for life in one store: a dropped field's id is never reused. Ids
are per store (each manager numbers the fields it adds in its own order), so batches
between gatherers and managers carry field names and registry types, not ids
(``delivery/wire.py``). The standard fields are those of the design's record table;
operators add their own with ``netdistill fields add``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from netdistill.errors import FieldError

#: type name → (Arrow type, SQL type for DuckDB, SQL type for PostgreSQL, length in bytes;
#: 0 = variable). ``ip`` holds IPv4 or IPv6 addresses as canonical text (``10.0.0.1``,
#: ``2001:db8::1``): DuckDB has no built-in address type without a network-fetched
#: extension, and text is what every report shows.
FIELD_TYPES: dict[str, tuple[pa.DataType, str, str, int]] = {
    "string": (pa.string(), "VARCHAR", "TEXT", 0),
    "ip": (pa.string(), "VARCHAR", "INET", 16),
    "int64": (pa.int64(), "BIGINT", "BIGINT", 8),
    "uint8": (pa.uint8(), "UTINYINT", "SMALLINT", 1),
    "uint16": (pa.uint16(), "USMALLINT", "INTEGER", 2),
    "uint32": (pa.uint32(), "UINTEGER", "BIGINT", 4),
    "uint64": (pa.uint64(), "UBIGINT", "NUMERIC(20)", 8),
    "float64": (pa.float64(), "DOUBLE", "DOUBLE PRECISION", 8),
    "bool": (pa.bool_(), "BOOLEAN", "BOOLEAN", 1),
    "timestamp": (pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ", "TIMESTAMPTZ", 8),
}

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class Field:
    """One field of ``records``: its id on the wire, its name, type and meaning."""

    id: int
    name: str
    type: str
    description: str = ""
    standard: bool = False

    def as_dict(self) -> dict[str, object]:
        """The field as the API and ``netdistill fields list`` show it."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "description": self.description,
            "standard": self.standard,
        }

    @property
    def arrow_type(self) -> pa.DataType:
        return FIELD_TYPES[self.type][0]

    @property
    def duckdb_type(self) -> str:
        return FIELD_TYPES[self.type][1]

    @property
    def length(self) -> int:
        return FIELD_TYPES[self.type][3]


def _std(id_: int, name: str, type_: str, description: str) -> Field:
    return Field(id_, name, type_, description, standard=True)


STANDARD_FIELDS: tuple[Field, ...] = (
    _std(1, "record_id", "int64", "unique per store, increasing [Counter]"),
    _std(2, "start_time", "timestamp", "session or flow start [Date/Time]"),
    _std(3, "end_time", "timestamp", "session or flow end"),
    _std(4, "duration_s", "float64", "end - start in seconds [Duration]"),
    _std(5, "src_ip", "ip", "[Source IP]"),
    _std(6, "dst_ip", "ip", "[Destination IP]"),
    _std(7, "src_port", "uint16", "source transport port"),
    _std(8, "dst_port", "uint16", "destination transport port"),
    _std(9, "protocol", "uint8", "IANA protocol number (6 tcp, 17 udp …)"),
    _std(10, "service", "string", "e.g. http, smtp, voip [Service]"),
    _std(11, "bytes", "uint64", "[Total Bytes], multiplied by the sampling rate"),
    _std(12, "packets", "uint64", "packets, multiplied by the sampling rate"),
    _std(13, "src_host", "string", "source FQDN [Source Host]"),
    _std(14, "dst_host", "string", "destination FQDN"),
    _std(15, "user_name", "string", "who is billed [User Name]"),
    _std(16, "account_id", "string", "billing account"),
    _std(17, "url", "string", "for proxy and web records [URL]"),
    _std(18, "session_id", "string", "e.g. RADIUS Acct-Session-Id"),
    _std(19, "exporter", "string", "address or name of the reporting device"),
    _std(20, "source", "string", "name of the source instance in the scheme"),
    _std(21, "gatherer", "string", "name of the gatherer that produced the record"),
    _std(22, "input_if", "uint32", "SNMP index of the input interface"),
    _std(23, "output_if", "uint32", "SNMP index of the output interface"),
    _std(24, "tos", "uint8", "IP type of service"),
    _std(25, "tcp_flags", "uint16", "cumulative TCP flags"),
    _std(26, "src_as", "uint32", "source autonomous system"),
    _std(27, "dst_as", "uint32", "destination autonomous system"),
    _std(28, "next_hop", "ip", "next-hop router address"),
    _std(29, "sampling_rate", "uint32", "1 in N packets sampled; 1 = unsampled"),
    _std(30, "direction", "uint8", "0 ingress, 1 egress"),
    _std(31, "ingested_at", "timestamp", "stamped by the manager on entry; aging uses it"),
    _std(32, "procedure", "string", "the procedure, merge or stage that produced the record"),
    # NAT (IPFIX 225-228, 230, 281/282; Cisco NSEL 40001-40005, 233): docs/nat.md
    _std(33, "post_nat_src_ip", "ip", "source address after NAT (the public one)"),
    _std(34, "post_nat_dst_ip", "ip", "destination address after NAT"),
    _std(35, "post_nat_src_port", "uint16", "source port after NAPT"),
    _std(36, "post_nat_dst_port", "uint16", "destination port after NAPT"),
    _std(37, "nat_event", "uint8", "IPFIX natEvent: 1 NAT44 create, 2 NAT44 delete …"),
    _std(38, "firewall_event", "uint8", "firewallEvent / NSEL: 1 created, 2 deleted, 3 denied …"),
)

#: Fields the manager stamps itself; a source never fills them.
MANAGER_FIELDS = frozenset({"record_id", "ingested_at"})


class FieldRegistry:
    """The ordered set of fields of ``records``, standard ones first.

    Not thread-safe by itself: the manager is the only writer and serialises changes.
    """

    def __init__(self, fields: Iterable[Field] = STANDARD_FIELDS, *, next_id: int | None = None):
        self._by_name: dict[str, Field] = {}
        for f in fields:
            self._by_name[f.name] = f
        ids = [f.id for f in self._by_name.values()]
        self._next_id = max(next_id or 0, max(ids, default=0) + 1, 1001)

    def __iter__(self) -> Iterator[Field]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Field:
        try:
            return self._by_name[name]
        except KeyError:
            raise FieldError(f"unknown field {name!r}") from None

    def get(self, name: str) -> Field | None:
        return self._by_name.get(name)

    def by_id(self, field_id: int) -> Field:
        for f in self._by_name.values():
            if f.id == field_id:
                return f
        raise FieldError(f"unknown field id {field_id}")

    @property
    def next_id(self) -> int:
        return self._next_id

    def names(self) -> list[str]:
        return list(self._by_name)

    def add(self, name: str, type_: str, description: str = "") -> Field:
        """Register a new operator field; ids of operator fields start at 1001."""
        check_field_name(name)
        check_field_type(type_)
        if name in self._by_name:
            raise FieldError(f"field {name!r} exists already")
        field = Field(self._next_id, name, type_, description)
        self._next_id += 1
        self._by_name[name] = field
        return field

    def drop(self, name: str) -> Field:
        field = self[name]
        if field.standard and field.name in MANAGER_FIELDS:
            raise FieldError(f"field {name!r} is stamped by the manager and cannot be dropped")
        del self._by_name[name]
        return field

    def alter(self, name: str, type_: str) -> Field:
        check_field_type(type_)
        field = self[name]
        if field.name in MANAGER_FIELDS:
            raise FieldError(f"field {name!r} is stamped by the manager and cannot change type")
        new = Field(field.id, field.name, type_, field.description, field.standard)
        self._by_name[name] = new
        return new


def check_field_name(name: str) -> None:
    if not _NAME.match(name):
        raise FieldError(
            f"invalid field name {name!r}: expected lower-case letters, digits and '_', "
            "starting with a letter, at most 63 characters"
        )


def check_field_type(type_: str) -> None:
    if type_ not in FIELD_TYPES:
        raise FieldError(f"unknown field type {type_!r}: expected one of {', '.join(FIELD_TYPES)}")
