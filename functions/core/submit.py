"""Accepting a job: one logic function that every dialect calls.

The job record is written first (a conditional put), then a message goes onto the jobs queue. If the
queue cannot be reached the job is failed at once and the caller gets 503: nothing is left half-accepted.
If the process dies between the two writes, the sweeper finds the queued job past its dispatch deadline
and enqueues it, so an accepted job is never lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.core.catalog import ModelSpec

from . import clock, credits, dynamo, messages, sharing
from .errors import FieldError, ServiceUnavailable, ValidationFailed
from .jobs import Job, JobError, JobStatus, JobStore
from .lifecycle import finish
from .settings import get_settings
from .urls import UnsafeUrl, check_url

WEBHOOK_EVENTS = ("start", "completed")


@dataclass
class SubmitRequest:
    workspace_id: str
    model: ModelSpec
    params: dict[str, Any]
    input: dict[str, Any]
    dialect: str = "native"
    tool: str | None = None
    webhook: str | None = None
    webhook_events: list[str] = field(default_factory=lambda: ["completed"])
    # make_public: the outputs get a share page at `<public base>/shared/media/<share id>`, served without a key.
    make_public: bool = False
    # The job's task and type when they are not the model's: a prompt rewrite alone (POST /api/prompts/enhance) is
    # task "prompt-enhance", type "prompt", on the GPU pool of the model named.
    task: str | None = None
    type: str | None = None
    # A deadline in seconds from now (Replicate's Cancel-After): a delayed message has the dispatch function
    # cancel the job then if it has not finished (functions/dispatch/logic.py).
    cancel_after: float | None = None


def check_webhook(url: str | None, *, field_name: str = "webhook") -> None:
    if url is None:
        return
    try:
        check_url(url, allow_loopback=get_settings().local, must_resolve=False)
    except UnsafeUrl as exc:
        raise ValidationFailed(f"Invalid webhook URL: {exc}",
                               errors=[FieldError(field_name, f"webhook URL {exc}", "invalid_webhook")]) from None


def submit(request: SubmitRequest, *, store: JobStore | None = None) -> Job:
    store = store or JobStore()
    check_webhook(request.webhook)
    settings = get_settings()
    now = clock.now()
    job = Job(
        id=clock.new_object_id(now),
        workspace_id=request.workspace_id,
        dialect=request.dialect,
        tool=request.tool,
        model=request.model.id,
        task=request.task or request.model.task,
        type=request.type or request.model.type,
        input=request.input,
        params=request.params,
        webhook=request.webhook,
        webhook_events=request.webhook_events,
        created_at=now,
        updated_at=now,
        deadline=now + settings.dispatch_deadline_seconds,
        cost=credits.cost_of(request.model, request.params),
    )
    if request.make_public:
        job.share_url = sharing.share_url(job.id)
    reserve(job, store)
    try:
        # The deadline first: a job dispatched without it could run past it, uncanceled.
        if request.cancel_after is not None:
            messages.send_later(settings.jobs_queue_url,
                                messages.JobMessage(job_id=job.id, cancel_at=now + request.cancel_after),
                                request.cancel_after)
        messages.send(settings.jobs_queue_url, messages.JobMessage(job_id=job.id))
    except (BotoCoreError, ClientError) as exc:
        finish(job, JobStatus.FAILED, store=store, fields={
            "error": JobError(code="enqueue_failed", message="The job queue was unavailable").model_dump()})
        raise ServiceUnavailable("The job queue is unavailable; nothing was charged, please retry") from exc
    return job


def reserve(job: Job, store: JobStore) -> None:
    """Write the job and take its credits in one transaction: both happen, or neither (402)."""
    items = [{"Put": store.put_new_item(job)}]
    if job.cost:
        items.append({"Update": credits.reserve_update(job.workspace_id, job.cost)})
    try:
        dynamo.transact_write(store.ddb, items)
    except store.ddb.exceptions.TransactionCanceledException as exc:
        reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
        if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
            raise credits.insufficient(job.workspace_id, job.cost) from None
        if dynamo.conflicted(exc):
            raise ServiceUnavailable("The workspace's credits are being updated by other requests; nothing was "
                                     "charged, please retry") from exc
        raise
