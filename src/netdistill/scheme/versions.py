"""Versions of the scheme and what changes between two of them.

Every scheme the manager runs is kept in the store, in table ``scheme_versions``
(``version, saved_at, user_name, comment, yaml, sha256``): version 1 is the scheme the
process first started with, and each change applied through the console
(``PUT /api/scheme``, a rollback) adds the next version with who made it. A start with a
scheme that differs from the latest version (the file was edited while the manager was
down) adds a version too, by ``startup``. With the built-in demo (no scheme file) the
versions live only here.

``diff_text`` is a unified diff of the YAML; ``summarize`` says, per section, which named
entries (sources, lookups, procedures, stages, gatherers — merges and alerts are stages)
are added, removed or changed, and which keys of the single sections (``manager``,
``store``, ``demo``) changed::

    {"sources": {"added": ["web2"], "removed": [], "changed": []},
     "manager": {"changed": ["retention_days"]}}

``restart_needed`` lists what a running process cannot take over live (its API socket,
its store, the monitor and window jobs, the demo devices).
"""

from __future__ import annotations

import difflib
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from netdistill.manager.tables import execute
from netdistill.scheme.models import Scheme
from netdistill.store import Store

_DDL = """
CREATE TABLE IF NOT EXISTS scheme_versions (
    version INTEGER PRIMARY KEY, saved_at TIMESTAMPTZ NOT NULL, user_name VARCHAR NOT NULL,
    comment VARCHAR NOT NULL, yaml VARCHAR NOT NULL, sha256 VARCHAR NOT NULL)
"""

NAMED_SECTIONS = ("sources", "lookups", "procedures", "stages", "gatherers")
SINGLE_SECTIONS = ("manager", "store", "demo", "version")
#: keys of ``manager`` a running process cannot change (its socket, its jobs' setup)
RESTART_MANAGER_KEYS = ("api_host", "api_port", "tls", "windows", "monitor")


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SchemeVersions:
    """The ``scheme_versions`` table; thread-safe."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        execute(store, _DDL)

    def latest(self) -> dict[str, Any] | None:
        rows = self.store.query(
            "SELECT * FROM scheme_versions ORDER BY version DESC LIMIT 1"
        ).to_pylist()
        return _shown(rows[0]) if rows else None

    def get(self, version: int) -> dict[str, Any] | None:
        rows = self.store.query(
            "SELECT * FROM scheme_versions WHERE version = $v", {"v": int(version)}
        ).to_pylist()
        return _shown(rows[0]) if rows else None

    def list(self) -> list[dict[str, Any]]:
        """Every version without its text, newest first."""
        rows = self.store.query(
            "SELECT version, saved_at, user_name, comment, sha256 FROM scheme_versions "
            "ORDER BY version DESC"
        ).to_pylist()
        return [_shown(row) for row in rows]

    def add(self, text: str, *, user: str, comment: str = "") -> int:
        """Store ``text`` as the next version; return its number."""
        with self._lock:
            last = self.store.query("SELECT max(version) AS v FROM scheme_versions").to_pylist()
            version = int(last[0]["v"] or 0) + 1
            execute(
                self.store,
                "INSERT INTO scheme_versions VALUES (?, to_timestamp(?), ?, ?, ?, ?)",
                (version, self._clock(), user, comment, text, sha256_of(text)),
            )
        return version

    def started_with(self, text: str) -> dict[str, Any]:
        """Record the scheme a process starts with, unless it is the latest version."""
        latest = self.latest()
        if latest is None or latest["sha256"] != sha256_of(text):
            comment = (
                "started with this scheme" if latest is None else "started with a changed scheme"
            )
            self.add(text, user="startup", comment=comment)
            latest = self.latest()
        assert latest is not None
        return latest


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row["saved_at"] = row["saved_at"].isoformat().replace("+00:00", "Z")
    return row


def diff_text(old: str, new: str, *, old_name: str = "current", new_name: str = "new") -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name
        )
    )


def _named(entries: list[Any]) -> dict[str, Any]:
    return {entry.name: _dumped(entry) for entry in entries}


def summarize(old: Scheme, new: Scheme) -> dict[str, dict[str, list[str]]]:
    """Per section with a change: the named entries added, removed and changed (in the
    order the schemes list them), or the changed keys of a single section."""
    out: dict[str, dict[str, list[str]]] = {}
    for section in NAMED_SECTIONS:
        before, after = _named(getattr(old, section)), _named(getattr(new, section))
        entry = {
            "added": [name for name in after if name not in before],
            "removed": [name for name in before if name not in after],
            "changed": [name for name in after if name in before and before[name] != after[name]],
        }
        if any(entry.values()):
            out[section] = entry
    for section in SINGLE_SECTIONS:
        before_value = _dumped(getattr(old, section))
        after_value = _dumped(getattr(new, section))
        if before_value == after_value:
            continue
        if isinstance(before_value, dict) and isinstance(after_value, dict):
            keys = sorted(
                k
                for k in before_value.keys() | after_value.keys()
                if before_value.get(k) != after_value.get(k)
            )
            out[section] = {"changed": keys}
        else:
            out[section] = {"changed": [section]}
    return out


def _dumped(value: Any) -> Any:
    """As JSON, secrets as written (a changed inline secret is a change)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", context={"secrets": "reference"})
    return value


