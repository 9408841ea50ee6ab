"""Applying a worker's result: the terminal transition exactly once, then the webhook event."""

from __future__ import annotations

from functions.core import moderation, storage
from functions.core.errors import NotFound, TransitionRejected
from functions.core.jobs import Job, JobError, JobKey, JobStatus, JobStore
from functions.core.lifecycle import emit, finish
from functions.core.messages import ResultMessage
from functions.core.observability import logger


def complete(result: ResultMessage, *, store: JobStore | None = None) -> JobStatus | None:
    store = store or JobStore()
    if result.outcome == "succeeded" and result.workspace_id:
        # A success refunds nothing, so it needs nothing of the job but its key: one conditional write
        # (which returns the job for the webhook), no read first.
        key = JobKey(result.job_id, result.workspace_id)
        return _finish(key, JobStatus.SUCCEEDED, _success_fields(result), store, result)
    job = store.get(result.job_id)
    if job is None:
        logger.warning("result for unknown job", extra={"job_id": result.job_id})
        return None
    if result.outcome == "started":
        if job.status == JobStatus.RUNNING:
            emit(job, JobStatus.RUNNING)
        return JobStatus.RUNNING
    if result.outcome == "succeeded":
        return _finish(job, JobStatus.SUCCEEDED, _success_fields(result), store, result)
    error = result.error or JobError(code="generation_failed", message="Generation failed")
    if error.code == moderation.BLOCKED:
        # For the operator: a structured event (CloudWatch Logs Insights: moderation_event = "output_blocked"),
        # besides the job record GET /api/admin/workspaces/{id}/moderation lists. Never the image: none was stored.
        logger.warning("output blocked by the safety checker",
                       extra={"moderation_event": "output_blocked", "job_id": job.id, "workspace_id": job.workspace_id,
                              "model": job.model, "dialect": job.dialect, "moderation": result.moderation})
    return _finish(job, JobStatus.FAILED, {"error": error.model_dump(), "moderation": result.moderation}, store)


def _success_fields(result: ResultMessage) -> dict:
    return {"outputs": [o.model_dump(exclude_none=True) for o in result.outputs], "seed": result.seed,
            "timings": result.timings, "loras": result.loras or None, "speed": result.speed or None,
            "provenance": result.provenance or None,
            "revised_prompt": result.revised_prompt, "prompt_enhancement": result.prompt_enhancement,
            "moderation": result.moderation}


def _finish(job: Job | JobKey, target: JobStatus, fields: dict, store: JobStore,
            result: ResultMessage | None = None) -> JobStatus | None:
    try:
        finish(job, target, fields={k: v for k, v in fields.items() if v is not None}, store=store)
    except TransitionRejected:
        # Canceled (or failed by the sweeper) before the result came in: the first terminal state stands, and
        # the files the worker uploaded before it saw that are deleted (no one can read them, no one paid).
        if result is not None and result.outputs:
            storage.delete([key for o in result.outputs for key in (o.key, o.thumbnail_key) if key])
            logger.info("outputs of a job that ended first deleted", extra={"job_id": result.job_id})
        return None
    except NotFound:
        logger.warning("result for unknown job", extra={"job_id": job.id})
        return None
    return target
