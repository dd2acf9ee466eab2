"""Evaluating a procedure over a batch: the seeds' ``EnhanceOpNode`` graph (seed 004).

``EnhancePlan`` turns a procedure's field enhancements into a small graph: one node per
distinct function application (``Ports.Service(protocol, dst_port)``), shared by every
field that uses it, in dependency order. ``evaluate`` runs it over a batch, columnar:
for each node the argument columns are reduced to their distinct rows (Arrow hash
dictionary-encoding; several key columns are combined into one integer code), the lookup
is asked once per distinct key, and the answers are taken back to every row. A later
flow-plan compiler can place a plan on a gatherer: it holds the procedure, the lookups it
needs (``lookups``) and nothing else.

``Enhancer`` is the pipeline's ``process(source_name, records)`` hook: the source's
filters (``stages/filter.py``) drop what they reject, then every enabled procedure
triggered by that source takes the records its ``where`` accepts and produces its own
records (one output batch per procedure, after the filters on that procedure,
concatenated); records of a source that triggers no procedure pass unchanged (filtered).
It is also the stages' ``context.enhance`` for a stage's output records (a stage name
stands where a source name does).

Filter counts. The pipeline processes a batch again when its commit failed, so
``__call__`` only notes what it dropped (per source, replacing the note of the batch
before); ``committed(source_name)`` adds the note to the totals once the batch is
committed. ``filter_status()`` shows the totals.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from netdistill.enhance.config import PROVENANCE_FIELDS, ProcedureConfig, field_types
from netdistill.enhance.notation import Expr, FieldRef, parse
from netdistill.records.fields import FIELD_TYPES
from netdistill.records.schema import with_constant

if TYPE_CHECKING:
    from netdistill.stages.filter import Filter


@dataclass(frozen=True, slots=True)
class OpNode:
    """One lookup function applied to argument expressions (the seeds' EnhanceOpNode)."""

    key: str  # "Lookup.Function(args)" — equal keys are one node
    lookup: str
    function: str
    args: tuple[Expr, ...]


def distinct_rows(columns: Sequence[pa.Array]) -> tuple[list[pa.Array], np.ndarray]:
    """The distinct rows of ``columns`` (first-seen order) and, per row, its distinct index.
    Nulls are values like any other here."""
    if len(columns) == 1:
        encoded = pc.dictionary_encode(columns[0])
        if not columns[0].null_count:
            return [encoded.dictionary], encoded.indices.to_numpy()
        size = len(encoded.dictionary)
        nulls = pa.nulls(1, encoded.dictionary.type)
        return (
            [pa.concat_arrays([encoded.dictionary, nulls])],
            encoded.indices.fill_null(size).to_numpy(),
        )
    # Several columns: combine their dictionary codes column by column, re-encoding the
    # running code densely after each step so it never overflows (codes stay below n).
    codes: np.ndarray | None = None
    for column in columns:
        encoded = pc.dictionary_encode(column)
        size = len(encoded.dictionary)
        indices = encoded.indices.fill_null(size).to_numpy().astype(np.int64)
        if codes is None:
            codes = indices
            continue
        combined = pc.dictionary_encode(pa.array(codes * (size + 1) + indices))
        codes = combined.indices.to_numpy().astype(np.int64)
    assert codes is not None
    distinct = int(codes.max()) + 1 if len(codes) else 0
    first = np.empty(distinct, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write is the first row
    positions = pa.array(first)
    return [column.take(positions) for column in columns], codes


class EnhancePlan:
    """The graph of one procedure, evaluated per batch."""

    def __init__(
        self,
        procedure: ProcedureConfig,
        lookups: Mapping[str, Any],
        *,
        types: Mapping[str, str] | None = None,
    ) -> None:
        self.procedure = procedure
        self.types = dict(types) if types is not None else field_types(procedure.add_fields)
        self.targets: dict[str, Expr] = {t: parse(x) for t, x in procedure.fields.items()}
        self.nodes: list[OpNode] = []
        seen: set[str] = set()
        for expr in self.targets.values():
            self._collect(expr, seen)
        self.lookups = {n.lookup: lookups[n.lookup] for n in self.nodes}
        self._signatures = {
            (n.lookup, n.function): next(
                f for f in self.lookups[n.lookup].functions() if f.name == n.function
            )
            for n in self.nodes
        }

    def _collect(self, expr: Expr, seen: set[str]) -> None:
        if isinstance(expr, FieldRef):
            return
        for arg in expr.args:
            self._collect(arg, seen)
        if expr.application not in seen:
            seen.add(expr.application)
            self.nodes.append(OpNode(expr.application, expr.lookup, expr.function, expr.args))

    def evaluate(self, records: pa.Table) -> pa.Table:
        """The procedure's output batch for ``records``."""
        n = records.num_rows
        answers: dict[str, tuple[pa.Table, np.ndarray]] = {}
        index_cache: dict[str, pa.Array] = {}

        def column(expr: Expr) -> pa.Array:
            if isinstance(expr, FieldRef):
                if expr.name in records.column_names:
                    return records.column(expr.name).combine_chunks()
                return pa.nulls(n, FIELD_TYPES[self.types[expr.name]][0])
            table, inverse = answers[expr.application]
            if expr.application not in index_cache:
                index_cache[expr.application] = pa.array(inverse)
            return table.column(expr.output).combine_chunks().take(index_cache[expr.application])

        for node in self.nodes:
            signature = self._signatures[(node.lookup, node.function)]
            args = [
                column(arg).cast(FIELD_TYPES[param.type][0])
                for arg, param in zip(node.args, signature.inputs, strict=True)
            ]
            keys, inverse = distinct_rows(args)
            table = pa.Table.from_arrays(keys, names=[p.name for p in signature.inputs])
            answers[node.key] = (self.lookups[node.lookup].call(node.function, table), inverse)

        out = records
        if not self.procedure.pass_through:
            keep = set(PROVENANCE_FIELDS)
            out = pa.Table.from_arrays(
                [
                    c if name in keep else pa.nulls(n, c.type)
                    for name, c in zip(records.column_names, records.columns, strict=True)
                ],
                schema=records.schema,
            )
        for target, expr in self.targets.items():
            value = column(expr).cast(FIELD_TYPES[self.types[target]][0])
            index = out.schema.get_field_index(target)
            if index < 0:
                out = out.append_column(target, value)
            else:
                out = out.set_column(index, out.schema.field(index).with_type(value.type), value)
        # which procedure made the record: merges and stages select their input by it
        return with_constant(out, "procedure", self.procedure.name)


class Enhancer:
    """``process(source_name, records)`` for the pipeline: the source's filters, then every
    enabled procedure of the source (its ``where`` first, the filters on its output
    after), each over the whole batch. Pure (the lookups' caches and the filter counts
    aside, see the module doc), as the pipeline requires for retries."""

    def __init__(
        self,
        procedures: Sequence[ProcedureConfig],
        lookups: Mapping[str, Any],
        *,
        types: Mapping[str, str] | None = None,
        filters: Sequence[Filter] = (),
        wheres: Mapping[str, Filter] | None = None,
    ) -> None:
        from netdistill.stages.filter import Filter

        self.lookups = dict(lookups)
        self.plans: dict[str, list[EnhancePlan]] = {}
        self.filters: dict[str, list[Filter]] = {}
        for filter_ in filters:
            self.filters.setdefault(filter_.input, []).append(filter_)
        #: procedure name → its ``where`` (on the trigger's records)
        self.wheres: dict[str, Filter] = dict(wheres or {})
        for procedure in procedures:
            if procedure.enabled:
                plan = EnhancePlan(procedure, self.lookups, types=types)
                self.plans.setdefault(procedure.trigger, []).append(plan)
                if procedure.where is not None and procedure.name not in self.wheres:
                    self.wheres[procedure.name] = Filter(
                        procedure.name,
                        procedure.where,
                        field_types(procedure.add_fields),
                        input=procedure.trigger,
                    )
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, tuple[int, int]]] = {}
        self._totals: dict[str, list[int]] = {}

    def _filtered(self, name: str, records: pa.Table, seen: dict[str, tuple[int, int]]) -> pa.Table:
        for filter_ in self.filters.get(name, ()):
            before = records.num_rows
            records, dropped = filter_.apply(records)
            seen[filter_.name] = (before, dropped)
        return records

    def __call__(self, source_name: str, records: pa.Table) -> pa.Table:
        seen: dict[str, tuple[int, int]] = {}
        records = self._filtered(source_name, records, seen)
        plans = self.plans.get(source_name)
        if not plans:
            self._note(source_name, seen)
            return records
        outputs = []
        for plan in plans:
            taken = records
            where = self.wheres.get(plan.procedure.name)
            if where is not None:
                taken, dropped = where.apply(records)
                seen[f"{plan.procedure.name}.where"] = (records.num_rows, dropped)
            output = plan.evaluate(taken) if taken.num_rows else None
            if output is not None:
                outputs.append(self._filtered(plan.procedure.name, output, seen))
        self._note(source_name, seen)
        if not outputs:
            return records.slice(0, 0)
        if len(outputs) == 1:
            return outputs[0]
        return pa.concat_tables(outputs, promote_options="default")

    def _note(self, source_name: str, seen: dict[str, tuple[int, int]]) -> None:
        if self.filters or self.wheres:
            with self._lock:
                self._pending[source_name] = seen

    def committed(self, source_name: str) -> None:
        """The batch last processed for ``source_name`` is committed: count its drops."""
        with self._lock:
            for name, (records, dropped) in self._pending.pop(source_name, {}).items():
                total = self._totals.setdefault(name, [0, 0])
                total[0] += records
                total[1] += dropped

    def filter_status(self) -> list[dict[str, Any]]:
        """Per filter (and procedure ``where``): records looked at and dropped."""
        items = [(f.name, f, "filter") for fs in self.filters.values() for f in fs]
        items += [(f"{name}.where", f, "procedure") for name, f in self.wheres.items()]
        with self._lock:
            return [
                {
                    "name": name,
                    "kind": kind,
                    "input": filter_.input,
                    "where": filter_.where,
                    "records": self._totals.get(name, [0, 0])[0],
                    "dropped": self._totals.get(name, [0, 0])[1],
                }
                for name, filter_, kind in items
            ]

    def status(self) -> list[dict[str, Any]]:
        return [lookup.status() for lookup in self.lookups.values() if hasattr(lookup, "status")]

    def close(self) -> None:
        for lookup in self.lookups.values():
            lookup.close()


