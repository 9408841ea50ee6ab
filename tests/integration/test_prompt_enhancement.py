"""Prompt enhancement end to end: `enhance_prompt` through the local stack (the api, dispatch, the GPU worker inline
with the tiny random-weight Qwen2 enhancer, complete, webhooks) in the native, OpenAI and AI Media Studio dialects,
and POST /api/prompts/enhance, which returns the same rewrite without generating.

The rewrite is deterministic (greedy decoding), and so is what follows it: the same prompt and seed give the same
rewrite and the same image, and generating with the rewrite as the prompt gives that image again.
"""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image
from standardwebhooks.webhooks import Webhook

from functions.core import storage
from functions.core.catalog import get_catalog
from functions.core.jobs import JobStore
from functions.core.settings import get_settings
from functions.core.workspaces import WorkspaceStore
from functions.dialects import webhook_payload
from infra.local.receiver import WebhookReceiver

PROMPT = "a lighthouse at dusk"
MODEL = "sdxl-turbo"
ENHANCE = "/api/prompts/enhance"


@pytest.fixture(autouse=True)
def roomy_wait(world, monkeypatch):
    """Tiny pipelines on a busy 2-core machine: give the synchronous waits room."""
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_settings.cache_clear()


def finished(api, tenant, job_id: str, timeout: float = 240) -> dict:
    """The generation as GET /api/generations/{id} shows it, once the job is terminal (watched in the table, so the
    key's rate limit is not spent on polls)."""
    store, deadline = JobStore(), time.time() + timeout
    while not store.get(job_id).terminal:
        assert time.time() < deadline, f"generation {job_id} did not finish"
        time.sleep(0.3)
    return api.get(f"/api/generations/{job_id}", headers=tenant.headers).json


def pixels(job_id: str) -> bytes:
    job = JobStore().get(job_id)
    return Image.open(io.BytesIO(storage.get_bytes(job.outputs[0].key))).convert("RGB").tobytes()


def run(api, tenant, **input_fields) -> str:
    body = {"tool": "create-image", "model": MODEL, "input": {"prompt": PROMPT, "size": "256x256", "seed": 7,
                                                              **input_fields}}
    response = api.post("/api/run", json=body, headers=tenant.headers)
    assert response.status_code == 202, response.json
    return response.json["id"]


def field_error(response, status: int, field: str) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert field in [e["field"] for e in response.json["errors"]], response.json
    return response.json


def test_native_enhancement_is_stored_returned_delivered_and_deterministic(api, tenant, pipeline, drain):
    enhancer = get_catalog().prompt_enhancer
    receiver = WebhookReceiver()
    try:
        body = {"tool": "create-image", "model": MODEL, "webhook": receiver.url,
                "input": {"prompt": PROMPT, "size": "256x256", "seed": 7, "enhance_prompt": True}}
        job_id = api.post("/api/run", json=body, headers=tenant.headers).json["id"]
        read = finished(api, tenant, job_id)
        assert read["status"] == "success", read
        revised = read["revisedPrompt"]
        assert revised and revised != PROMPT
        assert read["promptEnhancement"]["model"] == enhancer.id and read["promptEnhancement"]["enhanced"] is True
        job = JobStore().get(job_id)
        assert job.revised_prompt == revised and job.params["enhance_prompt"] is True
        assert job.params["prompt"] == PROMPT  # what was asked stays; the rewrite is what ran
        assert job.timings["enhance"] > 0
        assert job.cost == pytest.approx(get_catalog().model(MODEL).price(job.params) + enhancer.credits)

        # The webhook carries it, signed.
        deadline = time.time() + 30
        while not receiver.requests and time.time() < deadline:
            drain("WebhooksFunction", "WebhooksQueue")
            time.sleep(0.2)
        request = receiver.requests[0]
        secret = WorkspaceStore().get(tenant.workspace_id).webhook_secrets[0].secret
        delivered = Webhook(secret).verify(request["body"], request["headers"])
        assert delivered["revisedPrompt"] == revised and delivered["promptEnhancement"]["enhanced"] is True
    finally:
        receiver.close()

    # The review route gives the same rewrite, without generating, at the enhancer's price.
    reviewed = api.post(ENHANCE, json={"prompt": PROMPT, "model": MODEL}, headers=tenant.headers)
    assert reviewed.status_code == 200, reviewed.json
    assert reviewed.json["status"] == "succeeded"
    assert reviewed.json["revised_prompt"] == revised and reviewed.json["enhanced"] is True
    assert reviewed.json["prompt"] == PROMPT and reviewed.json["enhancer"] == enhancer.id
    assert reviewed.json["credits_used"] == pytest.approx(enhancer.credits)
    review_job = api.get(f"/api/generations/{reviewed.json['id']}", headers=tenant.headers).json
    assert review_job["type"] == "prompt" and review_job["outputs"] == [] and review_job["revisedPrompt"] == revised

    # The seed stays deterministic for a given rewrite: the rewrite sent as the prompt (no enhancement), with the same
    # seed, makes the same image.
    direct = run(api, tenant, prompt=revised)
    direct_read = finished(api, tenant, direct)
    assert "revisedPrompt" not in direct_read and JobStore().get(direct).prompt_enhancement is None
    assert pixels(direct) == pixels(job_id)


