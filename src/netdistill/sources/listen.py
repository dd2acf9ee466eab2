"""Listen addresses as operators write them: ``2055``, ``127.0.0.1:2055``, ``[::]:2055``."""

from __future__ import annotations

import ipaddress


def parse_listen_address(text: str, *, default_port: int) -> tuple[str, int]:
    """``[HOST:]PORT`` → (host, port); raises ``ValueError`` naming what is wrong."""
    text = str(text).strip()
    host, port_text = "0.0.0.0", text
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']' after an IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else str(default_port)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text or not text.isdigit():
        host, port_text = text, str(default_port)
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be a number from 0 to 65535")
    return host, int(port_text)