def build_enhancer(scheme: Any, store: Any = None) -> Enhancer | None:
    """The enhancer of a scheme (``None`` when it has no enabled procedure or filter):
    builds the lookups the procedures use and adds their ``add_fields`` to the store."""
    from netdistill.stages.filter import Filter, input_field_types

    procedures = [p for p in scheme.procedures if p.enabled]
    filters = [
        Filter.from_config(s, scheme)
        for s in getattr(scheme, "stages", ())
        if s.type == "filter" and s.enabled
    ]
    if not procedures and not filters:
        return None
    wheres = {
        p.name: Filter(p.name, p.where, input_field_types(p.trigger, scheme), input=p.trigger)
        for p in procedures
        if p.where is not None
    }
    from netdistill.lookups.registry import build_lookup
    from netdistill.records.batch import FieldSpec

    if store is not None:
        from netdistill.store import ensure_fields

        for procedure in procedures:
            specs = [FieldSpec(n, t) for n, t in procedure.add_fields.items()]
            ensure_fields(store, specs, source=f"procedure {procedure.name}")
    used = {
        node.lookup
        for p in procedures
        for node in EnhancePlan(p, _Signatures(scheme.lookups)).nodes
    }
    lookups = {c.name: build_lookup(c, store=store) for c in scheme.lookups if c.name in used}
    return Enhancer(procedures, lookups, filters=filters, wheres=wheres)


class _Signatures(dict[str, Any]):
    """Lookup configs standing in for runtimes while the graph is built (no I/O)."""

    def __init__(self, configs: Sequence[Any]) -> None:
        super().__init__({c.name: c for c in configs})
