"""POST /api/prompts/enhance: the catalog's prompt enhancer rewrites a prompt, without generating, so that a user can
review the rewrite before spending a generation on it.

The rewrite runs on a GPU (gpu/enhance.py), and the api function loads no torch, so it is a job like any other:
written with its credit reservation, queued, dispatched to the GPU pool of the create-image tool's default model
(whatever model is named: the enhancer is the same on every pool, and a rewrite priced at the enhancer's few credits
must not start a 14B video model's GPU, which would then idle out its scale-down window on the operator's account),
run by the same worker (which rewrites and generates nothing: `enhance_only`), completed, settled and refunded on
failure by the same functions. The call waits for it as the synchronous dialects do (functions/api/sync.py); past
that wait it answers `status: "processing"` with the job's id (this is the native, asynchronous dialect: no 5xx for a
job that goes on), and the job stays readable through GET /api/generations/{id} (type "prompt", revisedPrompt once done). Greedy decoding makes the rewrite the same
one a generation with `enhance_prompt: true` makes of the same prompt; generating with the rewrite as the prompt
(and enhance_prompt off) then runs exactly what was reviewed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import ConfigDict, Field

from functions.api import idempotency, sync
from functions.api.openapi import doc
from functions.api.request import json_body, json_response
from functions.core import inflight
from functions.core.catalog import ModelSpec, get_catalog
from functions.core.errors import GatewayTimeout
from functions.core.generation import MAX_PROMPT_CHARS, check_enhancer, check_license, parse_input
from functions.core.jobs import Job
from functions.core.schema import Request
from functions.core.submit import SubmitRequest, submit
from functions.core.waiting import host_of, wait_for
from functions.dialects.shared import DEFAULT_TOOLS, bad_field, require_success, unknown_model

router = Router()

TASK, TYPE = "prompt-enhance", "prompt"


class EnhanceRequest(Request):
    """A prompt to rewrite. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS, description="The prompt to rewrite.")
    model: str | None = Field(None, min_length=1, description="The image or video model you mean to generate with "
                                                              "(an id or alias; default: the create-image tool's "
                                                              "model): the key needs its <type>:generate scope. The "
                                                              "rewrite itself runs on the create-image tool's model's "
                                                              "GPU, the smallest.")


def _model(name: str | None) -> ModelSpec:
    catalog = get_catalog()
    if name is None:
        tool = catalog.tool(DEFAULT_TOOLS[("image", False)])
        model = catalog.model(tool.default_model) if tool else None
        if model is None:
            raise bad_field("model", "no image model is configured; name one", "model_not_found")
        return model
    model = catalog.model(name)
    if model is None:
        raise unknown_model(name, "model", catalog.models)
    return model


@router.post("/api/prompts/enhance", **doc(
    "Enhance a prompt", ok=("PromptEnhancement", "PromptEnhancementPending"), body=EnhanceRequest,
    errors=(400, 402, 403, 409, 422),
    description="Rewrites the prompt with the catalog's prompt enhancer (a small instruct LLM, greedy decoding: the "
                "same prompt always gets the same rewrite) and returns it without generating, so it can be reviewed "
                "first: the rewrite a generation with enhance_prompt would run. Priced at the enhancer's credits (the "
                "catalog's prompt_enhancer.credits; docs/cost.md). Waits for the rewrite as the synchronous dialects "
                "wait; past the wait, the answer is {id, status: processing}, and GET /api/generations/{id} shows its "
                "revisedPrompt once done."))
def enhance_prompt() -> Response[dict]:
    caller = sync.principal(router)
    body = parse_input(EnhanceRequest, json_body(router.current_event))
    model = _model(body.model)
    # The scope before anything else about the request: a key without it learns nothing more.
    caller.require(f"{model.type}:generate")
    check_license(model)
    check_enhancer("prompt")
    record = body.model_dump(exclude_none=True)
    request = SubmitRequest(workspace_id=caller.workspace_id, model=_model(None),
                            params={"prompt": body.prompt, "enhance_only": True, "for_model": model.id},
                            input=record, task=TASK, type=TYPE)
    event = router.current_event
    host = host_of(event.raw_event.get("requestContext") or {})
    with inflight.sync_call(caller.key_id, caller.workspace_id):
        job = Job.model_validate(idempotency.sync_submit(
            event.headers, workspace_id=caller.workspace_id, key_id=caller.key_id,
            route=f"{event.http_method} {event.path}", fingerprint={"enhance": model.id, "input": record},
            work=lambda: submit(request).model_dump(mode="json")))
        try:
            job = wait_for(job, timeout=sync._budget(router, host), hint=sync._HINTS[host])
        except GatewayTimeout:
            return json_response(200, {"id": job.id, "status": "processing", "prompt": body.prompt,
                                       "message": f"The rewrite is still running; GET /api/generations/{job.id} shows "
                                                  "its revisedPrompt once done"})
    return json_response(200, enhancement(require_success(job), body.prompt))


def enhancement(job: Job, prompt: str) -> dict[str, Any]:
    """The response: the rewrite (or the original prompt, with the note saying why, when the rewrite was unusable)."""
    record = job.prompt_enhancement or {}
    body: dict[str, Any] = {
        "id": job.id, "status": "succeeded", "prompt": prompt, "revised_prompt": job.revised_prompt or prompt,
        "enhanced": bool(record.get("enhanced")), "enhancer": record.get("model"),
        "model": job.params.get("for_model", job.model),
        "credits_used": round(job.cost - (job.refunded or 0), 6),
    }
    if record.get("note"):
        body["note"] = record["note"]
    return body
