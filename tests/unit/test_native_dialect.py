"""The Artificial Studio dialect: statuses, the generation object, the webhook payload, the error body."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from functions.core import links
from functions.core.errors import FieldError, NotFound, ValidationFailed
from functions.core.jobs import Job, JobError, JobStatus, Output
from functions.dialects import native

WEBHOOK_KEYS = {"_id", "id", "status", "output", "thumbnail", "model", "tool", "type", "payload", "error",
                "createdAt"}
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(autouse=True)
def fake_presign(monkeypatch):
    signed: list[str] = []

    def media_url(key, *, ttl=None):
        signed.append(key)
        return f"https://signed.example/{key}?sig=1"

    monkeypatch.setattr(links, "media_url", media_url)
    return signed


def make_job(status: JobStatus = JobStatus.QUEUED, **overrides) -> Job:
    fields = {"id": "65a1b2c3d4e5f60718293a4b", "workspace_id": "ws_1", "status": status, "tool": "create-image",
              "model": "sdxl-turbo", "task": "text-to-image", "type": "image",
              "input": {"prompt": "a red fox", "size": "768x512"}, "params": {"prompt": "a red fox", "width": 768},
              "created_at": 1_700_000_000.123}
    return Job(**(fields | overrides))


def finished(**overrides) -> Job:
    outputs = [
        Output(key="ws_1/generations/j/0.png", content_type="image/png", width=768, height=512,
               thumbnail_key="ws_1/generations/j/0.thumb.jpg"),
        Output(key="ws_1/generations/j/1.png", content_type="image/png", width=768, height=512),
    ]
    return make_job(JobStatus.SUCCEEDED, outputs=outputs, **overrides)


@pytest.mark.parametrize("status,shown", [
    (JobStatus.QUEUED, "pending"),
    (JobStatus.RUNNING, "processing"),
    (JobStatus.SUCCEEDED, "success"),
    (JobStatus.FAILED, "error"),
    (JobStatus.CANCELED, "error"),
])
def test_status_mapping(status, shown):
    assert native.generation(make_job(status))["status"] == shown
    assert native.webhook_payload(make_job(status))["status"] == shown


def test_every_status_is_mapped_and_filters_round_trip():
    assert set(native.STATUS) == set(JobStatus)
    for shown in set(native.STATUS.values()):
        assert native.STATUS[native.STATUS_FILTER[shown]] == shown


def test_created_at_is_iso_with_milliseconds_and_z():
    created = native.generation(make_job())["createdAt"]
    assert ISO_MS.match(created)
    assert created == "2023-11-14T22:13:20.123Z"


@pytest.mark.parametrize("ts", [0.0, 0.5, 1_700_000_000.0, 1_700_000_000.999, 1_700_000_000.9999996,
                                86_399.9999996, 1_718_236_800.0004])
def test_created_at_is_within_a_millisecond_of_the_truth(ts):
    created = native.generation(make_job(created_at=ts))["createdAt"]
    assert ISO_MS.match(created), created
    parsed = datetime.fromisoformat(created).timestamp()
    assert abs(parsed - ts) < 0.001, (created, ts)


def test_unfinished_generation_has_no_output():
    body = native.generation(make_job(JobStatus.RUNNING))
    assert body["output"] is None and body["thumbnail"] is None and body["outputs"] == []
    assert body["error"] is None
    assert "metadata" not in body


def test_finished_generation_shows_signed_urls(fake_presign):
    body = native.generation(finished())
    assert body["output"] == "https://signed.example/ws_1/generations/j/0.png?sig=1"
    assert body["thumbnail"] == "https://signed.example/ws_1/generations/j/0.thumb.jpg?sig=1"
    assert body["outputs"] == ["https://signed.example/ws_1/generations/j/0.png?sig=1",
                               "https://signed.example/ws_1/generations/j/1.png?sig=1"]
    assert body["metadata"] == {"content_type": "image/png", "width": 768, "height": 512}
    assert set(fake_presign) == {"ws_1/generations/j/0.png", "ws_1/generations/j/0.thumb.jpg",
                                 "ws_1/generations/j/1.png"}


def test_generation_fields():
    job = make_job()
    body = native.generation(job)
    assert body["id"] == job.id
    assert (body["tool"], body["model"], body["type"]) == ("create-image", "sdxl-turbo", "image")
    assert body["payload"] == {"prompt": "a red fox", "size": "768x512"}


def test_failed_generation_shows_its_error():
    job = make_job(JobStatus.FAILED, error=JobError(code="timeout", message="Generation did not finish"))
    assert native.generation(job)["error"] == "Generation did not finish"


def test_canceled_generation_says_so():
    assert native.generation(make_job(JobStatus.CANCELED))["error"] == "Generation was canceled"


def test_progress_only_while_running():
    progress = {"step": 2, "total": 4}
    assert native.generation(make_job(JobStatus.RUNNING, progress=progress))["progress"] == progress
    assert "progress" not in native.generation(make_job(JobStatus.SUCCEEDED, progress=progress))
    assert "progress" not in native.generation(make_job(JobStatus.QUEUED))


@pytest.mark.parametrize("job", [make_job(), make_job(JobStatus.RUNNING, progress={"step": 1, "total": 2})],
                         ids=["queued", "running"])
def test_webhook_payload_keys_unfinished(job):
    assert set(native.webhook_payload(job)) == WEBHOOK_KEYS


def test_webhook_payload_has_exactly_the_documented_keys():
    job = finished()
    payload = native.webhook_payload(job)
    assert set(payload) == WEBHOOK_KEYS
    assert payload["_id"] == payload["id"] == job.id
    assert payload["status"] == "success"
    assert payload["output"] == "https://signed.example/ws_1/generations/j/0.png?sig=1"
    body = native.generation(job)
    assert all(payload[k] == body[k] for k in WEBHOOK_KEYS - {"_id"})


def test_error_body_shape():
    exc = ValidationFailed("Invalid request: input.prompt: Field required; input.foo: is not a recognised field",
                           errors=[FieldError("input.prompt", "Field required", "required"),
                                   FieldError("input.foo", "is not a recognised field", "unknown_field")])
    assert native.error_body(exc) == {
        "message": "Invalid request: input.prompt: Field required; input.foo: is not a recognised field",
        "errors": [
            {"field": "input.prompt", "message": "Field required", "code": "required"},
            {"field": "input.foo", "message": "is not a recognised field", "code": "unknown_field"},
        ],
    }


def test_error_body_without_field_errors():
    assert native.error_body(NotFound("Generation x not found")) == {"message": "Generation x not found",
                                                                      "errors": []}
