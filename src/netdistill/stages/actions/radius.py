"""The ``radius`` action: a Disconnect-Request or CoA-Request (RFC 5176) to the NAS
that carries the account's session — to cease a service when an alert is raised, or to
provide it again (CoA with the normal Filter-Id) when it clears.

The session is the account's latest RADIUS accounting record (``sources/radius``):
the record of a radius source (``sources``: by default every source of type ``radius``
in the scheme) whose column named by the rule's ``per`` (``account_id``, ``user_name``)
is the alert's subject and that has a session id, latest ``end_time`` first. From it
the request takes User-Name, Acct-Session-Id, Framed-IP-Address (IPv4 ``src_ip``) and
NAS-IP-Address (the record's ``exporter``, the NAS address the accounting source
stored), plus the configured ``attributes`` (e.g. ``Filter-Id``). It is sent to ``nas``
or, by default, to the exporter's address on ``port`` (3799, RFC 5176 §3.4).

The Request Authenticator is the MD5 over the packet with the shared secret (RFC 5176
§3.3, as for accounting) and a Message-Authenticator (RFC 3579 §3.2) is added unless
``message_authenticator: false``; the answer's Response Authenticator (and its
Message-Authenticator, if any) must verify, otherwise it is ignored (pyrad's client).
The request is sent up to ``tries`` times, ``timeout_s`` apart. Outcomes: Disconnect-/
CoA-ACK is success; a NAK (with its Error-Cause, RFC 5176 §3.5), no answer, or no
session in the records is a failure, recorded and retried by the stage.

Scheme::

    actions: [{radius: {request: disconnect, secret: {env: NAS_COA_SECRET}}}]
    restore: [{radius: {request: coa, secret: s3cret, nas: "192.0.2.1:3799",
                        attributes: {Filter-Id: standard}}}]
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt
from pyrad import packet
from pyrad.client import Client, Timeout

from netdistill.errors import SchemeError
from netdistill.scheme.secrets import Secret, SecretError
from netdistill.sources.radius.accounting import DICTIONARY
from netdistill.stages.actions.event import AlertEvent, Outcome

COA_PORT = 3799  # RFC 5176 §3.4

_NAMES = {
    packet.DisconnectACK: "Disconnect-ACK",
    packet.DisconnectNAK: "Disconnect-NAK",
    packet.CoAACK: "CoA-ACK",
    packet.CoANAK: "CoA-NAK",
}


class RadiusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    request: Literal["disconnect", "coa"]
    secret: Secret = Field(description="shared secret with the NAS (inline, {file:}, {env:})")
    nas: str | None = Field(
        None, description="host:port to send to; default the session's NAS on ``port``"
    )
    port: int = Field(COA_PORT, ge=1, le=65535, description="the NAS's Dynamic Authorization port")
    attributes: dict[str, str | int] = Field(
        default_factory=dict, description="added to the request, e.g. {Filter-Id: suspended}"
    )
    sources: list[str] | None = Field(
        None, description="radius sources whose records hold sessions; default all of them"
    )
    timeout_s: PositiveFloat = 2.0
    tries: PositiveInt = 3
    message_authenticator: bool = True


def _split_host_port(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, or an address alone (port 3799)."""
    try:
        return str(ipaddress.ip_address(text.strip("[]"))), COA_PORT
    except ValueError:
        pass
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return text, COA_PORT
    return host.strip("[]"), int(port)


class RadiusAction:
    kind = "radius"

    def __init__(self, config: RadiusConfig, context: Any) -> None:
        self.config = config
        self.store = context.store
        for name in config.attributes:
            if name not in DICTIONARY.attributes:
                raise SchemeError(
                    [
                        f"radius action: attribute {name!r} is not in netdistill's RADIUS"
                        " dictionary (src/netdistill/sources/radius/dictionary)"
                    ]
                )
        if config.sources is not None:
            self.sources = list(config.sources)
        else:
            self.sources = [s.name for s in context.scheme.sources if s.type == "radius"]
        self.code = (
            packet.DisconnectRequest if config.request == "disconnect" else packet.CoARequest
        )
        self.request_name = (
            "Disconnect-Request" if config.request == "disconnect" else "CoA-Request"
        )

    def session(self, per: str, subject: str) -> dict[str, Any] | None:
        """The latest accounting record of ``subject`` (see the module doc)."""
        if per not in self.store.fields.names():
            return None
        where = f'"{per}" = $subject AND session_id IS NOT NULL'
        params: dict[str, object] = {"subject": subject}
        if self.sources:
            marks = ", ".join(f"$source{i}" for i in range(len(self.sources)))
            where += f" AND source IN ({marks})"
            params.update({f"source{i}": name for i, name in enumerate(self.sources)})
        rows = self.store.query(
            "SELECT user_name, session_id, src_ip::VARCHAR AS src_ip, exporter FROM records"
            f" WHERE {where} ORDER BY coalesce(end_time, start_time) DESC NULLS LAST,"
            " record_id DESC LIMIT 1",
            params,
        ).to_pylist()
        return rows[0] if rows else None

    def run(self, event: AlertEvent) -> Outcome:
        session = self.session(event.per, event.subject) if event.per else None
        if session is None:
            return Outcome(
                False, f"no RADIUS session of {event.per or 'subject'} {event.subject!r}"
            )
        if self.config.nas:
            host, port = _split_host_port(self.config.nas)
        elif session["exporter"]:
            host, port = str(session["exporter"]), self.config.port
        else:
            return Outcome(False, "the session has no NAS address (exporter) and no nas is set")
        try:
            secret = self.config.secret.reveal().encode()
        except SecretError as exc:
            return Outcome(False, f"{self.request_name} to {host}:{port}: {exc}")
        client = Client(
            server=host,
            coaport=port,
            secret=secret,
            dict=DICTIONARY,
            retries=self.config.tries,
            timeout=self.config.timeout_s,
        )
        request = client.CreateCoAPacket(
            code=self.code, message_authenticator=self.config.message_authenticator
        )
        sent = self._fill(request, session)
        where = f"{host}:{port}"
        try:
            reply = client.SendPacket(request)
        except Timeout:
            return Outcome(
                False,
                f"{self.request_name} to {where} ({sent}): no answer after"
                f" {self.config.tries} tries of {self.config.timeout_s:g} s",
            )
        except OSError as exc:
            return Outcome(False, f"{self.request_name} to {where}: {exc}")
        finally:
            client._CloseSocket()  # pyrad keeps the socket for the next request otherwise
        name = _NAMES.get(reply.code, f"code {reply.code}")
        if reply.code in (packet.DisconnectACK, packet.CoAACK):
            return Outcome(True, f"{name} from {where} ({sent})")
        causes = reply.get("Error-Cause") or []
        cause = f" Error-Cause={','.join(str(c) for c in causes)}" if causes else ""
        return Outcome(False, f"{name} from {where}{cause} ({sent})")

    def _fill(self, request: Any, session: dict[str, Any]) -> str:
        """Set the session's identification and the configured attributes; returns them
        as text for the outcome."""
        values: dict[str, Any] = {}
        if session["user_name"]:
            values["User-Name"] = session["user_name"]
        values["Acct-Session-Id"] = session["session_id"]
        for name, column in (("Framed-IP-Address", "src_ip"), ("NAS-IP-Address", "exporter")):
            try:
                if ipaddress.ip_address(str(session[column])).version == 4:
                    values[name] = str(session[column])
            except ValueError:
                pass
        values.update(self.config.attributes)
        for name, value in values.items():
            request[name] = value
        return ", ".join(f"{name}={value}" for name, value in values.items())
