"""Webhook inspection and control: delivery attempts, redelivery, the workspace's signing secret."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import ConfigDict, Field

from functions.api.auth import Principal
from functions.api.openapi import doc
from functions.api.request import json_response, optional_json_body
from functions.core import messages
from functions.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from functions.core.generation import parse_input
from functions.core.jobs import JobStore
from functions.core.lifecycle import event_id
from functions.core.schema import Request
from functions.core.settings import get_settings
from functions.core.workspaces import WorkspaceStore

router = Router()


class RedeliverRequest(Request):
    model_config = ConfigDict(extra="forbid")
    event_id: str | None = Field(None, description="Which event to send again; the job's final event by default.")


class RotateRequest(Request):
    model_config = ConfigDict(extra="forbid")
    grace_seconds: int | None = Field(None, ge=0, le=7 * 86400,
                                      description="How long the old secret keeps signing too (default 24 h).")


def _principal() -> Principal:
    return router.context["principal"]


@router.get("/api/generations/<job_id>/deliveries", **doc(
    "List a generation's webhook deliveries", ok="DeliveryList", errors=(403, 404)))
def list_deliveries(job_id: str) -> Response[dict]:
    principal = _principal()
    job = JobStore().get_for_workspace(principal.workspace_id, job_id)
    return json_response(200, {"data": job.deliveries, "webhook": job.webhook, "disabled": job.webhook_disabled})


@router.post("/api/generations/<job_id>/deliveries/redeliver", **doc(
    "Send a webhook event again", ok="RedeliveryQueued", status=202, body=RedeliverRequest, body_required=False,
    errors=(400, 403, 404, 409), description="Same webhook-id (receivers dedupe on it), fresh timestamp and signature."))
def redeliver(job_id: str) -> Response[dict]:
    principal = _principal()
    body = parse_input(RedeliverRequest, optional_json_body(router.current_event))
    job = JobStore().get_for_workspace(principal.workspace_id, job_id)
    if not job.webhook:
        raise ValidationFailed("This generation has no webhook",
                               errors=[FieldError("webhook", "the generation was submitted without one", "no_webhook")])
    if body.event_id is None and not job.terminal:
        raise Conflict("The generation has not finished; there is no final event to send yet", code="not_finished")
    wanted = body.event_id or event_id(job, job.status)
    known = {event_id(job, job.status)} | {d["event_id"] for d in job.deliveries}
    if wanted not in known:
        raise NotFound(f"Event {wanted} not found for generation {job_id}", code="event_not_found")
    name = next((d["event"] for d in job.deliveries if d["event_id"] == wanted), f"generation.{job.status.value}")
    # Same webhook-id (receivers dedupe on it), fresh timestamp and signature at send time.
    messages.send(get_settings().webhooks_queue_url,
                  messages.WebhookMessage(event_id=wanted, job_id=job.id, workspace_id=job.workspace_id,
                                          event=name, forced=True))
    return json_response(202, {"event_id": wanted, "status": "queued"})


def _secret_view(workspace) -> dict:
    current, *previous = workspace.webhook_secrets
    return {"secret": current.secret,
            "previous": [{"secret": s.secret, "expires_at": s.expires_at} for s in previous]}


@router.get("/api/webhooks/secret", **doc("Get the webhook signing secret", ok="WebhookSecret", errors=(403,)))
def get_secret() -> Response[dict]:
    workspace = WorkspaceStore().with_webhook_secret(_principal().workspace_id)
    return json_response(200, _secret_view(workspace))


@router.post("/api/webhooks/secret/rotate", **doc(
    "Rotate the webhook signing secret", ok="WebhookSecret", body=RotateRequest, body_required=False,
    errors=(400, 403), description="The old secret keeps signing too for grace_seconds (24 h by default)."))
def rotate_secret() -> Response[dict]:
    principal = _principal()
    body = parse_input(RotateRequest, optional_json_body(router.current_event))
    grace = body.grace_seconds if body.grace_seconds is not None else get_settings().webhook_secret_grace_seconds
    workspace = WorkspaceStore().rotate_webhook_secret(principal.workspace_id, grace_seconds=grace)
    return json_response(200, _secret_view(workspace))
