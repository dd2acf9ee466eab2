"""The contract of a source, the one factory that builds sources, and what every
datagram-based source shares (the datagram and the drop reasons).

``Source`` is what every running source is; ``PolledSource`` (every built-in one) and
``PushSource`` (one that calls ``emit`` itself) are its two kinds, declared by the class
in ``kind``. ``build_source(config, context)`` builds the one a scheme entry names,
whichever process runs it (``run``, ``manager``, ``gatherer``, ``import``).

Decoders are pure (datagrams in, record batch out, no I/O); the socket and file shells
around them build ``Datagram`` values and pass them in batches. What a decode produces
(``DecodeResult``, ``Quarantined``, ``FieldSpec``, ``SourceCounters``) is in
``records/batch.py``, shared with the sinks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, cast

from netdistill.records.batch import DecodeResult, FieldSpec, SourceCounters

#: Drop reasons every collector counts (SYSTEM.md §3). Decoders may add finer ones.
KERNEL_OVERFLOW = "kernel_socket_overflow"
QUEUE_FULL = "internal_queue_full"
NO_TEMPLATE = "data_before_template"
MALFORMED = "malformed"
UNKNOWN_EXPORTER = "unknown_exporter"


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP payload as received: who sent it, the bytes, and when (unix seconds)."""

    exporter: str
    payload: bytes
    received_at: float
    port: int = 0


# --- the contract of a running source ---------------------------------------------------

#: how a source hands over what it received: the pipeline asks (``polled``), or the
#: source calls ``emit`` from a thread of its own (``push``)
SourceKind = Literal["polled", "push"]

#: a push source's way to hand over a result; it blocks while the pipeline's buffer
#: holds ``queue_limit`` records or more (backpressure), and returns once it is buffered
Emit = Callable[[DecodeResult], None]


class Source(Protocol):
    """One running instance of a scheme ``sources:`` entry, whatever its kind.

    Guarantees the pipeline relies on: ``name`` is the scheme entry's name; ``fields``
    lists the fields it produces beyond the standard ones (added to ``records`` before
    it starts); ``counters`` and ``status()`` may be read from any thread; ``stop``
    returns once nothing more is received, then ``flush`` gives what was held back
    (nothing received before ``stop`` is lost)."""

    kind: ClassVar[SourceKind]
    name: str
    config: Any

    @property
    def fields(self) -> Sequence[FieldSpec]: ...

    @property
    def counters(self) -> SourceCounters: ...

    def stop(self) -> None: ...
    def flush(self) -> DecodeResult: ...
    def status(self) -> dict[str, object]: ...


class PolledSource(Source, Protocol):
    """A source the pipeline polls (every built-in one): it receives into a bounded
    queue of its own (overflow counted as ``internal_queue_full``), and ``poll`` decodes
    up to ``max_datagrams`` of it. ``start``, ``poll``, ``pending``, ``stop`` and
    ``flush`` are called from one thread."""

    def start(self) -> None: ...
    def poll(self, max_datagrams: int) -> DecodeResult: ...

    def pending(self) -> int:
        """How much is waiting for ``poll`` (the pipeline wakes early past its batch)."""


class PushSource(Source, Protocol):
    """A source that produces on its own schedule (a timer, a client library's
    callbacks) and hands each result to ``emit``; ``build_source`` puts a bounded buffer
    (``sources/push.py``) in front of it, so the pipeline polls it like any other.
    ``emit`` blocking is the backpressure: a push source must not drop what it holds."""

    def start(self, emit: Emit) -> None: ...


class SourceFactory(Protocol):
    """The runtime class a source type registers (``sources/registry.py``): built from
    the validated scheme entry and the process's context."""

    kind: ClassVar[SourceKind]

    def __call__(self, config: Any, *, state_dir: Path | None, queue_limit: int) -> Source: ...


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What the process gives each source it builds."""

    #: where sources keep state across restarts (templates, file offsets …); None: no
    #: state kept (``netdistill import``)
    state_dir: Path | None = None
    #: the bound of the queue between receive and decode (``manager.queue_datagrams``)
    queue_limit: int = 500_000


def build_source(config: Any, context: SourceContext) -> PolledSource:
    """The running source of scheme entry ``config`` (not started): the runtime class of
    its ``type``, a push source behind its buffer. The one place a source is built."""
    from netdistill.sources.push import PushBuffer
    from netdistill.sources.registry import SOURCES

    factory: SourceFactory = SOURCES.runtime_class(config.type)
    source = factory(config, state_dir=context.state_dir, queue_limit=context.queue_limit)
    if factory.kind == "push":
        return PushBuffer(cast(PushSource, source), limit=context.queue_limit)
    return cast(PolledSource, source)


def declared_fields(type_name: str) -> tuple[FieldSpec, ...]:
    """The fields a source type declares on its class, known without building a source
    (the fields of ``file`` and ``syslog`` depend on the formats configured: their
    sources give them once built)."""
    from netdistill.sources.registry import SOURCES

    specs = getattr(SOURCES.runtime_class(type_name), "fields", ())
    return tuple(specs) if isinstance(specs, tuple | list) else ()
