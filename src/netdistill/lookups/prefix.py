"""``prefix``: longest-prefix match of an IP against a table of networks → values
(customer, account, site …), from a CSV file or an SQL query.

Vectorized: the networks are grouped by (IP version, prefix length), each group a sorted
numpy array of network addresses. A batch's distinct addresses are parsed once
(``expr/ipnum.py``), then, longest prefix first, masked and probed with
``np.searchsorted`` — at most 33 (IPv4) or 129 (IPv6) passes over the addresses not yet
matched, whatever the table size. IPv6 addresses are probed as 16-byte big-endian keys.
Two rows with the same network: the first wins. The matched network is an output too.

Sample scheme entry::

    lookups:
      - name: Customers
        type: prefix
        csv: /etc/netdistill/customers.csv      # network,account_id,site
        values: {account_id: string, site: string}

    Customers.Match(ip:ip) → (account_id:string, site:string, network:string)
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from netdistill.errors import LookupDataError
from netdistill.expr.ipnum import mask_halves, parse_ips
from netdistill.lookups.base import CacheConfig, Function, LookupConfigBase, Param
from netdistill.lookups.tabular import RowsSource, load_rows
from netdistill.records.fields import FIELD_TYPES


class PrefixConfig(LookupConfigBase, RowsSource):
    type: Literal["prefix"]
    function: str = Field("Match", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    either_function: str = Field(
        "MatchEither",
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        description="two addresses → the first one inside a listed network (the customer "
        "side of a flow, whichever direction it goes)",
    )
    network_column: str = "network"
    values: dict[str, str] = Field(min_length=1, description="value column → field type")
    cache: CacheConfig = CacheConfig(size=0)

    @model_validator(mode="after")
    def _known_types(self) -> PrefixConfig:
        for name, type_ in self.values.items():
            if type_ not in FIELD_TYPES:
                raise ValueError(f"column {name!r}: unknown type {type_!r}")
        return self

    def functions(self) -> list[Function]:
        outputs = [Param(n, t) for n, t in self.values.items()]
        if "network" not in self.values:
            outputs.append(Param("network", "string"))
        return [
            Function(
                self.name,
                self.function,
                (Param("ip", "ip"),),
                tuple(outputs),
                self.description or "longest-prefix match",
            ),
            Function(
                self.name,
                self.either_function,
                (Param("ip", "ip"), Param("other_ip", "ip")),
                (*outputs, Param("matched_ip", "ip")),
                "longest-prefix match of ip, else of other_ip; matched_ip is the one inside",
            ),
        ]


def _keys(version: int, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Sortable keys: uint64 for IPv4, 16-byte big-endian strings for IPv6."""
    if version == 4:
        return lo
    both = np.empty((len(hi), 2), dtype=">u8")
    both[:, 0] = hi
    both[:, 1] = lo
    return both.view("S16").ravel()


class PrefixTable:
    """Networks grouped by (version, length), probed longest first."""

    def __init__(self, networks: list[str | None]) -> None:
        groups: dict[tuple[int, int], tuple[list[int], list[int], list[int]]] = {}
        seen: set[Any] = set()
        for row, text in enumerate(networks):
            if text is None:
                continue
            try:
                net = ipaddress.ip_network(text.strip(), strict=False)
            except ValueError:
                raise LookupDataError(f"row {row + 2}: {text!r} is not a network") from None
            if net in seen:
                continue
            seen.add(net)
            number = int(net.network_address)
            group = groups.setdefault((net.version, net.prefixlen), ([], [], []))
            group[0].append(number >> 64)
            group[1].append(number & 0xFFFF_FFFF_FFFF_FFFF)
            group[2].append(row)
        self.groups = []
        for (version, length), (his, los, rows) in sorted(groups.items(), key=lambda g: -g[0][1]):
            keys = _keys(version, np.array(his, np.uint64), np.array(los, np.uint64))
            order = np.argsort(keys, kind="stable")
            self.groups.append((version, length, keys[order], np.array(rows, np.int64)[order]))

    def match(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Row index of the longest matching network per address; -1 where none."""
        version, hi, lo = parse_ips(column)
        result = np.full(len(version), -1, dtype=np.int64)
        for net_version, length, keys, rows in self.groups:
            todo = np.flatnonzero((version == net_version) & (result < 0))
            if len(todo) == 0:
                continue
            mask_hi, mask_lo = mask_halves(net_version, length)
            probe = _keys(net_version, hi[todo] & np.uint64(mask_hi), lo[todo] & np.uint64(mask_lo))
            position = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
            found = keys[position] == probe
            result[todo[found]] = rows[position[found]]
        return result


class Prefix:
    """Runtime of a ``prefix`` lookup; the table is immutable, ``call`` is thread-safe."""

    concurrent_calls = True
    keys_per_call = None
    cached = False

    def __init__(self, config: PrefixConfig, *, store: Any = None) -> None:
        self.config = config
        self.name = config.name
        columns = {config.network_column: "string", **config.values}
        rows = load_rows(config, columns, store=store)
        self._table = PrefixTable(rows.column(config.network_column).to_pylist())
        outputs = [rows.column(n) for n in config.values]
        names = list(config.values)
        if "network" not in config.values:
            outputs.append(rows.column(config.network_column))
            names.append("network")
        self._values = pa.Table.from_arrays(outputs, names=names)

    def functions(self) -> list[Function]:
        return self.config.functions()

    def call(self, function: str, keys: pa.Table) -> pa.Table:
        index = self._table.match(keys.column(0))
        if function != self.config.either_function:
            return self._values.take(pa.array(index, mask=index < 0))
        first = index >= 0
        missing = np.flatnonzero(~first)
        if len(missing):
            index[missing] = self._table.match(keys.column(1).take(pa.array(missing)))
        matched = pc.if_else(pa.array(first), keys.column(0), keys.column(1))
        matched = pc.if_else(pa.array(index >= 0), matched, pa.nulls(len(index), pa.string()))
        values = self._values.take(pa.array(index, mask=index < 0))
        return values.append_column("matched_ip", matched)

    def close(self) -> None:
        pass
