"""The scheme's ``lookups:`` and ``procedures:`` sections, validated at load.

A procedure (seed 001, "Defining Enhancement Procedures") has a name, a trigger (one
source of the scheme), an optional description, an enabled flag and one field
enhancement per target field, written in the seeds' notation (``enhance/notation.py``).
Every expression is parsed and type-checked against the trigger's fields and the
configured lookups' signatures when the scheme loads; a problem is reported at the
file:line:column of the expression, with the column inside it.

Fields with no enhancement. The seed stores nothing from the trigger in a field that has
no field enhancement; it also proposes to populate a new procedure with the record's
fields. We take the second as the default: with ``pass_through: true`` (default) every
field of the trigger's record that the procedure does not list is kept as it came (an
implicit ``src_ip: src_ip``). With ``pass_through: false`` only the listed fields are
filled, the rest stay empty (null), except the provenance fields ``source`` and
``gatherer``, which are always kept.

Changing a procedure's enhancements is allowed only while it is disabled
(``check_procedure_change``), as in the seed.

Sample::

    lookups:
      - {name: Ports, type: ports}
      - name: Customers
        type: prefix
        csv: /etc/netdistill/customers.csv
        values: {account_id: string, site: string}
    procedures:
      - name: routers
        trigger: netflow
        add_fields: {site: string}
        fields:
          service: Ports.Service(protocol, dst_port).service
          account_id: Customers.Match(src_ip).account_id
          site: Customers.Match(src_ip).site
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from netdistill.enhance.notation import check, parse
from netdistill.errors import NotationError, ProcedureChangeError
from netdistill.lookups.base import Function, LookupConfigBase
from netdistill.lookups.registry import LOOKUPS
from netdistill.records.fields import FIELD_TYPES, STANDARD_FIELDS

#: fields every procedure keeps, whatever ``pass_through`` says
PROVENANCE_FIELDS = ("source", "gatherer")

Catalogue = dict[str, dict[str, Function]]


def catalogue_of(lookups: Sequence[LookupConfigBase]) -> Catalogue:
    """lookup name → function name → signature."""
    return {lookup.name: {f.name: f for f in lookup.functions()} for lookup in lookups}


def _type_error(loc: tuple[Any, ...], message: str, value: Any) -> ValidationError:
    return ValidationError.from_exception_data(
        "scheme",
        [{"type": PydanticCustomError("value_error", message), "loc": loc, "input": value}],
    )


def _dispatch_lookup(value: Any, handler: Any) -> Any:
    """Validate a lookup entry with the model of its ``type`` (errors keep plain paths)."""
    if not isinstance(value, dict):
        return handler(value)
    type_name = value.get("type")
    if type_name not in LOOKUPS:
        raise _type_error(
            ("type",),
            f"unknown lookup type {type_name!r}: expected one of {', '.join(LOOKUPS)}",
            type_name,
        )
    model = LOOKUPS.config_class(str(type_name))
    assert model is not None  # every lookup type has settings (a name at least)
    return model.model_validate(value)


if TYPE_CHECKING:
    LookupConfig = LookupConfigBase
else:
    _classes = LOOKUPS.config_classes()
    LookupConfig = Annotated[
        _classes[0] if len(_classes) == 1 else Union[tuple(_classes)],  # noqa: UP007
        WrapValidator(lambda value, handler: _dispatch_lookup(value, handler)),
    ]


@dataclass(frozen=True, slots=True)
class _Context:
    sources: frozenset[str] | None  # None: the section failed; skip that check
    catalogue: Catalogue | None
    #: stages whose output is records (a trigger may name one); None: not known
    stages: frozenset[str] | None = frozenset()


_CONTEXT: ContextVar[_Context | None] = ContextVar("procedure_context", default=None)
_NO_CONTEXT = _Context(None, None)

STANDARD_TYPES: dict[str, str] = {f.name: f.type for f in STANDARD_FIELDS}


class ProcedureConfig(BaseModel):
    """One enhancement procedure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
    trigger: str = Field(
        description="name of the source (or stage with output: records) whose records start it"
    )
    where: str | None = Field(
        None, description="boolean expression (expr/): the trigger's records it takes"
    )
    description: str = ""
    enabled: bool = True
    pass_through: bool = Field(True, description="keep unlisted trigger fields as they came")
    add_fields: dict[str, str] = Field(
        default_factory=dict, description="fields beyond the standard ones: name → type"
    )
    fields: dict[str, str] = Field(
        default_factory=dict, description="target field → enhancement expression"
    )

    @field_validator("trigger")
    @classmethod
    def _known_trigger(cls, value: str) -> str:
        context = _CONTEXT.get() or _NO_CONTEXT
        sources, stages = context.sources, context.stages
        if sources is not None and value not in sources:
            if stages is None or value in stages:
                return value
            known = ", ".join(sorted(sources)) or "none"
            if stages:
                known += f"; stages with output: records: {', '.join(sorted(stages))}"
            raise ValueError(f"no source named {value!r} (sources: {known})")
        return value

    @field_validator("add_fields")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        for name, type_ in value.items():
            if type_ not in FIELD_TYPES:
                raise ValueError(f"{name}: unknown type {type_!r} ({', '.join(FIELD_TYPES)})")
        return value

    @field_validator("fields")
    @classmethod
    def _checked(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        types = field_types(info.data.get("add_fields", {}))
        catalogue = (_CONTEXT.get() or _NO_CONTEXT).catalogue
        problems: list[tuple[str, str, str]] = []
        for target, text in value.items():
            if target not in types:
                problems.append(
                    (target, f"unknown target field {target!r}; declare it in add_fields", text)
                )
                continue
            try:
                expr = parse(text)
                if catalogue is not None:
                    check(expr, types, catalogue, target=(target, types[target]))
            except NotationError as exc:
                problems.append((target, str(exc), text))
        if problems:
            raise ValidationError.from_exception_data(
                "scheme",
                [
                    {"type": PydanticCustomError("value_error", message), "loc": (t,), "input": x}
                    for t, message, x in problems
                ],
            )
        return value


def field_types(add_fields: Mapping[str, str]) -> dict[str, str]:
    """The fields a procedure may read and fill: standard ones plus its own."""
    return {**STANDARD_TYPES, **add_fields}


def _with_context(value: Any, handler: Any, info: ValidationInfo) -> Any:
    """Validate procedures knowing the scheme's sources and lookups (validated before)."""
    data = info.data
    sources = frozenset(s.name for s in data["sources"]) if "sources" in data else None
    catalogue = catalogue_of(data["lookups"]) if "lookups" in data else None
    stages = (
        frozenset(s.name for s in data["stages"] if getattr(s, "output", None) == "records")
        if "stages" in data
        else None
    )
    token = _CONTEXT.set(_Context(sources, catalogue, stages))
    try:
        procedures = handler(value)
    finally:
        _CONTEXT.reset(token)
    if sources is not None and stages is not None:
        _check_where(procedures, data)
    check_unique_names(procedures, "procedures")
    return procedures


def _check_where(procedures: Sequence[ProcedureConfig], data: Mapping[str, Any]) -> None:
    """A procedure's ``where`` reads fields its trigger's records have."""
    from types import SimpleNamespace

    from netdistill.stages.filter import check_expression, input_field_types

    scheme = SimpleNamespace(
        sources=data["sources"], procedures=procedures, stages=data.get("stages", [])
    )
    for index, procedure in enumerate(procedures):
        if procedure.where is None:
            continue
        try:
            types = input_field_types(procedure.trigger, scheme)
            check_expression(procedure.where, types, f"procedure {procedure.name!r}")
        except ValueError as exc:
            raise _type_error((index, "where"), str(exc), procedure.where) from None


def check_unique_names(entries: Sequence[Any], what: str) -> None:
    """``ValueError`` naming the first name two ``entries`` share."""
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ValueError(f"two {what} are named {entry.name!r}")
        seen.add(entry.name)


def _unique_lookups(value: Any, handler: Any) -> Any:
    lookups = handler(value)
    check_unique_names(lookups, "lookups")
    return lookups


#: the two sections as ``Scheme`` declares them (after ``sources``)
LookupsSection = Annotated[list[LookupConfig], WrapValidator(_unique_lookups)]
ProceduresSection = Annotated[list[ProcedureConfig], WrapValidator(_with_context)]


def validate_procedure(
    data: Mapping[str, Any], *, sources: Sequence[str], lookups: Sequence[LookupConfigBase]
) -> ProcedureConfig:
    """Validate one procedure outside a scheme (the API's update)."""
    token = _CONTEXT.set(_Context(frozenset(sources), catalogue_of(lookups)))
    try:
        return ProcedureConfig.model_validate(dict(data))
    finally:
        _CONTEXT.reset(token)


_FROZEN_WHILE_ENABLED = ("trigger", "where", "pass_through", "add_fields", "fields")


def check_procedure_change(old: ProcedureConfig, new: ProcedureConfig) -> None:
    """Refuse changing an enabled procedure's trigger or enhancements (seed 001: they are
    defined and modified only while the procedure is not enabled). Enabling, disabling
    and the description may change at any time; changes and disabling in one step are
    refused too, since the old definition is still enabled when the change arrives."""
    if not old.enabled:
        return
    changed = [k for k in _FROZEN_WHILE_ENABLED if getattr(old, k) != getattr(new, k)]
    if changed:
        raise ProcedureChangeError(
            f"procedure {old.name!r} is enabled: disable it before changing {', '.join(changed)}"
        )


def check_procedures_change(old: Sequence[ProcedureConfig], new: Sequence[ProcedureConfig]) -> None:
    """``check_procedure_change`` for a scheme reload: every procedure kept by name; a
    removed enabled procedure is refused too."""
    by_name = {p.name: p for p in new}
    problems = []
    for procedure in old:
        replacement = by_name.get(procedure.name)
        try:
            if replacement is None:
                if procedure.enabled:
                    raise ProcedureChangeError(
                        f"procedure {procedure.name!r} is enabled: disable it before removing it"
                    )
                continue
            check_procedure_change(procedure, replacement)
        except ProcedureChangeError as exc:
            problems.append(str(exc))
    if problems:
        raise ProcedureChangeError("; ".join(problems))
