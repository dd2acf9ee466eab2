"""The field-enhancement notation of the seeds (seed 001, "Defining Field Enhancements").

Grammar (a hand-written recursive-descent parser: the grammar has three productions, and
a hand-written parser gives exact columns and messages without a parser library)::

    expr   := NAME                                   a field of the trigger's record
            | NAME "." NAME "(" [expr ("," expr)*] ")" "." NAME
                                                     output of Lookup.Function(args)

``src_ip``, ``DNS.Name(src_ip).host_name``,
``LDAP.Person(RADIUS.User(src_ip, start_time).user_name).department``. Chains have any
depth; a function may have several inputs and several outputs (each use selects one).
``display()`` gives the seeds' short form of a final step, ``DNS...host_name``.

``check`` types an expression against the trigger's fields and the functions of the
configured lookups; every error names the column (1-based) of the offending name, the
lookup or field, and the expected and found types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from netdistill.errors import NotationError
from netdistill.lookups.base import Function


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str
    column: int

    def text(self) -> str:
        return self.name

    def display(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Call:
    """Output ``output`` of ``lookup.function(args)``."""

    lookup: str
    function: str
    args: tuple[Expr, ...]
    output: str
    column: int
    function_column: int
    output_column: int

    @property
    def application(self) -> str:
        """The call without the output selection: the key of a shared plan node."""
        return f"{self.lookup}.{self.function}({', '.join(a.text() for a in self.args)})"

    def text(self) -> str:
        return f"{self.application}.{self.output}"

    def display(self) -> str:
        return f"{self.lookup}...{self.output}"


Expr = FieldRef | Call

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[.(),]))")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            column = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            raise NotationError(f"unexpected character {text[column - 1]!r}", column=column)
        kind = "name" if match.group("name") else "punct"
        value = match.group(kind)
        out.append((kind, value, match.start(kind) + 1))
        pos = match.end()
    out.append(("end", "", len(text) + 1))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self, kind: str, value: str | None = None, what: str = "") -> tuple[str, str, int]:
        token = self.peek()
        if token[0] != kind or (value is not None and token[1] != value):
            found = "the end" if token[0] == "end" else repr(token[1])
            raise NotationError(f"expected {what or repr(value)}, found {found}", column=token[2])
        self.index += 1
        return token

    def expr(self) -> Expr:
        _, name, column = self.take("name", what="a field or lookup name")
        if self.peek()[:2] != ("punct", "."):
            return FieldRef(name, column)
        self.index += 1
        _, function, function_column = self.take("name", what="a function name")
        self.take("punct", "(")
        args: list[Expr] = []
        if self.peek()[:2] != ("punct", ")"):
            args.append(self.expr())
            while self.peek()[:2] == ("punct", ","):
                self.index += 1
                args.append(self.expr())
        self.take("punct", ")", what="',' or ')'")
        self.take("punct", ".", what="'.' and an output name")
        _, output, output_column = self.take("name", what="an output name")
        return Call(name, function, tuple(args), output, column, function_column, output_column)


def parse(text: str) -> Expr:
    """Parse one enhancement expression; ``NotationError`` names the column."""
    parser = _Parser(text)
    expr = parser.expr()
    kind, value, column = parser.peek()
    if kind != "end":
        raise NotationError(f"unexpected {value!r} after the expression", column=column)
    return expr


#: an input of type ``found`` may feed a parameter of type ``expected``: the same type, or
#: an unsigned integer into a wider integer (values are cast safely, never truncated)
_WIDER: dict[str, frozenset[str]] = {
    "uint8": frozenset({"uint16", "uint32", "uint64", "int64"}),
    "uint16": frozenset({"uint32", "uint64", "int64"}),
    "uint32": frozenset({"uint64", "int64"}),
}


def assignable(found: str, expected: str) -> bool:
    return found == expected or expected in _WIDER.get(found, frozenset())


def check(
    expr: Expr,
    fields: Mapping[str, str],
    functions: Mapping[str, Mapping[str, Function]],
    *,
    target: tuple[str, str] | None = None,
) -> str:
    """The type of ``expr``; raise ``NotationError`` where it does not fit.

    ``fields`` maps the trigger's field names to types, ``functions`` maps lookup name →
    function name → ``Function``; ``target`` (name, type) is the field being filled."""
    found = _type_of(expr, fields, functions)
    if target is not None and not assignable(found, target[1]):
        column = expr.output_column if isinstance(expr, Call) else expr.column
        raise NotationError(
            f"{expr.display()} is {found}, but target field {target[0]!r} is {target[1]}",
            column=column,
        )
    return found


def _type_of(
    expr: Expr, fields: Mapping[str, str], functions: Mapping[str, Mapping[str, Function]]
) -> str:
    if isinstance(expr, FieldRef):
        if expr.name not in fields:
            raise NotationError(f"unknown field {expr.name!r} of the trigger", column=expr.column)
        return fields[expr.name]
    lookup = functions.get(expr.lookup)
    if lookup is None:
        known = ", ".join(sorted(functions)) or "none configured"
        raise NotationError(
            f"unknown lookup {expr.lookup!r} (lookups: {known})", column=expr.column
        )
    function = lookup.get(expr.function)
    if function is None:
        raise NotationError(
            f"lookup {expr.lookup!r} has no function {expr.function!r} "
            f"(functions: {', '.join(sorted(lookup))})",
            column=expr.function_column,
        )
    if len(expr.args) != len(function.inputs):
        raise NotationError(
            f"{function.notation()} takes {len(function.inputs)} input(s), found {len(expr.args)}",
            column=expr.function_column,
        )
    for arg, param in zip(expr.args, function.inputs, strict=True):
        arg_type = _type_of(arg, fields, functions)
        if not assignable(arg_type, param.type):
            column = arg.output_column if isinstance(arg, Call) else arg.column
            raise NotationError(
                f"input {param.name!r} of {function.qualified_name} expects {param.type}, "
                f"found {arg.text()} of type {arg_type}",
                column=column,
            )
    output = function.output(expr.output)
    if output is None:
        names = ", ".join(p.name for p in function.outputs)
        raise NotationError(
            f"{function.qualified_name} has no output {expr.output!r} (outputs: {names})",
            column=expr.output_column,
        )
    return output.type
