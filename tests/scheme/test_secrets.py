"""The ``Secret`` type and the redaction of scheme texts (``scheme/secrets.py``,
``scheme/redact.py``): forms, problems at file:line:column from the real check-config,
values read where used, never in a repr, masked texts that keep their lines."""

from __future__ import annotations

import copy
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netdistill.errors import SchemeError
from netdistill.scheme.load import parse_scheme
from netdistill.scheme.redact import mask_text, redact_value, restore_text, secret_keys
from netdistill.scheme.secrets import Secret, SecretError, withheld_secrets_allowed

RADIUS = """\
sources:
  - name: bras
    type: radius
    listen: ["127.0.0.1:0"]
    clients:
      192.0.2.1: {{secret: {one}}}
      192.0.2.2:
        secret: {two}
"""


def _scheme(tmp_path: Path, one: str, two: str) -> Path:
    path = tmp_path / "conf" / "scheme.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(RADIUS.format(one=one, two=two))
    return path


def _check_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netdistill", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "1000", **(env or {})},
        check=False,
    )


def test_every_secret_setting_is_a_secret() -> None:
    """The keys redaction looks for are read from the models: every kind listed here."""
    keys, maps = secret_keys()
    assert keys == {"secret", "password", "radius_secret", "key_password", "token", "community"}
    assert maps == {"headers"}


def test_check_config_reports_missing_variable_and_unreadable_file_at_their_place(
    tmp_path: Path,
) -> None:
    path = _scheme(tmp_path, "{file: nas1.secret}", "{env: ND_TEST_SECRET_UNSET}")
    done = _check_config(path, {"ND_TEST_SECRET_UNSET": ""})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{path}:6:34: sources.0.clients.192.0.2.1.secret.file: cannot read secret file "
        f"{tmp_path / 'conf' / 'nas1.secret'}: No such file or directory",
        f"{path}:8:23: sources.0.clients.192.0.2.2.secret.env: environment variable "
        "ND_TEST_SECRET_UNSET is empty",
    ]
    # relative to the scheme file, not to the working directory
    (tmp_path / "conf" / "nas1.secret").write_text("s3cret-one\n")
    done = _check_config(path, {"ND_TEST_SECRET_UNSET": "s3cret-two"})
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout + done.stderr


def test_secret_problems_never_print_the_value(tmp_path: Path) -> None:
    with pytest.raises(SchemeError) as caught:
        parse_scheme(RADIUS.format(one="12345678", two='""'), filename="s.yaml")
    assert caught.value.problems == [
        "s.yaml:6:27: sources.0.clients.192.0.2.1.secret: a secret is text (quote it if it "
        "looks like a number), {file: PATH} or {env: NAME}",
        "s.yaml:8:17: sources.0.clients.192.0.2.2.secret: a secret cannot be empty",
    ]
    typo = (
        RADIUS.format(one="ok", two="ok")
        + "lookups:\n  - {name: L, type: ldap, pasword: hunter2}\n"
    )
    with pytest.raises(SchemeError) as caught:
        parse_scheme(typo, filename="s.yaml")
    assert "hunter2" not in str(caught.value)
    assert "s.yaml:10:27: lookups.0.pasword: unknown key" in str(caught.value)


def test_values_are_read_where_used_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ND_TEST_SECRET", "from-env-1")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "nas1.secret").write_text("from-file-1\r\n")
    scheme = parse_scheme(
        RADIUS.format(one="{file: nas1.secret}", two="{env: ND_TEST_SECRET}"),
        filename=str(tmp_path / "conf" / "scheme.yaml"),
    )
    one = scheme.sources[0].clients["192.0.2.1"].secret
    two = scheme.sources[0].clients["192.0.2.2"].secret
    assert (one.reveal(), two.reveal()) == ("from-file-1", "from-env-1")
    # rotated: the next use reads the new value
    (tmp_path / "conf" / "nas1.secret").write_text("from-file-2\n")
    monkeypatch.setenv("ND_TEST_SECRET", "from-env-2")
    assert (one.reveal(), two.reveal()) == ("from-file-2", "from-env-2")
    assert copy.deepcopy(one).reveal() == "from-file-2"
    assert pickle.loads(pickle.dumps(one)) == one
    inline = Secret("hunter2-inline")
    logging.getLogger("t").warning("config %s %r %s", inline, inline, scheme)
    assert "hunter2" not in caplog.text and "from-" not in caplog.text
    assert repr(inline) == "Secret('***')" and repr(one) == "Secret(file='nas1.secret')"
    monkeypatch.delenv("ND_TEST_SECRET")
    with pytest.raises(SecretError, match="ND_TEST_SECRET is not set"):
        two.reveal()


