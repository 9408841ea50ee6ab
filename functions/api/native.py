"""Artificial Studio dialect: /api/run, /api/generate, /api/generations…, /api/tools…, /api/models."""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, Field

from functions.api import idempotency
from functions.api.auth import Principal
from functions.api.openapi import doc, query
from functions.api.request import json_body, json_response, query_int
from functions.core import clock
from functions.core.catalog import ModelSpec, ToolSpec, get_catalog
from functions.core.errors import Conflict, FieldError, NotFound, TransitionRejected, ValidationFailed
from functions.core.generation import GenerationInput, parse_input, resolve_request
from functions.core.jobs import JobStore
from functions.core.lifecycle import cancel
from functions.core.schema import Request
from functions.core.settings import get_settings
from functions.core.submit import SubmitRequest, submit
from functions.dialects import native
from functions.dialects.shared import generation_fields, style_prompt

router = Router()


class RunRequest(Request):
    model_config = ConfigDict(extra="forbid")
    tool: str = Field(min_length=1)
    input: dict[str, Any]
    model: str | None = None
    webhook: str | None = None
    webhook_events_filter: list[Literal["start", "completed"]] | None = None


class GenerateRequest(Request):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    input: dict[str, Any]
    webhook: str | None = None
    webhook_events_filter: list[Literal["start", "completed"]] | None = None


def _principal() -> Principal:
    return router.context["principal"]


def _model(name: str, field: str) -> ModelSpec:
    model = get_catalog().model(name)
    if model is None:
        raise ValidationFailed(f"Unknown model {name!r}; GET /api/models lists them",
                               errors=[FieldError(field, f"unknown model {name!r}", "model_not_found")],
                               code="model_not_found")
    return model


def _submit(tool: str | None, model: ModelSpec, raw_input: dict[str, Any], webhook: str | None,
            events: list[str] | None) -> dict[str, Any]:
    principal = _principal()
    # Before any input check: a key without the scope learns nothing about the request (reference edits
    # never change a model's type, so the scope is known already).
    principal.require(f"{model.type}:generate")
    inp = parse_input(GenerationInput, _styled(model, raw_input), prefix="input.")
    model, params = resolve_request(model, inp, workspace_id=principal.workspace_id, prefix="input.")
    tool = tool or next((t.slug for t in get_catalog().tools if t.task == model.task), None)
    request = SubmitRequest(workspace_id=principal.workspace_id, model=model, params=params,
                            input=inp.model_dump(exclude_none=True, exclude_defaults=True) | {"prompt": inp.prompt},
                            tool=tool, webhook=webhook, webhook_events=events or ["completed"],
                            make_public=inp.make_public)
    job = submit(request)
    return job.model_dump(mode="json")


def _styled(model: ModelSpec, raw_input: dict[str, Any]) -> dict[str, Any]:
    """`input.style`: a preset from GET /api/styles, applied as the other dialects apply theirs."""
    if "style" not in raw_input:
        return raw_input
    rest = {k: v for k, v in raw_input.items() if k != "style"}
    if not isinstance(rest.get("prompt"), str) or not isinstance(rest.get("negative_prompt") or "", str):
        return rest  # the prompts' own errors are the ones to report
    styled = style_prompt(rest.pop("prompt"), rest.pop("negative_prompt", None),
                          [(raw_input["style"], "input.style")])
    return generation_fields(model, styled, rest)


def _idempotent(body: BaseModel, work) -> dict[str, Any]:
    key = router.current_event.headers.get("idempotency-key")
    return idempotency.once(key, _principal().workspace_id, body.model_dump(mode="json"), work)


@router.post("/api/run", **doc(
    "Run a tool", ok="RunAccepted", status=202, body=RunRequest, errors=(400, 402, 403, 409, 422),
    description="Submits a generation with a tool (GET /api/tools) and its input; poll GET /api/generations/{job_id} "
                "or take the webhook. An Idempotency-Key header makes a retry return the first response."))
def run_tool() -> Response[dict]:
    body = parse_input(RunRequest, json_body(router.current_event))
    tool = get_catalog().tool(body.tool)
    if tool is None:
        raise ValidationFailed(f"Unknown tool {body.tool!r}; GET /api/tools lists them",
                               errors=[FieldError("tool", f"unknown tool {body.tool!r}", "tool_not_found")],
                               code="tool_not_found")
    model = _model(body.model, "model") if body.model else _model(tool.default_model, "tool")
    if model.task != tool.task and model.edit_model:
        # edit-image with a text-to-image model id means that model's image-to-image counterpart.
        counterpart = get_catalog().model(model.edit_model)
        model = counterpart if counterpart and counterpart.task == tool.task else model
    if model.task != tool.task:
        raise ValidationFailed(f"Model {model.id} does not serve {tool.slug}",
                               errors=[FieldError("model", f"{model.id} is a {model.task} model", "invalid_value")])
    job = _idempotent(body, lambda: _submit(tool.slug, model, body.input, body.webhook, body.webhook_events_filter))
    return json_response(202, {"id": job["id"], "status": "processing", "tool": tool.slug,
                       "createdAt": clock.iso(job["created_at"])})


