"""Changing the running scheme from the console: validate, preview the diff, apply live,
keep every version, roll back.

``SchemeEditor`` holds the current scheme text and its version (``scheme/versions.py``);
the process that runs the scheme gives it ``apply(new_scheme)``, which moves the running
sources, enhancer, stages and aging job to the new scheme (``manager/local.py``,
``manager/serve.py``) or raises ``SchemeApplyError`` saying why it cannot (an enabled
procedure changed, …). Every text is checked by ``parse_scheme``, the validator of
``netdistill check-config``, so problems read ``file:line:column: message`` exactly as
check-config prints them.

Routes (behind the manager's guard; GET viewer, the rest operator; a change to the
``manager`` section — retention, aging, commit cadence — needs admin)::

    GET  /api/scheme                  {version, yaml, scheme (parsed JSON), path}
    GET  /api/scheme/versions         every version, newest first (without the text)
    GET  /api/scheme/versions/{n}     one version with its text
    GET  /api/scheme/versions/{a}/diff/{b}   {diff, summary} from version a to b
    GET  /api/scheme/section/{name}   {yaml, line}: one section's lines of the current text
    POST /api/scheme/validate         {yaml} → {ok, problems}
    POST /api/scheme/diff             {yaml} → {ok, problems, diff, summary, restart_needed}
    PUT  /api/scheme                  {yaml, comment} → applied: {version, diff, summary}
    POST /api/scheme/rollback/{n}     → as PUT, with version n's text

The console's section screens send ``{section: "sources", yaml: "sources: …"}``: the
section's text replaces that section of the current scheme (``with_section``), the rest
is kept as written; answers then carry the whole text (``yaml``) and the line where the
section starts in it (``section_line``), so a problem's line maps to the editor's.

Secrets (``scheme/secrets.py``, ``scheme/redact.py``): below admin, every text, diff and
parsed scheme these routes answer shows inline secrets as ``"***"`` (in the YAML text
itself, not only in the JSON); ``{file: …}``/``{env: …}`` references show as written, to
everyone, never the value read. Admins (and the manager's token) get the texts as
written. A text sent back with ``"***"`` keeps the secret at that place in the current
scheme (``restore_text``) before it is validated, previewed or applied, so a round trip
through the editor never overwrites a secret with stars; the version stored and the
scheme file get the real text. The stored versions are the operators' texts; only what
leaves the API is redacted.

A refused change (invalid → 400 with the problems; needs a restart or a disabled
procedure → 409 with the reason) leaves the version and the running system as they were.
A new version is stored only once the running system took it, then written to the
scheme file (atomically: a temporary file renamed over it) when the process has one.
A reload of the scheme file (SIGHUP, ``POST /api/scheme/reload``) is a version too when
its text differs from the latest (``reloaded``), by the caller or ``sighup``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from netdistill.console.roles import Role
from netdistill.errors import NetdistillError, SchemeApplyError, SchemeError
from netdistill.files import write_atomic
from netdistill.scheme.load import parse_scheme
from netdistill.scheme.models import Scheme
from netdistill.scheme.redact import mask_text, restore_text
from netdistill.scheme.versions import (
    SchemeVersions,
    diff_text,
    needs_admin,
    restart_needed,
    section_text,
    sha256_of,
    summarize,
    with_section,
)
from netdistill.store import Store


class SchemeEditor:
    def __init__(
        self,
        store: Store,
        *,
        text: str,
        apply: Callable[[Scheme], None],
        path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.filename = str(path) if path is not None else "<scheme>"
        self.versions = SchemeVersions(store, clock=clock)
        self._apply = apply
        self._lock = threading.Lock()
        self.scheme = parse_scheme(text, filename=self.filename)
        self.text = text
        self.version = int(self.versions.started_with(text)["version"])

    def parse(self, text: str) -> Scheme:
        """The scheme in ``text``; ``SchemeError`` with check-config's problems."""
        return parse_scheme(text, filename=self.filename)

    def restored(self, text: str) -> str:
        """``text`` with each ``"***"`` secret taken from the current text."""
        return restore_text(text, self.text, filename=self.filename)

    def reloaded(self, text: str, user: str) -> None:
        """The scheme file was read again (and handed out): keep ``text`` as the next
        version unless it is the latest one."""
        with self._lock:
            latest = self.versions.latest()
            if latest is not None and latest["sha256"] == sha256_of(text):
                return
            scheme = self.parse(text)
            comment = f"reloaded from {self.filename}"
            self.version = self.versions.add(text, user=user, comment=comment)
            self.scheme, self.text = scheme, text

    def preview(self, text: str, view: Callable[[str], str] = str) -> dict[str, Any]:
        """What applying ``text`` (restored) would change; the diff is of ``view`` of
        both texts (``mask_text`` below admin)."""
        text = self.restored(text)
        new = self.parse(text)
        summary = summarize(self.scheme, new)
        return {
            "version": self.version,
            "diff": diff_text(view(self.text), view(text), old_name=f"version {self.version}"),
            "summary": summary,
            "restart_needed": restart_needed(summary),
            "needs_admin": needs_admin(summary),
        }

    def change(
        self,
        text: str,
        *,
        user: str,
        role: Role,
        comment: str = "",
        view: Callable[[str], str] = str,
    ) -> dict[str, Any]:
        """Apply ``text`` (restored) live and store it as the next version."""
        with self._lock:
            text = self.restored(text)
            preview = self.preview(text, view)
            if preview["needs_admin"] and role < Role.admin:
                raise PermissionError(
                    f"{user} is {role.name}; changing the manager section "
                    f"({', '.join(preview['summary']['manager']['changed'])}) needs admin"
                )
            if preview["restart_needed"]:
                raise SchemeApplyError("; ".join(preview["restart_needed"]))
            new = self.parse(text)
            if preview["summary"]:
                self._apply(new)
            self.version = self.versions.add(text, user=user, comment=comment)
            self.scheme, self.text = new, text
            if self.path is not None:
                write_atomic(self.path, text)
            return {**preview, "version": self.version, "previous": preview["version"]}


