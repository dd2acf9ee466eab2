"""Scheme entries of the syslog receiver (``type: syslog``) and the plain line socket
(``type: lines``).

Sample::

    sources:
      - name: firewalls
        type: syslog
        listen: ["udp://0.0.0.0:514", "tcp://0.0.0.0:514"]
        formats: [netfilter, asa, cef]   # tried in order; a line no format takes is quarantined
        timezone: Europe/Berlin          # zone of RFC 3164 time stamps (they carry none)
      - name: billing-feed
        type: lines
        listen: ["tcp://127.0.0.1:5170"]
        format: cef

``listen`` items are ``udp://HOST:PORT`` or ``tcp://HOST:PORT`` (``[::]`` for IPv6); the
port defaults to 514 for syslog (the well-known port needs root or CAP_NET_BIND_SERVICE;
tests use free high ports) and has no default for ``lines``.
"""

from __future__ import annotations

import zoneinfo
from typing import Any, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from netdistill.sources.config import SourceConfigBase
from netdistill.sources.lines import check_format
from netdistill.sources.listen import parse_listen_address

SYSLOG_PORT = 514


def parse_endpoint(text: str, *, default_port: int | None) -> tuple[str, str, int]:
    """``tcp://HOST:PORT`` → ("tcp", host, port); raises ``ValueError`` naming the problem."""
    transport, sep, rest = str(text).partition("://")
    if not sep or transport not in ("udp", "tcp"):
        raise ValueError(f"{text!r}: write udp://HOST:PORT or tcp://HOST:PORT")
    if default_port is None and not (rest.rsplit(":", 1)[-1].isdigit() and ":" in rest):
        raise ValueError(f"{text!r}: a port is needed")
    host, port = parse_listen_address(rest, default_port=default_port or 0)
    return transport, host, port


class _SocketSourceConfig(SourceConfigBase):
    max_message_bytes: PositiveInt = Field(
        64 * 1024, description="longest message or line; longer ones are quarantined"
    )
    max_connections: PositiveInt = Field(
        512, description="open TCP connections at once; more are refused and counted"
    )
    receive_buffer_bytes: PositiveInt = 16 * 1024 * 1024


class SyslogSourceConfig(_SocketSourceConfig):
    type: Literal["syslog"]
    listen: list[str] = Field(default_factory=lambda: ["udp://0.0.0.0:514"], min_length=1)
    formats: list[str] = Field(default_factory=lambda: ["netfilter", "asa", "cef"], min_length=1)
    format_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="options per format name"
    )
    timezone: str = Field("UTC", description="zone of RFC 3164 time stamps")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_endpoint(item, default_port=SYSLOG_PORT)
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _check_formats(self) -> SyslogSourceConfig:
        for name in self.formats:
            check_format(name, self.format_options.get(name, {}))
        unused = set(self.format_options) - set(self.formats)
        if unused:
            raise ValueError(f"format_options for formats not listed: {', '.join(sorted(unused))}")
        return self


class LinesSourceConfig(_SocketSourceConfig):
    type: Literal["lines"]
    listen: list[str] = Field(min_length=1)
    format: str
    format_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_endpoint(item, default_port=None)
        return value

    @model_validator(mode="after")
    def _check_format(self) -> LinesSourceConfig:
        check_format(self.format, self.format_options)
        return self
