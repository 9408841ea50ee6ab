"""Style presets and the synchronous dialects' pure parts: translations, error bodies, webhook payloads,
multipart parsing. No AWS: storage calls are replaced where a renderer would make one."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from functions.api.multipart import parse_form, sniff_content_type
from functions.core import links, storage
from functions.core.catalog import get_catalog
from functions.core.errors import (
    DarkroomError,
    FieldError,
    Forbidden,
    GatewayTimeout,
    PayloadTooLarge,
    PaymentRequired,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from functions.core.jobs import Job, JobError, JobStatus, Output
from functions.core.styles import apply_style, get_style, get_styles, style_defaults
from functions.dialects import aims, openai, webhook_payload
from functions.dialects.shared import (
    GenerationFailed,
    pick_model,
    rename_fields,
    require_success,
    size_for_resolution,
    steps_for_quality,
)

REQUIRED_STYLES = ("anime-style", "cyberpunk-style", "watercolor-style", "photorealistic", "cinematic", "pixel-art",
                   "oil-painting", "3d-render", "line-art", "fantasy-art", "comic-book", "low-poly", "vivid", "natural")


@pytest.fixture(autouse=True)
def fake_storage(monkeypatch):
    blobs: dict[str, bytes] = {}
    monkeypatch.setattr(links, "media_url", lambda key, *, ttl=None: f"https://signed/{key}")
    monkeypatch.setattr(storage, "get_bytes", lambda key, *, bucket=None: blobs[key])
    # A one-byte range of a blob, as S3 answers it: how an output's size is learned when the job has none.
    monkeypatch.setattr(storage, "open_object", lambda key, *, byte_range=None, bucket=None: storage.StoredObject(
        length=1, content_type="image/png", content_range=f"bytes 0-0/{len(blobs[key])}", etag=None, body=None))
    get_styles.cache_clear()
    yield blobs
    get_styles.cache_clear()


def model(name: str):
    found = get_catalog().model(name)
    assert found is not None, name
    return found


def job(status=JobStatus.SUCCEEDED, dialect="openai", **overrides) -> Job:
    fields = {"id": "65a1b2c3d4e5f60718293a4b", "workspace_id": "ws_1", "status": status, "dialect": dialect,
              "model": "flux-schnell", "task": "text-to-image", "type": "image", "tool": "create-image",
              "input": {"prompt": "a fox", "quality": "hd", "n": 2},
              "params": {"prompt": "a fox, vivid", "n": 2, "width": 256, "height": 256, "output_format": "png"},
              "created_at": 1_700_000_000.5, "cost": 2}
    if status == JobStatus.SUCCEEDED:
        fields["outputs"] = [Output(key=f"ws_1/generations/x/{i}.png", content_type="image/png", width=256,
                                    height=256, thumbnail_key=f"ws_1/generations/x/{i}.thumb.jpg") for i in range(2)]
    return Job(**(fields | overrides))


# ---------------------------------------------------------------- styles


def test_the_catalog_has_the_documented_presets():
    styles = get_styles()
    for slug in REQUIRED_STYLES:
        style = styles.get(slug)
        assert style is not None, slug
        assert style.prompt.count("{prompt}") == 1 and style.name
    assert len(styles.slugs) == len(set(styles.slugs))


def test_apply_style_wraps_the_prompt_and_joins_negatives():
    prompt, negative, style = apply_style("anime-style", "a {weird} fox", "blurry, text")
    assert style.slug == "anime-style" and "a {weird} fox" in prompt and prompt.startswith("anime style")
    assert negative.startswith("blurry, text, ") and negative.lower().count("blurry") == 1
    assert apply_style(None, "a fox", None) == ("a fox", None, None)
    assert apply_style(" Pixel-Art ", "x")[2].slug == "pixel-art"


def test_unknown_style_names_the_field_and_lists_the_presets():
    with pytest.raises(ValidationFailed) as info:
        apply_style("baroque", "x", field="style")
    assert info.value.errors[0].field == "style" and info.value.errors[0].code == "style_not_found"
    assert "anime-style" in info.value.message and info.value.status == 400
    with pytest.raises(ValidationFailed) as info:
        get_style(42)  # type: ignore[arg-type]
    assert info.value.errors[0].field == "style_slug"


def test_style_defaults_fit_the_model():
    photo = get_style("photorealistic")
    assert style_defaults([photo], model("flux-dev")) == {"guidance": photo.defaults.guidance}
    # A guidance-distilled model keeps its own guidance.
    assert style_defaults([photo], model("flux-schnell")) == {}
    capped = photo.model_copy(update={"defaults": photo.defaults.model_copy(update={"steps": 99})})
    assert style_defaults([capped], model("sdxl-turbo"))["steps"] == model("sdxl-turbo").max_steps


def test_operators_add_presets(tmp_path, monkeypatch):
    extra = tmp_path / "styles.yaml"
    extra.write_text("styles:\n  - slug: house-style\n    name: House\n    prompt: 'ACME poster of {prompt}'\n")
    monkeypatch.setenv("DARKROOM_STYLES_EXTRA", str(extra))
    get_styles.cache_clear()
    assert apply_style("house-style", "a fox")[0] == "ACME poster of a fox"
    assert get_styles().get("anime-style") is not None


# ---------------------------------------------------------------- translations


def test_quality_words_become_steps_within_the_model():
    schnell, dev, turbo = model("flux-schnell"), model("flux-dev"), model("sdxl-turbo")
    assert steps_for_quality(schnell, "standard") is None and steps_for_quality(schnell, "auto") is None
    assert steps_for_quality(schnell, "hd") == 6 and steps_for_quality(schnell, "low") == 2
    assert steps_for_quality(dev, "high") == 42 and steps_for_quality(dev, "low") == 14
    assert steps_for_quality(turbo, "hd") == 2 and steps_for_quality(turbo, "low") == 1
    tight = schnell.model_copy(update={"max_steps": 4, "min_steps": 3})
    assert steps_for_quality(tight, "hd") == 4 and steps_for_quality(tight, "low") == 3


def test_resolution_sets_the_long_side():
    schnell = model("flux-schnell")
    assert size_for_resolution(schnell, "1K") == "1024x1024"
    assert size_for_resolution(schnell, "0.5K", aspect_ratio="16:9") == "512x288"
    assert size_for_resolution(schnell, "2K", size="1024x1536") == "1360x2048"
    assert size_for_resolution(schnell, "1K", size="512x256", aspect_ratio="1:1") == "1024x1024"


def test_rename_fields_rewrites_errors_and_message():
    exc = ValidationFailed("Invalid request: steps: must be at most 8", errors=[FieldError("steps", "must be at most 8")])
    renamed = rename_fields(exc, {"steps": "quality"})
    assert renamed.errors[0].field == "quality" and renamed.message == "Invalid request: quality: must be at most 8"
    custom = ValidationFailed("Unknown model", errors=[FieldError("model", "unknown")])
    assert rename_fields(custom, {"model": "x"}).message == "Unknown model"


def test_pick_model_defaults_aliases_and_edit_counterparts(tmp_path, monkeypatch):
    assert pick_model(None, kind="image", references=False).id == get_catalog().tool("create-image").default_model
    assert pick_model(None, kind="video", references=True).task == "image-to-video"
    assert pick_model("black-forest-labs/flux-schnell", kind="image", references=True).id == "flux-schnell-edit"
    with pytest.raises(ValidationFailed) as info:
        pick_model("ltx-video", kind="image", references=False)
    assert info.value.errors[0].code == "model_not_found" and "flux-schnell" in info.value.message
    extra = tmp_path / "catalog.yaml"
    extra.write_text("models:\n  - {id: lonely, name: Lonely, task: text-to-image, family: sdxl, repo: x/y, "
                     "modal_class: SDXLGenerator}\n")
    monkeypatch.setenv("DARKROOM_CATALOG_EXTRA", str(extra))
    get_catalog.cache_clear()
    with pytest.raises(ValidationFailed) as info:
        pick_model("lonely", kind="image", references=True, references_field="image")
    assert info.value.errors[0].field == "model" and "flux-schnell" in info.value.message
    assert "image" in info.value.message


def test_require_success_explains_failures():
    assert require_success(job()).status == JobStatus.SUCCEEDED
    failed = job(JobStatus.FAILED, outputs=[], error=JobError(code="generation_failed", message="CUDA OOM"),
                 refunded=2)
    with pytest.raises(GenerationFailed) as info:
        require_success(failed)
    assert info.value.status == 500 and failed.id in info.value.message and "refunded" in info.value.message
    with pytest.raises(GenerationFailed) as info:
        require_success(job(JobStatus.CANCELED, outputs=[]))
    assert info.value.headers == {"x-should-retry": "false"} and "canceled" in info.value.message
    bad_ref = job(JobStatus.FAILED, outputs=[], error=JobError(code="invalid_reference", message="not an image"))
    with pytest.raises(GenerationFailed) as info:
        require_success(bad_ref, references_field="image")
    assert info.value.status == 400 and info.value.errors[0].field == "image"
    # A mask only the worker could judge (it decodes the pixels): the caller's error too, naming `mask`.
    bad_mask = job(JobStatus.FAILED, outputs=[], error=JobError(
        code="invalid_mask", message="mask: has no transparent pixels, so there is nothing to edit"))
    with pytest.raises(GenerationFailed) as info:
        require_success(bad_mask, references_field="image")
    assert info.value.status == 400 and info.value.code == "invalid_mask"
    assert (info.value.errors[0].field, info.value.errors[0].message) == (
        "mask", "has no transparent pixels, so there is nothing to edit")
    assert info.value.message.startswith("Invalid request: mask: has no transparent pixels")


# ---------------------------------------------------------------- OpenAI rendering


def test_openai_images_response(fake_storage):
    fake_storage.update({f"ws_1/generations/x/{i}.png": b"\x89PNG" + bytes([i]) for i in range(2)})
    body = openai.images_response(job(), response_format="url")
    assert body["created"] == 1_700_000_000 and body["size"] == "256x256" and body["quality"] == "high"
    assert body["data"][1] == {"url": "https://signed/ws_1/generations/x/1.png", "revised_prompt": "a fox, vivid"}
    assert body["model"] == job().model and body["usage"]["total_tokens"] == 0 and "credits" in body["usage"]
    encoded = openai.images_response(job(), response_format="b64_json")
    assert base64.b64decode(encoded["data"][1]["b64_json"]) == b"\x89PNG\x01" and "url" not in encoded["data"][1]


def test_without_response_format_both_fields_while_they_fit_then_the_url_alone(fake_storage, monkeypatch):
    """gpt-image clients (the Vercel AI SDK, n8n, Open WebUI) send none and read b64_json; DALL-E clients
    (LangChain) send none and read url; ArtAPI's documented default is url."""
    from functions.dialects import shared

    fake_storage.update({f"ws_1/generations/x/{i}.png": b"x" * 20 for i in range(2)})
    both = openai.images_response(job())["data"][1]
    assert both["url"].endswith("/1.png") and base64.b64decode(both["b64_json"]) == b"x" * 20
    monkeypatch.setattr(shared, "MAX_B64_BYTES", 10)
    alone = openai.images_response(job())["data"][1]
    assert alone["url"].endswith("/1.png") and "b64_json" not in alone


