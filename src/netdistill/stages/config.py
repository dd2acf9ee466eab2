"""The scheme's ``stages:`` section: one entry per stage instance, validated with the
model of its ``type``; names unique among sources, procedures and stages (an ``input``
names one of them), and every name a stage reads must exist (checked by ``Scheme``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from netdistill.enhance.config import check_unique_names
from netdistill.stages.base import StageConfigBase
from netdistill.stages.registry import STAGES


def _dispatch_stage(value: Any, handler: Any) -> Any:
    if not isinstance(value, dict):
        return handler(value)
    type_name = value.get("type")
    if type_name not in STAGES:
        raise ValidationError.from_exception_data(
            "scheme",
            [
                {
                    "type": PydanticCustomError(
                        "value_error",
                        f"unknown stage type {type_name!r}: expected one of {', '.join(STAGES)}",
                    ),
                    "loc": ("type",),
                    "input": type_name,
                }
            ],
        )
    model = STAGES.config_class(str(type_name))
    assert model is not None  # every stage type has settings (a name at least)
    return model.model_validate(value)


def _unique_stages(value: Any, handler: Any) -> Any:
    stages = handler(value)
    check_unique_names(stages, "stages")
    return stages


if TYPE_CHECKING:
    StageConfig = StageConfigBase
else:
    _classes = STAGES.config_classes()
    StageConfig = Annotated[
        Union[tuple(_classes)],  # noqa: UP007
        WrapValidator(lambda value, handler: _dispatch_stage(value, handler)),
    ]

StagesSection = Annotated[list[StageConfig], WrapValidator(_unique_stages)]


def check_references(scheme: Any) -> None:
    """Every name a stage reads exists; stage names do not clash with sources or
    procedures. Raises ``ValueError`` naming the stage."""
    sources = {s.name for s in scheme.sources}
    procedures = {p.name for p in scheme.procedures}
    for stage in scheme.stages:
        if stage.name in sources or stage.name in procedures:
            raise ValueError(
                f"stage {stage.name!r} has the name of a source or procedure; names must differ"
            )
    known = sources | procedures | {s.name for s in scheme.stages}
    for index, stage in enumerate(scheme.stages):
        for name in stage.references():
            if name not in known:
                raise ValueError(
                    f"stage {stage.name!r} reads {name!r}: no source, procedure or stage has "
                    f"that name (known: {', '.join(sorted(known)) or 'none'})"
                )
        # a type's own checks against the scheme (fields its expressions read …)
        check_in_scheme = getattr(stage, "check_in_scheme", None)
        if check_in_scheme is not None:
            try:
                check_in_scheme(scheme)
            except ValueError as exc:  # at the stage's key when the error names one
                key = getattr(exc, "key", None)
                raise ValidationError.from_exception_data(
                    "scheme",
                    [
                        {
                            "type": PydanticCustomError("value_error", str(exc)),
                            "loc": ("stages", index, *([key] if key else [])),
                            "input": getattr(exc, "value", {}),
                        }
                    ],
                ) from None
