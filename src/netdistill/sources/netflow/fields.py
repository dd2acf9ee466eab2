"""The fields a NetFlow/IPFIX source declares, and its batch schema.

The NAT fields are standard fields (``records/fields.py``, ids 33-38); the source also
declares them, so that a store created before they became standard gets them when a
netflow source starts (``store.ensure_fields``). ``biflow_reverse`` marks the two records
an RFC 5103 biflow becomes (docs/netflow.md, "Biflows"); fields the scheme maps
elements to (``elements:``) come after it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from netdistill.records.batch import FieldSpec
from netdistill.records.fields import FIELD_TYPES, STANDARD_FIELDS
from netdistill.records.schema import SOURCE_SCHEMA

NAT_FIELD_NAMES = (
    "post_nat_src_ip",
    "post_nat_dst_ip",
    "post_nat_src_port",
    "post_nat_dst_port",
    "nat_event",
    "firewall_event",
)

NAT_FIELDS: tuple[FieldSpec, ...] = tuple(
    FieldSpec(f.name, f.type, f.description) for f in STANDARD_FIELDS if f.name in NAT_FIELD_NAMES
)

BIFLOW_REVERSE = FieldSpec(
    "biflow_reverse",
    "bool",
    "RFC 5103 biflow: false on the forward record, true on the reverse one (src/dst "
    "swapped); null for a one-way flow",
)

NETFLOW_FIELDS: tuple[FieldSpec, ...] = (*NAT_FIELDS, BIFLOW_REVERSE)


def netflow_schema(mapped: Sequence[FieldSpec] = ()) -> pa.Schema:
    """The standard fields, ``biflow_reverse``, then the mapped fields that are not
    standard (a mapping may fill a standard field, e.g. ``user_name``)."""
    standard = set(SOURCE_SCHEMA.names)
    extra = [s for s in (BIFLOW_REVERSE, *mapped) if s.name not in standard]
    seen: dict[str, FieldSpec] = {}
    for spec in extra:
        seen.setdefault(spec.name, spec)
    return pa.schema(
        [*SOURCE_SCHEMA, *(pa.field(s.name, FIELD_TYPES[s.type][0]) for s in seen.values())]
    )


NETFLOW_SCHEMA = netflow_schema()
