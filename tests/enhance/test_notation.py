"""The seeds' enhancement notation: chains of depth 1–4 and every error with its column."""

from __future__ import annotations

import pytest

from netdistill.enhance.notation import Call, FieldRef, check, parse
from netdistill.errors import NotationError
from netdistill.lookups.base import Function, Param

F = {
    "src_ip": "ip",
    "start_time": "timestamp",
    "bytes": "uint64",
    "protocol": "uint8",
    "dst_port": "uint16",
    "user_name": "string",
    "src_host": "string",
    "record_id": "int64",
}


def fn(lookup, name, inputs, outputs):
    return Function(
        lookup, name, tuple(Param(*p) for p in inputs), tuple(Param(*p) for p in outputs)
    )


CAT = {
    "DNS": {
        "Name": fn("DNS", "Name", [("ip", "ip")], [("host_name", "string")]),
        "Address": fn("DNS", "Address", [("host_name", "string")], [("ip_address", "ip")]),
    },
    "RADIUS": {
        "User": fn(
            "RADIUS",
            "User",
            [("ip", "ip"), ("at", "timestamp")],
            [("user_name", "string"), ("nas", "ip")],
        )
    },
    "LDAP": {
        "Person": fn(
            "LDAP",
            "Person",
            [("uid", "string")],
            [("department", "string"), ("employee_no", "int64")],
        )
    },
    "Ports": {
        "Service": fn(
            "Ports", "Service", [("protocol", "uint8"), ("port", "uint16")], [("service", "string")]
        )
    },
}


@pytest.mark.parametrize(
    ("text", "target", "type_", "depth"),
    [
        ("src_ip", "src_ip", "ip", 1),
        ("DNS.Name(src_ip).host_name", "src_host", "string", 2),
        (
            "LDAP.Person(RADIUS.User(src_ip, start_time).user_name).department",
            "user_name",
            "string",
            3,
        ),
        (
            "LDAP.Person(DNS.Name(DNS.Address(DNS.Name(src_ip).host_name).ip_address).host_name)"
            ".employee_no",
            "record_id",
            "int64",
            5,
        ),
        ("Ports.Service(protocol, dst_port).service", "user_name", "string", 2),
        (" DNS . Name ( src_ip ) . host_name ", "src_host", "string", 2),
    ],
)
def test_valid_chains(text, target, type_, depth):
    expr = parse(text)
    assert check(expr, F, CAT, target=(target, F[target])) == type_
    levels, node = 1, expr
    while isinstance(node, Call):
        levels += 1
        node = node.args[0]
    assert levels == depth
    assert (isinstance(node, FieldRef) and node.name == "src_ip") or node.name == "protocol"


def test_text_and_display_forms():
    expr = parse("LDAP.Person(RADIUS.User(src_ip,start_time).user_name).department")
    assert expr.text() == "LDAP.Person(RADIUS.User(src_ip, start_time).user_name).department"
    assert expr.display() == "LDAP...department"
    assert expr.args[0].display() == "RADIUS...user_name"


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("DNS.Name(src_ip", 16, "expected ',' or ')', found the end"),
        ("DNS.Name(src_ip)", 17, "expected '.' and an output name, found the end"),
        ("DNS.Name(src_ip).", 18, "expected an output name, found the end"),
        ("DNS.(src_ip).x", 5, "expected a function name, found '('"),
        ("src_ip src_host", 8, "unexpected 'src_host' after the expression"),
        ("DNS.Name(src_ip$).host_name", 16, "unexpected character '$'"),
        ("", 1, "expected a field or lookup name, found the end"),
    ],
)
def test_syntax_errors(text, column, message):
    with pytest.raises(NotationError) as info:
        parse(text)
    assert (info.value.column, info.value.message) == (column, message)


@pytest.mark.parametrize(
    ("text", "target", "column", "message"),
    [
        ("dst_ip", "src_ip", 1, "unknown field 'dst_ip' of the trigger"),
        (
            "DNX.Name(src_ip).host_name",
            "src_host",
            1,
            "unknown lookup 'DNX' (lookups: DNS, LDAP, Ports, RADIUS)",
        ),
        (
            "DNS.Nam(src_ip).host_name",
            "src_host",
            5,
            "lookup 'DNS' has no function 'Nam' (functions: Address, Name)",
        ),
        (
            "DNS.Name(src_ip).hostname",
            "src_host",
            18,
            "DNS.Name has no output 'hostname' (outputs: host_name)",
        ),
        (
            "DNS.Name(bytes).host_name",
            "src_host",
            10,
            "input 'ip' of DNS.Name expects ip, found bytes of type uint64",
        ),
        (
            "DNS.Name(src_ip, start_time).host_name",
            "src_host",
            5,
            "DNS.Name(ip:ip) → (host_name:string) takes 1 input(s), found 2",
        ),
        (
            "LDAP.Person(RADIUS.User(src_ip, start_time).nas).department",
            "user_name",
            45,
            "input 'uid' of LDAP.Person expects string, found RADIUS.User(src_ip, start_time).nas"
            " of type ip",
        ),
        (
            "DNS.Name(src_ip).host_name",
            "bytes",
            18,
            "DNS...host_name is string, but target field 'bytes' is uint64",
        ),
        ("src_ip", "bytes", 1, "src_ip is ip, but target field 'bytes' is uint64"),
    ],
)
def test_type_errors(text, target, column, message):
    with pytest.raises(NotationError) as info:
        check(parse(text), F, CAT, target=(target, F[target]))
    assert (info.value.column, info.value.message) == (column, message)


def test_unsigned_widening_is_allowed_and_narrowing_is_not():
    assert check(parse("protocol"), F, CAT, target=("bytes", "uint64")) == "uint8"
    with pytest.raises(NotationError, match="bytes is uint64, but target field 'protocol'"):
        check(parse("bytes"), F, CAT, target=("protocol", "uint8"))
