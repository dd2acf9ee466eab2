"""Session totals and answered requests of a RADIUS source, kept across restarts.

Interim-Update and Stop carry a session's running totals (RFC 2866 §5.3–5.8, with the
high bits in Acct-Input/Output-Gigawords, RFC 2869 §5.1–5.2). A record's usage is the
difference from the totals of the session's previous update, so a session's records sum
to its Stop totals whatever was retransmitted, lost or reordered (SYSTEM.md §3):

* each counter's delta is ``max(0, new − stored)`` and the stored total becomes the
  larger of the two, so an older update arriving late adds nothing and a lost one only
  makes the next delta bigger;
* a stopped session's totals are kept ``closed_session_retention_s``, so a late or
  repeated Interim-Update or Stop after the Stop adds nothing either.

Counter wrap without Gigawords (a NAS that sends only the low 32 bits of a session that
passes 4 GiB) is out of scope: the wrapped total looks older and adds nothing until it
grows past the stored one.

Two views of the state: the working one in memory (what has been decoded, committed or
not) and the durable one in ``<state_dir>/<source>.radius.sqlite`` (SQLite, WAL). The
durable one only advances in the batch's ``after_commit`` step, after the records are
committed and before the Accounting-Responses go out; the pipeline retries a failed
commit before it polls again, so the working state never runs ahead of a batch that is
abandoned while the process lives. A crash loses only the working state; the NAS, which
got no answer, retransmits. A crash in the short window between the store's commit and
the state write makes a retransmission count again (the records and this state are not
in one transaction).
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

#: (client address, RADIUS identifier, request authenticator): a request and its copies
RequestKey = tuple[str, int, bytes]
#: (exporter, Acct-Session-Id): RFC 2866 §5.5 makes the session id unique per NAS
SessionKey = tuple[str, str]
#: in-octets, out-octets, in-packets, out-packets, session time (s)
Totals = tuple[int, int, int, int, int]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    exporter TEXT NOT NULL, session_id TEXT NOT NULL, start_us INTEGER NOT NULL,
    in_octets INTEGER NOT NULL, out_octets INTEGER NOT NULL,
    in_packets INTEGER NOT NULL, out_packets INTEGER NOT NULL,
    session_time INTEGER NOT NULL, closed INTEGER NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (exporter, session_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS answered_requests (
    request BLOB PRIMARY KEY, answered_at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS answered_batches (
    answered_at REAL NOT NULL, requests BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS answered_batches_at ON answered_batches (answered_at);
"""


@dataclass(slots=True)
class Session:
    start_us: int
    in_octets: int
    out_octets: int
    in_packets: int
    out_packets: int
    session_time: int
    closed: bool
    updated_at: float


SessionRow = tuple[str, str, int, int, int, int, int, int, int, float]


class SessionTable:
    """The working totals of every known session; not thread-safe (the poll thread)."""

    def __init__(self) -> None:
        self.sessions: dict[SessionKey, Session] = {}
        self._dirty: set[SessionKey] = set()
        self._deleted: set[SessionKey] = set()

    def update(
        self, key: SessionKey, totals: Totals, *, start_us: int, closing: bool, at: float
    ) -> tuple[Totals, int]:
        """Fold one update's running totals in; returns (deltas, session start in µs).

        ``start_us`` is the start this update implies; a known session keeps its own."""
        session = self.sessions.get(key)
        self._dirty.add(key)
        self._deleted.discard(key)
        if session is None:
            self.sessions[key] = Session(start_us, *totals, closing, at)
            return totals, start_us
        in_octets, out_octets, in_packets, out_packets, session_time = totals
        deltas = (
            max(0, in_octets - session.in_octets),
            max(0, out_octets - session.out_octets),
            max(0, in_packets - session.in_packets),
            max(0, out_packets - session.out_packets),
            max(0, session_time - session.session_time),
        )
        session.in_octets += deltas[0]
        session.out_octets += deltas[1]
        session.in_packets += deltas[2]
        session.out_packets += deltas[3]
        session.session_time += deltas[4]
        session.closed = session.closed or closing
        session.updated_at = at
        return deltas, session.start_us

    def close_exporter(self, exporter: str, at: float) -> int:
        """Accounting-On/Off (RFC 2866 §5.1): the NAS restarted or stops, so each of its
        open sessions is over; returns how many were closed. Their usage up to the last
        update is already recorded; a late Stop still adds only what is new."""
        n = 0
        for key, session in self.sessions.items():
            if key[0] == exporter and not session.closed:
                session.closed = True
                session.updated_at = at
                self._dirty.add(key)
                n += 1
        return n

    def expire(self, now: float, *, closed_retention_s: float, idle_timeout_s: float) -> int:
        """Forget stopped sessions past their retention and open ones idle too long."""
        gone = [
            key
            for key, s in self.sessions.items()
            if now - s.updated_at > (closed_retention_s if s.closed else idle_timeout_s)
        ]
        for key in gone:
            del self.sessions[key]
            self._dirty.discard(key)
            self._deleted.add(key)
        return len(gone)

    def take_changes(self) -> tuple[list[SessionRow], list[SessionKey]]:
        """Rows changed and keys forgotten since the last call (a snapshot to persist)."""
        rows = []
        for key in self._dirty:
            s = self.sessions[key]
            rows.append(
                (
                    key[0],
                    key[1],
                    s.start_us,
                    s.in_octets,
                    s.out_octets,
                    s.in_packets,
                    s.out_packets,
                    s.session_time,
                    int(s.closed),
                    s.updated_at,
                )
            )
        deleted = list(self._deleted)
        self._dirty.clear()
        self._deleted.clear()
        return rows, deleted

    def load(self, rows: list[SessionRow]) -> None:
        for exporter, session_id, start_us, *counters, closed, updated_at in rows:
            a, b, c, d, e = (int(x) for x in counters)
            self.sessions[(exporter, session_id)] = Session(
                int(start_us), a, b, c, d, e, bool(closed), float(updated_at)
            )


