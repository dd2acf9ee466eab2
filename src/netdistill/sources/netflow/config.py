"""Scheme entry of a NetFlow v5/v9/IPFIX collector (``type: netflow``).

Sample::

    sources:
      - name: edge
        type: netflow
        listen: ["0.0.0.0:2055", "[::]:2055"]
        default_sampling_rate: 1
        exporters:
          192.0.2.1: {sampling_rate: 1000}   # a router that never sends its rate
          192.0.2.2: {}
        allow_unknown: false                 # only these two: others are counted, dropped
        elements:                            # elements the decoder does not read itself
          - {enterprise: 9, id: 12232, field: vrf_name, type: string}
          - {id: 40000, field: nsel_user, type: string}   # a v9 field type

``elements`` is checked here (the only place, STYLE.md habit 4): ids (1-65535, and
1-32767 with an enterprise number, RFC 7011 §3.2), a known type, a valid field name, and
no clash — a field the decoder fills itself, a standard field of another type, one field
mapped with two types, one element mapped twice to one field.

With ``allow_unknown: false`` (or ``allowed_exporters``) the source takes data only from
the ``exporters`` named and the ``allowed_exporters`` networks; a datagram from another
address is dropped in the receive thread, before decode, and counted as
``unknown_exporter`` (per address in the status). The default takes every exporter.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from netdistill.errors import FieldError
from netdistill.records.batch import FieldSpec
from netdistill.records.fields import FIELD_TYPES, MANAGER_FIELDS, STANDARD_FIELDS, check_field_name
from netdistill.sources.config import SourceConfigBase
from netdistill.sources.listen import parse_listen_address
from netdistill.sources.netflow.mapping import ElementMapping

#: fields the decoder fills itself, or that are stamped after it: a mapping cannot fill them
DECODER_FIELDS = frozenset(
    {
        "start_time", "end_time", "duration_s", "src_ip", "dst_ip", "next_hop", "bytes",
        "packets", "sampling_rate", "protocol", "tos", "tcp_flags", "src_port", "dst_port",
        "input_if", "output_if", "src_as", "dst_as", "direction", "exporter", "source",
        "gatherer", "procedure", "post_nat_src_ip", "post_nat_dst_ip", "post_nat_src_port",
        "post_nat_dst_port", "nat_event", "firewall_event", "biflow_reverse",
        *MANAGER_FIELDS,
    }
)  # fmt: skip
_STANDARD_TYPES = {f.name: f.type for f in STANDARD_FIELDS}


class ElementMappingConfig(BaseModel):
    """One element → field entry; ``enterprise`` 0 (the default) is IANA / NetFlow v9."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enterprise: int = Field(0, ge=0, le=0xFFFFFFFF, description="Private Enterprise Number")
    id: int = Field(ge=1, le=65535, description="element id, or NetFlow v9 field type")
    field: str
    type: str

    @field_validator("field")
    @classmethod
    def _check_field(cls, value: str) -> str:
        try:
            check_field_name(value)
        except FieldError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        if value not in FIELD_TYPES:
            raise ValueError(f"unknown type {value!r}: expected one of {', '.join(FIELD_TYPES)}")
        return value

    @model_validator(mode="after")
    def _check_id(self) -> ElementMappingConfig:
        if self.enterprise and self.id > 0x7FFF:
            raise ValueError(
                f"enterprise element id {self.id} does not fit 15 bits (1-32767, RFC 7011 "
                "§3.2); ids above 32767 exist only as NetFlow v9 field types (no enterprise)"
            )
        return self


class ExporterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sampling_rate: PositiveInt = Field(
        1, description="used when the exporter sends no sampling rate of its own"
    )