def test_openai_b64_too_large_for_a_response(fake_storage, monkeypatch):
    from functions.dialects import shared

    monkeypatch.setattr(shared, "MAX_B64_BYTES", 10)
    fake_storage.update({f"ws_1/generations/x/{i}.png": b"x" * 20 for i in range(2)})
    with pytest.raises(PayloadTooLarge) as info:
        openai.images_response(job(), response_format="b64_json")
    assert "response_format=url" in info.value.message and job().id in info.value.message
    with pytest.raises(PayloadTooLarge) as info:
        aims.images_response(job(dialect="aims"), credits_remaining=1, data_uris=True)
    assert "sync_mode" in info.value.message


@pytest.mark.parametrize("exc,status,type_,code,param", [
    (Unauthorized("Invalid API key", errors=[FieldError("authorization", "unknown")]), 401,
     "authentication_error", "invalid_api_key", None),
    (PaymentRequired("Insufficient credits"), 402, "billing_error", "insufficient_quota", None),
    (Forbidden("no scope", code="insufficient_scope"), 403, "permission_error", "insufficient_scope", None),
    (RateLimited("slow down"), 429, "rate_limit_error", "rate_limit_exceeded", None),
    (ValidationFailed("Invalid request: prompt: too long", errors=[FieldError("prompt", "too long", "string_too_long")]),
     400, "invalid_request_error", "prompt_too_long", "prompt"),
    (ValidationFailed("bad size", errors=[FieldError("size", "bad", "invalid_size")], code="invalid_size"), 400,
     "invalid_request_error", "invalid_size", "size"),
    (DarkroomError("boom"), 500, "api_error", "internal_error", None),
])
def test_openai_error_body(exc, status, type_, code, param):
    assert exc.status == status
    assert openai.error_body(exc) == {"error": {"message": exc.message, "type": type_, "param": param, "code": code}}


