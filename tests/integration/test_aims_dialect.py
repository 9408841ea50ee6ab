"""The AI Media Studio dialect on the real api handler, through the local gateway's event translation, with
the dispatch and complete functions polling a moto server's queues in the background.

Seed 004's curl examples run as written (only the host changes): the vendor's model ids resolve through
aliases an operator configured in a DARKROOM_CATALOG_EXTRA file, and the reference image URLs point at a
local HTTP server instead of example.com (this machine has no internet).
"""

from __future__ import annotations

import io
import threading
from urllib.parse import urlsplit

import pytest
from PIL import Image

from functions.core import credits, uploads
from functions.core.catalog import get_catalog
from functions.core.jobs import JobStatus, JobStore
from functions.core.settings import get_settings
from functions.core.styles import get_styles
from tests.integration.conftest import fetch_media, serve_files

IMAGES = "/api/v1/images/generate"
VIDEOS = "/api/v1/videos/generate"
SMALL = {"prompt": "a lighthouse at dusk", "size": "256x256"}

# What an operator writes to serve the vendor's model ids: aliases onto catalog models, and a video model
# tuned for speed (4 steps on the same LTX weights) for the veo ids.
CATALOG_EXTRA = """
models:
  - id: ltx-video-fast
    name: LTX-Video fast
    task: text-to-video
    family: ltx
    repo: Lightricks/LTX-Video
    modal_class: LTXVideoGenerator
    credits_per_second: 2
    defaults: {steps: 4, guidance: 3.0, width: 512, height: 320, fps: 24, duration: 4}
    max_steps: 50
    max_side: 1280
    multiple_of: 32
    durations: [2, 4, 6]
    frame_multiple: 8
    max_frames: 257
    edit_model: ltx-video-fast-i2v
  - id: ltx-video-fast-i2v
    name: LTX-Video fast image-to-video
    task: image-to-video
    family: ltx-i2v
    repo: Lightricks/LTX-Video
    modal_class: LTXVideoGenerator
    credits_per_second: 2
    defaults: {steps: 4, guidance: 3.0, width: 512, height: 320, fps: 24, duration: 4}
    max_steps: 50
    max_side: 1280
    multiple_of: 32
    durations: [2, 4, 6]
    frame_multiple: 8
    max_frames: 257
aliases:
  openai/gpt-image-2: flux2-klein
  fal-ai/gpt-image-1.5: sdxl-turbo
  fal-ai/nano-banana-2: flux-schnell
  fal-ai/veo3.1/fast: ltx-video-fast
  fal-ai/veo3.1/fast/image-to-video: ltx-video-fast-i2v
"""


@pytest.fixture(autouse=True)
def roomy_wait(world, monkeypatch):
    """Tiny pipelines on a busy 2-core machine: give the synchronous wait room (the timeout has its test)."""
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_settings.cache_clear()


@pytest.fixture
def vendor_catalog(tmp_path, monkeypatch):
    path = tmp_path / "catalog-extra.yaml"
    path.write_text(CATALOG_EXTRA)
    monkeypatch.setenv("DARKROOM_CATALOG_EXTRA", str(path))
    get_catalog.cache_clear()
    yield get_catalog()
    monkeypatch.delenv("DARKROOM_CATALOG_EXTRA")
    get_catalog.cache_clear()