def test_json_forms_per_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ND_TEST_SECRET", "from-env")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "f.secret").write_text("from-file")
    scheme = parse_scheme(
        RADIUS.format(one="{file: f.secret}", two="inline-value"),
        filename=str(tmp_path / "conf" / "scheme.yaml"),
    )
    source = scheme.sources[0]

    def clients(mode: str | None) -> dict:
        context = {"secrets": mode} if mode else None
        return source.model_dump(mode="json", context=context)["clients"]

    assert (
        clients(None)
        == clients("masked")
        == {
            "192.0.2.1": {"secret": {"file": "f.secret"}},
            "192.0.2.2": {"secret": "***"},
        }
    )
    assert clients("reference")["192.0.2.2"] == {"secret": "inline-value"}
    assert clients("reveal") == {
        "192.0.2.1": {"secret": "from-file"},
        "192.0.2.2": {"secret": "inline-value"},
    }
    stored = clients("stored")
    assert stored["192.0.2.1"] == {"secret": {"file": str(tmp_path / "conf" / "f.secret")}}
    # read back from the store: the withheld inline secret says why it has no value
    with withheld_secrets_allowed():
        back = type(source).model_validate({**source.model_dump(mode="json"), "clients": stored})
    assert back.clients["192.0.2.1"].secret.reveal() == "from-file"
    with pytest.raises(SecretError, match="not kept in the store"):
        back.clients["192.0.2.2"].secret.reveal()
    assert source.model_dump()["clients"]["192.0.2.2"]["secret"] == Secret("inline-value")


MIXED = """\
# a comment: secret: not-parsed
sources:
  - name: bras     # first
    type: radius
    clients:
      192.0.2.1: {secret: 'quoted s3cret', other: 1}
      192.0.2.2:
        secret: &shared plain-s3cret
      192.0.2.3:
        secret: *shared
      192.0.2.4: {secret: {file: x.secret}}
lookups:
  - name: L
    password: |
      block
      s3cret
    bind_dn: cn=x
stages:
  - name: a
    actions:
      - webhook: {url: "http://h", headers: {Authorization: "Bearer s3cret", X-Trace: on}}
"""


def test_mask_text_keeps_lines_anchors_and_references() -> None:
    masked = mask_text(MIXED)
    assert "s3cret" not in masked
    assert masked.count("\n") == MIXED.count("\n")
    assert '192.0.2.1: {secret: "***", other: 1}' in masked
    assert 'secret: &shared "***"' in masked and "secret: *shared" in masked
    assert "192.0.2.4: {secret: {file: x.secret}}" in masked
    assert 'headers: {Authorization: "***", X-Trace: "***"}' in masked
    assert "- name: bras     # first" in masked
    data = yaml.safe_load(masked)
    assert data["lookups"][0]["password"] == "***"
    assert data["sources"][0]["clients"]["192.0.2.3"]["secret"] == "***"
    # a text that is not YAML is masked line by line
    broken = "sources:\n  - {name: x, secret: s3cret\n  password: s3cret2 [\n"
    assert "s3cret" not in mask_text(broken)


def test_restore_takes_each_secret_from_its_place_by_name() -> None:
    masked = mask_text(MIXED)
    # entries reordered and one added: secrets follow names, not positions
    moved = masked.replace(
        "  - name: bras     # first", "  - name: new\n    type: radius\n  - name: bras     # first"
    )
    restored = restore_text(moved, MIXED)
    assert yaml.safe_load(restored) == yaml.safe_load(
        MIXED.replace(
            "  - name: bras     # first",
            "  - name: new\n    type: radius\n  - name: bras     # first",
        )
    )
    assert "{secret: 'quoted s3cret', other: 1}" in restored  # as written, quotes too
    assert restore_text(MIXED, MIXED) == MIXED
    with pytest.raises(SchemeError) as caught:
        restore_text(masked.replace("name: bras", "name: renamed"), MIXED, filename="s.yaml")
    assert caught.value.problems[0].startswith(
        "s.yaml:6:27: sources.renamed.clients.192.0.2.1.secret: '***' stands for"
    )


def test_audit_redaction_of_bodies() -> None:
    body = {
        "user": "ann",
        "password": "pw-s3cret",
        "yaml": "lookups:\n  - {name: L, password: ldap-s3cret}\n",
        "headers": {"authorization": "hdr-s3cret"},
        "nested": [{"secret": {"env": "X"}, "token": "tok-s3cret"}],
    }
    shown = redact_value(body)
    assert "s3cret" not in str(shown)
    assert shown["nested"][0]["secret"] == {"env": "X"}
    assert shown["yaml"] == 'lookups:\n  - {name: L, password: "***"}\n'
