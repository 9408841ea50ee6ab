"""Applying a worker's result: the terminal transition exactly once, then the webhook event."""

from __future__ import annotations

from functions.core.errors import TransitionRejected
from functions.core.jobs import JobError, JobStatus, JobStore
from functions.core.lifecycle import emit, finish
from functions.core.messages import ResultMessage
from functions.core.observability import logger


def complete(result: ResultMessage, *, store: JobStore | None = None) -> JobStatus | None:
    store = store or JobStore()
    job = store.get(result.job_id)
    if job is None:
        logger.warning("result for unknown job", extra={"job_id": result.job_id})
        return None
    if result.outcome == "started":
        if job.status == JobStatus.RUNNING:
            emit(job, JobStatus.RUNNING)
        return JobStatus.RUNNING
    if result.outcome == "succeeded":
        target = JobStatus.SUCCEEDED
        fields = {"outputs": [o.model_dump(exclude_none=True) for o in result.outputs],
                  "seed": result.seed, "timings": result.timings}
    else:
        target = JobStatus.FAILED
        error = result.error or JobError(code="generation_failed", message="Generation failed")
        fields = {"error": error.model_dump()}
    try:
        finish(job, target, fields={k: v for k, v in fields.items() if v is not None}, store=store)
    except TransitionRejected:
        # Canceled (or failed by the sweeper) before the result came in: the first terminal state stands.
        return None
    return target
