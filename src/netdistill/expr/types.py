"""Type checking of boolean expressions against the field registry's types.

Type groups: numbers (every integer type and float64), string, ip, timestamp, bool.
Comparisons need both sides in one group; a string literal stands for an ip (``src_ip =
'10.0.0.1'``) or a timestamp (``start_time >= '2024-05-01T00:00:00Z'``) where the other
side is one. ``ip`` has ``= != in (…)`` and ``in <network>`` but no ordering; ``like`` and
``matches`` apply to strings and ip text; ``is null`` to anything. The whole expression
must be boolean.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from netdistill.errors import ExprError
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
)

NUMBER_TYPES = frozenset({"int64", "uint8", "uint16", "uint32", "uint64", "float64"})
_ORDERED = frozenset({"number", "string", "timestamp"})


def group(type_name: str) -> str:
    return "number" if type_name in NUMBER_TYPES else type_name


def parse_time(text: str, column: int) -> datetime:
    """ISO-8601; a time without zone is UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ExprError(f"{text!r} is not an ISO-8601 time", column=column) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _literal_group(literal: Literal, other: str | None) -> str:
    if literal.kind == "ipv4":
        return "ip"
    if literal.kind == "timestamp":
        parse_time(str(literal.value), literal.column)
        return "timestamp"
    if literal.kind == "string" and other == "ip":
        try:
            ipaddress.ip_address(str(literal.value))
        except ValueError:
            raise ExprError(
                f"{literal.value!r} is not an IP address", column=literal.column
            ) from None
        return "ip"
    if literal.kind == "string" and other == "timestamp":
        parse_time(str(literal.value), literal.column)
        return "timestamp"
    return {"number": "number", "string": "string", "bool": "bool"}[literal.kind]


def operand_group(operand: Operand, fields: Mapping[str, str], other: str | None = None) -> str:
    if isinstance(operand, Field):
        if operand.name not in fields:
            raise ExprError(f"unknown field {operand.name!r}", column=operand.column)
        return group(fields[operand.name])
    return _literal_group(operand, other)


def _field_group(operand: Operand, fields: Mapping[str, str]) -> str | None:
    return operand_group(operand, fields) if isinstance(operand, Field) else None


def check(node: Node, fields: Mapping[str, str]) -> None:
    """Raise ``ExprError`` unless ``node`` is a well-typed boolean expression."""
    if _check(node, fields) != "bool":
        raise ExprError("the expression is not a condition (true/false)", column=1)


def _check(node: Node, fields: Mapping[str, str]) -> str:
    if isinstance(node, Field | Literal):
        return operand_group(node, fields)
    if isinstance(node, BoolOp):
        for side in (node.left, node.right):
            if _check(side, fields) != "bool":
                raise ExprError(f"'{node.op}' needs conditions on both sides", column=node.column)
        return "bool"
    if isinstance(node, Not):
        if _check(node.operand, fields) != "bool":
            raise ExprError("'not' needs a condition", column=node.column)
        return "bool"
    if isinstance(node, IsNull):
        operand_group(node.operand, fields)
        return "bool"
    if isinstance(node, Compare):
        left = operand_group(node.left, fields, _field_group(node.right, fields))
        right = operand_group(node.right, fields, left)
        if left != right:
            raise ExprError(f"cannot compare {left} with {right}", column=node.column)
        if node.op not in ("=", "!=") and left not in _ORDERED:
            raise ExprError(f"{left} values have no order; use = or !=", column=node.column)
        return "bool"
    if isinstance(node, InList):
        kind = operand_group(node.operand, fields)
        for item in node.items:
            found = _literal_group(item, kind)
            if found != kind:
                raise ExprError(f"list item is {found}, expected {kind}", column=item.column)
        return "bool"
    if isinstance(node, InNetwork):
        kind = operand_group(node.operand, fields)
        if kind != "ip":
            raise ExprError(f"'in <network>' needs an ip, found {kind}", column=node.column)
        try:
            ipaddress.ip_network(node.network, strict=False)
        except ValueError:
            raise ExprError(f"{node.network!r} is not a network", column=node.column) from None
        return "bool"
    if isinstance(node, Like):
        kind = operand_group(node.operand, fields)
        if kind not in ("string", "ip"):
            raise ExprError(f"'like'/'matches' need a string, found {kind}", column=node.column)
        if node.regex:
            try:
                re.compile(node.pattern)
            except re.error as exc:
                raise ExprError(f"bad regular expression: {exc}", column=node.column) from None
        return "bool"
    raise AssertionError(node)
