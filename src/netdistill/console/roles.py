"""Console roles and the role each API request needs.

``viewer`` sees dashboards and runs reports, ``operator`` may also change the scheme
(fields, procedures, stages, reloads), ``admin`` may also manage users, licences and
retention and read the audit log. The rule is by request, so routers written before
the console (monitor, windows, stages, procedures) need no change:

* ``GET``/``HEAD``/``OPTIONS`` → viewer
* any other method → operator
* a path under an admin prefix (``/api/users``, ``/api/audit``, ``/api/retention``,
  ``/api/licences``) → admin, whatever the method
* ``/api/auth/…`` (who am I, change my own password, log out) → viewer
"""

from __future__ import annotations

import enum

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ADMIN_PREFIXES = ("/api/users", "/api/audit", "/api/retention", "/api/licences", "/api/licenses")


class Role(enum.IntEnum):
    viewer = 1
    operator = 2
    admin = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text]
        except KeyError:
            names = ", ".join(r.name for r in cls)
            raise ValueError(f"unknown role {text!r} (one of {names})") from None


def required_role(method: str, path: str) -> Role:
    """The least role allowed to make this request."""
    if any(path == p or path.startswith(p + "/") for p in ADMIN_PREFIXES):
        return Role.admin
    if path.startswith("/api/auth/"):
        return Role.viewer
    return Role.viewer if method.upper() in SAFE_METHODS else Role.operator


#: data delivery into the store: for scripts and the CLI holding the token, never a session
TOKEN_ONLY = frozenset({("POST", "/api/commit"), ("POST", "/api/quarantine")})


def token_only(method: str, path: str) -> bool:
    return (method.upper(), path) in TOKEN_ONLY
