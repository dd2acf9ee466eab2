"""Lexer and recursive-descent parser of the boolean expression language.

Grammar (lowest precedence first)::

    or_expr   := and_expr ("or" and_expr)*
    and_expr  := not_expr ("and" not_expr)*
    not_expr  := "not" not_expr | predicate
    predicate := operand ( CMP operand
                         | ["not"] "in" ( "(" literal ("," literal)* ")" | network )
                         | ["not"] "like" STRING
                         | "matches" STRING
                         | "is" ["not"] "null" )?
               | "(" or_expr ")"
    operand   := NAME | literal
    literal   := NUMBER | STRING | "true" | "false" | IPV4 | "timestamp" STRING
    network   := IPV4 "/" NUMBER | STRING (an IPv4 or IPv6 network in quotes)

CMP is one of ``= != <> < <= > >=``. Keywords are case-insensitive; strings use single
quotes ('' inside a string is one quote). Hand-written: the grammar is small, and a
hand-written parser reports exact columns; nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from netdistill.errors import ExprError


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    column: int


@dataclass(frozen=True, slots=True)
class Literal:
    """``kind``: number, string, bool, ipv4 (bare address), timestamp."""

    value: object
    kind: str
    column: int


Operand = Field | Literal


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Operand
    right: Operand
    column: int


@dataclass(frozen=True, slots=True)
class InList:
    operand: Operand
    items: tuple[Literal, ...]
    negated: bool
    column: int


@dataclass(frozen=True, slots=True)
class InNetwork:
    operand: Operand
    network: str
    negated: bool
    column: int


@dataclass(frozen=True, slots=True)
class Like:
    operand: Operand
    pattern: str
    negated: bool
    regex: bool  # ``matches``: a regular expression searched anywhere in the value
    column: int


@dataclass(frozen=True, slots=True)
class IsNull:
    operand: Operand
    negated: bool
    column: int


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and, or
    left: Node
    right: Node
    column: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    column: int


Node = Compare | InList | InNetwork | Like | IsNull | BoolOp | Not | Field | Literal

_KEYWORDS = {"and", "or", "not", "in", "like", "matches", "is", "null", "true", "false"}
_LEXER = re.compile(
    r"""(?P<space>\s+)
      |(?P<cidr>\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/\d{1,3})
      |(?P<ipv4>\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})
      |(?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
      |(?P<string>'(?:[^']|'')*')
      |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
      |(?P<op><=|>=|!=|<>|=|<|>)
      |(?P<punct>[(),])""",
    re.VERBOSE,
)


def tokenize(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        match = _LEXER.match(text, pos)
        if match is None:
            if text[pos] == "'":
                raise ExprError("string is not closed (missing ')", column=pos + 1)
            raise ExprError(f"unexpected character {text[pos]!r}", column=pos + 1)
        kind = match.lastgroup or ""
        value = match.group()
        if kind == "name" and value.lower() in _KEYWORDS:
            kind, value = "keyword", value.lower()
        if kind != "space":
            out.append((kind, value, pos + 1))
        pos = match.end()
    out.append(("end", "", len(text) + 1))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> tuple[str, str, int]:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def is_keyword(self, word: str, ahead: int = 0) -> bool:
        kind, value, _ = self.peek(ahead)
        return kind == "keyword" and value == word

    def fail(self, expected: str) -> ExprError:
        kind, value, column = self.peek()
        found = "the end" if kind == "end" else repr(value)
        return ExprError(f"expected {expected}, found {found}", column=column)

    def expect(self, kind: str, value: str, expected: str) -> int:
        token = self.peek()
        if token[0] != kind or token[1] != value:
            raise self.fail(expected)
        self.i += 1
        return token[2]

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.is_keyword("or"):
            column = self.peek()[2]
            self.i += 1
            node = BoolOp("or", node, self.and_expr(), column)
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.is_keyword("and"):
            column = self.peek()[2]
            self.i += 1
            node = BoolOp("and", node, self.not_expr(), column)
        return node

    def not_expr(self) -> Node:
        if self.is_keyword("not"):
            column = self.peek()[2]
            self.i += 1
            return Not(self.not_expr(), column)
        return self.predicate()

    def predicate(self) -> Node:
        if self.peek()[:2] == ("punct", "("):
            self.i += 1
            node = self.or_expr()
            self.expect("punct", ")", "')'")
            return node
        left = self.operand()
        kind, value, column = self.peek()
        if kind == "op":
            self.i += 1
            return Compare("!=" if value == "<>" else value, left, self.operand(), column)
        negated = False
        if self.is_keyword("not") and (self.is_keyword("in", 1) or self.is_keyword("like", 1)):
            negated = True
            self.i += 1
            column = self.peek()[2]
        if self.is_keyword("in"):
            self.i += 1
            return self.membership(left, negated, column)
        if self.is_keyword("like") or (self.is_keyword("matches") and not negated):
            regex = self.peek()[1] == "matches"
            self.i += 1
            kind, value, _ = self.peek()
            if kind != "string":
                raise self.fail("a quoted pattern")
            self.i += 1
            return Like(left, _unquote(value), negated, regex, column)
        if self.is_keyword("is"):
            self.i += 1
            is_not = self.is_keyword("not")
            if is_not:
                self.i += 1
            self.expect("keyword", "null", "'null'")
            return IsNull(left, is_not, column)
        return left

    def membership(self, left: Operand, negated: bool, column: int) -> Node:
        kind, value, _ = self.peek()
        if kind == "cidr":
            self.i += 1
            return InNetwork(left, value, negated, column)
        if kind == "string" and "/" in value:
            self.i += 1
            return InNetwork(left, _unquote(value), negated, column)
        self.expect("punct", "(", "'(' and a list, or a network such as 10.0.0.0/8")
        items = [self.literal()]
        while self.peek()[:2] == ("punct", ","):
            self.i += 1
            items.append(self.literal())
        self.expect("punct", ")", "',' or ')'")
        return InList(left, tuple(items), negated, column)

    def operand(self) -> Operand:
        kind, value, column = self.peek()
        if kind == "name" and value.lower() == "timestamp" and self.peek(1)[0] == "string":
            self.i += 2
            return Literal(_unquote(self.peek(-1)[1]), "timestamp", column)
        if kind == "name":
            self.i += 1
            return Field(value, column)
        return self.literal()

    def literal(self) -> Literal:
        kind, value, column = self.peek()
        self.i += 1
        if kind == "number":
            number = float(value) if any(c in value for c in ".eE") else int(value)
            return Literal(number, "number", column)
        if kind == "string":
            return Literal(_unquote(value), "string", column)
        if kind == "ipv4":
            return Literal(value, "ipv4", column)
        if kind == "keyword" and value in ("true", "false"):
            return Literal(value == "true", "bool", column)
        if kind == "name" and value.lower() == "timestamp" and self.peek()[0] == "string":
            self.i += 1
            return Literal(_unquote(self.peek(-1)[1]), "timestamp", column)
        self.i -= 1
        raise self.fail("a field name or a value")


def _unquote(token: str) -> str:
    return token[1:-1].replace("''", "'")


def parse(text: str) -> Node:
    """The syntax tree of ``text``; ``ExprError`` names the column of a problem."""
    parser = _Parser(text)
    node = parser.or_expr()
    if parser.peek()[0] != "end":
        raise parser.fail("'and', 'or' or the end")
    return node
