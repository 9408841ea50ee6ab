"""Artificial Studio: statuses, the generation object, the webhook payload and the error body."""

from __future__ import annotations

from typing import Any

from functions.core import clock, links
from functions.core.errors import DarkroomError
from functions.core.jobs import Job, JobStatus

STATUS = {
    JobStatus.QUEUED: "pending",
    JobStatus.RUNNING: "processing",
    JobStatus.SUCCEEDED: "success",
    JobStatus.FAILED: "error",
    JobStatus.CANCELED: "error",
}
STATUS_FILTER = {
    "pending": JobStatus.QUEUED, "processing": JobStatus.RUNNING, "success": JobStatus.SUCCEEDED,
    "error": JobStatus.FAILED, "canceled": JobStatus.CANCELED,
    # Internal names are accepted too.
    **{s.value: s for s in JobStatus},
}


def _urls(job: Job) -> tuple[list[str], list[str | None]]:
    outputs = [links.media_url(o.key) for o in job.outputs]
    thumbnails = [links.media_url(o.thumbnail_key) if o.thumbnail_key else None for o in job.outputs]
    return outputs, thumbnails


def _error(job: Job) -> str | None:
    if job.status == JobStatus.CANCELED:
        return "Generation was canceled"
    return job.error.message if job.error else None


def generation(job: Job) -> dict[str, Any]:
    """GET /api/generations/{id}."""
    outputs, thumbnails = _urls(job)
    body: dict[str, Any] = {
        "id": job.id,
        "status": STATUS[job.status],
        "output": outputs[0] if outputs else None,
        "thumbnail": thumbnails[0] if thumbnails else None,
        "tool": job.tool,
        "model": job.model,
        "type": job.type,
        "payload": job.input,
        "error": _error(job),
        "createdAt": clock.iso(job.created_at),
        "outputs": outputs,
    }
    if job.error is not None and job.status == JobStatus.FAILED:
        # Why, as a code: moderation_blocked for an output the safety checker blocked (nothing was stored).
        body["errorCode"] = job.error.code
    if job.share_url:
        body["shareUrl"] = job.share_url
    if job.loras:
        body["loras"] = job.loras
    body.update(enhancement(job))
    if job.progress and job.status == JobStatus.RUNNING:
        body["progress"] = job.progress
    if job.outputs:
        first = job.outputs[0]
        body["metadata"] = {k: v for k, v in first.model_dump(exclude={"key", "thumbnail_key", "bytes"}).items()
                            if v is not None}
    return body


def webhook_payload(job: Job) -> dict[str, Any]:
    """The seeds' webhook payload {_id, status, output, model, type, payload, error} plus id, tool, thumbnail, createdAt."""
    body = generation(job)
    return {"_id": job.id, **{k: body[k] for k in (
        "id", "status", "output", "thumbnail", "model", "tool", "type", "payload", "error", "createdAt")},
        **({"loras": job.loras} if job.loras else {}),
        **({"errorCode": body["errorCode"]} if "errorCode" in body else {}), **enhancement(job)}


def enhancement(job: Job) -> dict[str, Any]:
    """A job that asked for prompt enhancement: `revisedPrompt` (the prompt the model ran) and `promptEnhancement`
    ({model, enhanced, tokens, note}), in this dialect's camelCase; nothing for one that did not (or has not run)."""
    if job.revised_prompt is None:
        return {}
    return {"revisedPrompt": job.revised_prompt, "promptEnhancement": job.prompt_enhancement}


def error_body(exc: DarkroomError) -> dict[str, Any]:
    return {
        "message": exc.message,
        "errors": [{"field": e.field, "message": e.message, "code": e.code} for e in exc.errors],
    }
