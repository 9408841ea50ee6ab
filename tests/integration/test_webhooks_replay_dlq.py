"""`darkroom webhooks replay-dlq` against the moto server: one replay per dead-lettered event."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from functions.core.messages import WebhookMessage, send
from infra.cli import app

runner = CliRunner()


@pytest.fixture
def data_dir(world, tmp_path):
    (tmp_path / "dev.env").write_text(f"DARKROOM_LOCAL_AWS_ENDPOINT={world.endpoint}\n")
    return tmp_path


def dead_letter(world, event_id: str, attempt: int) -> None:
    send(world.queue_url("WebhooksDeadLetterQueue"),
         WebhookMessage(event_id=event_id, job_id=event_id.split("_")[1], event="generation.failed", attempt=attempt),
         MessageAttributes={"reason": {"DataType": "String", "StringValue": f"after {attempt} attempts: HTTP 500"}})


def test_replay_dlq_sends_each_event_once_and_removes_its_copies(world, data_dir):
    """A batch redelivered after its dead letter was sent leaves two copies of one event: each used to be
    replayed (forced), and the receiver got the event twice."""
    for attempt in (3, 9, 3):
        dead_letter(world, "evt_x_failed", attempt)
    dead_letter(world, "evt_y_failed", 2)
    result = runner.invoke(app, ["webhooks", "replay-dlq", "--local", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "2 event(s) replayed" in result.output
    assert "after 9 attempts" in result.output and "2 duplicate(s) removed" in result.output  # the furthest copy
    requeued = sorted(world.messages("WebhooksQueue"), key=lambda m: m["event_id"])
    assert [(m["event_id"], m["attempt"], m["forced"]) for m in requeued] == [("evt_x_failed", 0, True),
                                                                               ("evt_y_failed", 0, True)]
    assert world.messages("WebhooksDeadLetterQueue") == []


def test_replay_dlq_limit_leaves_the_other_events_whole(world, data_dir):
    for event_id in ("evt_x_failed", "evt_x_failed", "evt_y_failed", "evt_y_failed"):
        dead_letter(world, event_id, 3)
    result = runner.invoke(app, ["webhooks", "replay-dlq", "--local", "--data-dir", str(data_dir), "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert "1 event(s) replayed" in result.output
    (replayed,) = world.messages("WebhooksQueue")
    left = world.messages("WebhooksDeadLetterQueue")  # visible again at once, for the next run
    assert len(left) == 2 and {m["event_id"] for m in left} == {"evt_x_failed", "evt_y_failed"} - {replayed["event_id"]}
