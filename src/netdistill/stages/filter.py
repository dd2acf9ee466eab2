"""The ``filter`` stage: keeps the records of a source or a procedure for which a boolean
expression holds (seed 001's filtering ISM; the expression language of ``expr/``, the same
as the categorizer's rules).

A filter runs in the pipeline, where its input runs, before anything is committed:

* ``input: <source>`` — on that source's records, before any procedure sees them; on a
  remote gatherer too (the manager puts the filters of a gatherer's sources into its part
  of the flow plan, ``manager/plan.py``), so dropped records never cross the network;
* ``input: <procedure>`` — on that procedure's output;
* ``input: <stage>`` — on the records an ``aggregate`` with ``output: records`` emits,
  before the procedures triggered by it.

A procedure can also carry its own ``where:`` (``enhance/config.py``): the records of its
trigger it takes. Records for which the expression is false *or null* are dropped and
counted per filter; the pipeline's status shows the counts (``status()["filters"]``).
Expressions are type-checked when the scheme loads against the fields the input has
(standard fields, the source's own, the procedure's ``add_fields``); an unknown field is
an error naming the stage.

Sample::

    stages:
      - {name: no-dns, type: filter, input: routers, where: "not (protocol = 17 and dst_port = 53)"}
      - {name: big, type: filter, input: enrich, where: "bytes >= 1000000"}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import polars as pl
import pyarrow as pa
from pydantic import Field

from netdistill.errors import ExprError, StageCheckError
from netdistill.expr import check, compile_predicate, parse
from netdistill.expr.parse import Node
from netdistill.records.fields import FIELD_TYPES, STANDARD_FIELDS
from netdistill.stages.base import StageConfigBase

STANDARD_TYPES: dict[str, str] = {f.name: f.type for f in STANDARD_FIELDS}


class FilterConfig(StageConfigBase):
    type: Literal["filter"] = "filter"
    placement: ClassVar[str] = "pipeline"

    input: str = Field(description="source, procedure or stage whose records are filtered")
    where: str = Field(description="boolean expression: the records kept")

    def references(self) -> list[str]:
        return [self.input]

    def check_in_scheme(self, scheme: Any) -> None:
        check_expression(self.where, input_field_types(self.input, scheme), f"stage {self.name!r}")


def check_expression(text: str, types: Mapping[str, str], where: str) -> None:
    """Parse and type-check ``text``; an error naming ``where`` if it is wrong."""
    try:
        check(parse(text), types)
    except ExprError as exc:
        raise StageCheckError(f"{where}: where {text!r}: {exc}", key="where", value=text) from None


def expression_fields(text: str) -> list[str]:
    """The record fields ``text`` reads, in order of appearance."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if type(node).__name__ == "Field":
            if node.name not in out:
                out.append(node.name)
            return
        for slot in getattr(node, "__slots__", ()):
            value = getattr(node, slot)
            if isinstance(value, tuple):
                for item in value:
                    walk(item)
            elif hasattr(value, "__slots__"):
                walk(value)

    node: Node = parse(text)
    walk(node)
    return out


def source_field_types(config: Any) -> dict[str, str]:
    """Fields a source config declares beyond the standard ones (generic line formats
    map their own; a source class may list ``fields``)."""
    out: dict[str, str] = {}
    from netdistill.sources.base import declared_fields

    specs: Any = declared_fields(config.type)
    for owner in (config, getattr(config, "options", None)):
        declared = getattr(owner, "fields", None)
        if isinstance(declared, tuple | list):
            specs = [*specs, *declared] if isinstance(specs, tuple | list) else declared
    if isinstance(specs, tuple | list):
        for spec in specs:
            name, type_ = getattr(spec, "name", None), getattr(spec, "type", None)
            if isinstance(name, str) and type_ in FIELD_TYPES:
                out[name] = str(type_)
    return out


def input_field_types(name: str, scheme: Any, _depth: int = 0) -> dict[str, str]:
    """The fields (name → type) the records of ``name`` can have: standard ones, plus the
    source's own, a procedure's ``add_fields`` (and its trigger's), or what a stage with
    ``output: records`` emits."""
    types = dict(STANDARD_TYPES)
    if _depth > 16:  # a cycle of stages; check_references reports the real problem
        return types
    for source in scheme.sources:
        if source.name == name:
            return {**types, **source_field_types(source)}
    for procedure in scheme.procedures:
        if procedure.name == name:
            trigger = input_field_types(procedure.trigger, scheme, _depth + 1)
            return {**trigger, **procedure.add_fields}
    for stage in getattr(scheme, "stages", ()):
        if stage.name == name:
            output = getattr(stage, "output_field_types", None)
            if output is not None:
                return {**types, **output(scheme, _depth + 1)}
            if getattr(stage, "input", None):
                return input_field_types(stage.input, scheme, _depth + 1)
    return types


def polars_type(type_name: str) -> pl.DataType:
    """The polars type of a field type (``records/fields.py``)."""
    empty = pl.from_arrow(pa.array([], FIELD_TYPES[type_name][0]))
    assert isinstance(empty, pl.Series)
    return empty.dtype


class Filter:
    """One compiled filter over batches: ``apply(records) -> (kept, dropped)``. Pure."""

    def __init__(self, name: str, where: str, types: Mapping[str, str], *, input: str = "") -> None:
        self.name = name
        self.where = where
        self.input = input
        self.types = dict(types)
        self.fields = expression_fields(where)
        self.predicate = compile_predicate(where, self.types)

    @classmethod
    def from_config(cls, config: FilterConfig, scheme: Any) -> Filter:
        types = input_field_types(config.input, scheme)
        return cls(config.name, config.where, types, input=config.input)

    def as_plan(self) -> dict[str, Any]:
        """What a remote gatherer needs to rebuild it (``manager/plan.py``)."""
        return {"name": self.name, "input": self.input, "where": self.where, "types": self.types}

    @classmethod
    def from_plan(cls, item: Mapping[str, Any]) -> Filter:
        return cls(item["name"], item["where"], item["types"], input=item["input"])

    def mask(self, records: pa.Table) -> pa.Array:
        frame = pl.from_arrow(records.select([f for f in self.fields if f in records.schema.names]))
        assert isinstance(frame, pl.DataFrame)
        missing = [f for f in self.fields if f not in frame.columns]
        if missing:  # a field the input may have but this batch lacks: null
            frame = frame.with_columns(
                pl.lit(None, polars_type(self.types[f])).alias(f) for f in missing
            )
        if not frame.width:
            frame = pl.DataFrame({"_": pl.zeros(records.num_rows, eager=True)})
        series = frame.select(self.predicate.alias("keep")).to_series()
        return series.to_arrow()

    def apply(self, records: pa.Table) -> tuple[pa.Table, int]:
        if not records.num_rows:
            return records, 0
        kept = records.filter(self.mask(records))
        return kept, records.num_rows - kept.num_rows
