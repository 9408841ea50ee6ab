"""Several reference images composed into one output (FLUX.2 [klein]'s multi-reference editing), through each
dialect on the real api handler, the worker running the tiny pipeline: AI Media Studio's "Combine these images
into a beautiful collage", OpenAI's several `image[]` with a mask, and the refusals (too many references, a
strength the model has no use for)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from functions.core import credits, uploads
from functions.core.catalog import get_catalog
from functions.core.jobs import JobStatus, JobStore
from functions.core.settings import get_settings
from tests.integration.conftest import fetch_media

IMAGES = "/api/v1/images/generate"
COLLAGE = "Combine these images into a beautiful collage"


@pytest.fixture(autouse=True)
def roomy_wait(world, monkeypatch):
    """Tiny pipelines on a busy 2-core machine: give the synchronous wait room (the timeout has its test)."""
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_settings.cache_clear()


def png(color, size=(96, 64), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def references(tenant, count: int, size=(96, 64)) -> list[str]:
    colors = [(220, 30, 30), (30, 200, 60), (40, 60, 230), (240, 220, 20), (200, 40, 200)]
    return [uploads.store(tenant.workspace_id, f"ref{i}.png", "image/png", png(colors[i], size))["reference"]
            for i in range(count)]


def test_a_collage_of_three_images_composes_them_on_the_multi_reference_model(world, api, tenant, pipeline):
    refs = references(tenant, 3)
    before = credits.balance(tenant.workspace_id)
    resp = api.post(IMAGES, json={"prompt": COLLAGE, "model": "flux2-klein", "image_urls": refs, "size": "512x512"},
                    headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.json
    job = JobStore().get(body["images"][0]["generation_id"])
    assert job.status == JobStatus.SUCCEEDED and job.model == "flux2-klein-edit"
    assert len(job.params["references"]) == 3 and "strength" not in job.params
    # Every reference is work for the model: priced as three more images of the output's size.
    model = get_catalog().model("flux2-klein-edit")
    assert job.cost == model.price(job.params) > model.price({**job.params, "references": []})
    assert body["credits_used"] == job.cost == before - credits.balance(tenant.workspace_id)
    image = Image.open(io.BytesIO(fetch_media(api, body["images"][0]["url"])))
    assert image.size == (512, 512)


# The Qwen editor's VAE encodes each reference at a megapixel whatever its size (seconds each on this CPU): one here,
# several in tests/gpu/test_flux2_dev_and_qwen_edit_plus.py.
@pytest.mark.parametrize("model, served_by, count", [("flux2-dev", "flux2-dev-edit", 3),
                                                     ("qwen-image-edit-plus", "qwen-image-edit-plus", 1)])
def test_the_other_multi_reference_models_compose_through_each_dialect(world, api, tenant, pipeline, model, served_by,
                                                                       count):
    """FLUX.2 [dev] (a text model that switches to its editor) and Qwen-Image-Edit-2509 (an editor only): AI Media
    Studio's image_urls, and OpenAI's image[]."""
    refs = references(tenant, count)
    resp = api.post(IMAGES, json={"prompt": COLLAGE, "model": model, "image_urls": refs, "size": "256x256"},
                    headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    job = JobStore().get(resp.json["images"][0]["generation_id"])
    assert job.status == JobStatus.SUCCEEDED and job.model == served_by and len(job.params["references"]) == count
    assert Image.open(io.BytesIO(fetch_media(api, resp.json["images"][0]["url"]))).size == (256, 256)

    form = {"prompt": "the red one in a green room", "model": model, "size": "256x256",
            "image[]": [(io.BytesIO(png((220, 30, 30))), "red.png", "image/png")]}
    resp = api.post("/v1/images/edits", data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["model"] == served_by and len(resp.json["data"]) == 1


def test_an_editor_without_a_text_model_refuses_a_prompt_alone(world, api, tenant):
    resp = api.post(IMAGES, json={"prompt": "a fox", "model": "qwen-image-edit-plus"}, headers=tenant.headers)
    assert resp.status_code == 400, resp.json
    assert "image_urls: is required" in resp.json["error"] and "edits the images" in resp.json["error"], resp.json


def test_more_references_than_the_model_composes_is_a_400_naming_image_urls(world, api, tenant):
    refs = references(tenant, 5)
    resp = api.post(IMAGES, json={"prompt": COLLAGE, "model": "flux2-klein", "image_urls": refs, "size": "256x256"},
                    headers=tenant.headers)
    assert resp.status_code == 400, resp.json
    assert "image_urls" in resp.json["error"] and "at most 4" in resp.json["error"], resp.json
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 0


def test_strength_is_refused_where_the_model_composes_whole_images(world, api, tenant):
    resp = api.post("/api/generate", json={"model": "flux2-klein-edit", "input": {
        "prompt": "x", "image_urls": references(tenant, 2), "strength": 0.5}}, headers=tenant.headers)
    assert resp.status_code == 400 and resp.json["errors"][0]["field"] == "input.strength", resp.json
    assert "no strength" in resp.json["errors"][0]["message"]


def test_openai_edit_with_several_images_and_a_mask_inpaints_the_first_with_the_rest_as_references(
        world, api, tenant, pipeline):
    """OpenAI's edits: `image[]` several times, the mask applying to the first."""
    side = 256
    source = png((90, 90, 90), (side, side))
    mask = Image.new("RGBA", (side, side), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (64, 64, 192, 192))  # transparent: repaint here
    mask_bytes = io.BytesIO()
    mask.save(mask_bytes, format="PNG")
    mask_bytes.seek(0)
    form = {"prompt": "put the red and green things in the middle", "model": "flux2-klein", "size": f"{side}x{side}",
            "response_format": "b64_json",
            "image[]": [(io.BytesIO(source), "source.png", "image/png"),
                        (io.BytesIO(png((220, 30, 30))), "red.png", "image/png"),
                        (io.BytesIO(png((30, 200, 60))), "green.png", "image/png")],
            "mask": (mask_bytes, "mask.png", "image/png")}
    resp = api.post("/v1/images/edits", data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["model"] == "flux2-klein-edit"
    import base64

    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(resp.json["data"][0]["b64_json"]))).convert("RGB"), int)
    kept = np.ones((side, side), bool)
    kept[64:192, 64:192] = False
    assert np.abs(out[kept] - 90).max() == 0  # outside the mask: the first image's own pixels
    assert np.abs(out[~kept] - 90).mean() > 5  # inside: repainted
