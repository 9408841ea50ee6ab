"""The messages that travel on the jobs, results and webhooks queues, and how they are sent."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from . import aws
from .jobs import JobError, Output
from .schema import Schema


class JobMessage(Schema):
    """jobs queue: a job is ready to be dispatched to a GPU, or (`recheck_call`) the GPU call recorded for it is
    overdue and must be asked about before anything else is spawned (functions/dispatch/logic.py)."""

    job_id: str
    recheck_call: str | None = None
    # A deadline the caller set (Replicate's Cancel-After), delivered late: when it has passed, the job is canceled
    # if it has not finished (functions/dispatch/logic.py); a message that arrives early is sent on again.
    cancel_at: float | None = None


class ResultMessage(Schema):
    """results queue: what the GPU worker reports: that it started a job, and how the job ended."""

    job_id: str
    outcome: Literal["started", "succeeded", "failed"]
    # The job's workspace, so a success is applied with one conditional write and no read (a message
    # without it, from an older worker, is applied after reading the job).
    workspace_id: str | None = None
    outputs: list[Output] = Field(default_factory=list)
    error: JobError | None = None
    seed: int | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    # The LoRA adapters that ran: what was asked for (path, id, name), the scale, and the sha256 of the bytes.
    loras: list[dict[str, Any]] = Field(default_factory=list)
    # What the model's speed settings did on this worker (gpu/speed.py), or why one fell back: none is skipped silently.
    speed: dict[str, str] = Field(default_factory=dict)
    # The output safety checker's report (gpu/moderation.py): level, threshold, scores, blocked outputs.
    moderation: dict[str, Any] | None = None
    # What was done to the outputs' provenance (gpu/provenance.py): the C2PA signer, or why nothing was signed, and
    # the watermark.
    provenance: dict[str, str] = Field(default_factory=dict)
    # A job that asked for prompt enhancement (gpu/enhance.py): the prompt the model ran, and what the enhancer did
    # ({model, enhanced, tokens, note}: the note says why the original prompt ran when the rewrite was unusable).
    revised_prompt: str | None = None
    prompt_enhancement: dict[str, Any] | None = None


class WebhookMessage(Schema):
    """webhooks queue: one event for one job; `event_id` is stable across retries and replays."""

    event_id: str
    job_id: str
    event: str
    # The job's workspace: the job and the workspace's signing secrets are then read in one call (a message
    # without it, queued by an older version, reads them one after the other).
    workspace_id: str | None = None
    # Attempts made so far; the next one is not made before `not_before` (epoch seconds).
    attempt: int = 0
    not_before: float = 0
    # A redelivery the user asked for: sent even if the event was delivered or the endpoint disabled.
    forced: bool = False


# SQS delays a message at most 15 minutes: a later time is reached in steps (the receiver sends it on again).
MAX_DELAY_SECONDS = 900


def send_later(queue_url: str, message: BaseModel, after_seconds: float) -> str:
    """Send `message` to arrive `after_seconds` from now, or in MAX_DELAY_SECONDS when that is further off."""
    return send(queue_url, message, delay_seconds=max(0, min(math.ceil(after_seconds), MAX_DELAY_SECONDS)))


def send(queue_url: str, message: BaseModel, *, delay_seconds: int = 0, **attributes: Any) -> str:
    resp = aws.client("sqs").send_message(
        QueueUrl=queue_url, MessageBody=message.model_dump_json(exclude_none=True), DelaySeconds=delay_seconds,
        **attributes,
    )
    return resp["MessageId"]


class WorkRequest(Schema):
    """What the dispatcher hands the GPU worker: everything it needs, so the worker reads no configuration
    (the Modal container has no Darkroom settings and no AWS keys of its own)."""

    job_id: str
    workspace_id: str
    model: str
    params: dict[str, Any]
    jobs_table: str
    results_queue_url: str
    bucket: str
    # Only the local stack lets reference URLs point at loopback.
    allow_loopback_urls: bool = False
    # Deployed: the role the worker assumes with its Modal identity token (template.yaml: ModalWorkerRole),
    # and the stack's region. None locally, where the default credential chain reaches the moto server.
    aws_role_arn: str | None = None
    aws_region: str | None = None
    # Provenance (gpu/provenance.py), from the settings of the same names: the secret holding the C2PA signing
    # certificate (deployed), or its PEM files (locally); and whether images get the invisible watermark.
    provenance_secret_arn: str | None = None
    provenance_cert_file: str | None = None
    provenance_key_file: str | None = None
    provenance_watermark: bool = False
    # How long a running job may go without a sign of life before the sweeper fails it (run_deadline_seconds): the
    # worker's progress writes push its deadline out (gpu/worker.py, CancelWatch), so a long video is not failed
    # while it runs, and a stalled one still is.
    run_deadline_seconds: int | None = None