#: (client, identifier and authenticator packed by ``_pack``, answered at)
AnsweredRow = tuple[bytes, float]


def _pack(key: RequestKey) -> bytes:
    return bytes((key[1],)) + key[2] + key[0].encode()


def _unpack(packed: bytes) -> RequestKey:
    return packed[17:].decode(), packed[0], packed[1:17]


def _join_batch(packed: list[bytes]) -> bytes:
    """A batch's packed request keys in one blob, each preceded by its length (1 octet:
    17 + an address's text, at most 17 + 45)."""
    return b"".join(bytes((len(p),)) + p for p in packed)


def _split_batch(blob: bytes) -> list[bytes]:
    out = []
    at = 0
    while at < len(blob):
        n = blob[at]
        out.append(bytes(blob[at + 1 : at + 1 + n]))
        at += 1 + n
    return out


class AnsweredRequests:
    """Requests already answered (or to be answered once their batch is committed), with
    the Accounting-Response sent, so a retransmission is answered again and recorded
    once (RFC 2866 §2: the NAS retransmits with the same identifier and authenticator).

    Only the request's key is persisted, not the response: after a restart the response
    is rebuilt from the retransmission itself (same identifier, authenticator and
    Proxy-States), which keeps the state write small. ``get`` returns ``b""`` then."""

    def __init__(self, *, window_s: float, limit: int) -> None:
        self.window_s = window_s
        self.limit = limit
        self._entries: OrderedDict[RequestKey, tuple[bytes, float]] = OrderedDict()
        self._new: list[AnsweredRow] = []

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: RequestKey) -> bytes | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def add(self, key: RequestKey, response: bytes, at: float) -> None:
        self._entries[key] = (response, at)
        self._new.append((_pack(key), at))

    def expire(self, now: float) -> float:
        """Forget entries older than the window or beyond the limit; returns the time
        before which persisted entries can go too."""
        entries = self._entries
        horizon = now - self.window_s
        while entries:
            _, at = next(iter(entries.values()))
            if at >= horizon and len(entries) <= self.limit:
                break
            entries.popitem(last=False)
        if entries:
            return min(horizon, next(iter(entries.values()))[1])
        return horizon

    def take_new(self) -> list[AnsweredRow]:
        rows, self._new = self._new, []
        return rows

    def load(self, rows: list[AnsweredRow]) -> None:
        for packed, at in sorted(rows, key=lambda r: r[1]):
            self._entries[_unpack(bytes(packed))] = (b"", float(at))


class StateFile:
    """The durable state: one SQLite file in WAL mode. Used from one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transaction survives a power cut, as the answer implies
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    def load(self, now: float, window_s: float) -> tuple[list[SessionRow], list[AnsweredRow]]:
        sessions = self._conn.execute("SELECT * FROM sessions").fetchall()
        horizon = now - window_s
        answered = self._conn.execute(  # written by versions before answered_batches
            "SELECT * FROM answered_requests WHERE answered_at >= ?", (horizon,)
        ).fetchall()
        for at, blob in self._conn.execute(
            "SELECT answered_at, requests FROM answered_batches WHERE answered_at >= ?",
            (horizon,),
        ):
            answered.extend((packed, at) for packed in _split_batch(blob))
        return sessions, answered

    def save(
        self,
        sessions: list[SessionRow],
        deleted: list[SessionKey],
        answered: list[AnsweredRow],
        forget_answered_before: float | None,
    ) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            conn.executemany(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", sessions
            )
            conn.executemany("DELETE FROM sessions WHERE exporter = ? AND session_id = ?", deleted)
            if answered:  # one row per batch: a per-request B-tree insert cost ~8 µs each
                conn.execute(
                    "INSERT INTO answered_batches VALUES (?, ?)",
                    (max(at for _, at in answered), _join_batch([p for p, _ in answered])),
                )
            if forget_answered_before is not None:  # done once a minute
                conn.execute(
                    "DELETE FROM answered_requests WHERE answered_at < ?",
                    (forget_answered_before,),
                )
                conn.execute(
                    "DELETE FROM answered_batches WHERE answered_at < ?",
                    (forget_answered_before,),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()
