"""Finishing a job: the terminal transition and what must follow it, in one place.

Every path that ends a job (the worker's result, a cancel, the sweeper, a failed enqueue) goes through
`finish`, so each terminal state produces exactly one webhook event id, however often it is retried.
"""

from __future__ import annotations

from typing import Any

from . import clock, credits, messages
from .errors import ServiceUnavailable, TransitionRejected
from .jobs import Job, JobKey, JobStatus, JobStore, StaleJob
from .moderation import BLOCKED
from .observability import logger
from .settings import get_settings

# A worker records a step at most every few tens of milliseconds; a read and a write take a few. A cancel that
# finds the job moved this many times in a row answers 503 (nothing written) rather than loop.
CANCEL_TRIES = 8

EVENT_NAMES = {
    JobStatus.RUNNING: "generation.started",
    JobStatus.SUCCEEDED: "generation.succeeded",
    JobStatus.FAILED: "generation.failed",
    JobStatus.CANCELED: "generation.canceled",
}


def event_id(job: Job, status: JobStatus) -> str:
    # Stable across retries and replays, so receivers can dedupe on webhook-id.
    return f"evt_{job.id}_{status.value}"


def emit(job: Job, status: JobStatus) -> None:
    """Queue the webhook event for `status` if the job asked for it."""
    if not job.webhook:
        return
    wanted = "start" if status == JobStatus.RUNNING else "completed"
    if wanted not in job.webhook_events:
        return
    messages.send(get_settings().webhooks_queue_url,
                  messages.WebhookMessage(event_id=event_id(job, status), job_id=job.id,
                                          workspace_id=job.workspace_id, event=EVENT_NAMES[status]))


def finish(job: Job | JobKey, target: JobStatus, *, fields: dict[str, Any] | None = None,
           store: JobStore | None = None) -> tuple[Job, bool]:
    """Apply a terminal transition and emit its event. Returns (job as stored, whether this call applied it).

    Run twice, the second call changes nothing but re-emits the event with the same id: a crash between
    the write and the send would otherwise lose the webhook. A JobKey (a job not read first) is enough for
    a success; a failure or cancel refunds the job's cost, so it needs the job as read.
    """
    store = store or JobStore()
    if target in (JobStatus.FAILED, JobStatus.CANCELED) and not isinstance(job, Job):
        raise TypeError(f"{target.value}: a refunding transition needs the job as read, not only its key")
    # A cancel's refund depends on the progress as read, which a running worker keeps moving: the transition
    # holds only while the job is as read, and a job that moved is read again and its refund recomputed.
    unchanged = target == JobStatus.CANCELED
    for _ in range(CANCEL_TRIES):
        set_fields, refund = _refunding(job, target, dict(fields or {}))
        try:
            job, applied = store.transition(job, target, set_fields=set_fields, together_with=refund,
                                            unchanged=unchanged)
            break
        except StaleJob as stale:
            job = stale.current
        except TransitionRejected as exc:
            logger.info("job already finished", extra={"job_id": job.id, "target": target, "current": exc.current})
            raise
    else:
        raise ServiceUnavailable("The job is changing too fast to cancel; please retry")
    try:
        emit(job, target)
    except Exception:
        # The state is written and its event is not queued. A caller that retries (an SQS redelivery) re-emits
        # it, but not every path retries (the sweeper, a deadline, a cancel answered with an error): marked, the
        # job is back in the sweeper's index, and the next sweep queues the event (the same id).
        try:
            store.mark_event_unsent(job, clock.now())
        except Exception:  # noqa: BLE001 - the send's error is the one to raise
            logger.exception("webhook event neither queued nor marked for the sweeper", extra={"job_id": job.id})
        raise
    return job, applied


def _refunding(job: Job | JobKey, target: JobStatus, fields: dict[str, Any]) -> tuple[dict[str, Any], list[dict]]:
    """The transition's fields and the credit refund that rides with it, computed from the job as read."""
    if target not in (JobStatus.FAILED, JobStatus.CANCELED):
        return fields, []
    assert isinstance(job, Job)
    # A failure gives back what it reserved; a cancel, what the steps not run were to cost. In the
    # transition's own transaction, so it happens exactly once.
    amount = credits.cancel_refund(job) if target == JobStatus.CANCELED else job.cost
    if target == JobStatus.FAILED and (fields.get("error") or {}).get("code") == BLOCKED:
        amount = 0  # a blocked output spent its GPU time: charged, not refunded (README: Guarantees)
    if target == JobStatus.CANCELED and job.status == JobStatus.RUNNING:
        fields["billed_progress"] = job.progress  # what the charge was computed from, for the record
    if not amount:
        return fields, []
    fields["refunded"] = amount
    return fields, [credits.refund_update(job.workspace_id, amount)]


def resend_unsent_event(job: Job, store: JobStore) -> None:
    """Queue the event of a terminal job marked unsent (the sweeper), then clear the mark."""
    emit(job, job.status)
    store.sent_event(job.id)


def cancel(job: Job, *, store: JobStore | None = None, fields: dict[str, Any] | None = None) -> Job:
    """Cancel a job that has not finished, and stop the GPU call working on it: the worker stops at its next
    step anyway (it sees its progress write refused); the dispatch function, which alone holds the Modal token,
    cancels the call, so a queued input never starts and a running one is interrupted. TransitionRejected
    when the job had finished. `fields` are recorded with the transition (why it was canceled)."""
    job, applied = finish(job, JobStatus.CANCELED, store=store, fields=fields)
    call = (job.dispatch or {}).get("call_id")
    if applied and call:
        messages.send(get_settings().jobs_queue_url, messages.JobMessage(job_id=job.id, recheck_call=call))
    return job
