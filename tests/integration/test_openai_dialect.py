"""The OpenAI-compatible dialect (ArtAPI) on the real api handler, through the local gateway's event
translation, with the dispatch and complete functions polling a moto server's queues in the background."""

from __future__ import annotations

import base64
import io
import re

import boto3
import pytest
from PIL import Image

from functions.core import credits
from functions.core.catalog import get_catalog
from functions.core.jobs import JobStatus, JobStore
from functions.core.settings import get_settings
from functions.core.styles import get_styles
from tests.integration.conftest import fetch_media, serve_files

GEN = "/v1/images/generations"
EDIT = "/v1/images/edits"
SMALL = {"prompt": "a lighthouse at dusk", "size": "256x256"}
OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture(autouse=True)
def roomy_wait(world, monkeypatch):
    """Tiny pipelines on a busy 2-core machine: give the synchronous wait room (the timeout has its test)."""
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "120")
    get_settings.cache_clear()


def png(width: int = 64, height: int = 64, color=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA" if len(color) == 4 else "RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def error_of(resp, status: int, param: str | None, code: str | None = None, type_: str | None = None) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert set(resp.json) == {"error"}, resp.json
    error = resp.json["error"]
    assert OPENAI_ERROR_KEYS <= set(error), error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    if type_ is not None:
        assert error["type"] == type_, error
    return error


def job_id_of(url: str) -> str:
    return re.search(r"/generations/([0-9a-f]{24})/", url).group(1)


def s3_image(api, url: str) -> Image.Image:
    return Image.open(io.BytesIO(fetch_media(api, url)))


# ---------------------------------------------------------------- /v1/images/generations


def test_generate_url_batch(world, api, tenant, pipeline):
    resp = api.post(GEN, json={**SMALL, "n": 2, "model": "flux-schnell"}, headers=tenant.headers)
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert isinstance(body["created"], int) and len(body["data"]) == 2
    assert (body["size"], body["output_format"], body["quality"], body["background"]) == (
        "256x256", "png", "medium", "opaque")
    # ArtAPI's default style is vivid: the revised prompt is the vivid preset around the caller's prompt.
    vivid = get_styles().get("vivid").render(SMALL["prompt"])
    for item in body["data"]:
        # No response_format: both the link and the bytes, while they fit a response.
        assert set(item) == {"url", "b64_json", "revised_prompt"} and item["revised_prompt"] == vivid
        image = s3_image(api, item["url"])
        assert image.format == "PNG" and image.size == (256, 256)
        assert base64.b64decode(item["b64_json"]) == fetch_media(api, item["url"])
    job = JobStore().get(job_id_of(body["data"][0]["url"]))
    assert job.dialect == "openai" and job.status == JobStatus.SUCCEEDED and job.params["n"] == 2
    assert job.input["prompt"] == SMALL["prompt"] and job.params["prompt"] == vivid
    # Readable through the native API too, with the OpenAI request as its payload.
    native = api.get(f"/api/generations/{job.id}", headers=tenant.headers).json
    assert native["status"] == "success" and len(native["outputs"]) == 2 and native["payload"]["n"] == 2


def test_generate_b64_json_jpeg_natural(world, api, tenant, pipeline):
    resp = api.post(GEN, json={**SMALL, "response_format": "b64_json", "output_format": "jpeg",
                               "output_compression": 80, "style": "natural", "quality": "low"}, headers=tenant.headers)
    assert resp.status_code == 200, resp.json
    (item,) = resp.json["data"]
    assert set(item) == {"b64_json", "revised_prompt"}
    image = Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
    assert image.format == "JPEG" and image.size == (256, 256)
    assert item["revised_prompt"] == get_styles().get("natural").render(SMALL["prompt"])
    assert resp.json["output_format"] == "jpeg" and resp.json["quality"] == "low"


def test_presets_quality_and_seed(world, api, tenant, pipeline):
    model = get_catalog().model("sdxl-turbo")  # a negative prompt needs a model with guidance, and guidance on
    body = {**SMALL, "model": "sdxl-turbo", "guidance": 2.0, "style": "pixel-art", "quality": "hd", "seed": 7,
            "negative_prompt": "text"}
    first = api.post(GEN, json=body, headers=tenant.headers)
    assert first.status_code == 200, first.json
    assert first.json["data"][0]["revised_prompt"] == get_styles().get("pixel-art").render(SMALL["prompt"])
    job = JobStore().get(job_id_of(first.json["data"][0]["url"]))
    assert model.defaults.steps < job.params["steps"] <= model.max_steps
    assert job.params["negative_prompt"].startswith("text, ") and job.params["seed"] == 7
    assert first.json["quality"] == "high"
    # style_slug (a Darkroom extension) and style compose: the preset, then the tone.
    both = api.post(GEN, json={**SMALL, "style_slug": "watercolor-style", "style": "vivid"}, headers=tenant.headers)
    styles = get_styles()
    assert both.json["data"][0]["revised_prompt"] == styles.get("vivid").render(
        styles.get("watercolor-style").render(SMALL["prompt"]))


def test_aliases_resolve_and_size_auto_is_the_model_default(world, api, tenant, pipeline):
    resp = api.post(GEN, json={"prompt": "a fox", "model": "stabilityai/sdxl-turbo", "size": "auto"},
                    headers=tenant.headers)
    assert resp.status_code == 200, resp.json
    assert resp.json["size"] == "512x512"
    assert JobStore().get(job_id_of(resp.json["data"][0]["url"])).model == "sdxl-turbo"


def test_bad_requests_name_the_param(api, tenant):
    cases = [
        ({**SMALL, "size": "100x100"}, "size", "invalid_size"),
        ({**SMALL, "size": "huge"}, "size", "invalid_size"),
        ({**SMALL, "size": "4096x4096"}, "size", "invalid_size"),
        ({**SMALL, "model": "dall-e-9"}, "model", "model_not_found"),
        ({**SMALL, "prompt": "x" * 4001}, "prompt", "prompt_too_long"),
        ({"size": "256x256"}, "prompt", "required"),
        ({**SMALL, "n": 11}, "n", None),
        ({**SMALL, "n": 0}, "n", None),
        ({**SMALL, "quality": "ultra"}, "quality", None),
        ({**SMALL, "response_format": "png"}, "response_format", None),
        ({**SMALL, "style": "baroque"}, "style", "style_not_found"),
        ({**SMALL, "style_slug": "nope"}, "style_slug", "style_not_found"),
        ({**SMALL, "output_format": "gif"}, "output_format", "unsupported_parameter"),
        ({**SMALL, "stream": True}, "stream", "unsupported_parameter"),
        ({**SMALL, "svg": {"model": "x"}}, "svg", "unsupported_parameter"),
        ({**SMALL, "output_compression": 101}, "output_compression", None),
        ({**SMALL, "colour": "red"}, "colour", "unknown_field"),
        ({**SMALL, "model": "flux-schnell-edit"}, "image", "required"),
        ({**SMALL, "model": "ltx-video"}, "model", "model_not_found"),
    ]
    for body, param, code in cases:
        error = error_of(api.post(GEN, json=body, headers=tenant.headers), 400, param, code, "invalid_request_error")
        assert param in error["message"], error
    unknown = error_of(api.post(GEN, json={**SMALL, "model": "dall-e-9"}, headers=tenant.headers), 400, "model")
    assert "flux-schnell" in unknown["message"] and "sdxl-turbo" in unknown["message"]
    stream = error_of(api.post(GEN, json={**SMALL, "stream": True}, headers=tenant.headers), 400, "stream")
    assert "not supported" in stream["message"]
    error_of(api.post(GEN, data="{nope", headers={**tenant.headers, "Content-Type": "application/json"}), 400,
             None, "invalid_json")
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 0


def test_auth_scope_and_credit_errors(api, new_tenant):
    error_of(api.post(GEN, json=SMALL), 401, None, "missing_api_key", "authentication_error")
    error_of(api.post(GEN, json=SMALL, headers={"Authorization": "Bearer sk-wrong"}), 401, None, "invalid_api_key",
             "authentication_error")
    reader = new_tenant(scopes=["media:read"])
    forbidden = error_of(api.post(GEN, json=SMALL, headers=reader.headers), 403, None, "insufficient_scope",
                         "permission_error")
    assert "image:generate" in forbidden["message"]
    broke = new_tenant()
    credits.add(broke.workspace_id, -credits.balance(broke.workspace_id))
    error_of(api.post(GEN, json={**SMALL, "n": 2}, headers=broke.headers), 402, None, "insufficient_quota",
             "billing_error")
    assert JobStore().list_for_workspace(broke.workspace_id)[1] == 0


def test_timeout_carries_the_job_id_and_the_job_goes_on(world, api, tenant, dispatcher, drain, monkeypatch):
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "0.3")
    get_settings.cache_clear()
    headers = {**tenant.headers, "Idempotency-Key": "render-1"}
    resp = api.post(GEN, json=SMALL, headers=headers)
    error = error_of(resp, 504, None, "timeout", "api_error")
    job_id = error["job_id"]
    assert job_id in error["message"] and f"/api/generations/{job_id}" in error["message"]
    # The OpenAI SDK would otherwise resubmit (a new job, charged again) on a 5xx.
    assert resp.headers["x-should-retry"] == "false"
    assert api.get(f"/api/generations/{job_id}", headers=tenant.headers).json["status"] == "pending"
    assert drain("DispatchFunction", "JobsQueue") == 1 and drain("CompleteFunction", "ResultsQueue") == 2
    assert api.get(f"/api/generations/{job_id}", headers=tenant.headers).json["status"] == "success"
    # The same request with the same Idempotency-Key joins that job instead of starting another.
    again = api.post(GEN, json=SMALL, headers=headers)
    assert again.status_code == 200 and job_id_of(again.json["data"][0]["url"]) == job_id
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 1


