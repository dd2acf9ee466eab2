"""Compiling a checked expression into one polars expression, run vectorized per batch.

Nulls follow SQL's three-valued logic: a comparison with a null is null, ``and``/``or``
are Kleene (polars does the same), ``x in (…)`` and ``x in <network>`` are null for a null
``x``. ``compile_predicate`` gives the filter form, where null counts as false.
``like`` becomes an anchored regular expression (``%`` → ``.*``, ``_`` → ``.``);
``matches`` searches a regular expression anywhere in the value (Rust ``regex`` syntax).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from netdistill.expr.ipnum import in_network
from netdistill.expr.parse import (
    BoolOp,
    Compare,
    Field,
    InList,
    InNetwork,
    IsNull,
    Like,
    Literal,
    Node,
    Not,
    Operand,
    parse,
)
from netdistill.expr.types import check, group, operand_group, parse_time

_TIME = pl.Datetime("us", "UTC")


def _literal(literal: Literal, kind: str) -> pl.Expr:
    if kind == "timestamp":
        return pl.lit(parse_time(str(literal.value), literal.column), dtype=_TIME)
    if kind == "ip":
        import ipaddress

        return pl.lit(str(ipaddress.ip_address(str(literal.value))))
    return pl.lit(literal.value)


def _python_value(literal: Literal, kind: str) -> Any:
    if kind == "timestamp":
        return parse_time(str(literal.value), literal.column)
    if kind == "ip":
        import ipaddress

        return str(ipaddress.ip_address(str(literal.value)))
    return literal.value


def _operand(operand: Operand, fields: Mapping[str, str], kind: str) -> pl.Expr:
    if isinstance(operand, Field):
        column = pl.col(operand.name)
        # A timestamp column may arrive without a zone; compare in UTC either way.
        return column
    return _literal(operand, kind)


def _like_regex(pattern: str) -> str:
    out = []
    for char in pattern:
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return "(?s)^" + "".join(out) + "$"


def _in_network(series: pl.Series, network: str) -> pl.Series:
    inside = in_network(series.to_arrow(), network)
    values = pl.Series(series.name, np.asarray(inside), dtype=pl.Boolean)
    return pl.select(pl.when(series.is_null()).then(None).otherwise(values)).to_series()


def to_polars(node: Node, fields: Mapping[str, str]) -> pl.Expr:
    """A polars expression for a *checked* node (run ``check`` first)."""
    if isinstance(node, BoolOp):
        left, right = to_polars(node.left, fields), to_polars(node.right, fields)
        return left & right if node.op == "and" else left | right
    if isinstance(node, Not):
        return ~to_polars(node.operand, fields)
    if isinstance(node, Field):
        return pl.col(node.name)
    if isinstance(node, Literal):
        return pl.lit(node.value)
    if isinstance(node, IsNull):
        kind = operand_group(node.operand, fields)
        value = _operand(node.operand, fields, kind)
        return value.is_not_null() if node.negated else value.is_null()
    if isinstance(node, Compare):
        other = group(fields[node.right.name]) if isinstance(node.right, Field) else None
        kind = operand_group(node.left, fields, other)
        left, right = _operand(node.left, fields, kind), _operand(node.right, fields, kind)
        ops = {
            "=": left.eq,
            "!=": left.ne,
            "<": left.lt,
            "<=": left.le,
            ">": left.gt,
            ">=": left.ge,
        }
        return ops[node.op](right)
    if isinstance(node, InList):
        kind = operand_group(node.operand, fields)
        value = _operand(node.operand, fields, kind)
        items = [_python_value(item, kind) for item in node.items]
        member = value.is_in(pl.Series(items, dtype=_TIME) if kind == "timestamp" else items)
        result = pl.when(value.is_null()).then(None).otherwise(member)
        return ~result if node.negated else result
    if isinstance(node, InNetwork):
        kind = operand_group(node.operand, fields)
        value = _operand(node.operand, fields, kind)
        network = node.network
        inside = value.map_batches(lambda s: _in_network(s, network), return_dtype=pl.Boolean)
        return ~inside if node.negated else inside
    if isinstance(node, Like):
        kind = operand_group(node.operand, fields)
        value = _operand(node.operand, fields, kind)
        regex = node.pattern if node.regex else _like_regex(node.pattern)
        found = value.str.contains(regex)
        return ~found if node.negated else found
    raise AssertionError(node)


def compile_expression(text: str, fields: Mapping[str, str]) -> pl.Expr:
    """Parse, check and compile ``text``: a boolean polars expression (nulls kept)."""
    node = parse(text)
    check(node, fields)
    return to_polars(node, fields)


def compile_predicate(text: str, fields: Mapping[str, str]) -> pl.Expr:
    """The filter form of ``text``: true where it holds, false where false or null."""
    return compile_expression(text, fields).fill_null(False)
