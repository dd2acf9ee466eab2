"""``categorizer``: classifies a record by ordered boolean expressions; the first rule that
holds gives the category (seed 001: "classifies a session according to user-defined
Boolean expression"). Rules use the expression language of ``expr/``, compiled once into
one polars ``when/then`` chain evaluated over the batch's distinct inputs.

Sample scheme entry::

    lookups:
      - name: Apps
        type: categorizer
        inputs: [protocol, dst_port, dst_ip]    # record fields; "name:type" for new ones
        rules:
          - {category: dns, when: "protocol = 17 and dst_port = 53"}
          - {category: web, when: "protocol = 6 and dst_port in (80, 443, 8080)"}
          - {category: internal, when: "dst_ip in 10.0.0.0/8"}
        default: other

    Apps.Classify(protocol:uint8, dst_port:uint16, dst_ip:ip) → (category:string)
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from netdistill.errors import ExprError
from netdistill.expr import check, parse, to_polars
from netdistill.lookups.base import CacheConfig, Function, LookupConfigBase, Param
from netdistill.records.fields import FIELD_TYPES, STANDARD_FIELDS

_STANDARD = {f.name: f.type for f in STANDARD_FIELDS}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    when: str


class CategorizerConfig(LookupConfigBase):
    type: Literal["categorizer"]
    function: str = Field("Classify", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    inputs: list[str] = Field(min_length=1, description="record fields the rules read")
    rules: list[Rule] = Field(min_length=1)
    default: str | None = Field(None, description="category when no rule holds (else null)")
    cache: CacheConfig = CacheConfig(size=0)

    def input_types(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.inputs:
            name, _, type_ = item.partition(":")
            type_ = type_ or _STANDARD.get(name, "")
            if type_ not in FIELD_TYPES:
                raise ValueError(
                    f"input {name!r}: not a standard field; write it as '{name}:<type>'"
                )
            out[name] = type_
        return out

    @model_validator(mode="after")
    def _rules_check(self) -> CategorizerConfig:
        types = self.input_types()
        for index, rule in enumerate(self.rules):
            try:
                check(parse(rule.when), types)
            except ExprError as exc:
                raise ValueError(f"rule {index + 1} ({rule.category}): {exc}") from None
        return self

    def functions(self) -> list[Function]:
        return [
            Function(
                self.name,
                self.function,
                tuple(Param(n, t) for n, t in self.input_types().items()),
                (Param("category", "string"),),
                self.description or "first rule that holds",
            )
        ]


class Categorizer:
    """Runtime of a ``categorizer`` lookup: one compiled polars expression."""

    concurrent_calls = True
    keys_per_call = None
    cached = False

    def __init__(self, config: CategorizerConfig, *, store: Any = None) -> None:
        self.config = config
        self.name = config.name
        self._names = list(config.input_types())
        self._expression = category_expression(config)

    def functions(self) -> list[Function]:
        return self.config.functions()

    def call(self, function: str, keys: pa.Table) -> pa.Table:
        frame = pl.from_arrow(keys.rename_columns(self._names))
        assert isinstance(frame, pl.DataFrame)
        return frame.select(self._expression.alias("category")).to_arrow()

    def close(self) -> None:
        pass


def category_expression(config: CategorizerConfig) -> pl.Expr:
    """``when(rule1).then(cat1).when(rule2)…otherwise(default)``; null conditions are false."""
    types = config.input_types()
    conditions = [to_polars(parse(r.when), types).fill_null(False) for r in config.rules]
    chain: Any = pl.when(conditions[0]).then(pl.lit(config.rules[0].category))
    for condition, rule in zip(conditions[1:], config.rules[1:], strict=True):
        chain = chain.when(condition).then(pl.lit(rule.category))
    return chain.otherwise(pl.lit(config.default, dtype=pl.Utf8)).cast(pl.Utf8)