def test_failed_generation_is_an_upstream_error_and_refunded(world, api, tenant, pipeline, monkeypatch):
    from gpu import worker

    def broken(request, store, reports=None):
        raise RuntimeError("the GPU fell over")

    monkeypatch.setattr(worker, "execute", broken)
    before = credits.balance(tenant.workspace_id)
    error = error_of(api.post(GEN, json={**SMALL, "n": 3}, headers=tenant.headers), 500, None, "upstream_error",
                     "api_error")
    assert "the GPU fell over" in error["message"] and error["job_id"] in error["message"]
    assert "refunded" in error["message"]
    assert credits.balance(tenant.workspace_id) == before
    assert JobStore().get(error["job_id"]).status == JobStatus.FAILED


# ---------------------------------------------------------------- /v1/images/edits


def test_edit_with_one_image_and_a_mask(world, api, tenant, pipeline):
    form = {"prompt": "make it blue", "size": "256x256", "n": "2", "response_format": "b64_json",
            "image": (io.BytesIO(png()), "photo.png", "image/png"),
            "mask": (io.BytesIO(png(color=(0, 0, 0, 0))), "mask.png", "image/png")}  # transparent: repaint all
    resp = api.post(EDIT, data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert resp.status_code == 200, resp.json
    assert len(resp.json["data"]) == 2
    for item in resp.json["data"]:
        assert Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).size == (256, 256)
    job = JobStore().list_for_workspace(tenant.workspace_id)[0][0]
    model = get_catalog().model(get_catalog().tool("edit-image").default_model)
    assert job.model == model.id and job.task == "image-to-image" and job.tool == "edit-image"
    assert job.input["image"][0].startswith("upload://") and job.input["mask"].startswith("upload://")
    assert job.params["references"] == [{"upload_key": f"{tenant.workspace_id}/uploads/"
                                                        f"{job.input['image'][0].removeprefix('upload://')}"}]
    assert job.input["n"] == 2 and job.input["prompt"] == "make it blue"
    assert job.params["mask"] == {"upload_key": f"{tenant.workspace_id}/uploads/"
                                                f"{job.input['mask'].removeprefix('upload://')}"}


