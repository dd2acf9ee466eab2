"""The DNS lookup: ``DNS.Name(ip_address:ip) → (host_name:string)`` (PTR) and
``DNS.Address(host_name:string) → (ip_address:ip)`` (A, then AAAA when the name has no A).

RFC 1034/1035 (queries over UDP, TCP when truncated §4.2.2), RFC 3596 (ip6.arpa),
RFC 5452 (random query ids and source ports, answers checked against address, port, id
and question). The seeds' example: the proxy record's source IP resolved to the host's
FQDN through the DNS server (seed 001, "Data Enhancement").

How a batch is asked: ``call`` gets the distinct keys of a batch and sends their
questions from one private UDP socket, keeping up to ``concurrency`` of them in flight
(default 256), each matched back by its random id. This is a plain poll loop rather than
dnspython's asyncio resolver: the asyncio resolver opens one socket and one task per
query and parses with ``dns.message`` (~300 µs of CPU per name here), so the event loop,
not the server, would be the limit; one socket with many outstanding ids costs a few
µs per name (``dns_wire``). The loop walks the keys one by one because every key is its
own datagram; nothing per key happens outside it.

Answers:

* an address or name → the output; ``NXDOMAIN`` or no record of the type → a miss
  (null; the framework caches it as a negative answer);
* no answer within ``timeout_s`` → null, counted in ``timeouts``. The question is re-sent
  to the next server (see Re-sends); ``attempts: 1`` turns re-sending off;
* ``SERVFAIL``/``REFUSED``/… or an unreadable answer → null, counted in ``errors`` by
  reason. Datagrams that match no question (late, spoofed, garbage) are counted as
  ``unmatched answer`` and ignored.
* ``timeout_s`` bounds the whole call, not only each name: when it is up (less a tenth,
  at most 0.1 s, so the answers get back to the runner in time), every name still out or
  not yet sent counts as a timeout. A dead server costs one timeout per batch, whatever
  the number of keys; a batch too large for the server's rate within ``timeout_s`` gets
  its tail as timeouts (raise ``timeout_s`` for large cold batches).
* Congestion: the number of questions out starts at ``concurrency`` and is halved (once
  per loss episode: only a question sent after the last cut cuts again; not below 8) when
  a question has to be re-sent, then grows by one per window of answers (AIMD, as TCP,
  RFC 5681): an overloaded server that drops questions is not kept overflowing.
* Re-sends: after a few smoothed round trips (RFC 6298-like, at least 50 ms, at most
  ``timeout_s / attempts``), to the next server; past ``attempts`` sends the wait doubles
  with every send (back-off, RFC 6298 §5.5) until ``timeout_s``, so a question the server
  dropped every time is still asked again instead of waiting out the timeout. A fast
  re-send matters even on loopback: dnsmasq's socket keeps the kernel's default 208 KiB
  receive buffer, which holds ~190 small queries, so with 256 in flight it drops a few
  and the re-send recovers them.
* A dead server: after ``DOWN_AFTER`` re-sends in a row with no answer from it, new
  questions and re-sends skip it while another server is up (remembered across batches;
  any answer brings it back). Its silence is not taken for congestion: only loss at a
  server that has answered in the call shrinks the window.

Scheme::

    lookups:
      - name: DNS
        type: dns
        servers: ["127.0.0.1:5353"]   # IP literals, port 53 by default
        timeout_s: 2.0
        attempts: 2
        concurrency: 256
"""

from __future__ import annotations

import heapq
import ipaddress
import os
import random
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
from pydantic import Field, field_validator

from netdistill.lookups import dns_wire as wire
from netdistill.lookups.base import Function, LookupConfigBase, LookupCounters, Param


class DnsLookupConfig(LookupConfigBase):
    type: Literal["dns"] = "dns"
    servers: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:53"], min_length=1, description="IP[:port]"
    )
    timeout_s: float = Field(2.0, gt=0, description="longest wait for a name and for a batch")
    attempts: int = Field(
        3,
        ge=1,
        le=8,
        description="sends per name at the round-trip pace, rotating servers; "
        "then again with doubling waits until timeout_s (1: never re-send)",
    )
    concurrency: int = Field(256, ge=1, le=256, description="questions in flight per batch")

    def functions(self) -> list[Function]:
        return [
            Function(
                self.name,
                "Name",
                (Param("ip_address", "ip"),),
                (Param("host_name", "string"),),
                "the host name of an address (PTR)",
            ),
            Function(
                self.name,
                "Address",
                (Param("host_name", "string"),),
                (Param("ip_address", "ip"),),
                "the address of a host name (A, else AAAA)",
            ),
        ]

    @field_validator("servers")
    @classmethod
    def _check_servers(cls, servers: list[str]) -> list[str]:
        for s in servers:
            parse_server(s)
        return servers


