"""What the console offers at each step of a field enhancement (seed 001, "Defining Field
Enhancements"): "End" lists the outputs whose type fits the target field, "Continue" the
functions whose inputs fit what is available so far.

A chain is the application reached so far, ``Lookup.Function(args)`` without an output,
or empty at the first step. At the first step the available values are the trigger's
fields: "End" offers those of the target's type (and ``<none>``: no enhancement), and
"Continue" every function each of whose inputs some trigger field can feed. After a
step, "End" offers the step's outputs of the target's type, in both notations
(``DNS.Name(src_ip).host_name`` and the display form ``DNS...host_name``), and
"Continue" every function with an input that one of the step's outputs can feed.
Lists are sorted, so they are stable for the console and for tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netdistill.enhance.notation import Call, assignable, check, parse
from netdistill.errors import NotationError
from netdistill.lookups.base import Function, Param

NONE = "<none>"


def parse_chain(chain: str) -> Call:
    """``DNS.Name(src_ip)`` → the call (its output left empty)."""
    expr = parse(chain + ".__output__")
    if not isinstance(expr, Call):
        raise NotationError("a chain is a function application, e.g. DNS.Name(src_ip)", column=1)
    return expr


def options(
    target: str,
    chain: str,
    fields: Mapping[str, str],
    catalogue: Mapping[str, Mapping[str, Function]],
) -> dict[str, Any]:
    """The End and Continue lists for filling ``target`` after ``chain``."""
    if target not in fields:
        raise NotationError(f"unknown target field {target!r}", column=1)
    target_type = fields[target]
    functions = sorted(
        (f for lookup in catalogue.values() for f in lookup.values()),
        key=lambda f: f.qualified_name,
    )
    if not chain.strip():
        end = [
            {"expression": name, "display": name, "type": type_}
            for name, type_ in sorted(fields.items())
            if assignable(type_, target_type)
        ]
        end.append({"expression": NONE, "display": NONE, "type": ""})

        def fed(param: Param) -> bool:
            return any(assignable(t, param.type) for t in fields.values())

        continue_ = [f.notation() for f in functions if all(fed(p) for p in f.inputs)]
        return {
            "field": target,
            "type": target_type,
            "chain": "",
            "end": end,
            "continue": continue_,
        }
    call = parse_chain(chain)
    # type-check the chain's arguments and function (the output is ours to choose)
    signature = catalogue.get(call.lookup, {}).get(call.function)
    if signature is None:
        check(call, fields, catalogue)  # raises the precise error
        raise AssertionError
    for output in signature.outputs:
        probe = Call(
            call.lookup,
            call.function,
            call.args,
            output.name,
            call.column,
            call.function_column,
            call.output_column,
        )
        check(probe, fields, catalogue)
        break
    prefix = call.application
    end = [
        {"expression": f"{prefix}.{o.name}", "display": f"{call.lookup}...{o.name}", "type": o.type}
        for o in signature.outputs
        if assignable(o.type, target_type)
    ]
    continue_ = [
        f.notation()
        for f in functions
        if any(assignable(o.type, p.type) for o in signature.outputs for p in f.inputs)
    ]
    return {
        "field": target,
        "type": target_type,
        "chain": prefix,
        "end": end,
        "continue": continue_,
    }


def check_expression(
    text: str,
    target: str,
    fields: Mapping[str, str],
    catalogue: Mapping[str, Mapping[str, Function]],
) -> str:
    """Type of a complete enhancement for ``target``; ``NotationError`` if it does not fit."""
    return check(parse(text), fields, catalogue, target=(target, fields[target]))
