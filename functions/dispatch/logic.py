"""Dispatching one job: claim it (skipping what is not queued or is dispatched already), spawn, record the call id."""

from __future__ import annotations

import os

from functions.core import clock
from functions.core.jobs import JobStore
from functions.core.messages import JobMessage, WorkRequest
from functions.core.observability import logger
from functions.core.settings import get_settings
from functions.dispatch.dispatchers import Dispatcher


def dispatch(message: JobMessage, dispatcher: Dispatcher, *, claim: str, store: JobStore | None = None) -> str | None:
    """Returns the call id, or None when there was nothing to do. Raises to have the message retried."""
    store = store or JobStore()
    now = clock.now()
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
                          aws_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    try:
        call_id = dispatcher.spawn(request)
    except Exception:
        # Let the message come back after its visibility timeout; after maxReceiveCount it dead-letters
        # and the sweeper fails (and refunds) the job, so nothing is silently lost.
        store.release_dispatch(job.id, claim, now)
        raise
    store.record_dispatch(job.id, claim, dispatcher.name, call_id, now)
    logger.info("dispatched", extra={"job_id": job.id, "call_id": call_id, "dispatcher": dispatcher.name})
    return call_id
