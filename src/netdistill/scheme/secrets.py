"""Secrets in the scheme: a value written inline, or read from a file or the environment.

Every secret setting of the scheme (RADIUS client and action secrets, the LDAP bind
password, webhook and export headers, the TLS key password, the demo NAS's secret) has
type ``Secret`` and takes any of::

    secret: s3cret                       # inline
    secret: {file: radius/bras.secret}   # a file's content, relative to the scheme file
    secret: {env: BRAS_SECRET}           # an environment variable of the manager

Guarantees:

* Validation (``check-config``, the console's Validate, a reload) checks that a file can
  be read and an environment variable is set, both not empty, and reports it as any
  other problem at ``file:line:column`` (``scheme/load.py``). The value is not kept: it
  is read again where it is used (``Secret.reveal()``: when a listener starts, an LDAP
  connection is opened, a request is sent), so a rotated file is taken without editing
  the scheme. A file's trailing line breaks are dropped.
* A secret never shows its value by accident: ``repr``/``str`` give ``Secret('***')`` or
  the reference (``Secret(file='…')``), and its JSON form (``model_dump(mode="json")``)
  is ``"***"`` unless the caller asks otherwise with a serialization context
  ``{"secrets": MODE}``:

  ========== ================= ===================== =======================================
  mode       inline            ``{file:}``/``{env:}`` used by
  ========== ================= ===================== =======================================
  masked     ``"***"``         the reference          default: every API answer
  reference  the value         the reference          admins' scheme views; comparing schemes
  reveal     the value         the value read now     the plan handed to a gatherer
  stored     ``"***"``         absolute reference     configs recorded in the store
  ========== ================= ===================== =======================================

* ``"***"`` is never a secret's value: the console shows inline secrets so to those
  below admin, and saving it back keeps the previous value (``scheme/redact.py``). A
  config read back from the store holds such a withheld secret, whose ``reveal()``
  raises ``SecretError`` naming what to do.

The relative-file base is a context variable (``secrets_relative_to``) because the
scheme's sections are validated through nested ``model_validate`` calls that a pydantic
validation context does not reach.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from netdistill.errors import SecretError

MASK = "***"
Mode = Literal["masked", "reference", "reveal", "stored"]
MODES: tuple[Mode, ...] = ("masked", "reference", "reveal", "stored")

_BASE_DIR: ContextVar[Path | None] = ContextVar("netdistill_secrets_base", default=None)
_WITHHELD_OK: ContextVar[bool] = ContextVar("netdistill_secrets_withheld_ok", default=False)


@contextlib.contextmanager
def secrets_relative_to(base_dir: Path | str | None) -> Iterator[None]:
    """Resolve ``{file: …}`` secrets validated inside this block relative to ``base_dir``
    (the scheme file's directory; ``None``: the working directory)."""
    token = _BASE_DIR.set(Path(base_dir) if base_dir is not None else None)
    try:
        yield
    finally:
        _BASE_DIR.reset(token)


@contextlib.contextmanager
def withheld_secrets_allowed() -> Iterator[None]:
    """Accept ``"***"`` as a withheld secret (a config read back from the store)."""
    token = _WITHHELD_OK.set(True)
    try:
        yield
    finally:
        _WITHHELD_OK.reset(token)


def _fail(message: str, **context: Any) -> PydanticCustomError:
    # type "secret": scheme/load.py never prints the value found for these errors
    return PydanticCustomError("secret", message, context)


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretError(f"secret file {path} is not UTF-8 text") from None


def _read_env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise SecretError(f"environment variable {name} is not set")
    return value


class Secret:
    """One secret setting: ``kind`` is ``inline``, ``file`` or ``env``; immutable."""

    __slots__ = ("_value", "env", "file", "path")

    def __init__(
        self,
        value: str | None = None,
        *,
        file: str | None = None,
        env: str | None = None,
        base_dir: Path | None = None,
    ) -> None:
        given = [x for x in (value, file, env) if x is not None]
        if len(given) != 1:
            raise ValueError("a Secret is exactly one of a value, file= or env=")
        path: Path | None = None
        if file is not None:
            path = Path(file).expanduser()
            if not path.is_absolute():
                path = (base_dir or Path.cwd()) / path
            path = path.absolute()
        self._value = value
        self.file = file
        self.env = env
        self.path = path

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "path"):  # set last in __init__
            raise AttributeError("a Secret is immutable")
        object.__setattr__(self, name, value)

    @property
    def kind(self) -> Literal["inline", "file", "env"]:
        return "file" if self.file is not None else "env" if self.env is not None else "inline"

    @property
    def withheld(self) -> bool:
        """An inline value that was not kept (a config read back from the store)."""
        return self._value == MASK

    def reveal(self) -> str:
        """The value, read now for a file or a variable; ``SecretError`` if it cannot be."""
        if self.path is not None:
            return _read_file(self.path)
        if self.env is not None:
            return _read_env(self.env)
        assert self._value is not None
        if self.withheld:
            raise SecretError(
                "this inline secret was not kept in the store; run it through the running "
                "manager, or write the secret as {file: …} or {env: …} in the scheme"
            )
        return self._value

    def reference(self) -> str | dict[str, str]:
        """What the scheme says: the inline value, or ``{file: …}`` / ``{env: …}``."""
        if self.file is not None:
            return {"file": self.file}
        if self.env is not None:
            return {"env": self.env}
        assert self._value is not None
        return self._value

    def shown(self, mode: Mode = "masked") -> str | dict[str, str]:
        """The JSON form for ``mode`` (see the module docstring)."""
        if mode == "reveal":
            return self.reveal()
        if self.kind == "inline":
            return self.reference() if mode == "reference" else MASK
        if mode == "stored" and self.path is not None:
            return {"file": str(self.path)}
        return self.reference()

    def check(self) -> None:
        """Raise ``SecretError`` unless the value can be read now and is not empty."""
        if self.kind == "inline":
            return
        if not self.reveal():
            what = f"secret file {self.path}" if self.path else f"environment variable {self.env}"
            raise SecretError(f"{what} is empty")

    def _identity(self) -> tuple[str, str]:
        if self.path is not None:
            return ("file", str(self.path))
        if self.env is not None:
            return ("env", self.env)
        assert self._value is not None
        return ("inline", self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        if self.file is not None:
            return f"Secret(file={self.file!r})"
        if self.env is not None:
            return f"Secret(env={self.env!r})"
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # copy/deepcopy/pickle keep the resolved path
        return (_rebuild, (self._value, self.file, self.env, self.path))

    # --- pydantic ---------------------------------------------------------------------------

    @classmethod
    def validate(cls, value: Any) -> Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            if not value:
                raise _fail("a secret cannot be empty")
            if value == MASK and not _WITHHELD_OK.get():
                raise _fail(
                    "'***' stands for a secret kept from the running scheme, and there is "
                    "none at this place: write the secret itself, {file: …} or {env: …}"
                )
            return cls(value)
        if isinstance(value, dict) and len(value) == 1:
            ((key, given),) = value.items()
            if key in ("file", "env") and isinstance(given, str) and given:
                secret = (
                    cls(file=given, base_dir=_BASE_DIR.get()) if key == "file" else cls(env=given)
                )
                try:
                    secret.check()
                except SecretError as exc:
                    raise _fail(str(exc), key=key) from None
                return secret
        raise _fail(
            "a secret is text (quote it if it looks like a number), {file: PATH} or {env: NAME}"
        )

    @classmethod
    def _serialize(cls, value: Secret, info: core_schema.SerializationInfo) -> Any:
        if not info.mode_is_json():
            return value
        context = info.context if isinstance(info.context, dict) else {}
        mode = context.get("secrets", "masked")
        return value.shown(mode if mode in MODES else "masked")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                cls._serialize, info_arg=True
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "description": "a secret: inline text, {file: PATH} or {env: NAME}",
            "anyOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "object",
                    "properties": {"file": {"type": "string"}},
                    "required": ["file"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"env": {"type": "string"}},
                    "required": ["env"],
                    "additionalProperties": False,
                },
            ],
        }


def _rebuild(value: str | None, file: str | None, env: str | None, path: Path | None) -> Secret:
    secret = Secret(value, file=file, env=env)
    object.__setattr__(secret, "path", path)  # as resolved when it was validated
    return secret


def reveal_all(values: dict[str, Secret]) -> dict[str, str]:
    """A mapping of secrets (HTTP headers) with every value read now."""
    return {name: secret.reveal() for name, secret in values.items()}
