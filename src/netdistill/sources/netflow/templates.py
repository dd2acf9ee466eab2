"""Templates and options state of NetFlow v9 (RFC 3954 §5.2, §6) and IPFIX (RFC 7011 §3.4).

A data record means nothing without its template, so the decoder keeps every template
per ``(exporter, version, observation domain / source id, template id)``. IPFIX
withdraws templates explicitly (RFC 7011 §8.1: a template record with field count 0;
template id 2 or 3 withdraws them all); NetFlow v9 only refreshes them, so templates
not refreshed within ``template_timeout_s`` expire (RFC 3954 §5.2, "template timeout").

Options data (RFC 3954 §6.2, RFC 7011 §3.4.2.2) is folded into this same state: the
sampling rates it announces, per domain or per sampler / selector id, and the exporter's
``systemInitTimeMilliseconds``. All of it is serialised by ``to_bytes`` (JSON: small,
versioned, readable when debugging) so that a restarted collector can decode data
before the exporter resends its templates (SYSTEM.md §3).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from netdistill.errors import DecodeError
from netdistill.sources.base import MALFORMED
from netdistill.sources.netflow.elements import V9_SCOPE_OFFSET, WANTED_ELEMENTS, element_key

VARIABLE_LENGTH: Final = 65535
#: a record can never be longer than the largest UDP payload minus the smallest header
MAX_RECORD_LENGTH: Final = 65535 - 16
TRUNCATED: Final = "truncated"

#: (exporter, version, domain, template id)
TemplateKey = tuple[str, int, int, int]
#: (exporter, version, domain)
DomainKey = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class TemplateField:
    element_id: int
    length: int
    enterprise: int = 0  # Private Enterprise Number; 0 = IANA element

    @property
    def key(self) -> int:
        return element_key(self.enterprise, self.element_id)


@dataclass(frozen=True, slots=True)
class Template:
    """One (options) template. ``scope_count`` > 0 marks an options template.

    ``mapped`` holds the keys of the elements the scheme maps to fields (``mapping.py``):
    they are read as raw bytes beside the decoder's own reading, so it is part of the
    template's identity (a layout cached for one mapping never serves another)."""

    template_id: int
    fields: tuple[TemplateField, ...]
    scope_count: int = 0
    mapped: frozenset[int] = frozenset()
    #: byte length of a record, or None when a field is variable-length (IPFIX)
    record_length: int | None = field(init=False)
    #: smallest possible record: fixed lengths + 1 length byte per variable field
    min_record_length: int = field(init=False)
    #: wanted element key → index in ``fields`` of its first occurrence
    wanted: dict[int, int] = field(init=False, compare=False)
    #: mapped element key → index in ``fields`` of its first occurrence
    mapped_at: dict[int, int] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        variable = any(f.length == VARIABLE_LENGTH for f in self.fields)
        fixed = sum(f.length for f in self.fields if f.length != VARIABLE_LENGTH)
        object.__setattr__(self, "record_length", None if variable else fixed)
        object.__setattr__(
            self,
            "min_record_length",
            fixed + sum(1 for f in self.fields if f.length == VARIABLE_LENGTH),
        )
        wanted: dict[int, int] = {}
        mapped_at: dict[int, int] = {}
        for i, f in enumerate(self.fields):
            key = f.key
            if key in WANTED_ELEMENTS:
                wanted.setdefault(key, i)
            if key in self.mapped:
                mapped_at.setdefault(key, i)
        object.__setattr__(self, "wanted", wanted)
        object.__setattr__(self, "mapped_at", mapped_at)

    @property
    def is_options(self) -> bool:
        return self.scope_count > 0


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """IPFIX template withdrawal; ``template_id`` 2 or 3 withdraws every (options)
    template of the domain."""

    template_id: int


def _check_template(template: Template, offset: int) -> Template:
    if template.min_record_length == 0:
        raise DecodeError(
            MALFORMED,
            offset=offset,
            detail=f"template {template.template_id}: record length 0",
        )
    if template.min_record_length > MAX_RECORD_LENGTH:
        raise DecodeError(
            MALFORMED,
            offset=offset,
            detail=f"template {template.template_id}: record length "
            f"{template.min_record_length} exceeds any datagram",
        )
    return template


def _need(data: bytes, offset: int, size: int, end: int, what: str) -> None:
    if offset + size > end:
        raise DecodeError(TRUNCATED, offset=offset, detail=f"{what} runs past the set end")