def png(width: int = 96, height: int = 64, color=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_host():
    """A local web server with reference images, standing in for example.com."""
    files = {"/your-image.jpg": png(color=(30, 120, 220)), "/image1.jpg": png(color=(220, 200, 30)),
             "/image2.jpg": png(color=(30, 200, 90)), "/keyframe.png": png(color=(120, 40, 160))}
    with serve_files({path: (data, "image/png") for path, data in files.items()}) as url:
        yield url


def ok(resp) -> dict:
    assert resp.status_code == 200, (resp.status_code, resp.get_data(as_text=True))
    return resp.json


def error_of(resp, status: int, *words: str) -> str:
    """`{"error": "…"}` with the status; the message names the field and says why (every word appears)."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert isinstance(resp.json.get("error"), str) and resp.json["error"], resp.json
    for word in words:
        assert word in resp.json["error"], (word, resp.json)
    return resp.json["error"]


def job_of(body: dict):
    gen_id = body["video"]["id"] if "video" in body else body["images"][0]["generation_id"]
    return JobStore().get(gen_id)


# ---------------------------------------------------------------- seed 004, as written

SEED_IMAGE_EXAMPLES = {
    "quick-start": {"prompt": "A beautiful sunset over mountains", "model": "openai/gpt-image-2", "n": 1},
    "public-sharing": {"prompt": "A stunning landscape photo", "model": "openai/gpt-image-2", "make_public": True},
    "single-image-edit": {"prompt": "Add a rainbow to the sky", "image_urls": ["{host}/your-image.jpg"],
                          "model": "openai/gpt-image-2", "size": "1024x1024"},
    "multiple-references": {"prompt": "Combine these images into a beautiful collage",
                            "image_urls": ["{host}/image1.jpg", "{host}/image2.jpg"], "model": "openai/gpt-image-2"},
    "style-preset": {"prompt": "A samurai warrior standing on a cliff", "style_slug": "anime-style",
                     "size": "1024x1536", "quality": "high"},
    "model-options": {"prompt": "A futuristic cityscape at night", "model": "openai/gpt-image-2", "n": 2,
                      "size": "1536x1024", "quality": "high", "output_format": "jpeg", "make_public": True},
    "openai-model": {"prompt": "A cute robot holding a flower", "model": "fal-ai/gpt-image-1.5", "size": "1792x1024",
                     "quality": "hd", "background": "transparent", "style": "vivid"},
}


@pytest.mark.parametrize("name", list(SEED_IMAGE_EXAMPLES))
def test_seed_image_examples(name, world, api, tenant, pipeline, vendor_catalog, image_host):
    request = {k: ([u.format(host=image_host) for u in v] if k == "image_urls" else v)
               for k, v in SEED_IMAGE_EXAMPLES[name].items()}
    before = credits.balance(tenant.workspace_id)
    body = ok(api.post(IMAGES, json=request, headers={"Authorization": f"Bearer {tenant.key}",
                                                      "Content-Type": "application/json"}))
    assert body["success"] is True and len(body["images"]) == request.get("n", 1)
    job = job_of(body)
    model = vendor_catalog.model(request.get("model") or vendor_catalog.tool("create-image").default_model)
    if "image_urls" in request:
        assert job.model == model.edit_model and len(job.params["references"]) == len(request["image_urls"])
    else:
        assert job.model == model.id
    fmt, ext = {"jpeg": ("JPEG", "jpg")}.get(request.get("output_format"), ("PNG", "png"))
    for image in body["images"]:
        assert image["status"] == "completed"
        if request.get("make_public"):
            assert f"/shared/media/{job.id}-" in image["share_url"]
            # Served without a key.
            assert api.get(urlsplit(image["share_url"]).path).status_code == 200
        else:
            assert "share_url" not in image
        decoded = Image.open(io.BytesIO(fetch_media(api, image["url"])))
        assert decoded.format == fmt and image["url"].split("?")[0].endswith("." + ext)
        if "size" in request:
            assert "x".join(map(str, decoded.size)) == request["size"]
    assert body["credits_used"] == job.cost == vendor_catalog.model(job.model).price(job.params)
    assert body["credits_remaining"] == before - job.cost == credits.balance(tenant.workspace_id)
    if "style_slug" in request:
        assert body["style_applied"] == "anime-style"
        assert job.params["prompt"] == get_styles().get("anime-style").render(request["prompt"])
    # Everything sent is recorded with the job (make_public, background, style…).
    assert job.input == {**{k: v for k, v in request.items()}, "n": request.get("n", 1),
                         "make_public": request.get("make_public", False)}


def test_seed_video_examples(world, api, tenant, pipeline, vendor_catalog, image_host):
    text = ok(api.post(VIDEOS, json={"prompt": "A cinematic drone shot flying through snowy mountains at sunrise",
                                     "model": "fal-ai/veo3.1/fast", "duration": 4, "aspect_ratio": "16:9"},
                       headers={"X-API-Key": tenant.key}))
    video = text["video"]
    assert text["success"] is True and video["status"] == "completed" and video["model"] == "ltx-video-fast"
    assert (video["duration"], video["aspect_ratio"], video["audio"]) == (4, "16:9", False)
    assert fetch_media(api, video["url"])[4:8] == b"ftyp"  # an mp4
    assert text["credits_used"] == job_of(text).cost == get_catalog().model("ltx-video-fast").price(
        job_of(text).params) and text["credits_remaining"] == credits.balance(tenant.workspace_id)
    assert video["frames"] == 97 and abs(video["width"] / video["height"] - 16 / 9) < 0.15

    still = ok(api.post(VIDEOS, json={"prompt": "Turn this still image into a slow cinematic reveal",
                                      "model": "fal-ai/veo3.1/fast/image-to-video", "duration": 6,
                                      "image_url": f"{image_host}/keyframe.png"}, headers={"X-API-Key": tenant.key}))
    job = job_of(still)
    assert still["video"]["duration"] == 6 and job.model == "ltx-video-fast-i2v" and job.task == "image-to-video"
    assert job.params["references"] == [{"url": f"{image_host}/keyframe.png"}]
    # Readable through the native API, like every job.
    native = ok(api.get(f"/api/generations/{job.id}", headers=tenant.headers))
    assert native["status"] == "success" and native["type"] == "video" and native["payload"]["duration"] == 6


def test_unaliased_vendor_model_lists_the_available_ones(api, tenant):
    message = error_of(api.post(IMAGES, json={"prompt": "x", "model": "fal-ai/recraft/v3"}, headers=tenant.headers),
                       400, "model", "fal-ai/recraft/v3", "flux-schnell", "flux2-klein")
    assert "ltx-video" not in message
    error_of(api.post(VIDEOS, json={"prompt": "x", "model": "fal-ai/kling-video/v2"}, headers=tenant.headers), 400,
             "model", "wan2.2-ti2v-5b", "ltx-video")


def test_the_documented_vendor_ids_are_answered_by_default(api, tenant):
    """AI Media Studio's examples name openai/gpt-image-2, fal-ai/nano-banana-2 and fal-ai/veo3.1/fast: each is
    an alias of a catalog model free for commercial use, so code written against the vendor runs unchanged."""
    catalog = get_catalog()
    for name, kind in (("openai/gpt-image-2", "image"), ("fal-ai/nano-banana-2", "image"),
                       ("fal-ai/veo3.1/fast", "video")):
        model = catalog.model(name)
        assert model is not None and model.type == kind and model.commercial_use, name


# ---------------------------------------------------------------- images


def test_resolution_aspect_ratio_and_size(world, api, tenant, monkeypatch):
    # Translation only: no pipeline runs, so each call answers 504 right after submit, with the job's id.
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "0.05")
    get_settings.cache_clear()

    def post(**body):
        return api.post(IMAGES, json={"prompt": "x", "model": "sdxl-turbo", **body}, headers=tenant.headers)

    cases = [({"aspect_ratio": "1:2", "size": "256x256"}, (368, 720)),  # aspect_ratio wins over size
             ({"resolution": "0.5K", "aspect_ratio": "16:9"}, (512, 288)),
             ({"resolution": "1K", "size": "512x256"}, (1024, 512)),
             ({"size": "384x256"}, (384, 256)),
             ({}, (512, 512))]
    for body, (width, height) in cases:
        resp = post(**body)
        assert resp.status_code == 504, resp.json
        job = JobStore().get(resp.json["job_id"])
        assert (job.params["width"], job.params["height"]) == (width, height), body
    error_of(post(resolution="4K"), 400, "resolution", "4096")
    error_of(post(resolution="8K"), 400, "resolution")


def test_quality_style_and_recorded_options(world, api, tenant, pipeline):
    body = ok(api.post(IMAGES, json={**SMALL, "model": "flux-schnell", "quality": "high", "style": "natural",
                                     "style_slug": "cinematic", "seed": 5, "safety_tolerance": 2,
                                     "limit_generations": True, "enable_web_search": False, "background": "opaque"},
                       headers=tenant.headers))
    job = job_of(body)
    styles = get_styles()
    assert body["style_applied"] == "cinematic"
    assert job.params["prompt"] == styles.get("natural").render(styles.get("cinematic").render(SMALL["prompt"]))
    assert job.params["steps"] > get_catalog().model("flux-schnell").defaults.steps and job.params["seed"] == 5
    assert job.input["safety_tolerance"] == "2" and job.input["limit_generations"] is True
    assert job.input["background"] == "opaque" and job.dialect == "aims"


def test_sync_mode_returns_data_uris(world, api, tenant, pipeline):
    body = ok(api.post(IMAGES, json={**SMALL, "model": "sdxl-turbo", "sync_mode": True, "output_format": "webp"},
                       headers=tenant.headers))
    url = body["images"][0]["url"]
    assert url.startswith("data:image/webp;base64,")
    import base64

    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).format == "WEBP"


def test_batch_ids_and_upload_references(world, api, tenant, new_tenant, pipeline):
    stored = uploads.store(tenant.workspace_id, "mine.png", "image/png", png())
    body = ok(api.post(IMAGES, json={**SMALL, "model": "sdxl-turbo", "n": 3, "image_urls": [stored["reference"]]},
                       headers=tenant.headers))
    job = job_of(body)
    assert [i["id"] for i in body["images"]] == [f"{job.id}-{i}" for i in range(3)]
    assert job.model == "sdxl-turbo-edit" and job.params["references"] == [
        {"upload_key": f"{tenant.workspace_id}/uploads/{stored['id']}"}]
    # Another workspace cannot point a job at this workspace's upload: it resolves under its own prefix, where
    # there is none, and that is a 400 before any job is made.
    other = new_tenant()
    message = error_of(api.post(IMAGES, json={**SMALL, "model": "sdxl-turbo", "image_urls": [stored["reference"]]},
                                headers=other.headers), 400, "image_urls")
    assert "not an upload of this workspace" in message
    assert JobStore().list_for_workspace(other.workspace_id)[1] == 0
    assert credits.balance(other.workspace_id) == get_settings().default_credits


def test_image_errors(api, tenant, new_tenant):
    cases = [
        ({"size": "256x256"}, 400, ("prompt",)),
        ({**SMALL, "n": 9}, 400, ("n",)),
        ({**SMALL, "size": "100x100"}, 400, ("size", "100x100")),
        ({**SMALL, "aspect_ratio": "wide"}, 400, ("aspect_ratio",)),
        ({**SMALL, "resolution": "3K"}, 400, ("resolution",)),
        ({**SMALL, "quality": "ultra"}, 400, ("quality",)),
        ({**SMALL, "style": "baroque"}, 400, ("style",)),
        ({**SMALL, "style_slug": "no-such-style"}, 400, ("style_slug", "no-such-style", "anime-style")),
        ({**SMALL, "output_format": "gif"}, 400, ("output_format",)),
        ({**SMALL, "image_urls": [f"https://example.com/{i}.png" for i in range(11)]}, 400, ("image_urls", "10")),
        ({**SMALL, "image_urls": ["ftp://example.com/a.png"]}, 400, ("image_urls.0",)),
        ({**SMALL, "image_urls": ["http://10.0.0.1/a.png"]}, 400, ("image_urls.0",)),
        ({**SMALL, "safety_tolerance": "9"}, 400, ("safety_tolerance",)),
        ({**SMALL, "colour": "red"}, 400, ("colour",)),
        ({**SMALL, "model": "ltx-video"}, 400, ("model", "ltx-video")),
        ({**SMALL, "model": "flux-schnell-edit"}, 400, ("image_urls",)),
    ]
    for body, status, words in cases:
        error_of(api.post(IMAGES, json=body, headers=tenant.headers), status, *words)
    error_of(api.post(IMAGES, json=SMALL), 401, "API key")
    error_of(api.post(IMAGES, json=SMALL, headers={"Authorization": "Bearer aims_nope"}), 401, "Invalid API key")
    reader = new_tenant(scopes=["media:read", "video:generate"])
    error_of(api.post(IMAGES, json=SMALL, headers=reader.headers), 403, "image:generate")
    broke = new_tenant()
    credits.add(broke.workspace_id, -credits.balance(broke.workspace_id))
    error_of(api.post(IMAGES, json=SMALL, headers=broke.headers), 402, "credits")
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 0
    assert api.get("/api/v1/nowhere", headers=tenant.headers).status_code == 404


def test_timeout_and_failure(world, api, tenant, dispatcher, drain, monkeypatch):
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "0.2")
    get_settings.cache_clear()
    resp = api.post(IMAGES, json=SMALL, headers=tenant.headers)
    message = error_of(resp, 504, resp.json.get("job_id", "?"), "/api/generations/")
    assert resp.json["code"] == "timeout"
    drain("DispatchFunction", "JobsQueue")
    drain("CompleteFunction", "ResultsQueue")
    assert JobStore().get(resp.json["job_id"]).status == JobStatus.SUCCEEDED, message

    from gpu import worker

    monkeypatch.setattr(worker, "execute", lambda request, store, reports=None: (_ for _ in ()).throw(RuntimeError("GPU lost")))
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "60")
    get_settings.cache_clear()
    before = credits.balance(tenant.workspace_id)
    stop = threading.Event()

    def run_pipeline():
        while not stop.is_set():
            drain("DispatchFunction", "JobsQueue")
            drain("CompleteFunction", "ResultsQueue")
            stop.wait(0.1)

    thread = threading.Thread(target=run_pipeline, daemon=True)
    thread.start()
    try:
        resp = api.post(IMAGES, json={**SMALL, "n": 2}, headers=tenant.headers)
    finally:
        stop.set()
        thread.join()
    error_of(resp, 500, "GPU lost", "refunded", resp.json.get("job_id", "?"))
    assert credits.balance(tenant.workspace_id) == before


# ---------------------------------------------------------------- videos


def test_video_translation_and_refusals(world, api, tenant, monkeypatch):
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "0.05")
    get_settings.cache_clear()

    def submitted(**body):
        resp = api.post(VIDEOS, json={"prompt": "waves", "model": "ltx-video", **body}, headers=tenant.headers)
        assert resp.status_code == 504, resp.json
        return JobStore().get(resp.json["job_id"])

    snapped = submitted(duration=5, cfg_scale=4.5, negative_prompt="blur", seed=3, enhance_prompt=True,
                        auto_fix=False, safety_tolerance="4", make_public=True)
    model = get_catalog().model("ltx-video")
    assert snapped.model == "ltx-video" and snapped.params["duration"] == 4  # 5 is as near 4 as 6: the cheaper
    # enhance_prompt runs the prompt enhancer, priced on top of the video.
    assert snapped.params["enhance_prompt"] is True
    assert snapped.cost == pytest.approx(model.price(snapped.params) + get_catalog().prompt_enhancer.credits)
    assert (snapped.params["guidance"], snapped.params["negative_prompt"], snapped.params["seed"]) == (4.5, "blur", 3)
    assert snapped.input["enhance_prompt"] is True and snapped.input["make_public"] is True
    assert submitted(duration=100).params["duration"] == max(model.durations)
    assert submitted().params["duration"] == model.defaults.duration
    sized = submitted(resolution="256p", aspect_ratio="16:9")
    assert (sized.params["width"], sized.params["height"]) == (448, 256)
    first = submitted(first_frame_url="https://example.com/a.png", duration=2)
    assert first.model == model.edit_model and first.params["references"] == [{"url": "https://example.com/a.png"}]

    for body, words in [
        ({"audio": True}, ("audio", "wan2.2-ti2v-5b", "ltx-2")),
        ({"extend_video_url": "https://example.com/v.mp4"}, ("extend_video_url", "ltx-2")),
        ({"image_url": "https://example.com/a.png", "last_frame_url": "https://example.com/b.png"},
         ("last_frame_url", "wan2.1-flf2v-14b")),
        ({"image_url": "https://example.com/a.png", "first_frame_url": "https://example.com/b.png"},
         ("first_frame_url",)),
        ({"duration": 0}, ("duration",)),
        ({"cfg_scale": 99}, ("cfg_scale",)),
        ({"resolution": "huge"}, ("resolution",)),
        ({"resolution": "1080p"}, ("resolution", "1280")),
        ({"model": "flux-schnell"}, ("model", "ltx-video")),
        ({"model": "ltx-video-i2v"}, ("image_url", "required")),
        ({"image_url": "file:///etc/passwd"}, ("image_url",)),
    ]:
        error_of(api.post(VIDEOS, json={"prompt": "waves", **body}, headers=tenant.headers), 400, *words)
    error_of(api.post(VIDEOS, json={"duration": 4}, headers=tenant.headers), 400, "prompt")


# ---------------------------------------------------------------- discovery


def test_model_discovery_and_styles(api, tenant):
    catalog = get_catalog()
    images = ok(api.get(IMAGES, headers=tenant.headers))
    assert images["success"] is True and images["defaults"]["model"] == catalog.tool("create-image").default_model
    by_id = {m["id"]: m for m in images["available_models"]}
    assert set(by_id) == {m.id for m in catalog.models if m.type == "image"}
    assert by_id["flux-dev"]["credit_cost"] == 3 and by_id["flux-dev"]["model_type"] == "text-to-image"
    assert by_id["flux-schnell"]["defaults"]["size"] == "1024x1024" and "name" in by_id["flux-schnell"]

    videos = ok(api.get(VIDEOS, headers=tenant.headers))
    listed = {m["id"]: m for m in videos["available_models"]}
    ltx = listed["ltx-video"]
    assert ltx["credit_unit"] == "second" and ltx["durations"] == [2, 4, 6] and ltx["audio"] is False
    assert listed["ltx-2"]["audio"] is True and listed["ltx-2"]["capabilities"]["extend"] is True
    assert videos["defaults"] == {"model": "wan2.2-ti2v-5b", "duration": 5, "aspect_ratio": "20:11", "audio": False}

    assert {m["id"] for m in ok(api.get("/api/v1/models?type=video", headers=tenant.headers))["models"]} == {
        m.id for m in catalog.models if m.type == "video"}
    assert len(ok(api.get("/api/v1/models", headers=tenant.headers))["models"]) == len(catalog.models)
    error_of(api.get("/api/v1/models?type=audio", headers=tenant.headers), 400, "type")

    styles = ok(api.get("/api/v1/styles", headers=tenant.headers))["styles"]
    slugs = [s["slug"] for s in styles]
    for slug in ("anime-style", "cyberpunk-style", "watercolor-style", "photorealistic", "cinematic", "pixel-art",
                 "oil-painting", "3d-render", "line-art", "fantasy-art", "comic-book", "low-poly", "vivid",
                 "natural"):
        assert slug in slugs
    assert all("{prompt}" in s["prompt_template"] for s in styles)
    assert ok(api.get("/api/styles", headers=tenant.headers))["data"] == styles
