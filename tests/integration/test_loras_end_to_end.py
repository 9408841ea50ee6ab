"""Per-request LoRA adapters on the local stack: real adapters (made with peft on the tiny pipelines, gpu/tiny.py),
registered through the API, run by the real worker, in every dialect. Scale 0 is no adapter, bit for bit; scale 1
changes the image; two combine; a LoRA for another base is a 400 at submit; a LoRA deleted while its job waits fails
the job cleanly, refunded; the job, the response and the webhook payload report each adapter's scale and sha256."""

from __future__ import annotations

import base64
import hashlib
import io
import time

import numpy as np
import pytest
from PIL import Image

from functions.core import credits, dynamo
from functions.core.jobs import JobStatus, JobStore
from functions.core.settings import get_settings
from functions.dialects import native
from gpu import adapters

SMALL = {"prompt": "a lighthouse at dusk", "size": "256x256", "steps": 2, "seed": 7}


@pytest.fixture(scope="module")
def tiny_loras(tmp_path_factory) -> dict[str, bytes]:
    from gpu.tiny import ensure_tiny_lora

    root = tmp_path_factory.mktemp("tiny-loras")
    return {name: ensure_tiny_lora(family, root, name).read_bytes()
            for name, family in (("ink", "flux"), ("neon", "flux"), ("sdxl-style", "sdxl"))}


@pytest.fixture(autouse=True)
def roomy_wait(world, monkeypatch):
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_settings.cache_clear()
    adapters.forget()