def restart_needed(summary: dict[str, dict[str, list[str]]]) -> list[str]:
    """What in ``summary`` a running process cannot apply, one message each."""
    problems = []
    for key in summary.get("manager", {}).get("changed", []):
        if key in RESTART_MANAGER_KEYS:
            problems.append(f"manager.{key} changes only with a restart of the manager")
    if "store" in summary:
        problems.append("store changes only with a restart of the manager")
    if "demo" in summary:
        problems.append("demo changes only with a restart of the manager")
    return problems


def needs_admin(summary: dict[str, dict[str, list[str]]]) -> bool:
    """Retention and the other manager settings are the admin's."""
    return "manager" in summary


SECTIONS = ("manager", "store", "sources", "gatherers", "demo", "lookups", "stages", "procedures")


def _section_lines(text: str, name: str) -> tuple[int, int] | None:
    """[first, end) line indexes of top-level section ``name`` in ``text``, or None."""
    import yaml

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if key.value == name:
            end = value.end_mark.line + (0 if value.end_mark.column == 0 else 1)
            return key.start_mark.line, max(end, key.start_mark.line + 1)
    return None


def section_text(text: str, name: str) -> tuple[str, int]:
    """The lines of ``text`` holding section ``name`` (empty if it has none) and the
    1-based line where they start in ``text``."""
    span = _section_lines(text, name)
    lines = text.splitlines(keepends=True)
    if span is None:
        return "", len(lines) + 1
    return "".join(lines[span[0] : span[1]]), span[0] + 1


def with_section(text: str, name: str, section: str) -> tuple[str, int]:
    """``text`` with section ``name`` replaced by ``section`` (YAML holding that one
    top-level key, or nothing to remove it); also the 1-based line where it starts.
    ``ValueError`` when ``section`` holds anything else."""
    import yaml

    if name not in SECTIONS:
        raise ValueError(f"unknown section {name!r} (one of {', '.join(SECTIONS)})")
    try:
        data = yaml.safe_load(section)
    except yaml.YAMLError as exc:
        raise ValueError(f"the {name} editor: not valid YAML: {exc}") from None
    if data is not None and (not isinstance(data, dict) or list(data) != [name]):
        raise ValueError(f"the {name} editor holds the {name!r} section only ({name}: …)")
    if section and not section.endswith("\n"):
        section += "\n"
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    span = _section_lines(text, name)
    first, end = span if span is not None else (len(lines), len(lines))
    new = lines[:first] + ([section] if data is not None else []) + lines[end:]
    return "".join(new), first + 1
