"""The backstop that keeps every accepted job moving to a terminal state.

- queued, never dispatched or its dispatch lost: enqueued again (up to MAX_DISPATCH_ATTEMPTS), then failed;
- queued with a GPU call recorded, past its start deadline: the dispatch function is asked to check the call
  with Modal (a cold start or a busy pool may still be on it) before anything is spawned again; a call given
  up there (it waited too long, or too many ended without running the job) comes back here to be failed;
- running past its deadline (the GPU call died without reporting): failed, and its call canceled.
Failing goes through lifecycle.finish, so the job is refunded and its webhook is sent like any other.
- finished, but its webhook event could not be queued then (lifecycle.finish marked it): queued now.
One job that cannot be swept (a throttled read or send) is logged and left for the next sweep; the others are swept,
and then the invocation fails, so its alarm says so.
"""

from __future__ import annotations

from collections import Counter

from functions.core import clock, messages
from functions.core.errors import TransitionRejected
from functions.core.jobs import MAX_DISPATCH_ATTEMPTS, Job, JobError, JobStatus, JobStore
from functions.core.lifecycle import finish, resend_unsent_event
from functions.core.observability import logger
from functions.core.settings import get_settings


def sweep(*, now: float | None = None, store: JobStore | None = None) -> Counter:
    store = store or JobStore()
    now = now if now is not None else clock.now()
    counts: Counter = Counter()
    failed: list[str] = []
    for job_id in store.overdue(now):
        try:
            job = store.get(job_id)
            if job is None or (job.deadline or 0) >= now:
                continue
            if job.terminal:
                if job.event_unsent:
                    resend_unsent_event(job, store)
                    counts["event resent"] += 1
                continue
            counts[_sweep_one(job, store, now)] += 1
        except TransitionRejected:
            counts["raced"] += 1
        except Exception:  # noqa: BLE001 - one job's failure (a throttled write, a failed send) must not stop the sweep
            logger.exception("sweep of one job failed", extra={"job_id": job_id})
            failed.append(job_id)
    if counts:
        logger.info("sweep", extra=dict(counts))
    if failed:  # the invocation fails (its alarm), after every other job had its turn; the next sweep retries
        raise SweepIncomplete(f"{len(failed)} job(s) not swept: {', '.join(failed[:10])}")
    return counts


class SweepIncomplete(RuntimeError):
    """Some jobs could not be swept this time (each is logged); the rest were."""


def _sweep_one(job: Job, store: JobStore, now: float) -> str:
    settings = get_settings()
    call = (job.dispatch or {}).get("call_id")
    # The dispatch function gives up a call that waited queue_deadline_seconds; if it cannot even ask (Modal
    # unreachable), the job is failed here a little later, so no job waits for ever.
    overdue = now - job.created_at > settings.queue_deadline_seconds + settings.dispatch_deadline_seconds
    if job.status == JobStatus.QUEUED and not job.dispatch_failure and not overdue:
        if call:
            # Only the dispatch function talks to Modal: it keeps, replaces or gives up the call. Until it has
            # answered, this job is not looked at again (the deadline moves; the message may be redelivered).
            if not store.keep_dispatch(job.id, call, now, deadline=now + settings.dispatch_deadline_seconds):
                return "raced"
            messages.send(settings.jobs_queue_url, messages.JobMessage(job_id=job.id, recheck_call=call))
            return "rechecked"
        if job.attempts < MAX_DISPATCH_ATTEMPTS:
            if not store.release_dispatch(job.id, (job.dispatch or {}).get("claim"), now):
                return "raced"
            messages.send(settings.jobs_queue_url, messages.JobMessage(job_id=job.id))
            return "requeued"
    if job.status == JobStatus.QUEUED:
        why = job.dispatch_failure or ("it waited too long for a GPU" if overdue else "no GPU call took it")
        reason = f"could not be dispatched to a GPU worker: {why}"
    else:
        reason = "did not finish before its deadline"
    finish(job, JobStatus.FAILED, store=store,
           fields={"error": JobError(code="timeout", message=f"Generation {reason}").model_dump()})
    if call:  # a GPU call may still be on it (hung): the dispatch function cancels it
        messages.send(settings.jobs_queue_url, messages.JobMessage(job_id=job.id, recheck_call=call))
    return "failed"
