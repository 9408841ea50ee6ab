"""The backstop that keeps every accepted job moving to a terminal state.

- queued, never dispatched or its dispatch lost: enqueued again (up to MAX_DISPATCH_ATTEMPTS), then failed;
- running past its deadline (the GPU call died without reporting): failed.
Failing goes through lifecycle.finish, so the job is refunded and its webhook is sent like any other.
"""

from __future__ import annotations

from collections import Counter

from functions.core import clock, messages
from functions.core.errors import TransitionRejected
from functions.core.jobs import JobError, JobStatus, JobStore
from functions.core.lifecycle import finish
from functions.core.observability import logger
from functions.core.settings import get_settings

MAX_DISPATCH_ATTEMPTS = 3


def sweep(*, now: float | None = None, store: JobStore | None = None) -> Counter:
    store = store or JobStore()
    now = now if now is not None else clock.now()
    counts: Counter = Counter()
    for job_id in store.overdue(now):
        job = store.get(job_id)
        if job is None or job.terminal or (job.deadline or 0) >= now:
            continue
        try:
            if job.status == JobStatus.QUEUED and job.attempts < MAX_DISPATCH_ATTEMPTS:
                claim = (job.dispatch or {}).get("claim")
                if store.release_dispatch(job.id, claim, now):
                    messages.send(get_settings().jobs_queue_url, messages.JobMessage(job_id=job.id))
                    counts["requeued"] += 1
                continue
            reason = ("could not be dispatched to a GPU worker" if job.status == JobStatus.QUEUED
                      else "did not finish before its deadline")
            finish(job, JobStatus.FAILED, store=store,
                   fields={"error": JobError(code="timeout", message=f"Generation {reason}").model_dump()})
            counts["failed"] += 1
        except TransitionRejected:
            counts["raced"] += 1
    if counts:
        logger.info("sweep", extra=dict(counts))
    return counts