def parse_v9_templates(
    data: bytes, start: int, end: int, *, options: bool, mapped: frozenset[int] = frozenset()
) -> Iterator[Template]:
    """Template records of one v9 template FlowSet (id 0) or options template FlowSet
    (id 1), body ``data[start:end]``. Yields each template as it is read, so templates
    before a malformed one are kept; raises ``DecodeError`` at the first bad byte."""
    offset = start
    while end - offset >= 4:
        record_start = offset
        template_id, count = struct.unpack_from(">HH", data, offset)
        if template_id == 0 and count == 0:
            return  # padding to a 4-byte boundary (RFC 3954 §5.2)
        if template_id < 256:
            raise DecodeError(
                MALFORMED, offset=offset, detail=f"template id {template_id} below 256"
            )
        if options:
            _need(data, offset, 6, end, "options template header")
            scope_length, option_length = count, struct.unpack_from(">H", data, offset + 4)[0]
            if scope_length % 4 or option_length % 4:
                raise DecodeError(
                    MALFORMED,
                    offset=offset + 2,
                    detail=f"options template {template_id}: scope/option length "
                    f"{scope_length}/{option_length} not a multiple of 4",
                )
            n_scope, n_total = scope_length // 4, (scope_length + option_length) // 4
            offset += 6
        else:
            n_scope, n_total = 0, count
            offset += 4
        if n_total == 0:
            raise DecodeError(
                MALFORMED, offset=record_start, detail=f"template {template_id} has zero fields"
            )
        _need(data, offset, 4 * n_total, end, f"template {template_id} field list")
        fields = []
        for i in range(n_total):
            element_id, length = struct.unpack_from(">HH", data, offset + 4 * i)
            if length == VARIABLE_LENGTH:
                raise DecodeError(
                    MALFORMED,
                    offset=offset + 4 * i + 2,
                    detail=f"template {template_id}: variable length in NetFlow v9",
                )
            if i < n_scope:
                element_id += V9_SCOPE_OFFSET
            fields.append(TemplateField(element_id, length))
        yield _check_template(Template(template_id, tuple(fields), n_scope, mapped), record_start)
        offset += 4 * n_total


def parse_ipfix_templates(
    data: bytes, start: int, end: int, *, options: bool, mapped: frozenset[int] = frozenset()
) -> Iterator[Template | Withdrawal]:
    """Template records of one IPFIX template set (id 2) or options template set (id 3)
    (RFC 7011 §3.4.1-§3.4.2), including withdrawals; as ``parse_v9_templates``."""
    offset = start
    while end - offset >= 4:
        record_start = offset
        template_id, count = struct.unpack_from(">HH", data, offset)
        if template_id == 0 and count == 0:
            return  # set padding (RFC 7011 §3.3.1)
        if count == 0:
            yield Withdrawal(template_id)
            offset += 4
            continue
        if template_id < 256:
            raise DecodeError(
                MALFORMED, offset=offset, detail=f"template id {template_id} below 256"
            )
        n_scope = 0
        if options:
            _need(data, offset, 6, end, "options template header")
            n_scope = struct.unpack_from(">H", data, offset + 4)[0]
            if n_scope == 0 or n_scope > count:
                raise DecodeError(
                    MALFORMED,
                    offset=offset + 4,
                    detail=f"options template {template_id}: scope field count {n_scope} "
                    f"of {count} fields",
                )
            offset += 6
        else:
            offset += 4
        fields = []
        for _ in range(count):
            _need(data, offset, 4, end, f"template {template_id} field specifier")
            element_id, length = struct.unpack_from(">HH", data, offset)
            offset += 4
            enterprise = 0
            if element_id & 0x8000:
                _need(data, offset, 4, end, f"template {template_id} enterprise number")
                enterprise = struct.unpack_from(">I", data, offset)[0]
                element_id &= 0x7FFF
                offset += 4
            fields.append(TemplateField(element_id, length, enterprise))
        yield _check_template(Template(template_id, tuple(fields), n_scope, mapped), record_start)