def _view(request: Request) -> Callable[[str], str]:
    """How texts are shown to the caller: as written to admins (and the token when no
    console guards the API), with inline secrets masked to everyone else."""
    principal = getattr(request.state, "principal", None)
    if principal is None or principal.role >= Role.admin:
        return str
    return mask_text


def _secrets_mode(request: Request) -> str:
    return "reference" if _view(request) is str else "masked"


async def _text_of(request: Request, editor: SchemeEditor) -> tuple[str, str, dict[str, Any]]:
    """(whole yaml, comment, extra answer fields) from a JSON body
    ``{yaml, comment, section?}`` or a plain YAML body. The whole text in the answer
    (``yaml``) is restored and shown as the caller may see it."""
    if "json" not in request.headers.get("content-type", ""):
        return (await request.body()).decode("utf-8", errors="replace"), "", {}
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("yaml"), str):
        raise HTTPException(400, detail='expected {"yaml": "…", "comment": "…"}')
    text, comment, section = body["yaml"], str(body.get("comment") or ""), body.get("section")
    if not section:
        return text, comment, {}
    try:
        whole, line = with_section(editor.text, str(section), text)
    except ValueError as exc:
        raise HTTPException(400, detail=[str(exc)]) from None
    try:
        shown = _view(request)(editor.restored(whole))
    except SchemeError:
        shown = _view(request)(whole)  # the "***" problem is answered by the route
    return whole, comment, {"yaml": shown, "section": section, "section_line": line}


def scheme_router(editor: SchemeEditor) -> APIRouter:
    """The routes above; the includer guards them (``request.state.principal``)."""
    router = APIRouter(prefix="/api/scheme")

    @router.get("")
    def get_scheme(request: Request) -> dict[str, Any]:
        view = _view(request)
        return {
            "version": editor.version,
            "yaml": view(editor.text),
            "scheme": editor.scheme.model_dump(
                mode="json", context={"secrets": _secrets_mode(request)}
            ),
            "path": str(editor.path) if editor.path is not None else None,
        }

    @router.get("/versions")
    def get_versions() -> list[dict[str, Any]]:
        return editor.versions.list()

    @router.get("/versions/{version}")
    def get_version(request: Request, version: int) -> dict[str, Any]:
        found = editor.versions.get(version)
        if found is None:
            raise HTTPException(404, detail=f"no scheme version {version}")
        return {**found, "yaml": _view(request)(found["yaml"])}

    @router.get("/versions/{first}/diff/{second}")
    def get_versions_diff(request: Request, first: int, second: int) -> dict[str, Any]:
        texts = []
        for version in (first, second):
            found = editor.versions.get(version)
            if found is None:
                raise HTTPException(404, detail=f"no scheme version {version}")
            texts.append(found["yaml"])
        view = _view(request)
        return {
            "diff": diff_text(
                view(texts[0]),
                view(texts[1]),
                old_name=f"version {first}",
                new_name=f"version {second}",
            ),
            "summary": summarize(editor.parse(texts[0]), editor.parse(texts[1])),
        }

    @router.get("/section/{name}")
    def get_section(request: Request, name: str) -> dict[str, Any]:
        # the section's lines of the (masked) whole text: line numbers are the same
        text, line = section_text(_view(request)(editor.text), name)
        return {"version": editor.version, "section": name, "yaml": text, "line": line}

    @router.post("/validate")
    async def validate(request: Request) -> dict[str, Any]:
        text, _, extra = await _text_of(request, editor)
        try:
            editor.parse(editor.restored(text))
        except SchemeError as exc:
            return {"ok": False, "problems": exc.problems, **extra}
        return {"ok": True, "problems": [], **extra}

    @router.post("/diff")
    async def diff(request: Request) -> dict[str, Any]:
        text, _, extra = await _text_of(request, editor)
        try:
            return {"ok": True, "problems": [], **editor.preview(text, _view(request)), **extra}
        except SchemeError as exc:
            return {"ok": False, "problems": exc.problems, **extra}

    def change(
        request: Request, text: str, comment: str, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        principal = request.state.principal
        try:
            done = editor.change(
                text,
                user=principal.user,
                role=principal.role,
                comment=comment,
                view=_view(request),
            )
            return {**done, **(extra or {})}
        except SchemeError as exc:
            raise HTTPException(400, detail=exc.problems) from None
        except PermissionError as exc:
            raise HTTPException(403, detail=str(exc)) from None
        except NetdistillError as exc:  # SchemeApplyError, ProcedureChangeError
            raise HTTPException(409, detail=str(exc)) from None

    @router.put("")
    async def put_scheme(request: Request) -> dict[str, Any]:
        text, comment, extra = await _text_of(request, editor)
        return await _in_thread(change, request, text, comment, extra)

    @router.post("/rollback/{version}")
    async def rollback(request: Request, version: int) -> dict[str, Any]:
        found = editor.versions.get(version)
        if found is None:
            raise HTTPException(404, detail=f"no scheme version {version}")
        comment = f"rollback to version {version}"
        return await _in_thread(change, request, found["yaml"], comment)

    return router


async def _in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Applying stops sources and joins threads: keep it off the event loop."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args)
