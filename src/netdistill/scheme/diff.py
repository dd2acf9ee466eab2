"""What changed between two schemes, in the terms the running processes act on.

Every live change goes through one comparison (as Vector's ``ConfigDiff``): ``run``
(``manager/local.py``) and ``manager`` (``manager/serve.py``) restart the sources of
gatherer ``local`` that ``SchemeDiff.sources_on("local")`` lists and rebuild the
enhancer and stages when ``flow_changed``; a gatherer (``gatherer/main.py``) compares its
running sources with a new plan with the same ``NamedDiff``.

Guarantees: entries are compared by name, by value (the frozen pydantic models'
equality); a source that moves from one gatherer to another is removed from the first
and added to the second; lists keep the order of the schemes (removed: the old one's,
added and changed: the new one's). ``flow_changed`` is true exactly when the sources,
lookups, procedures or stages sections differ as lists (a reordering counts: stages run
in scheme order) or ``manager.stages_interval_s`` changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: sections whose change rebuilds the enhancer and the stage runner
FLOW_SECTIONS = ("sources", "lookups", "procedures", "stages")
#: the manager setting that is part of the flow (how often the stages run)
FLOW_MANAGER_KEYS = ("stages_interval_s",)


@dataclass(frozen=True)
class NamedDiff(Generic[T]):
    """The difference between two collections of named entries."""

    #: name → new entry, in the new order
    added: dict[str, T] = field(default_factory=dict)
    #: name → old entry, in the old order
    removed: dict[str, T] = field(default_factory=dict)
    #: name → (old entry, new entry), in the new order
    changed: dict[str, tuple[T, T]] = field(default_factory=dict)
    #: the same names and entries, in another order
    reordered: bool = False
    #: names whose running instance goes away (removed or changed), in the old order
    to_stop: list[str] = field(default_factory=list)
    #: entries to start (added, or the new side of changed), in the new order
    to_start: list[T] = field(default_factory=list)

    @classmethod
    def of(cls, before: Mapping[str, T], after: Mapping[str, T]) -> NamedDiff[T]:
        added = {n: e for n, e in after.items() if n not in before}
        removed = {n: e for n, e in before.items() if n not in after}
        changed = {n: (before[n], e) for n, e in after.items() if n in before and before[n] != e}
        same_names = not added and not removed
        return cls(
            added,
            removed,
            changed,
            reordered=same_names and list(before) != list(after),
            to_stop=[n for n in before if n in removed or n in changed],
            to_start=[e for n, e in after.items() if n in added or n in changed],
        )

    @classmethod
    def of_entries(
        cls, before: Iterable[T], after: Iterable[T], name: Callable[[T], str]
    ) -> NamedDiff[T]:
        return cls.of({name(e): e for e in before}, {name(e): e for e in after})

    def __bool__(self) -> bool:
        """True when anything differs (order included)."""
        return bool(self.added or self.removed or self.changed or self.reordered)

    def names(self) -> dict[str, list[str]]:
        """``{"added": […], "removed": […], "changed": […]}`` (for people and the API)."""
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
        }


def _by_name(entries: Iterable[Any]) -> dict[str, Any]:
    return {entry.name: entry for entry in entries}


class SchemeDiff:
    """``new`` compared with ``old``: sources per gatherer, the named sections, and the
    manager settings. Cheap to build; holds references to both schemes' entries."""

    def __init__(self, old: Any, new: Any) -> None:
        self.old = old
        self.new = new
        gatherers = [s.gatherer for s in [*old.sources, *new.sources]]
        #: every source, whatever its gatherer (``run`` runs them all in one process)
        self.all_sources: NamedDiff[Any] = NamedDiff.of(
            _by_name(old.sources), _by_name(new.sources)
        )
        #: gatherer → its sources' diff (only gatherers with a change)
        self.sources: dict[str, NamedDiff[Any]] = {}
        for gatherer in dict.fromkeys(gatherers):
            diff = self._sources_of(gatherer)
            if diff:
                self.sources[gatherer] = diff
        self.lookups: NamedDiff[Any] = NamedDiff.of(_by_name(old.lookups), _by_name(new.lookups))
        self.procedures: NamedDiff[Any] = NamedDiff.of(
            _by_name(old.procedures), _by_name(new.procedures)
        )
        self.stages: NamedDiff[Any] = NamedDiff.of(_by_name(old.stages), _by_name(new.stages))
        self.gatherers: NamedDiff[Any] = NamedDiff.of(
            _by_name(old.gatherers), _by_name(new.gatherers)
        )
        #: manager setting → (old value, new value), for every setting that differs
        self.manager: dict[str, tuple[Any, Any]] = {
            key: (getattr(old.manager, key), getattr(new.manager, key))
            for key in type(new.manager).model_fields
            if getattr(old.manager, key) != getattr(new.manager, key)
        }
        self.store_changed = old.store != new.store
        self.demo_changed = old.demo != new.demo

    def _sources_of(self, gatherer: str) -> NamedDiff[Any]:
        before = _by_name(s for s in self.old.sources if s.gatherer == gatherer)
        after = _by_name(s for s in self.new.sources if s.gatherer == gatherer)
        return NamedDiff.of(before, after)

    def sources_on(self, gatherer: str) -> NamedDiff[Any]:
        """The diff of the sources gatherer ``gatherer`` runs (empty: no change)."""
        return self.sources.get(gatherer, NamedDiff())

    @property
    def sources_reordered(self) -> bool:
        """The sources section lists the same entries in another order."""
        return self.all_sources.reordered

    @property
    def flow_changed(self) -> bool:
        """Whether the enhancer and the stage runner must be rebuilt (module docstring)."""
        return bool(
            self.sources
            or self.sources_reordered
            or self.lookups
            or self.procedures
            or self.stages
            or any(key in self.manager for key in FLOW_MANAGER_KEYS)
        )

    def __bool__(self) -> bool:
        return bool(
            self.flow_changed
            or self.gatherers
            or self.manager
            or self.store_changed
            or self.demo_changed
            or self.old.version != self.new.version
        )

    def describe(self) -> list[str]:
        """One line per change, for logs: ``sources on local: added a; changed b``."""
        lines = []
        for gatherer, diff in self.sources.items():
            lines.append(f"sources on {gatherer}: {_names_text(diff)}")
        for section in ("lookups", "procedures", "stages", "gatherers"):
            diff = getattr(self, section)
            if diff:
                lines.append(f"{section}: {_names_text(diff)}")
        if self.manager:
            lines.append(f"manager: {', '.join(self.manager)} changed")
        return lines


def _names_text(diff: NamedDiff[Any]) -> str:
    parts = [f"{kind} {', '.join(names)}" for kind, names in diff.names().items() if names]
    return "; ".join(parts) or "reordered"