@router.post("/api/generate", **doc(
    "Generate with a model", ok="GenerateAccepted", body=GenerateRequest, errors=(400, 402, 403, 409, 422),
    description="Submits a generation with a model (GET /api/models) and its input; poll or take the webhook."))
def generate() -> Response[dict]:
    body = parse_input(GenerateRequest, json_body(router.current_event))
    model = _model(body.model, "model")
    job = _idempotent(body, lambda: _submit(None, model, body.input, body.webhook, body.webhook_events_filter))
    return json_response(200, {"_id": job["id"], "id": job["id"], "status": "pending", "model": model.id, "output": None})


@router.get("/api/generations", **doc(
    "List generations", ok="GenerationList", errors=(400, 403), params=(
        query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size."),
        query("offset", {"type": "integer", "minimum": 0, "maximum": 100_000, "default": 0}, "Items to skip."),
        query("status", {"type": "string", "enum": sorted(native.STATUS_FILTER)}, "Only generations in this state."))))
def list_generations() -> Response[dict]:
    principal = _principal()
    event = router.current_event
    limit = query_int(event, "limit", default=20, minimum=1, maximum=100)
    offset = query_int(event, "offset", default=0, minimum=0, maximum=100_000)
    status_name = (event.query_string_parameters or {}).get("status")
    status = None
    if status_name:
        status = native.STATUS_FILTER.get(status_name)
        if status is None:
            raise ValidationFailed(f"Unknown status {status_name!r}", errors=[FieldError(
                "status", "must be one of pending, processing, success, error, canceled", "invalid_value")])
    jobs, total = JobStore().list_for_workspace(principal.workspace_id, status=status, limit=limit, offset=offset)
    return json_response(200, {
        "data": [native.generation(j) for j in jobs],
        "pagination": {"total": total, "limit": limit, "offset": offset, "hasMore": offset + len(jobs) < total},
    })


@router.get("/api/generations/<job_id>", **doc(
    "Get a generation", ok="Generation", errors=(403, 404),
    description="Any generation of the workspace, whichever dialect made it."))
def get_generation(job_id: str) -> Response[dict]:
    principal = _principal()
    return json_response(200, native.generation(JobStore().get_for_workspace(principal.workspace_id, job_id)))


@router.post("/api/generations/<job_id>/cancel", **doc(
    "Cancel a generation", ok="Generation", errors=(403, 404, 409),
    description="Cancels a generation that has not finished, and stops its GPU work within a step. A queued "
                "generation is refunded in full; a running one is charged the share of its denoising steps done "
                "when the cancel was accepted (README: Guarantees), and the rest refunded."))
def cancel_generation(job_id: str) -> Response[dict]:
    principal = _principal()
    store = JobStore()
    job = store.get_for_workspace(principal.workspace_id, job_id)
    try:
        job = cancel(job, store=store)
    except TransitionRejected as exc:
        raise Conflict(f"Generation {job_id} already finished ({exc.current})", code="already_finished")
    return json_response(200, native.generation(job))


def _tool_view(tool: ToolSpec, *, detail: bool) -> dict[str, Any]:
    models = get_catalog().models_for(tool.task)
    view: dict[str, Any] = {
        "slug": tool.slug, "name": tool.name, "description": tool.description, "type": tool.type,
        "task": tool.task, "defaultModel": tool.default_model,
        "models": [{"id": m.id, "name": m.name, "credits": m.credits_per_image} for m in models],
    }
    if detail:
        view["inputSchema"] = GenerationInput.model_json_schema()
        view["inputSchema"]["properties"]["style"] = {"type": "string", "description": "A style preset's slug "
                                                      "(GET /api/styles): applied to the prompt."}
    return view


@router.get("/api/tools", **doc("List tools", ok="ToolList", errors=()))
def list_tools() -> Response[dict]:
    return json_response(200, {"data": [_tool_view(t, detail=True) for t in get_catalog().tools]})


@router.get("/api/tools/<slug>", **doc("Get a tool and its input schema", ok="Tool", errors=(404,)))
def get_tool(slug: str) -> Response[dict]:
    tool = get_catalog().tool(slug)
    if tool is None:
        raise NotFound(f"Tool {slug} not found", code="tool_not_found")
    return json_response(200, _tool_view(tool, detail=True))


@router.get("/api/models", **doc("List models", ok="NativeModelList", errors=()))
def list_models() -> Response[dict]:
    catalog = get_catalog()
    accepted = get_settings().accepted_licenses
    return json_response(200, {"data": [{
        "id": m.id, "name": m.name, "task": m.task, "type": m.type, "family": m.family,
        "tools": [t.slug for t in catalog.tools if t.task == m.task],
        "defaults": m.defaults.model_dump(exclude_none=True), "aliases": m.aliases,
        **catalog.facts(m, accepted),
        # A video's price is per second of output (credits_per_image does not apply to it).
        **({"creditsPerSecond": m.credits_per_second} if m.credits_per_second is not None else {}),
    } for m in catalog.models]})
