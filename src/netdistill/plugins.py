"""Named plugin types: one generic registry for sources, lookups and stages.

A scheme entry says ``type: netflow``; the registry of its kind maps that name to the
type's pydantic config model and its runtime class. Two places fill a registry:

* the built-in types, named as ``"module:Class"`` strings and imported lazily, so a
  deployment loads only the protocol libraries its scheme uses (``ldap3`` only when an
  LDAP lookup is configured);
* the entry-point group of the kind (``netdistill.sources``, ``netdistill.lookups``,
  ``netdistill.stages``), read with ``importlib.metadata``, so a third party ships a
  device as a package of its own (docs/plugins.md). An entry point's name is the type
  name, its object the runtime class, which names its config model in ``config_model``.

Guarantees: the entry points are read once per registry, at its first use; a type name
offered twice (by a built-in and a distribution, or by two distributions) and an entry
point that does not load, or whose config model does not fit, raise ``PluginError``
naming the distribution — at start-up, since building the scheme model loads every
config model. Lookups never import anything after the first use; the registry is safe
to read from several threads once built (the first use happens at import of the scheme
model).

pluggy was not used: it suits broadcast hooks, while these are named factories of which
several instances run with different settings (STYLE.md "Registration").
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar, cast

from pydantic import BaseModel

from netdistill.errors import PluginError

T = TypeVar("T")

#: who offers a built-in type, in messages
BUILT_IN = "netdistill (built in)"


@dataclass(frozen=True, slots=True)
class PluginType:
    """One named type: where its config model and runtime class come from."""

    name: str
    #: ``"module:Class"`` of the config model ("" when the type has none), or None when
    #: the runtime class names it in ``config_model`` (entry points)
    config: str | None
    #: ``"module:Class"`` of the runtime class (built-in types)
    runtime: str
    #: the distribution that ships it (``BUILT_IN`` for netdistill's own)
    distribution: str = BUILT_IN
    entry_point: EntryPoint | None = None


def load_object(target: str) -> Any:
    """The object named by ``"module:attribute"``."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _distribution_of(entry_point: EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return str(name) if name else "an unknown distribution"