def test_openai_errors_carry_the_job_id():
    timeout = openai.error_body(GatewayTimeout("still running", job_id="j1"))["error"]
    assert timeout["job_id"] == "j1" and timeout["code"] == "timeout" and timeout["type"] == "api_error"
    failed = openai.error_body(GenerationFailed("failed", job_id="j2"))["error"]
    assert failed["code"] == "upstream_error" and failed["job_id"] == "j2"


def test_openai_unsupported_params():
    assert openai.unsupported_param({"svg": {"model": "x"}})[0] == "svg"
    assert openai.unsupported_param({"output_format": "gif"})[0] == "output_format"
    assert openai.unsupported_param({"output_format": "png", "svg": None}) is None


# ---------------------------------------------------------------- AI Media Studio rendering


def test_aims_images_response_and_batch_ids():
    body = aims.images_response(job(dialect="aims"), credits_remaining=98.0, style_applied="anime-style")
    assert body["success"] is True and body["credits_used"] == 2 and body["credits_remaining"] == 98
    assert [i["id"] for i in body["images"]] == [f"{job().id}-0", f"{job().id}-1"]
    assert all(i["status"] == "completed" and "share_url" not in i for i in body["images"])
    single = job(dialect="aims", outputs=job().outputs[:1])
    assert aims.images_response(single, credits_remaining=1)["images"][0]["id"] == single.id


