"""The Replicate dialect's pure pieces: its headers, which /v1/ paths are its, its statuses, its logs (parsed by
replicate-python's own progress pattern) and its stream's events."""

from __future__ import annotations

import re

import pytest

from functions.api.replicate import cancel_after, prefer_wait
from functions.core.errors import ValidationFailed
from functions.core.jobs import Job, JobError, JobStatus, Output
from functions.dialects import OPENAI, REPLICATE, dialect_for_path
from functions.dialects import replicate as dialect

PROGRESS = re.compile(r"^\s*(?P<percentage>\d+)%\s*\|.+?\|\s*(?P<current>\d+)\/(?P<total>\d+)")


@pytest.mark.parametrize("value, seconds", [(None, None), ("", None), ("wait", 60), ("wait=5", 5),
                                            ("respond-async, wait=12", 12), ("handling=lenient", None)])
def test_prefer_wait(value, seconds):
    assert prefer_wait(value) == seconds


@pytest.mark.parametrize("value", ["wait=0", "wait=61", "wait=soon", "wait=1.5"])
def test_prefer_wait_out_of_range_names_the_header(value):
    with pytest.raises(ValidationFailed) as info:
        prefer_wait(value)
    assert info.value.errors[0].field == "Prefer"


@pytest.mark.parametrize("value, seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), ("90", 90), ("1m30s", 90),
                                            ("1500ms", 1.5), (None, None)])
def test_cancel_after(value, seconds):
    assert cancel_after(value) == seconds


@pytest.mark.parametrize("value", ["soon", "0s", "25h", "5 minutes", "-5s", "100ms"])
def test_cancel_after_refused_names_the_header(value):
    with pytest.raises(ValidationFailed) as info:
        cancel_after(value)
    assert info.value.errors[0].field == "Cancel-After"


@pytest.mark.parametrize("path, dialect_name", [
    ("/v1/predictions", REPLICATE), ("/v1/predictions/abc/cancel", REPLICATE), ("/v1/files/up_1", REPLICATE),
    ("/v1/models/black-forest-labs/flux-schnell", REPLICATE), ("/v1/models/a/b/versions/c", REPLICATE),
    ("/v1/deployments/a/b/predictions", REPLICATE), ("/v1/webhooks/default/secret", REPLICATE),
    ("/v1/models", OPENAI), ("/v1/models/flux-schnell", OPENAI), ("/v1/images/generations", OPENAI),
    ("/v1/unknown", OPENAI)])
def test_the_v1_paths_are_shared_by_shape(path, dialect_name):
    assert dialect_for_path(path) == dialect_name


def _job(**fields) -> Job:
    base = {"id": "0123456789abcdef01234567", "workspace_id": "ws", "model": "flux-schnell", "task": "text-to-image",
            "created_at": 1000.0, "params": {"n": 1, "width": 256, "height": 256, "steps": 4, "seed": 3}}
    return Job.model_validate({**base, **fields})


def test_statuses():
    assert dialect.status(_job()) == "starting"
    assert dialect.status(_job(status=JobStatus.RUNNING, started_at=1001.0)) == "processing"
    deadline = JobError(code=dialect.CANCEL_AFTER_CODE, message="deadline").model_dump()
    assert dialect.status(_job(status=JobStatus.CANCELED, error=deadline)) == "aborted"
    assert dialect.status(_job(status=JobStatus.CANCELED, error=deadline, started_at=1001.0)) == "canceled"
    assert dialect.status(_job(status=JobStatus.CANCELED)) == "canceled"


def test_logs_carry_progress_the_client_parses():
    running = _job(status=JobStatus.RUNNING, started_at=1001.0, progress={"step": 2, "total": 4})
    matches = [PROGRESS.match(line) for line in dialect.logs(running).splitlines()]
    last = [m for m in matches if m][-1]
    assert (last["percentage"], last["current"], last["total"]) == ("50", "2", "4")
    done = _job(status=JobStatus.SUCCEEDED, started_at=1001.0, finished_at=1003.5,
                outputs=[Output(key="ws/generations/x/0.png", content_type="image/png")])
    assert dialect.logs(done).rstrip().endswith("Generated 1 output in 2.50s")
    assert "Using seed: 3" in dialect.logs(_job())


def test_stream_events_each_have_an_id_and_end_with_done(monkeypatch):
    from functions.core import links

    monkeypatch.setattr(links, "media_url", lambda key, **_: f"https://h/media/{key}")
    failed = _job(status=JobStatus.FAILED, started_at=1001.0, finished_at=1002.0,
                  error=JobError(code="oom", message="out of memory").model_dump())
    blocks = [b for b in dialect.sse_events(failed).split("\n\n") if b]
    events = [dict(line.split(": ", 1) for line in block.splitlines()) for block in blocks]
    assert all(e["id"] for e in events) and len({e["id"] for e in events}) == len(events)
    assert [e["event"] for e in events][-2:] == ["error", "done"] and events[-2]["data"] == "out of memory"
    assert {e["event"] for e in events} <= {"output", "logs", "error", "done"}
    unfinished = dialect.sse_events(_job(status=JobStatus.RUNNING, started_at=1001.0))
    assert "event: done" not in unfinished


def test_events_filter_maps_onto_the_jobs_events():
    def events(filter_):
        return dialect.webhook_events(dialect.PredictionRequest(input={}, webhook_events_filter=filter_))

    assert events(None) == ["completed"]
    assert events(["logs"]) == ["start", "completed"]
    assert events(["output"]) == ["completed"]
    assert events(["start"]) == ["start"]