def test_openai_and_ai_media_studio_return_the_rewrite(api, tenant, pipeline):
    openai = api.post("/v1/images/generations", headers=tenant.headers, json={
        "model": MODEL, "prompt": PROMPT, "size": "256x256", "seed": 3, "style": "natural", "enhance_prompt": True,
        "response_format": "url"})
    assert openai.status_code == 200, openai.json
    item = openai.json["data"][0]
    job = JobStore().get(item["url"].split("/generations/")[1].split("/")[0])
    assert item["revised_prompt"] == job.revised_prompt and job.prompt_enhancement["enhanced"] is True
    assert job.revised_prompt != job.params["prompt"]  # the styled prompt, rewritten
    assert webhook_payload(job)["data"][0]["revised_prompt"] == job.revised_prompt  # what its webhook says

    aims = api.post("/api/v1/images/generate", headers=tenant.headers, json={
        "model": MODEL, "prompt": PROMPT, "size": "256x256", "seed": 3, "enhance_prompt": True})
    assert aims.status_code == 200, aims.json
    job = JobStore().get(aims.json["images"][0]["generation_id"])
    assert aims.json["revised_prompt"] == job.revised_prompt and aims.json["prompt_enhancement"]["enhanced"] is True
    assert webhook_payload(job)["revised_prompt"] == job.revised_prompt


@pytest.mark.parametrize(("body", "field"), [
    ({}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x" * 4001}, "prompt"),
    ({"prompt": 7}, "prompt"),
    ({"prompt": "a fox", "model": "no-such-model"}, "model"),
    ({"prompt": "a fox", "seed": 3}, "seed"),
])
def test_the_enhance_route_refuses_bad_input_naming_the_field(world, api, tenant, body, field):
    field_error(api.post(ENHANCE, json=body, headers=tenant.headers), 400, field)


def test_the_enhance_route_needs_the_models_scope_and_bad_flags_are_refused(world, api, new_tenant):
    video_only = new_tenant(["video:generate"])
    refused = api.post(ENHANCE, json={"prompt": "a fox"}, headers=video_only.headers)
    assert refused.status_code == 403 and "image:generate" in refused.json["message"]
    owner = new_tenant()
    body = {"tool": "create-image", "input": {"prompt": "a fox", "enhance_prompt": "yes"}}
    field_error(api.post("/api/run", json=body, headers=owner.headers), 400, "input.enhance_prompt")
    response = api.post("/v1/images/generations", json={"prompt": "a fox", "enhance_prompt": 1},
                        headers=owner.headers)
    assert response.status_code == 400 and response.json["error"]["param"] == "enhance_prompt"


def test_without_an_enhancer_enhancement_is_refused_not_ignored(world, api, tenant, monkeypatch, tmp_path):
    extra = tmp_path / "catalog.yaml"
    extra.write_text("prompt_enhancer: null\n")
    monkeypatch.setenv("DARKROOM_CATALOG_EXTRA", str(extra))
    get_catalog.cache_clear()
    try:
        body = {"tool": "create-image", "input": {"prompt": "a fox", "enhance_prompt": True}}
        error = field_error(api.post("/api/run", json=body, headers=tenant.headers), 400, "input.enhance_prompt")
        assert "prompt_enhancer" in error["message"]
        field_error(api.post(ENHANCE, json={"prompt": "a fox"}, headers=tenant.headers), 400, "prompt")
        aims = api.post("/api/v1/videos/generate", headers=tenant.headers,
                        json={"prompt": "waves", "model": "ltx-video", "enhance_prompt": True})
        assert aims.status_code == 400 and "enhance_prompt" in aims.json["error"]
        # Left off, nothing is asked of it.
        assert api.post("/api/run", json={"tool": "create-image", "input": {"prompt": "a fox"}},
                        headers=tenant.headers).status_code == 202
    finally:
        monkeypatch.delenv("DARKROOM_CATALOG_EXTRA")
        get_catalog.cache_clear()


def test_a_rewrite_that_outlasts_the_wait_names_its_job(world, api, tenant, monkeypatch):
    """No worker runs here: the call answers `processing` once its wait is over, and the job goes on (pollable)."""
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "0.2")
    get_settings.cache_clear()
    response = api.post(ENHANCE, json={"prompt": "a fox"}, headers=tenant.headers)
    assert response.status_code == 200 and response.json["status"] == "processing", response.json
    job = JobStore().get(response.json["id"])
    assert job.status == "queued" and job.type == "prompt" and job.task == "prompt-enhance"
    assert job.params == {"prompt": "a fox", "enhance_only": True, "for_model": job.model}  # the default model
    assert job.cost == pytest.approx(get_catalog().prompt_enhancer.credits)


def test_a_rewrite_for_a_large_model_runs_on_the_smallest_pool(world, api, tenant, drain, monkeypatch):
    """The rewrite costs the enhancer's few credits: it must not start (and leave idling) a 14B video model's GPU.
    Whatever model is named (for its scope), it runs on the create-image tool's default model's pool."""
    from functions.dispatch import handler
    from tests.integration.conftest import RecordingDispatcher

    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "1")
    get_settings.cache_clear()
    recording = RecordingDispatcher()
    monkeypatch.setattr(handler, "get_dispatcher", lambda: recording)
    answer = api.post(ENHANCE, json={"prompt": PROMPT, "model": "wan2.2-t2v-a14b"}, headers=tenant.headers)
    assert answer.status_code == 200 and answer.json["status"] == "processing", answer.json
    assert drain("DispatchFunction", "JobsQueue") == 1
    (request,) = recording.requests
    default = get_catalog().tool("create-image").default_model
    assert request.model == default and request.params["enhance_only"] is True
    job = JobStore().get(answer.json["id"])
    assert job.model == default and job.params["for_model"] == "wan2.2-t2v-a14b"
    assert job.cost == pytest.approx(get_catalog().prompt_enhancer.credits)
