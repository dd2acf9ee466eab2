"""Helpers of the alert tests: a RADIUS Dynamic Authorization listener (the NAS side of
RFC 5176, built on pyrad), a webhook receiver, RADIUS-shaped records, and a stage runner
over a real DuckDB store with a clock the test moves."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyrad import packet

from netdistill.scheme.models import Scheme
from netdistill.sources.radius.accounting import DICTIONARY
from netdistill.stages.base import StageContext
from netdistill.stages.runner import StageRunner
from netdistill.store.duckdb import DuckDBStore

SECRET = "coa-secret"
#: 2026-11-23 12:00 UTC: the rounds' clock; records of this month count
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()


class CoaListener:
    """A NAS's Disconnect/CoA port on 127.0.0.1: verifies the shared secret through the
    Request Authenticator (RFC 5176 §3.3) and the Message-Authenticator, records each
    valid request (code and attributes), and answers per ``mode``: ``ack``, ``nak``
    (Error-Cause 503 Session-Context-Not-Found) or ``silent`` (no answer)."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret.encode()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.mode = "ack"
        self.requests: list[dict[str, Any]] = []
        self.rejected = 0  # datagrams whose authenticator did not verify
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            request = packet.CoAPacket(packet=data, secret=self.secret, dict=DICTIONARY)
            if not request.VerifyCoARequest() or not request.verify_message_authenticator():
                self.rejected += 1
                continue
            attributes = {
                DICTIONARY.attributes[key].name if isinstance(key, int) else key: request[key]
                for key in request.keys()  # noqa: SIM118 (Packet.keys() gives names)
            }
            attributes.pop("Message-Authenticator", None)
            self.requests.append({"code": request.code, "attributes": attributes})
            if self.mode == "silent":
                continue
            reply = request.CreateReply()
            if self.mode == "nak":
                reply.code = (
                    packet.DisconnectNAK
                    if request.code == packet.DisconnectRequest
                    else packet.CoANAK
                )
                reply["Error-Cause"] = "Session-Context-Not-Found"
            self.sock.sendto(reply.ReplyPacket(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def check_request_authenticator(raw: bytes, secret: bytes) -> bool:
    """RFC 5176 §3.3 computed by hand (the listener uses pyrad's check)."""
    digest = hashlib.md5(raw[:4] + bytes(16) + raw[20:] + secret).digest()
    return hmac.compare_digest(digest, raw[4:20])


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 recording each POST's JSON body and headers; answers
    ``status``."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1_000_000)


def radius_records(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Records as the RADIUS source stores them (source ``radius``, exporter = NAS
    address, session_id = Acct-Session-Id, src_ip = Framed-IP-Address), plus the
    account_id an enrichment would set. Each row: user, session, ip, nas, start, end,
    bytes, and optionally service (default ``access``)."""
    return pa.table(
        {
            "source": pa.array([r.get("source", "radius") for r in rows], pa.string()),
            "exporter": pa.array([r["nas"] for r in rows], pa.string()),
            "session_id": pa.array([r["session"] for r in rows], pa.string()),
            "user_name": pa.array([r["user"] for r in rows], pa.string()),
            "account_id": pa.array([r.get("account", r["user"]) for r in rows], pa.string()),
            "src_ip": pa.array([r["ip"] for r in rows], pa.string()),
            "start_time": pa.array([_us(r["start"]) for r in rows], pa.timestamp("us", "UTC")),
            "end_time": pa.array([_us(r["end"]) for r in rows], pa.timestamp("us", "UTC")),
            "duration_s": pa.array(
                [(_us(r["end"]) - _us(r["start"])) / 1e6 for r in rows], pa.float64()
            ),
            "bytes": pa.array([r["bytes"] for r in rows], pa.uint64()),
            "packets": pa.array([r.get("packets", 1) for r in rows], pa.uint64()),
            "service": pa.array([r.get("service", "access") for r in rows], pa.string()),
        }
    )


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def radius_source(port: int = 0) -> dict[str, Any]:
    return {
        "name": "radius",
        "type": "radius",
        "listen": [f"127.0.0.1:{port or 1813}"],
        "clients": {"127.0.0.1": {"secret": "acct-secret"}},
    }


def make_runner(
    tmp: Path, stages: list[dict[str, Any]], *, store: DuckDBStore | None = None
) -> tuple[StageRunner, Clock]:
    scheme = Scheme.model_validate({"sources": [radius_source()], "stages": stages})
    clock = Clock()
    store = store or DuckDBStore(tmp / "records.duckdb")
    runner = StageRunner(StageContext(store, scheme, tmp, clock=clock))
    return runner, clock


def rows(store: DuckDBStore, sql: str) -> list[dict[str, Any]]:
    return store.query(sql).to_pylist()