def parse_server(text: str) -> tuple[str, int]:
    """``1.2.3.4``, ``1.2.3.4:5353``, ``::1``, ``[::1]:5353`` → (canonical address, port)."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.removeprefix(":"))
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"DNS server {text!r} must be an IP address (optionally :port)") from None
    if not 0 < port < 65536:
        raise ValueError(f"DNS server {text!r}: port out of range")
    return address.compressed, port


#: shortest wait before a question is re-sent, however fast the server usually answers
MIN_RTO_S = 0.05
#: the wait before a re-send while no round trip has been measured yet
FIRST_RTO_S = 0.5
#: the in-flight window never shrinks below this on loss
MIN_WINDOW = 8.0
#: re-sends in a row, with no answer in between, after which a server counts as down
DOWN_AFTER = 3

OK, MISS, TIMEOUT, ERROR, UNASKED, NXDOMAIN = 0, 1, 2, 3, 4, 5  # MISS: no data


@dataclass(slots=True)
class _Question:
    index: int
    qid: int
    wire: bytes
    qname: bytes
    qtype: int
    first_sent: float
    last_sent: float = 0.0
    asked: set[int] = field(default_factory=set)
    tries: int = 0
    last_server: int = 0


@dataclass(slots=True)
class ResolverStats:
    """Figures beyond ``LookupCounters``: what the benchmark and status report."""

    queries_sent: int = 0
    answers: int = 0
    max_in_flight: int = 0
    tcp_retries: int = 0


class DnsLookup:
    """Runtime of ``type: dns``; ``call`` may run in several threads (one socket each)."""

    concurrent_calls = True
    keys_per_call = None  # the whole batch in one call: the call does its own concurrency
    cached = True

    def __init__(self, config: DnsLookupConfig, *, store: object = None) -> None:
        self.name = config.name
        self.config = config
        self.servers = [parse_server(s) for s in config.servers]
        self.counters = LookupCounters()
        self.stats = ResolverStats()
        self._lock = threading.Lock()
        self._rng = random.Random(os.urandom(16))
        self._srtt = 0.0  # smoothed round trip, seconds; 0 until the first answer
        # per server: re-sends in a row with no answer from it in between (kept across
        # calls, so a dead server is skipped from the start of the next batch)
        self._silent = [0] * len(self.servers)

    def functions(self) -> list[Function]:
        return self.config.functions()

    def close(self) -> None:
        pass

    def call(self, function: str, keys: pa.Table) -> pa.Table:
        column = keys.column(0).to_pylist()
        local = LookupCounters(calls=1, keys=len(column))
        timeout = self.config.timeout_s
        deadline = time.monotonic() + timeout - min(0.1, timeout / 10)
        if function == "Name":
            questions = [self._question(local, k, wire.TYPE_PTR) for k in column]
            values, status = self._resolve(questions, local, deadline)
            out = "host_name"
        elif function == "Address":
            questions = [self._question(local, k, wire.TYPE_A) for k in column]
            values, status = self._resolve(questions, local, deadline)
            again = [
                (q[0], wire.TYPE_AAAA) if q is not None and status[i] == MISS else None
                for i, q in enumerate(questions)
            ]
            if any(q is not None for q in again):
                values6, status6 = self._resolve(again, local, deadline)
                for i, q in enumerate(again):
                    if q is not None:
                        values[i], status[i] = values6[i], status6[i]
            out = "ip_address"
        else:
            raise KeyError(f"lookup {self.name!r} has no function {function!r}")
        local.misses += sum(1 for s in status if s in (MISS, NXDOMAIN))
        self._merge(local)
        answered = [s in (OK, MISS, NXDOMAIN) for s in status]
        # ``_answered``: False where the null is a timeout or an error, not an answer, so a
        # cache in front of this lookup can decline to keep it as a negative answer
        return pa.table({out: pa.array(values, pa.string()), "_answered": answered})

    # --- internals ----------------------------------------------------------------------

    def _question(self, local: LookupCounters, key: object, qtype: int) -> tuple[bytes, int] | None:
        if key is None:
            return None
        try:
            qname = wire.reverse_name(str(key)) if qtype == wire.TYPE_PTR else None
            if qname is None:
                qname = wire.encode_name(str(key))
        except ValueError:
            _count(local, "bad key")
            return None
        return qname, qtype

    def _merge(self, local: LookupCounters) -> None:
        with self._lock:
            self.counters.add(local)

    def _resolve(
        self, questions: list[tuple[bytes, int] | None], local: LookupCounters, deadline: float
    ) -> tuple[list[str | None], list[int]]:
        """Ask every question; (first value or None, status) per question."""
        n = len(questions)
        values: list[str | None] = [None] * n
        status = [UNASKED] * n
        todo = deque(i for i, q in enumerate(questions) if q is not None)
        if not todo:
            return values, status
        cfg = self.config
        per_try = cfg.timeout_s / cfg.attempts
        families = {socket.AF_INET6 if ":" in host else socket.AF_INET for host, _ in self.servers}
        socks = {f: socket.socket(f, socket.SOCK_DGRAM) for f in families}
        poller = select.poll()
        by_fd = {}
        for s in socks.values():
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            poller.register(s, select.POLLIN)
            by_fd[s.fileno()] = s
        server_index = {srv: k for k, srv in enumerate(self.servers)}
        pending: dict[int, _Question] = {}
        timers: list[tuple[float, int, _Question, int]] = []  # heap: (when, seq, q, tries)
        stats = ResolverStats()
        rng = self._rng
        last_heard = time.monotonic()
        srtt = self._srtt
        n_servers = len(self.servers)
        window = float(cfg.concurrency)  # questions allowed out; shrinks on loss (AIMD)
        last_cut = 0.0
        with self._lock:
            silent = list(self._silent)
        heard = [0] * n_servers  # answers from each server in this call

        def pick(q: _Question) -> int:
            """The server for this send: spread over the servers, the next one on a retry,
            skipping servers that stopped answering while another one is still up."""
            k = (q.qid + q.tries) % n_servers
            for step in range(n_servers):
                j = (k + step) % n_servers
                if silent[j] < DOWN_AFTER:
                    return j
            return k  # every server is down: keep rotating, one may come back

        def send(q: _Question, now: float) -> None:
            k = pick(q)
            q.last_server = k
            host, port = self.servers[k]
            sock = socks[socket.AF_INET6 if ":" in host else socket.AF_INET]
            try:
                sock.sendto(q.wire, (host, port))
            except OSError as exc:  # e.g. ENOBUFS; the retry timer covers it
                _count_reason(local, f"send: {exc.strerror}")
            q.asked.add(k)
            q.tries += 1
            q.last_sent = now
            stats.queries_sent += 1
            if cfg.attempts == 1:  # re-sending is off: wait out the timeout
                when = q.first_sent + cfg.timeout_s
            else:  # RFC 6298-like: a few smoothed round trips, within timeout / attempts,
                # doubled for every send past ``attempts`` (back-off, RFC 6298 §5.5)
                rto = min(per_try, max(MIN_RTO_S, 4 * srtt) if srtt else FIRST_RTO_S)
                rto *= 2 ** max(0, q.tries - cfg.attempts + 1)
                when = min(now + rto, q.first_sent + cfg.timeout_s)
            heapq.heappush(timers, (when, stats.queries_sent, q, q.tries))

        def finish(q: _Question, st: int, value: str | None = None) -> None:
            del pending[q.qid]
            status[q.index] = st
            values[q.index] = value

        try:
            while todo or pending:
                now = time.monotonic()
                if now >= deadline:  # the batch's time is up: what is still out times out
                    local.timeouts += len(pending) + len(todo)
                    for q in list(pending.values()):
                        finish(q, TIMEOUT)
                    while todo:
                        status[todo.popleft()] = TIMEOUT
                    _count_reason(local, "batch deadline")
                    break
                while todo and len(pending) < int(window):
                    i = todo.popleft()
                    qname, qtype = questions[i]  # type: ignore[misc]
                    qid = rng.getrandbits(16)
                    while qid in pending:
                        qid = rng.getrandbits(16)
                    q = _Question(i, qid, wire.query(qid, qname, qtype), qname, qtype, now)
                    pending[qid] = q
                    send(q, now)
                stats.max_in_flight = max(stats.max_in_flight, len(pending))
                if not pending:
                    break
                wake = min(timers[0][0], deadline) if timers else deadline
                wait_ms = max(0.0, (wake - time.monotonic()) * 1000)
                for fd, _ in poller.poll(wait_ms):
                    sock = by_fd[fd]
                    while True:
                        try:
                            data, addr = sock.recvfrom(65535)
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError as exc:  # ICMP port unreachable etc.
                            _count_reason(local, f"icmp: {exc.strerror}")
                            continue
                        rid = wire.reply_id(data)
                        got = pending.get(-1 if rid is None else rid)
                        srv = server_index.get((addr[0], addr[1]))
                        if got is None or srv is None or srv not in got.asked:
                            _count_reason(local, "unmatched answer")
                            continue
                        last_heard = time.monotonic()
                        stats.answers += 1
                        silent[srv] = 0
                        heard[srv] += 1
                        window = min(cfg.concurrency, window + 1 / window)  # AIMD
                        if got.tries == 1:  # Karn: time only answers to a single send
                            rtt = last_heard - got.last_sent
                            srtt = rtt if not srtt else 0.875 * srtt + 0.125 * rtt
                        self._answer(
                            got,
                            data,
                            local,
                            stats,
                            finish,
                            deadline=got.first_sent + cfg.timeout_s,
                            server=self.servers[srv],
                        )
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    _, _, q, tries = heapq.heappop(timers)
                    if pending.get(q.qid) is not q or q.tries != tries:
                        continue
                    if now - q.first_sent >= cfg.timeout_s - 1e-4 or cfg.attempts == 1:
                        finish(q, TIMEOUT)
                        local.timeouts += 1
                    else:
                        silent[q.last_server] += 1
                        # a loss halves the window once per loss episode: only a question
                        # sent after the last cut can say the smaller window still loses.
                        # A server that has not answered at all in this call is dead or
                        # stalled, not congested: its silence does not shrink the window.
                        if q.last_sent > last_cut and heard[q.last_server]:
                            window = max(MIN_WINDOW, window / 2)
                            last_cut = now
                        send(q, now)
        finally:
            for s in socks.values():
                s.close()
            with self._lock:
                self._srtt = srtt
                self._silent = silent
                self.stats.queries_sent += stats.queries_sent
                self.stats.answers += stats.answers
                self.stats.tcp_retries += stats.tcp_retries
                self.stats.max_in_flight = max(self.stats.max_in_flight, stats.max_in_flight)
        return values, status

    def _answer(
        self,
        q: _Question,
        data: bytes,
        local: LookupCounters,
        stats: ResolverStats,
        finish: Callable[..., None],
        *,
        deadline: float,
        server: tuple[str, int],
    ) -> None:
        try:
            rcode, truncated, found = wire.parse_reply(data, q.qname, q.qtype)
            if truncated and rcode == wire.RCODE_NOERROR:
                stats.tcp_retries += 1
                rcode, _, found = wire.parse_reply(
                    _ask_tcp(q.wire, server, deadline - time.monotonic()), q.qname, q.qtype
                )
        except wire.WireError as exc:
            _count(local, "malformed answer", f"{server[0]}:{server[1]}: {exc}")
            finish(q, ERROR)
            return
        except OSError as exc:
            local.timeouts += isinstance(exc, TimeoutError)
            if not isinstance(exc, TimeoutError):
                _count(local, "tcp failed", f"{server[0]}:{server[1]}: {exc}")
            finish(q, TIMEOUT if isinstance(exc, TimeoutError) else ERROR)
            return
        if rcode == wire.RCODE_NOERROR:
            finish(q, OK, found[0]) if found else finish(q, MISS)
        elif rcode == wire.RCODE_NXDOMAIN:  # the name does not exist: no AAAA either
            finish(q, NXDOMAIN)
        else:
            name = wire.RCODE_NAMES.get(rcode, f"rcode {rcode}")
            _count(local, name, f"{server[0]}:{server[1]} answered {name}")
            finish(q, ERROR)


def _ask_tcp(query: bytes, server: tuple[str, int], timeout_s: float) -> bytes:
    """RFC 1035 §4.2.2: the same question over TCP, two-octet length prefix."""
    if timeout_s <= 0:
        raise TimeoutError("no time left for the TCP retry")
    with socket.create_connection(server, timeout=timeout_s) as conn:
        conn.sendall(struct.pack("!H", len(query)) + query)
        head = _recv_exact(conn, 2)
        return _recv_exact(conn, struct.unpack("!H", head)[0])


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise wire.WireError("TCP answer cut short")
        buf += chunk
    return bytes(buf)


def _count_reason(local: LookupCounters, reason: str) -> None:
    local.by_reason[reason] = local.by_reason.get(reason, 0) + 1


def _count(local: LookupCounters, reason: str, detail: str = "") -> None:
    """An error: counted in ``errors`` and by reason."""
    local.errors += 1
    _count_reason(local, reason)
    local.last_error = f"{reason}: {detail}" if detail else reason
