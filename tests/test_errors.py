"""The exception tree: every exception class in ``src/`` is under ``NetdistillError``, the
public ones live in ``errors.py``, and the docstring's drawing names each of them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import netdistill
from netdistill import errors


def _all_modules() -> list[object]:
    modules = []
    for info in pkgutil.walk_packages(netdistill.__path__, "netdistill."):
        if info.name.endswith("__main__"):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def _defined_exceptions() -> list[type[BaseException]]:
    found = []
    for module in _all_modules():
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def test_every_exception_class_is_in_the_tree() -> None:
    classes = _defined_exceptions()
    assert errors.NetdistillError in classes  # the walk saw errors.py itself
    outside = [
        f"{c.__module__}.{c.__qualname__}"
        for c in classes
        if not issubclass(c, errors.NetdistillError)
    ]
    assert outside == []


def test_public_exceptions_are_defined_in_errors_py() -> None:
    elsewhere = [
        f"{c.__module__}.{c.__qualname__}"
        for c in _defined_exceptions()
        if c.__module__ != "netdistill.errors" and not c.__name__.startswith("_")
    ]
    assert elsewhere == []


def _drawn_names() -> set[str]:
    """The class names in the docstring's drawing (the first word after each branch)."""
    doc = errors.__doc__ or ""
    drawing = doc.split("::", 1)[1].split("\n\n", 2)[1]
    names = set()
    for line in drawing.splitlines():
        text = line.strip()
        if text.startswith("NetdistillError") or "──" in text:
            names.add(text.split("──")[-1].split()[0])
    return names


def test_the_drawing_names_every_class() -> None:
    drawn = _drawn_names()
    assert {c.__name__ for c in _defined_exceptions()} == drawn
    assert sorted(errors.__all__) == sorted(
        c.__name__ for c in _defined_exceptions() if c.__module__ == "netdistill.errors"
    )


def test_behaviour_kept_where_callers_catch_value_error() -> None:
    # raised inside pydantic validators and caught as ValueError by DNS code
    assert issubclass(errors.StageCheckError, ValueError)
    assert issubclass(errors.WireError, ValueError)
    assert issubclass(errors.FramingError, ValueError)
    framing = errors.FramingError("octet count without a space", 17)
    assert str(framing) == "octet count without a space at stream byte 17"
    assert framing.offset == 17
