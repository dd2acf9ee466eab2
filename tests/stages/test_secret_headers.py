"""Webhook headers are secrets (``scheme/secrets.py``): given as ``{env: …}`` or
``{file: …}`` they are read at each POST — a rotated file is sent at the next one — and a
variable that went away fails that action (recorded, retried) without its value."""

from __future__ import annotations

from pathlib import Path

import pytest
from alert_support import NOW, WebhookReceiver, make_runner, rows

from netdistill.records.batch import Quarantined


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def _quarantine(store, n: int, at: float) -> None:
    store.commit_quarantine(
        [Quarantined("netflow", "127.0.0.1", at, "malformed", "short", b"\x00")] * n
    )


def test_webhook_headers_from_env_and_file_read_at_each_post(
    tmp_path: Path, webhook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ND_TEST_HOOK_AUTH", "Bearer env-value-1")
    key = tmp_path / "hook.key"
    key.write_text("file-value-1\n")
    hook = {"webhook": {"url": webhook.url, "headers": {
        "Authorization": {"env": "ND_TEST_HOOK_AUTH"}, "X-Key": {"file": str(key)},
        "X-Plain": "inline-value"}}}  # fmt: skip
    stage = {"name": "q", "type": "alert", "rule": "quarantine_growing", "threshold": 1,
             "window_s": 60, "actions": [hook], "restore": [hook]}  # fmt: skip
    runner, clock = make_runner(tmp_path, [stage])
    store = runner.context.store
    _quarantine(store, 1, NOW - 1)
    assert runner.run_once()["q"]["actions_ok"] == 1
    sent = webhook.headers[0]
    assert (sent["authorization"], sent["x-key"], sent["x-plain"]) == (
        "Bearer env-value-1", "file-value-1", "inline-value"
    )  # fmt: skip
    key.write_text("file-value-2\n")  # rotated: the clearing POST carries the new one
    monkeypatch.delenv("ND_TEST_HOOK_AUTH")
    clock.now = NOW + 120
    counts = runner.run_once()["q"]
    assert (counts["cleared"], counts["actions_failed"]) == (1, 1)
    failed = rows(store, "SELECT outcome, detail FROM alert_actions WHERE outcome = 'failed'")
    assert failed == [
        {"outcome": "failed",
         "detail": f"POST {webhook.url}: environment variable ND_TEST_HOOK_AUTH is not set"}
    ]  # fmt: skip
    monkeypatch.setenv("ND_TEST_HOOK_AUTH", "Bearer env-value-2")
    clock.now = NOW + 3600  # past the retry back-off
    runner.run_once()
    assert len(webhook.headers) == 2
    assert (webhook.headers[1]["authorization"], webhook.headers[1]["x-key"]) == (
        "Bearer env-value-2", "file-value-2"
    )  # fmt: skip
    details = " ".join(str(r) for r in rows(store, "SELECT * FROM alert_actions"))
    assert not any(v in details for v in ("env-value", "file-value", "inline-value"))


def test_rollup_config_in_the_store_keeps_references_not_inline_secrets(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    from netdistill.stages.rollup_store import load_config

    key = tmp_path / "billing.key"
    key.write_text("file-secret\n")
    headers = {"authorization": "inline-secret", "x-key": {"file": str(key)}}
    export = {"directory": None, "url": webhook.url, "headers": headers}
    stage = {"name": "monthly", "type": "rollup", "period": "month", "account": "user_name",
             "export": export}  # fmt: skip
    runner, _ = make_runner(tmp_path, [stage])
    runner.run_once()
    store = runner.context.store
    stored = rows(store, "SELECT config FROM _rollups")[0]["config"]
    assert "inline-secret" not in stored and "file-secret" not in stored
    config = load_config(store, "monthly")  # as `netdistill export resend` reads it offline
    assert config.export.headers["x-key"].reveal() == "file-secret"
    assert config.export.headers["authorization"].withheld