def test_aims_video_object():
    video = job(dialect="aims", type="video", task="text-to-video", model="ltx-video",
                input={"prompt": "waves", "duration": 5}, params={"duration": 4.0, "fps": 24, "width": 768,
                                                                  "height": 512},
                outputs=[Output(key="k.mp4", content_type="video/mp4", width=768, height=512, duration=4.04, fps=24,
                                frames=97, thumbnail_key="k.jpg")])
    obj = aims.video_response(video, credits_remaining=10)["video"]
    assert obj["duration"] == 4 and obj["aspect_ratio"] == "3:2" and obj["audio"] is False
    assert obj["url"] == "https://signed/k.mp4" and obj["status"] == "completed" and obj["model"] == "ltx-video"


def test_aims_error_body():
    assert aims.error_body(ValidationFailed("Invalid request: n: too many")) == {
        "error": "Invalid request: n: too many", "code": "invalid_request"}
    assert aims.error_body(GatewayTimeout("slow", job_id="j"))["job_id"] == "j"


def test_webhook_payloads_follow_the_jobs_dialect():
    as_openai = webhook_payload(job())
    assert as_openai["status"] == "succeeded" and len(as_openai["data"]) == 2 and as_openai["id"] == job().id
    as_aims = webhook_payload(job(dialect="aims"))
    assert as_aims["status"] == "completed" and len(as_aims["images"]) == 2
    failed = webhook_payload(job(JobStatus.FAILED, dialect="aims", outputs=[],
                                 error=JobError(code="x", message="broke")))
    assert failed["status"] == "failed" and failed["error"] == "broke" and failed["images"] == []
    failed_openai = webhook_payload(job(JobStatus.FAILED, outputs=[], error=JobError(code="x", message="broke")))
    assert failed_openai["error"]["message"] == "broke"


# ---------------------------------------------------------------- multipart


class _Event:
    def __init__(self, body: bytes, content_type: str, *, b64: bool = True) -> None:
        self.headers = {"Content-Type": content_type}
        self.body = base64.b64encode(body).decode() if b64 else body.decode()
        self.is_base64_encoded = b64


def _multipart(parts: list[tuple[str, str | None, str | None, bytes]], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, filename, ctype, data in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    return buf.getvalue()


def test_multipart_fields_and_binary_files():
    image = _png()
    body = _multipart([("prompt", None, None, "un café".encode()), ("n", None, None, b"2"),
                       ("image[]", "a.png", "image/png", image), ("image[]", "b.bin", "application/octet-stream", image)])
    form = parse_form(_Event(body, "multipart/form-data; boundary=XyZ"))
    assert form.value("prompt") == "un café" and form.value("n") == "2"
    files = form.files["image[]"]
    assert [f.filename for f in files] == ["a.png", "b.bin"] and all(f.data == image for f in files)
    assert files[1].content_type == "image/png"  # sniffed from the bytes


def test_multipart_errors_name_the_problem():
    with pytest.raises(ValidationFailed) as info:
        parse_form(_Event(b"{}", "application/json", b64=False))
    assert info.value.errors[0].field == "content-type"
    with pytest.raises(ValidationFailed) as info:
        parse_form(_Event(b"x", "multipart/form-data"))
    assert "boundary" in info.value.message
    with pytest.raises(ValidationFailed) as info:
        parse_form(_Event(b"", "multipart/form-data; boundary=XyZ"))
    assert info.value.errors[0].field == "body"


def test_sniffing():
    assert sniff_content_type(b"\xff\xd8\xff\xe0", None) == "image/jpeg"
    assert sniff_content_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "application/octet-stream") == "image/webp"
    assert sniff_content_type(b"hello", "text/plain; charset=utf-8") == "text/plain"
    assert sniff_content_type(b"hello", None) == "application/octet-stream"