class NetflowSourceConfig(SourceConfigBase):
    type: Literal["netflow"]
    listen: list[str] = Field(default_factory=lambda: ["0.0.0.0:2055"], min_length=1)
    receive_buffer_bytes: PositiveInt = 64 * 1024 * 1024
    default_sampling_rate: PositiveInt = 1
    exporters: dict[str, ExporterConfig] = Field(default_factory=dict)
    allow_unknown: bool = Field(
        True, description="false: only the exporters named here (and allowed_exporters)"
    )
    allowed_exporters: list[str] | None = Field(
        None, description="networks allowed to send; others are dropped as unknown_exporter"
    )
    template_timeout_s: PositiveFloat = 1800.0
    hold_before_template_s: PositiveFloat = Field(
        10.0, description="how long data waits for its template before it is quarantined"
    )

    elements: list[ElementMappingConfig] = Field(
        default_factory=list, description="elements mapped to record fields (docs/netflow.md)"
    )

    @field_validator("elements")
    @classmethod
    def _check_elements(cls, value: list[ElementMappingConfig]) -> list[ElementMappingConfig]:
        problems: list[tuple[tuple[int | str, ...], str, object]] = []
        types: dict[str, tuple[str, int]] = {}
        seen: dict[tuple[int, int, str], int] = {}
        for i, item in enumerate(value):
            where = f"element {item.enterprise}/{item.id}"
            if item.field in DECODER_FIELDS:
                problems.append(
                    ((i, "field"), f"{item.field!r} is filled by the decoder itself", item.field)
                )
            standard = _STANDARD_TYPES.get(item.field)
            if standard is not None and standard != item.type:
                problems.append(
                    ((i, "type"), f"{item.field!r} is a standard {standard} field", item.type)
                )
            earlier = types.get(item.field)
            if earlier is not None and earlier[0] != item.type:
                problems.append(
                    (
                        (i, "type"),
                        f"{item.field!r} is mapped as {earlier[0]} by entry {earlier[1]}",
                        item.type,
                    )
                )
            types.setdefault(item.field, (item.type, i))
            key = (item.enterprise, item.id, item.field)
            if key in seen:
                problems.append(
                    (
                        (i, "id"),
                        f"{where} is mapped to {item.field!r} by entry {seen[key]}",
                        item.id,
                    )
                )
            seen.setdefault(key, i)
        if problems:
            raise ValidationError.from_exception_data(
                "elements",
                [
                    {"type": PydanticCustomError("value_error", message), "loc": loc, "input": x}
                    for loc, message, x in problems
                ],
            )
        return value

    def element_mappings(self) -> tuple[ElementMapping, ...]:
        return tuple(ElementMapping(e.enterprise, e.id, e.field, e.type) for e in self.elements)

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        """The fields ``elements`` fill (read by the scheme's type checks)."""
        return tuple(
            FieldSpec(e.field, e.type, f"element {e.enterprise}/{e.id}") for e in self.elements
        )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_listen_address(item, default_port=2055)
        return value

    @field_validator("exporters")
    @classmethod
    def _check_exporters(cls, value: dict[str, ExporterConfig]) -> dict[str, ExporterConfig]:
        import ipaddress

        for key in value:
            try:
                ipaddress.ip_address(key)
            except ValueError:
                raise ValueError(f"exporter {key!r} is not an IP address") from None
        return value

    @field_validator("allowed_exporters")
    @classmethod
    def _check_networks(cls, value: list[str] | None) -> list[str] | None:
        import ipaddress

        for key in value or []:
            try:
                ipaddress.ip_network(key, strict=False)
            except ValueError:
                raise ValueError(f"{key!r} is not an IP network") from None
        return value

    @model_validator(mode="after")
    def _check_allow_list(self) -> NetflowSourceConfig:
        if not self.allow_unknown and not self.exporters and not self.allowed_exporters:
            raise ValueError(
                "allow_unknown is false but no exporters are named: nothing would be "
                "accepted; name them under exporters (or allowed_exporters)"
            )
        return self

    def allow_list(self) -> list[str] | None:
        """The networks allowed to send, or None when every exporter is taken."""
        if self.allow_unknown and self.allowed_exporters is None:
            return None
        return [*self.exporters, *(self.allowed_exporters or [])]