class TemplateCache:
    """Templates, their last refresh time, and the options state of every domain.

    ``version`` increases on every change worth persisting (a new or different template,
    a withdrawal, an expiry, a new sampling rate or init time), not on identical
    refreshes, so the shell writes ``to_bytes()`` only when it changed.
    """

    FORMAT: Final = 1

    def __init__(self) -> None:
        self.templates: dict[TemplateKey, Template] = {}
        self.last_seen: dict[TemplateKey, float] = {}
        #: sampling rate announced for a whole domain (options data without a sampler id)
        self.domain_rates: dict[DomainKey, int] = {}
        #: sampling rate per sampler / selector id of a domain
        self.sampler_rates: dict[tuple[str, int, int, int], int] = {}
        #: systemInitTimeMilliseconds per domain (IPFIX, RFC 7012 §5.7)
        self.init_times_ms: dict[DomainKey, int] = {}
        self.version = 0

    def get(self, key: TemplateKey) -> Template | None:
        return self.templates.get(key)

    def add(self, key: TemplateKey, template: Template, now: float) -> None:
        if self.templates.get(key) != template:
            self.templates[key] = template
            self.version += 1
        self.last_seen[key] = max(now, self.last_seen.get(key, now))

    def withdraw(self, domain: DomainKey, template_id: int, *, options: bool) -> None:
        if template_id in (2, 3):  # all templates of the set's kind (RFC 7011 §8.1)
            keys = [
                k for k, t in self.templates.items() if k[:3] == domain and t.is_options == options
            ]
        else:
            keys = [(*domain, template_id)]
        for key in keys:
            if self.templates.pop(key, None) is not None:
                self.version += 1
            self.last_seen.pop(key, None)

    def expire(self, now: float, timeout_s: float) -> int:
        old = [k for k, seen in self.last_seen.items() if now - seen > timeout_s]
        for key in old:
            self.templates.pop(key, None)
            self.last_seen.pop(key, None)
        if old:
            self.version += 1
        return len(old)

    def set_domain_rate(self, domain: DomainKey, rate: int) -> None:
        if self.domain_rates.get(domain) != rate:
            self.domain_rates[domain] = rate
            self.version += 1

    def set_sampler_rate(self, domain: DomainKey, sampler_id: int, rate: int) -> None:
        key = (*domain, sampler_id)
        if self.sampler_rates.get(key) != rate:
            self.sampler_rates[key] = rate
            self.version += 1

    def only_sampler_rate(self, domain: DomainKey) -> int:
        """The rate of the domain's selectors when they all have one rate, else 0 (a
        record that names no selector is sampled by the one the domain announced)."""
        rates = {r for k, r in self.sampler_rates.items() if k[:3] == domain}
        return rates.pop() if len(rates) == 1 else 0

    def set_init_time(self, domain: DomainKey, init_ms: int) -> None:
        if self.init_times_ms.get(domain) != init_ms:
            self.init_times_ms[domain] = init_ms
            self.version += 1

    def to_bytes(self) -> bytes:
        state = {
            "format": self.FORMAT,
            "templates": [
                {
                    "key": list(key),
                    "id": t.template_id,
                    "scope_count": t.scope_count,
                    "fields": [[f.element_id, f.length, f.enterprise] for f in t.fields],
                    "last_seen": self.last_seen.get(key, 0.0),
                }
                for key, t in self.templates.items()
            ],
            "domain_rates": [[*k, v] for k, v in self.domain_rates.items()],
            "sampler_rates": [[*k, v] for k, v in self.sampler_rates.items()],
            "init_times_ms": [[*k, v] for k, v in self.init_times_ms.items()],
        }
        return json.dumps(state, separators=(",", ":")).encode()

    def load_bytes(self, raw: bytes, *, mapped: frozenset[int] = frozenset()) -> None:
        """Replace the state with a ``to_bytes`` snapshot; raises ``DecodeError`` if it is
        not one (the caller decides whether to start empty). Templates are rebuilt with
        the decoder's current ``mapped`` elements (the scheme may have changed)."""
        try:
            state = json.loads(raw)
            if state.get("format") != self.FORMAT:
                raise ValueError(f"unknown template state format {state.get('format')!r}")
            templates: dict[TemplateKey, Template] = {}
            last_seen: dict[TemplateKey, float] = {}
            for item in state["templates"]:
                e, v, d, i = item["key"]
                key = (str(e), int(v), int(d), int(i))
                fields = tuple(TemplateField(int(a), int(b), int(c)) for a, b, c in item["fields"])
                templates[key] = Template(int(item["id"]), fields, int(item["scope_count"]), mapped)
                last_seen[key] = float(item["last_seen"])
            domain_rates = {
                (str(e), int(v), int(d)): int(r) for e, v, d, r in state["domain_rates"]
            }
            sampler_rates = {
                (str(e), int(v), int(d), int(s)): int(r) for e, v, d, s, r in state["sampler_rates"]
            }
            init_times = {(str(e), int(v), int(d)): int(t) for e, v, d, t in state["init_times_ms"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError(MALFORMED, detail=f"template state: {exc}") from exc
        self.templates, self.last_seen = templates, last_seen
        self.domain_rates, self.sampler_rates = domain_rates, sampler_rates
        self.init_times_ms = init_times
        self.version += 1
