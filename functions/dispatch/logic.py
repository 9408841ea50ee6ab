"""Dispatching one job: claim it (skipping what is not queued or is dispatched already), spawn, record the call id.

A job message with `recheck_call` is the sweeper's: the call recorded for a still-queued job is past its
start deadline. A GPU cold start that loads and snapshots a large model, or a pool whose every container is
busy, can take that long, so Modal is asked about the call before anything else is spawned:
- still pending: it is kept, with a new deadline (until the job has waited queue_deadline_seconds);
- finished without taking the job, unknown to Modal, or waiting too long: it is canceled (so no GPU
  container starts for it later), and the job is dispatched afresh (or given up, and the sweeper fails it).
A call for a job that no longer needs it (finished, canceled, replaced by another call) is canceled too; the call
that took its job meanwhile is running it, and is left alone.
"""

from __future__ import annotations

import os

from functions.core import clock, messages
from functions.core.catalog import get_catalog
from functions.core.errors import TransitionRejected
from functions.core.jobs import MAX_DISPATCH_ATTEMPTS, Job, JobError, JobStatus, JobStore
from functions.core.lifecycle import cancel
from functions.core.messages import JobMessage, WorkRequest
from functions.core.observability import logger
from functions.core.settings import get_settings
from functions.dispatch.dispatchers import Dispatcher


def dispatch(message: JobMessage, dispatcher: Dispatcher, *, claim: str, store: JobStore | None = None) -> str | None:
    """Returns the call id, or None when there was nothing to do. Raises to have the message retried."""
    store = store or JobStore()
    now = clock.now()
    if message.cancel_at is not None:
        _deadline(message, store, now)
        return None
    if message.recheck_call and not _recheck(message.job_id, message.recheck_call, dispatcher, store, now):
        return None
    # The claim is the read: one conditional write returns the job if it is queued and not yet dispatched,
    # so a redelivered message (or a second poller) is a no-op: one spawn per dispatch attempt.
    job = store.claim_dispatch(message.job_id, claim, now)
    if job is None:
        logger.info("skip dispatch: not queued, or dispatched already", extra={"job_id": message.job_id})
        return None
    settings = get_settings()
    request = WorkRequest(job_id=job.id, workspace_id=job.workspace_id, model=job.model, params=job.params,
                          jobs_table=store.table, results_queue_url=settings.results_queue_url,
                          bucket=settings.outputs_bucket, allow_loopback_urls=settings.local,
                          aws_role_arn=settings.worker_role_arn or None,
                          aws_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
                          provenance_secret_arn=settings.provenance_secret_arn or None,
                          provenance_cert_file=settings.provenance_cert_file or None,
                          provenance_key_file=settings.provenance_key_file or None,
                          provenance_watermark=settings.provenance_watermark,
                          run_deadline_seconds=settings.run_deadline_seconds)
    try:
        call_id = dispatcher.spawn(request)
    except Exception:
        # Let the message come back after its visibility timeout; after maxReceiveCount it dead-letters
        # and the sweeper fails (and refunds) the job, so nothing is silently lost.
        store.release_dispatch(job.id, claim, now)
        raise
    if not store.record_dispatch(job.id, claim, dispatcher.name, call_id, now,
                                 deadline=start_deadline(job, dispatcher, now)):
        # The job ended (a cancel) before the call was recorded: nothing will stop the call but this, and a
        # container would otherwise start (a cold start, paid for) only to find its job gone.
        dispatcher.cancel(call_id)
        logger.info("canceled a GPU call whose job ended as it was spawned", extra={"job_id": job.id, "call_id": call_id})
        return None
    logger.info("dispatched", extra={"job_id": job.id, "call_id": call_id, "dispatcher": dispatcher.name})
    return call_id


def _deadline(message: JobMessage, store: JobStore, now: float) -> None:
    """A caller's deadline (Cancel-After) has come: cancel the job unless it has finished, recording why (the
    Replicate dialect shows a job canceled before it started as `aborted`). The cancel stops its GPU call as any
    cancel does (functions/core/lifecycle.py). Early (a long deadline's step), the message is sent on again."""
    job = store.get(message.job_id)
    if job is None or job.terminal:
        return
    left = (message.cancel_at or 0) - now
    if left > 0:
        messages.send_later(get_settings().jobs_queue_url, message, left)
        return
    error = JobError(code="cancel_after", message="Canceled: the deadline set with Cancel-After passed")
    try:
        cancel(job, store=store, fields={"error": error.model_dump()})
    except TransitionRejected:
        return  # it finished meanwhile: the first terminal state stands
    logger.info("canceled at its deadline", extra={"job_id": job.id, "started": job.started_at is not None})


def start_deadline(job: Job, dispatcher: Dispatcher, now: float) -> float:
    """When a call spawned now must have taken the job: its container's startup (on Modal, the class's
    startup_timeout for a load and snapshot), plus scheduling."""
    model = get_catalog().model(job.model)
    startup = dispatcher.startup_seconds(model) if model else 0
    return now + startup + get_settings().start_margin_seconds


def _recheck(job_id: str, call_id: str, dispatcher: Dispatcher, store: JobStore, now: float) -> bool:
    """Ask about an overdue call. True when the job is to be dispatched afresh now."""
    job = store.get(job_id)
    recorded = (job.dispatch or {}).get("call_id") if job else None
    if job is not None and job.status == JobStatus.RUNNING and recorded == call_id:
        # The call took its job after the sweeper asked: it is running it (Modal's "pending" is any call without
        # an output yet, a running one too), so it is left alone.
        return False
    if job is None or job.status != JobStatus.QUEUED or recorded != call_id:
        # Nothing waits on this call any more (the job ended, or another call replaced it).
        if dispatcher.call_state(call_id) == "pending":
            dispatcher.cancel(call_id)
            logger.info("canceled a superseded GPU call", extra={"job_id": job_id, "call_id": call_id})
        return False
    state = dispatcher.call_state(call_id)
    waited = now - job.created_at
    if state == "pending" and waited < get_settings().queue_deadline_seconds:
        store.keep_dispatch(job.id, call_id, now, deadline=start_deadline(job, dispatcher, now))
        logger.info("GPU call still starting or queued; kept", extra={"job_id": job.id, "call_id": call_id})
        return False
    if state == "pending":
        dispatcher.cancel(call_id)
        store.release_dispatch(job.id, job.dispatch["claim"], now,
                               give_up=f"waited {round(waited)} s for a GPU container (queue_deadline_seconds)")
        logger.warning("GPU call waited too long; given up", extra={"job_id": job.id, "call_id": call_id})
        return False
    # Finished without taking the job (a container that died, a refused identity token) or unknown: cancel it
    # anyway, so a retried input cannot start a container for it, and dispatch anew while attempts are left.
    dispatcher.cancel(call_id)
    if job.attempts >= MAX_DISPATCH_ATTEMPTS:
        store.release_dispatch(job.id, job.dispatch["claim"], now,
                               give_up=f"{job.attempts} GPU calls ended without running it")
        return False
    released = store.release_dispatch(job.id, job.dispatch["claim"], now)
    logger.warning("GPU call ended without taking its job; dispatching again",
                   extra={"job_id": job.id, "call_id": call_id, "call_state": state, "released": released})
    return released