def test_edit_with_several_images_octet_stream_and_a_named_model(world, api, tenant, pipeline):
    form = {"prompt": "combine them", "size": "256x256", "model": "flux2-klein", "style": "natural",
            "image[]": [(io.BytesIO(png(color=(10, 200, 10))), "a.png", "application/octet-stream"),
                        (io.BytesIO(png(color=(10, 10, 200))), "b.png", "image/png")]}
    resp = api.post(EDIT, data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert resp.status_code == 200, resp.json
    job = JobStore().get(job_id_of(resp.json["data"][0]["url"]))
    assert job.model == "flux2-klein-edit" and len(job.params["references"]) == 2
    assert s3_image(api, resp.json["data"][0]["url"]).size == (256, 256)


def test_edit_errors_name_the_param(world, api, tenant):
    def edit(form, **kw):
        return api.post(EDIT, data=form, headers=tenant.headers, content_type="multipart/form-data", **kw)

    image = lambda: (io.BytesIO(png()), "a.png", "image/png")
    error_of(edit({"prompt": "x"}), 400, "image", "required")
    error_of(edit({"prompt": "x", "image": "not a file"}), 400, "image", "invalid_type")
    error_of(edit({"prompt": "x", "image": (io.BytesIO(b"%PDF-1.4 hello"), "a.pdf", "application/pdf")}), 400,
             "image", "unsupported_type")
    error_of(edit({"image": image()}), 400, "prompt", "required")
    error_of(edit({"prompt": "x", "image": image(), "n": "lots"}), 400, "n")
    error_of(edit({"prompt": "x", "image": image(), "model": "nope"}), 400, "model", "model_not_found")
    error_of(edit({"prompt": "x", "image": image(), "size": "8x8"}), 400, "size", "invalid_size")
    error_of(edit({"prompt": "x", "image": [image() for _ in range(11)]}), 400, "image", "too_many_images")
    error_of(edit({"prompt": "x", "image": image(), "markup": image()}), 400, "markup", "unsupported_parameter")
    error_of(api.post(EDIT, json={"prompt": "x"}, headers=tenant.headers), 400, "images", "invalid_type")
    error_of(api.post(EDIT, data="prompt=x", headers={**tenant.headers, "Content-Type": "text/plain"}), 400,
             "content-type", "unsupported_media_type")
    error_of(api.post(EDIT, json={"prompt": "x", "images": [{"image_url": "data:image/png;base64,!!"}]},
                      headers=tenant.headers), 400, "images.0.image_url", "invalid_data_url")
    error_of(api.post(EDIT, json={"prompt": "x", "images": [{"file_id": "file-1"}]}, headers=tenant.headers), 400,
             "images.0.file_id", "unsupported_parameter")
    # Nothing was stored or submitted for any of them.
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 0
    s3 = boto3.client("s3", endpoint_url=world.endpoint, region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=world.physical["OutputsBucket"].ref, Prefix=f"{tenant.workspace_id}/")
    assert listed.get("KeyCount", 0) == 0


# ---------------------------------------------------------------- /v1/models


def test_models_list_and_retrieve(api, tenant):
    resp = api.get("/v1/models", headers=tenant.headers)
    assert resp.status_code == 200 and resp.json["object"] == "list"
    ids = [m["id"] for m in resp.json["data"]]
    image_models = [m.id for m in get_catalog().models if m.type == "image"]
    # The catalog's image models, then OpenAI's names it answers (n8n and Open WebUI pick from these).
    named = [a for a, target in get_catalog().aliases.items() if get_catalog().model(target).type == "image"]
    assert ids == image_models + named and "flux-schnell-edit" in ids and "fal-ai/veo3.1/fast" not in ids
    named = {m["id"]: m["darkroom_model"] for m in resp.json["data"]}
    assert named["dall-e-3"] == get_catalog().model("dall-e-3").id and named["flux-schnell"] == "flux-schnell"
    alias = api.get("/v1/models/gpt-image-1", headers=tenant.headers).json
    assert alias["id"] == "gpt-image-1" and alias["darkroom_model"] == get_catalog().model("gpt-image-1").id
    for entry in resp.json["data"]:
        assert entry["object"] == "model" and entry["owned_by"] == "darkroom" and isinstance(entry["created"], int)
    one = api.get("/v1/models/flux-schnell", headers=tenant.headers)
    assert one.status_code == 200 and one.json["id"] == "flux-schnell"
    error_of(api.get("/v1/models/dall-e-9", headers=tenant.headers), 404, None, "model_not_found",
             "invalid_request_error")
    error_of(api.get("/v1/models/ltx-video", headers=tenant.headers), 404, None, "model_not_found")


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_a_json_edit_takes_data_urls_and_http_urls(world, api, tenant, pipeline):
    """OpenAI's API takes edits as JSON too (`images: [{image_url}]`, `mask: {image_url}`): data: URLs are
    decoded and stored as uploads, http(s) URLs are fetched by the worker (SSRF-guarded; loopback locally)."""
    with serve_files({"/ref.png": (png(color=(20, 160, 20)), "image/png")}) as base:
        url = f"{base}/ref.png"
        mask = io.BytesIO()
        Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(mask, format="PNG")
        body = {"prompt": "blend them", "size": "256x256", "model": "flux2-klein", "n": 1,
                "images": [{"image_url": data_url(png())}, {"image_url": url}],
                "mask": {"image_url": data_url(mask.getvalue())}}
        resp = api.post(EDIT, json=body, headers=tenant.headers)
        assert resp.status_code == 200, resp.json
        job = JobStore().get(job_id_of(resp.json["data"][0]["url"]))
        refs = job.params["references"]
        assert refs[0]["upload_key"].startswith(f"{tenant.workspace_id}/uploads/") and refs[1] == {"url": url}
        assert job.params["mask"]["upload_key"].startswith(f"{tenant.workspace_id}/uploads/")
        # A mask of the wrong size, both data: URLs: refused before anything is stored, as a form's would be.
        small = io.BytesIO()
        Image.new("RGBA", (32, 32), (0, 0, 0, 0)).save(small, format="PNG")
        wrong = {**body, "images": [{"image_url": data_url(png())}], "mask": {"image_url": data_url(small.getvalue())}}
        error_of(api.post(EDIT, json=wrong, headers=tenant.headers), 400, "mask", "invalid_mask")
