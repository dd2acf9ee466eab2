"""The ``aggregate`` stage: groups committed records by fields and time bins and emits one
row per group (seed 000's flow aggregation; seed 001's pipe ISM, which ends one record
flow and starts another).

It runs on the manager (``StageRunner``): each round reads the records of its ``input``
committed since its watermark (``stages/base.py``), keeps those for which ``where``
holds, folds them into the open groups (``aggregate_operator.Aggregator``, columnar
polars), and emits the groups that are due — their time bin closed (``bin_s`` on
``time_field``, plus ``grace_s`` on the stage clock for late records), or a group reached
``max_records`` / ``max_bytes`` / ``max_age_s`` (it is emitted and restarts). Output rows,
the open groups (table ``_agg_state_<name>``, replaced each round) and the watermark are
written in one store transaction, so a manager that stops at any point neither loses nor
doubles a record's contribution: a stage rebuilt on the same store loads its open groups
and carries on.

Output:

* ``output: table`` (default): rows appended to table ``agg_<name>`` — the ``by`` fields,
  ``bin_start``, ``bin_end`` and one column per accumulator, typed from the input fields;
* ``output: records``: rows inserted into ``records`` with ``source`` and ``procedure``
  set to the stage name, after the procedures whose ``trigger`` is the stage have
  enriched them (``context.enhance``). Another stage can read them (``input: <stage>``):
  aggregated again, merged, alerted on. Accumulator names that are not fields of
  ``records`` yet are added to it.

A POP manager forwards a stage's output to its parent when its ``upstream: stages``
names it (docs/hierarchy.md): the emitted rows join the outbox in the same transaction.

Accumulators are ``out: "function(field)"`` with function one of sum, count (``count()``
counts records, ``count(field)`` its non-null values), min, max, avg, count_distinct,
first, last (first and last in record order). Default: ``bytes: sum(bytes)``, ``packets:
sum(packets)``, ``records: count()``, ``start_time: min(start_time)``, ``end_time:
max(end_time)``.

Sample — the classic NetFlow conversation aggregation in two lines, then a second one::

    stages:
      - {name: conversations, type: aggregate, input: routers,
         by: [src_ip, dst_ip, src_port, dst_port, protocol]}
      - name: hourly-hosts
        type: aggregate
        input: routers
        where: "protocol in (6, 17)"
        by: [src_ip]
        bin_s: 3600
        accumulate: {bytes: "sum(bytes)", peers: "count_distinct(dst_ip)", flows: "count()"}
        output: records
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import polars as pl
import pyarrow as pa
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator

from netdistill.errors import StageCheckError
from netdistill.expr import compile_predicate
from netdistill.expr.types import group
from netdistill.records.fields import FIELD_TYPES
from netdistill.stages.aggregate_accumulators import DEFAULT_ACCUMULATE, Accumulator, to_arrow
from netdistill.stages.aggregate_operator import Aggregator, StateChanges
from netdistill.stages.base import (
    StageConfigBase,
    StageContext,
    load_watermark,
    read_new,
    resolve_input,
    save_watermark,
)
from netdistill.stages.filter import (
    STANDARD_TYPES,
    check_expression,
    expression_fields,
    input_field_types,
)
from netdistill.store.duckdb import StoreWriter

_RESERVED = frozenset({"bin_start", "bin_end"})


class AggregateConfig(StageConfigBase):
    type: Literal["aggregate"] = "aggregate"
    placement: ClassVar[str] = "manager"

    input: str = Field(description="source, procedure or stage whose records are aggregated")
    by: list[str] = Field(description="fields that make a group (with the time bin)")
    where: str | None = Field(None, description="boolean expression: the records aggregated")
    time_field: str = Field("start_time", description="timestamp field binned by bin_s")
    bin_s: PositiveFloat = Field(300.0, description="time bin length")
    grace_s: NonNegativeFloat = Field(
        60.0, description="wait after a bin ends (stage clock) for late records"
    )
    accumulate: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ACCUMULATE),
        description='output field → "function(field)"',
    )
    max_records: PositiveInt | None = Field(None, description="emit a group at this many records")
    max_bytes: PositiveInt | None = Field(None, description="emit a group at this many bytes")
    max_age_s: PositiveFloat | None = Field(None, description="emit a group open this long")
    output: Literal["table", "records"] = "table"
    batch_records: PositiveInt = Field(2_000_000, description="records read per round at most")

    @field_validator("by")
    @classmethod
    def _distinct_by(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a field is listed twice")
        return value

    @field_validator("accumulate")
    @classmethod
    def _accumulators(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("at least one accumulator")
        for out, text in value.items():
            if out in _RESERVED or not out.isidentifier() or out.startswith("_"):
                raise ValueError(f"{out!r} cannot name an output column")
            Accumulator.parse(out, text)
        return value

    def references(self) -> list[str]:
        return [self.input]

    def accumulators(self) -> list[Accumulator]:
        return [Accumulator.parse(o, t) for o, t in self.accumulate.items()]

    def check_in_scheme(self, scheme: Any) -> None:
        """Every field named exists in the input, with a type that fits."""
        where = f"stage {self.name!r}"
        types = input_field_types(self.input, scheme)
        for key, field in [*(("by", f) for f in self.by), ("time_field", self.time_field)]:
            if field not in types:
                raise StageCheckError(
                    f"{where}: {self.input!r} has no field {field!r}", key=key, value=field
                )
        if types[self.time_field] != "timestamp":
            raise StageCheckError(
                f"{where}: time_field {self.time_field!r} is not a timestamp",
                key="time_field",
                value=self.time_field,
            )
        if set(self.by) & set(self.accumulate):
            raise StageCheckError(
                f"{where}: an accumulator has the name of a 'by' field",
                key="accumulate",
                value=sorted(set(self.by) & set(self.accumulate)),
            )
        for acc in self.accumulators():
            text = self.accumulate[acc.out]
            if acc.field and acc.field not in types:
                raise StageCheckError(
                    f"{where}: {acc.out}: {self.input!r} has no field {acc.field!r}",
                    key="accumulate",
                    value=text,
                )
            if acc.function in ("sum", "avg") and types[acc.field] not in _NUMBERS:
                raise StageCheckError(
                    f"{where}: {acc.out}: {acc.function} needs a number field",
                    key="accumulate",
                    value=text,
                )
        if self.max_bytes and types.get("bytes") not in _NUMBERS:
            raise StageCheckError(
                f"{where}: max_bytes needs a number field 'bytes'", key="max_bytes", value=None
            )
        if self.where:
            check_expression(self.where, types, where)
        if self.output == "records":
            outputs = self.output_field_types(scheme)
            for name, type_ in outputs.items():
                known = STANDARD_TYPES.get(name)
                if known is not None and group(known) != group(type_):
                    raise StageCheckError(
                        f"{where}: output: records: {name!r} would be {type_}, but the "
                        f"records field is {known}; rename the accumulator",
                        key="accumulate",
                        value=name,
                    )

    def output_field_types(self, scheme: Any, _depth: int = 0) -> dict[str, str]:
        """name → field type of what the stage emits (``by`` fields and accumulators)."""
        types = input_field_types(self.input, scheme, _depth)
        out = {f: types.get(f, "string") for f in self.by}
        for acc in self.accumulators():
            if acc.function in ("count", "count_distinct"):
                out[acc.out] = "int64"
            elif acc.function == "avg":
                out[acc.out] = "float64"
            elif acc.function == "sum" and types.get(acc.field) not in _SAME_SUM:
                out[acc.out] = "int64"
            else:
                out[acc.out] = types.get(acc.field, "string")
        return out


_NUMBERS = frozenset({"int64", "uint8", "uint16", "uint32", "uint64", "float64", "bool"})
_SAME_SUM = frozenset({"uint64", "int64", "float64"})  # a sum of other numbers is int64


def duckdb_type(arrow_type: pa.DataType) -> str:
    """The DuckDB column type for an Arrow type of an output or state column."""
    for _name, (arrow, sql, _pg, _length) in FIELD_TYPES.items():
        if arrow_type == arrow and _name != "ip":
            return sql
    if pa.types.is_large_string(arrow_type) or pa.types.is_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"{duckdb_type(arrow_type.value_type)}[]"
    simple = {
        pa.int8(): "TINYINT",
        pa.int16(): "SMALLINT",
        pa.int32(): "INTEGER",
        pa.float32(): "FLOAT",
        pa.null(): "VARCHAR",
    }
    if arrow_type in simple:
        return simple[arrow_type]
    raise TypeError(f"no DuckDB type for {arrow_type}")


def create_table_sql(table: str, schema: pa.Schema) -> str:
    columns = ", ".join(f'"{f.name}" {duckdb_type(f.type)}' for f in schema)
    return f'CREATE TABLE IF NOT EXISTS "{table}" ({columns})'


class AggregateStage:
    """The manager side of one ``aggregate`` entry (``ManagerStage``)."""

    def __init__(self, config: AggregateConfig, context: StageContext) -> None:
        self.config = config
        self.name = config.name
        self.context = context
        self.store = context.store
        self.spec = resolve_input(config.input, context.scheme)
        self.table = f"agg_{config.name}"
        self.state_table = f"_agg_state_{config.name}"
        self.runs_table = f"_agg_runs_{config.name}"
        self.types = input_field_types(config.input, context.scheme)
        self.aggregator = self._new_aggregator()
        wanted = [*config.by, config.time_field]
        wanted += [a.field for a in config.accumulators() if a.field]
        if config.max_bytes:
            wanted.append("bytes")
        if config.where:
            wanted += expression_fields(config.where)
        self.columns = list(dict.fromkeys(wanted))
        self.watermark = 0
        self._state_saved = False  # _agg_state_<name> exists (set by _load)
        self.read_records = 0
        self.aggregated_records = 0
        self.emitted_rows = 0

    def _new_aggregator(self) -> Aggregator:
        c = self.config
        return Aggregator(
            c.by,
            c.accumulate,
            time_field=c.time_field,
            bin_s=c.bin_s,
            grace_s=c.grace_s,
            max_records=c.max_records,
            max_bytes=c.max_bytes,
            max_age_s=c.max_age_s,
            where=compile_predicate(c.where, self.types) if c.where is not None else None,
        )

    # --- tables ----------------------------------------------------------------------------

    def _input_schema(self) -> pa.Schema:
        fields = self.store.fields
        return pa.schema(
            [
                pa.field(name, fields[name].arrow_type if name in fields else _arrow(self, name))
                for name in self.columns
            ]
        )

    def ensure_tables(self) -> None:
        schema = self.aggregator.output_schema(self._input_schema())
        if self.config.output == "table":
            with self.store.transaction() as tx:
                tx.execute(create_table_sql(self.table, schema))
        else:
            from netdistill.records.batch import FieldSpec
            from netdistill.store import ensure_fields

            types = self.config.output_field_types(self.context.scheme)
            specs = [FieldSpec(n, t, f"aggregate {self.name}") for n, t in types.items()]
            ensure_fields(self.store, specs, source=f"stage {self.name}")
        self._load()

    def _exists(self, table: str) -> bool:
        found = self.store.query(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = $t",
            {"t": table},
        )
        return bool(found.column("n")[0].as_py())

    def _load(self) -> None:
        """The watermark and open groups as last committed (start, or after a failure)."""
        self.watermark, _ = load_watermark(self.store, self.name)
        self.aggregator = self._new_aggregator()
        self._state_saved = self._exists(self.state_table)
        if self._state_saved:
            state = self.store.query(f'SELECT * FROM "{self.state_table}"')
            runs = None
            if self._exists(self.runs_table):
                runs = self.store.query(f'SELECT * FROM "{self.runs_table}"')
            if state.num_columns:
                self.aggregator.load_state(state, runs)

    # --- one round -------------------------------------------------------------------------

    def run_once(self, now: float) -> dict[str, int]:
        try:
            return self._round(now)
        except BaseException:
            self._load()  # the aggregator may hold records whose round did not commit
            raise

    def _round(self, now: float) -> dict[str, int]:
        columns = ", ".join(f'"{c}"' for c in self.columns)
        records, high = read_new(
            self.store,
            self.spec,
            self.watermark,
            now,
            columns=columns,
            limit=self.config.batch_records,
        )
        read = records.num_rows
        aggregated = self.aggregator.process(records, now) if read else 0
        rows = self.aggregator.flush(now)
        emitted = rows.num_rows
        if self.config.output == "records" and emitted:
            rows = self._as_records(rows)
        if high == self.watermark and not emitted:
            return {"read": 0, "aggregated": 0, "emitted": 0}
        changes = self.aggregator.changes()
        with self.store.transaction() as tx:
            if emitted:
                if self.config.output == "table":
                    tx.insert_arrow(self.table, rows)
                else:
                    tx.insert_records(rows)
                if self.context.outbox is not None:
                    meta = {"type": "aggregate", "output": self.config.output}
                    self.context.outbox(tx, self.name, rows, meta)
            self._save_state(tx, changes)
            save_watermark(tx, self.name, high)
        committed = getattr(self.context.enhance, "committed", None)
        if self.config.output == "records" and emitted and committed is not None:
            committed(self.name)  # filters on our output count what they dropped
        self.watermark = high
        self.read_records += read
        self.aggregated_records += aggregated
        self.emitted_rows += emitted
        return {"read": read, "aggregated": aggregated, "emitted": emitted}

    def _save_state(self, tx: StoreWriter, changes: StateChanges) -> None:
        """Bring ``_agg_state_<name>`` to ``aggregator.state()``: append the new partial
        rows and delete those of emitted bins, or write it anew after a combine."""
        if changes.rewrite or (changes.new_rows.num_rows and not self._state_saved):
            state = self.aggregator.state()
            tx.execute(f'DROP TABLE IF EXISTS "{self.state_table}"')
            self._state_saved = bool(state.num_columns)
            if state.num_columns:
                tx.execute(create_table_sql(self.state_table, state.schema))
                tx.insert_arrow(self.state_table, state)
        elif self._state_saved:
            bins = [b for b in changes.gone_bins if b is not None]
            if bins:
                marks = ", ".join("?" for _ in bins)
                tx.execute(f'DELETE FROM "{self.state_table}" WHERE _bin IN ({marks})', bins)
            if None in changes.gone_bins:
                tx.execute(f'DELETE FROM "{self.state_table}" WHERE _bin IS NULL')
            tx.insert_arrow(self.state_table, changes.new_rows)
        if self.aggregator.thresholds:
            runs = self.aggregator.runs()
            tx.execute(f'DROP TABLE IF EXISTS "{self.runs_table}"')
            if runs.num_columns:
                tx.execute(create_table_sql(self.runs_table, runs.schema))
                tx.insert_arrow(self.runs_table, runs)

    def _as_records(self, rows: pa.Table) -> pa.Table:
        frame = pl.from_arrow(rows)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.drop("bin_start", "bin_end").with_columns(
            pl.lit(self.name).alias("source"), pl.lit(self.name).alias("procedure")
        )
        return self.context.enhance(self.name, to_arrow(frame))

    def status(self) -> dict[str, Any]:
        return {
            "type": "aggregate",
            "input": self.config.input,
            "watermark": self.watermark,
            "read_records": self.read_records,
            "aggregated_records": self.aggregated_records,
            "emitted_rows": self.emitted_rows,
            "open_groups": self.aggregator.open_groups(),
            "output": self.table if self.config.output == "table" else "records",
        }


def _arrow(stage: AggregateStage, name: str) -> pa.DataType:
    return FIELD_TYPES[stage.types.get(name, "string")][0]
