"""Synchronous generation, shared by the OpenAI and AI Media Studio routers: validate the translated
input, submit the job (once per Idempotency-Key, and once per SDK retry chain), wait for it as long as the
host the call came through allows, and hand the finished job back for the dialect to render.

How long a call waits depends on the host (functions/core/waiting.py): up to DARKROOM_SYNC_WAIT_SECONDS
(300 s by default) on the function URL, at most 25 s behind API Gateway's 30 s cut. Past it the caller
gets the dialect's error carrying the job id (504); the job goes on and stays pollable through
GET /api/generations/{id}. That 504 says `x-should-retry: false`, so the OpenAI SDK does not spend its
retries waiting on a host that cannot wait longer. Repeating the request with the same Idempotency-Key
joins the same job and waits for it again; so does an SDK retry (x-stainless-retry-count >= 1) after a
5xx or a dropped connection (functions/api/idempotency.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api import idempotency
from functions.api.auth import Principal
from functions.core import inflight
from functions.core.catalog import ModelSpec, get_catalog
from functions.core.errors import DarkroomError, GatewayTimeout
from functions.core.generation import GenerationInput, parse_input, resolve_params, resolve_request
from functions.core.jobs import Job
from functions.core.settings import get_settings
from functions.core.submit import SubmitRequest, submit
from functions.core.waiting import Host, host_of, wait_budget, wait_for
from functions.dialects.shared import rename_fields, require_success


@dataclass
class SyncGeneration:
    model: ModelSpec
    # GenerationInput fields, already translated from the dialect's request.
    fields: dict[str, Any]
    # What the caller sent, as the job records it (shown back as `payload`).
    record: dict[str, Any]
    dialect: str
    # GenerationInput field -> the dialect's name for it, for errors that name the caller's field.
    names: dict[str, str] = field(default_factory=dict)
    # The dialect's name for the reference images, for a job that fails on one of them.
    references_field: str = "image_urls"
    # What makes two requests "the same" for Idempotency-Key; the record by default (edits use file hashes,
    # since each stored upload gets a fresh reference).
    fingerprint: dict[str, Any] | None = None
    make_public: bool = False


def principal(router: Router) -> Principal:
    return router.context["principal"]


def tool_for(model: ModelSpec) -> str | None:
    return next((t.slug for t in get_catalog().tools if t.task == model.task), None)


def precheck(gen: SyncGeneration) -> None:
    """Every 400 the input itself can cause, before anything is stored (references are not resolved)."""
    try:
        resolve_params(gen.model, parse_input(GenerationInput, gen.fields))
    except DarkroomError as exc:
        raise rename_fields(exc, gen.names) from None


def validate(gen: SyncGeneration, workspace_id: str) -> tuple[ModelSpec, dict[str, Any]]:
    """The model that runs and the worker's params (the core's resolve_request), or a 400 naming the
    dialect's field."""
    try:
        return resolve_request(gen.model, parse_input(GenerationInput, gen.fields), workspace_id=workspace_id)
    except DarkroomError as exc:
        raise rename_fields(exc, gen.names) from None


def run(router: Router, gen: SyncGeneration) -> Job:
    """Submit (once per Idempotency-Key or SDK retry chain) and wait; the succeeded job, or the dialect's
    error."""
    caller = principal(router)
    caller.require(f"{gen.model.type}:generate")
    model, params = validate(gen, caller.workspace_id)
    event = router.current_event
    request = SubmitRequest(workspace_id=caller.workspace_id, model=model, params=params, input=gen.record,
                            dialect=gen.dialect, tool=tool_for(model), make_public=gen.make_public)
    fingerprint = {"dialect": gen.dialect, "model": model.id, "input": gen.fingerprint or gen.record}
    host = host_of(event.raw_event.get("requestContext") or {})
    # A lease of the key's and the workspace's in-flight caps, before anything is stored: a refused call (429)
    # makes no job, and the few keys that could otherwise hold every Lambda environment cannot.
    with inflight.sync_call(caller.key_id, caller.workspace_id):
        job = Job.model_validate(idempotency.sync_submit(
            event.headers, workspace_id=caller.workspace_id, key_id=caller.key_id,
            route=f"{event.http_method} {event.path}", fingerprint=fingerprint,
            work=lambda: submit(request).model_dump(mode="json")))
        try:
            job = wait_for(job, timeout=_budget(router, host), hint=_HINTS[host])
        except GatewayTimeout as exc:
            exc.headers.setdefault("x-should-retry", "false")
            raise
    return require_success(job, references_field=gen.references_field)


_HINTS = {
    Host.API_GATEWAY: " (the API Gateway URL cuts calls at 30 s; the function URL, ApiUrl, waits longer)",
    Host.FUNCTION_URL: "",
}


def _budget(router: Router, host: Host) -> float:
    """This call's wait on its host, counted from the request's arrival (a cold start counts too)."""
    context = router.current_event.raw_event.get("requestContext") or {}
    arrived = context.get("timeEpoch")
    elapsed = time.time() - arrived / 1000 if isinstance(arrived, int | float) else 0.0
    lambda_context = getattr(router, "lambda_context", None)
    remaining = (lambda_context.get_remaining_time_in_millis() / 1000
                 if hasattr(lambda_context, "get_remaining_time_in_millis") else None)
    return wait_budget(host, configured=get_settings().sync_wait_seconds, elapsed=elapsed, remaining=remaining)