class Registry(Generic[T]):
    """The types of one kind of plugin, by name; ``T`` is what a runtime class is.

    ``builtins`` maps type name → (config model, runtime class) as ``"module:Class"``;
    ``group`` is the entry-point group (None: built-in types only); ``config_base`` is
    the class every config model must subclass (None: any pydantic model)."""

    def __init__(
        self,
        kind: str,
        builtins: Mapping[str, tuple[str, str]],
        *,
        group: str | None = None,
        config_base: type[BaseModel] | None = None,
        discover: Callable[[str], Iterable[EntryPoint]] | None = None,
    ) -> None:
        self.kind = kind
        self.group = group
        self.config_base = config_base
        self._builtins = {
            name: PluginType(name, config or "", runtime)
            for name, (config, runtime) in builtins.items()
        }
        self._discover = discover or (lambda group: entry_points(group=group))
        self._types: dict[str, PluginType] | None = None
        self._loaded: dict[str, Any] = {}
        self._lock = threading.RLock()

    # --- the names ----------------------------------------------------------------------

    def _all(self) -> dict[str, PluginType]:
        with self._lock:
            if self._types is None:
                self._types = self._read_entry_points()
            return self._types

    def _read_entry_points(self) -> dict[str, PluginType]:
        types = dict(self._builtins)
        if self.group is None:
            return types
        for entry_point in self._discover(self.group):
            found = PluginType(
                entry_point.name,
                None,
                entry_point.value,
                distribution=_distribution_of(entry_point),
                entry_point=entry_point,
            )
            other = types.get(found.name)
            if other is not None:
                raise PluginError(
                    f"{self.kind} type {found.name!r} of distribution {found.distribution!r} "
                    f"(entry point {found.runtime!r} in group {self.group!r}) clashes with "
                    f"the one of {other.distribution!r}; uninstall one of them"
                )
            types[found.name] = found
        return types

    def names(self) -> list[str]:
        """Every type name: the built-in ones first, then the plugins' in the order found."""
        return list(self._all())

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._all())

    def distribution(self, name: str) -> str:
        """Which distribution offers type ``name``."""
        return self._type(name).distribution

    def _type(self, name: str) -> PluginType:
        found = self._all().get(name)
        if found is None:
            known = ", ".join(self._all()) or "none"
            raise PluginError(f"unknown {self.kind} type {name!r} (known: {known})")
        return found

    # --- loading ------------------------------------------------------------------------

    def runtime_class(self, name: str) -> T:
        """The runtime class of type ``name`` (imported on first use)."""
        plugin = self._type(name)
        key = f"runtime:{name}"
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = self._load_runtime(plugin)
            return cast(T, self._loaded[key])

    def _load_runtime(self, plugin: PluginType) -> Any:
        if plugin.entry_point is None:
            return load_object(plugin.runtime)
        try:
            return plugin.entry_point.load()
        except Exception as exc:
            raise PluginError(
                f"{self.kind} type {plugin.name!r} of distribution {plugin.distribution!r}: "
                f"entry point {plugin.runtime!r} failed to load: {type(exc).__name__}: {exc}"
            ) from exc

    def config_class(self, name: str) -> type[BaseModel] | None:
        """The config model of type ``name`` (None: the type takes no settings)."""
        plugin = self._type(name)
        key = f"config:{name}"
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = self._load_config(plugin)
            return cast("type[BaseModel] | None", self._loaded[key])

    def _load_config(self, plugin: PluginType) -> type[BaseModel] | None:
        if plugin.config == "":
            return None
        if plugin.config is not None:
            return cast("type[BaseModel]", load_object(plugin.config))
        runtime = self.runtime_class(plugin.name)
        model = getattr(runtime, "config_model", None)
        where = f"{self.kind} type {plugin.name!r} of distribution {plugin.distribution!r}"
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise PluginError(
                f"{where}: {plugin.runtime} has no config_model (a pydantic model class)"
            )
        if self.config_base is not None and not issubclass(model, self.config_base):
            raise PluginError(
                f"{where}: its config model {model.__name__} must subclass "
                f"{self.config_base.__module__}.{self.config_base.__name__}"
            )
        field = model.model_fields.get("type")
        tags = getattr(field.annotation, "__args__", ()) if field is not None else ()
        if plugin.name not in tags:
            raise PluginError(
                f"{where}: its config model {model.__name__} must declare "
                f"type: Literal[{plugin.name!r}] (the scheme's type: key)"
            )
        return model

    def config_classes(self) -> list[type[BaseModel]]:
        """The config models of every type that has one, in the order of ``names``."""
        models = [self.config_class(name) for name in self.names()]
        return [m for m in models if m is not None]


def inventory() -> dict[str, Any]:
    """What this process can run, for heartbeats and the manager's comparison
    (``manager/versions.py``): each source type with the distribution and version that
    offer it, and every distribution offering a source, lookup or stage type, with its
    version. A registry that fails to read its entry points is named under ``errors``."""
    from importlib.metadata import PackageNotFoundError, version

    from netdistill import __version__
    from netdistill.lookups.registry import LOOKUPS
    from netdistill.sources.registry import SOURCES
    from netdistill.stages.registry import STAGES

    def version_of(distribution: str) -> str:
        if distribution == BUILT_IN:
            return __version__
        try:
            return version(distribution)
        except PackageNotFoundError:
            return "?"

    sources: dict[str, str] = {}
    distributions: dict[str, str] = {}
    errors: list[str] = []
    for kind, registry in (("source", SOURCES), ("lookup", LOOKUPS), ("stage", STAGES)):
        try:
            names = registry.names()
        except PluginError as exc:
            errors.append(str(exc))
            continue
        for name in names:
            distribution = registry.distribution(name)
            shown = "netdistill" if distribution == BUILT_IN else distribution
            if kind == "source":
                sources[name] = f"{shown} {version_of(distribution)}"
            if distribution != BUILT_IN:
                distributions[distribution] = version_of(distribution)
    out: dict[str, Any] = {"sources": sources, "distributions": distributions}
    if errors:
        out["errors"] = errors
    return out