def register(api, tenant, data: bytes, name: str) -> str:
    form = {"file": (io.BytesIO(data), f"{name}.safetensors", "application/octet-stream"), "name": name}
    resp = api.post("/api/loras", data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json["id"]


def pixels(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=np.int16)


def openai_image(api, tenant, **extra) -> tuple[np.ndarray, dict]:
    body = {"model": "flux-schnell", "response_format": "b64_json", **SMALL, **extra}
    resp = api.post("/v1/images/generations", json=body, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return pixels(resp.json["data"][0]["b64_json"]), resp.json


def test_scales_and_combinations_through_the_openai_dialect(world, api, tenant, pipeline, tiny_loras):
    ink, neon = register(api, tenant, tiny_loras["ink"], "ink"), register(api, tenant, tiny_loras["neon"], "neon")
    plain, plain_body = openai_image(api, tenant)
    off, _ = openai_image(api, tenant, loras=[{"path": ink, "scale": 0.0}])
    inked, inked_body = openai_image(api, tenant, loras=[{"path": ink, "scale": 1.0}])
    both, _ = openai_image(api, tenant, loras=[{"path": ink, "scale": 1.0}, {"path": neon, "scale": 0.7}])
    assert np.array_equal(off, plain)  # scale 0: no adapter, bit for bit
    assert np.abs(inked - plain).mean() > 1  # scale 1 changes the image
    assert not np.array_equal(both, inked) and not np.array_equal(both, plain)  # two combine
    after, _ = openai_image(api, tenant)
    assert np.array_equal(after, plain)  # nothing of the adapters stays in the warm pipeline
    assert "loras" not in plain_body
    assert inked_body["loras"] == [{"path": ink, "id": ink, "name": "ink", "scale": 1.0,
                                    "sha256": hashlib.sha256(tiny_loras["ink"]).hexdigest()}]
    # Each adapter is priced as its load: a tenth of an image at the model's reference size (flux-schnell: 1 credit).
    assert inked_body["usage"]["credits"] == pytest.approx(plain_body["usage"]["credits"] + 0.1)


def test_native_aims_and_multipart_edit_carry_the_adapters(world, api, tenant, pipeline, tiny_loras):
    ink = register(api, tenant, tiny_loras["ink"], "ink")
    sha = hashlib.sha256(tiny_loras["ink"]).hexdigest()
    resp = api.post("/api/generate", json={"model": "flux-schnell", "input": {
        **SMALL, "loras": [{"path": ink, "scale": 0.5}]}}, headers=tenant.headers)
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    job_id = resp.json["_id"]
    job = JobStore().get(job_id)
    deadline = time.monotonic() + 240
    while not job.terminal and time.monotonic() < deadline:
        time.sleep(0.1)
        job = JobStore().get(job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.loras == [{"path": ink, "id": ink, "name": "ink", "scale": 0.5, "sha256": sha}]
    store = JobStore()
    item = dynamo.deserialize(store.ddb.get_item(TableName=store.table, Key={"id": {"S": job_id}})["Item"])
    assert {"lora_fetch", "lora_load"} <= set(item["timings"])  # the adapters' own stages in the job's timings
    shown = api.get(f"/api/generations/{job_id}", headers=tenant.headers).json
    assert shown["loras"] == job.loras and native.webhook_payload(job)["loras"] == job.loras

    aims = api.post("/api/v1/images/generate", json={"prompt": "a fox", "model": "flux-schnell", "size": "256x256",
                                                      "loras": [{"path": ink, "scale": 1.0}]}, headers=tenant.headers)
    assert aims.status_code == 200, aims.get_data(as_text=True)
    assert aims.json["loras"][0]["sha256"] == sha

    # A multipart edit, as the OpenAI SDKs put extra_body's list in a form: loras[][path], loras[][scale].
    image = io.BytesIO()
    Image.new("RGB", (256, 256), (90, 120, 200)).save(image, format="PNG")
    form = {"prompt": "make it dusk", "model": "flux-schnell", "size": "256x256", "response_format": "b64_json",
            "image[]": [(io.BytesIO(image.getvalue()), "a.png", "image/png")],
            "loras[][path]": ink, "loras[][scale]": "0.8"}
    edit = api.post("/v1/images/edits", data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert edit.status_code == 200, edit.get_data(as_text=True)
    assert edit.json["loras"] == [{"path": ink, "id": ink, "name": "ink", "scale": 0.8, "sha256": sha}]


def test_a_lora_for_another_base_or_a_model_of_another_family_is_a_400_at_submit(world, api, tenant, tiny_loras):
    sdxl = register(api, tenant, tiny_loras["sdxl-style"], "sdxl-style")
    before = credits.balance(tenant.workspace_id)
    resp = api.post("/v1/images/generations", json={"prompt": "x", "model": "flux-schnell",
                                                    "loras": [{"path": sdxl}]}, headers=tenant.headers)
    assert resp.status_code == 400, resp.json
    assert resp.json["error"]["param"] == "loras.0.path" and "sdxl" in resp.json["error"]["message"]
    native_resp = api.post("/api/generate", json={"model": "flux-schnell", "input": {
        "prompt": "x", "loras": [{"path": "lora_0123456789abcdef01234567"}]}}, headers=tenant.headers)
    assert native_resp.status_code == 400
    assert native_resp.json["errors"][0]["field"] == "input.loras.0.path", native_resp.json
    too_many = api.post("/api/v1/images/generate", json={"prompt": "x", "loras": [{"path": sdxl}] * 5},
                        headers=tenant.headers)
    assert too_many.status_code == 400 and "loras" in too_many.json["error"]
    out_of_range = api.post("/v1/images/generations", json={"prompt": "x", "loras": [{"path": sdxl, "scale": 9}]},
                            headers=tenant.headers)
    assert out_of_range.status_code == 400 and out_of_range.json["error"]["param"] == "loras.0.scale"
    assert credits.balance(tenant.workspace_id) == before
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 0


def test_a_lora_deleted_while_its_job_waits_fails_the_job_refunded(world, api, tenant, dispatcher, drain, tiny_loras):
    ink = register(api, tenant, tiny_loras["ink"], "ink")
    before = credits.balance(tenant.workspace_id)
    resp = api.post("/api/generate", json={"model": "flux-schnell", "input": {**SMALL, "loras": [{"path": ink}]}},
                    headers=tenant.headers)
    job_id = resp.json["_id"]
    assert credits.balance(tenant.workspace_id) < before
    assert api.delete(f"/api/loras/{ink}", headers=tenant.headers).status_code == 200
    drain("DispatchFunction", "JobsQueue")
    drain("CompleteFunction", "ResultsQueue")
    job = JobStore().get(job_id)
    assert job.status == JobStatus.FAILED and job.error.code == "invalid_lora", job.error
    assert "deleted" in job.error.message and "loras[0]" in job.error.message
    assert job.refunded == job.cost and credits.balance(tenant.workspace_id) == before
