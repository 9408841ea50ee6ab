"""The `darkroom` CLI against the moto server: keys, webhook verification, dead-letter replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner

from functions.core.keys import KeyStore
from functions.core.messages import WebhookMessage, send
from functions.core.signing import new_secret
from infra.cli import app

runner = CliRunner()


@pytest.fixture
def data_dir(world, tmp_path):
    (tmp_path / "dev.env").write_text(f"DARKROOM_LOCAL_AWS_ENDPOINT={world.endpoint}\n")
    return tmp_path


def test_keys_create_list_revoke_locally(world, data_dir):
    result = runner.invoke(app, ["keys", "create", "--local", "--data-dir", str(data_dir), "--workspace", "cli-ws",
                                 "--name", "backend", "--scope", "media:read"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    key = KeyStore().lookup(secret)
    assert key.workspace_id == "cli-ws" and key.scopes == ["media:read"] and key.name == "backend"
    listed = runner.invoke(app, ["keys", "list", "--local", "--data-dir", str(data_dir), "--workspace", "cli-ws"])
    assert key.key_id in listed.output and secret not in listed.output
    revoked = runner.invoke(app, ["keys", "revoke", key.key_id, "--local", "--data-dir", str(data_dir),
                                  "--workspace", "cli-ws"])
    assert revoked.exit_code == 0 and KeyStore().lookup(secret) is None
    bad = runner.invoke(app, ["keys", "create", "--local", "--data-dir", str(data_dir), "--name", "x",
                              "--scope", "root"])
    assert bad.exit_code != 0 and "unknown scopes" in bad.output


def test_webhooks_verify(tmp_path):
    secret = new_secret()
    body = json.dumps({"_id": "abc", "status": "success"})
    signature = Webhook(secret).sign("evt_1", datetime.now(UTC), body)
    (tmp_path / "body.json").write_text(body)
    args = ["webhooks", "verify", "--secret", secret, "--body", str(tmp_path / "body.json"),
            "-H", "webhook-id: evt_1", "-H", f"webhook-timestamp: {int(datetime.now(UTC).timestamp())}",
            "-H", f"webhook-signature: {signature}"]
    assert runner.invoke(app, args).exit_code == 0
    (tmp_path / "body.json").write_text(body.replace("success", "error"))
    tampered = runner.invoke(app, args)
    assert tampered.exit_code == 1 and "not verified" in tampered.output


def test_replay_dlq_requeues_dead_letters_with_the_same_id(world, data_dir):
    send(world.queue_url("WebhooksDeadLetterQueue"),
         WebhookMessage(event_id="evt_x_failed", job_id="x", event="generation.failed", attempt=9))
    result = runner.invoke(app, ["webhooks", "replay-dlq", "--local", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "1 event(s) replayed" in result.output
    requeued = world.messages("WebhooksQueue")
    assert requeued == [{"event_id": "evt_x_failed", "job_id": "x", "event": "generation.failed", "attempt": 0,
                         "not_before": 0.0, "forced": True}]
    assert world.messages("WebhooksDeadLetterQueue") == []
