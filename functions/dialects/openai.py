"""ArtAPI / OpenAI Images: the request bodies, their translation into GenerationInput fields, the images
response, the webhook payload and the error body `{"error": {message, type, param, code}}`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from functions.core import links
from functions.core.catalog import ModelSpec
from functions.core.errors import DarkroomError
from functions.core.generation import MAX_LORAS, MAX_PROMPT_CHARS, LoraInput
from functions.core.jobs import Job, JobStatus
from functions.core.moderation import BLOCKED, PROMPT_BLOCKED, openai_level
from functions.core.schema import Request
from functions.dialects.shared import (
    Background,
    GenerationFailed,
    ImageFormat,
    Quality,
    Styled,
    generation_fields,
    json_field,
    outputs_base64,
    outputs_base64_if_they_fit,
    pick_model,
    quality_word,
    steps_for_quality,
    style_prompt,
)

# `style` takes OpenAI's vivid/natural or any preset slug; ArtAPI documents vivid as the default.
DEFAULT_STYLE = "vivid"
# Core GenerationInput field -> OpenAI parameter, for errors that name what the caller sent.
# (steps and guidance are OpenAI-dialect fields of their own; quality and style only ever choose valid ones.)
PARAM_NAMES = {"quality": "output_compression", "width": "size", "height": "size", "image_urls": "image",
               "mask_url": "mask", "safety_tolerance": "moderation"}
# /v1/images/variations has no prompt: an image-to-image pass of the image at this strength, with this
# prompt (the pipelines need one; a generic one keeps the picture's own subject and style).
VARIATION_PROMPT = "a variation of this image, same subject, same composition, same style, high quality"
VARIATION_STRENGTH = 0.7
VARIATION_MODEL = "dall-e-2"
# OpenAI parameters Darkroom refuses with a reason (instead of "unknown field").
UNSUPPORTED = {
    "svg": "SVG output is not supported; output_format is png, jpeg or webp",
    "complexity": "is an SVG option; SVG output is not supported",
    "frame_count": "animated output is not supported",
    "frame_duration_ms": "animated output is not supported",
    "markup": "SVG markup input is not supported",
}


class _Common(Request):
    """What generations and edits share. Unknown fields are refused (as OpenAI does), naming the field."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(None, min_length=1)
    n: int = Field(1, ge=1, le=10)
    size: str | None = None
    quality: Quality | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: ImageFormat | None = None
    output_compression: int | None = Field(None, ge=0, le=100)
    background: Background | None = None
    moderation: Literal["low", "auto"] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    stream: bool | None = None
    partial_images: int | None = Field(None, ge=0, le=3)
    style: str | None = None
    # Darkroom's own controls, which clients pass as extra body fields (the SDK's extra_body, LiteLLM's
    # extra_body, the Vercel AI SDK's providerOptions, Open WebUI's IMAGES_OPENAI_API_PARAMS): validated as the
    # native API validates them (GenerationInput).
    style_slug: str | None = None
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    steps: int | None = None
    guidance: float | None = None
    aspect_ratio: str | None = None
    # fal's spelling, [{path, scale}]. A multipart edit sends it as one JSON-encoded form field.
    loras: list[LoraInput] | None = Field(None, max_length=MAX_LORAS)
    # dall-e-3's prompt revision, asked for: the catalog's prompt enhancer rewrites the prompt (after style presets),
    # and revised_prompt is the rewrite.
    enhance_prompt: bool | None = None

    @field_validator("loras", mode="before")
    @classmethod
    def _loras_from_form(cls, value: Any) -> Any:
        return json_field(value)

    @field_validator("size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        # The shape is checked by GenerationInput; here only "auto" is normalised away.
        return None if value in (None, "", "auto") else value


class ImagesGenerateRequest(_Common):
    pass


class ImagesEditRequest(_Common):
    input_fidelity: Literal["high", "low"] | None = None


class _ImageReference(Request):
    image_url: str = Field(max_length=8_000_000, description="A data: URL (base64), or an http(s) URL.")


class _ImagesEditJson(ImagesEditRequest):
    """The JSON form of an edit, as OpenAI's API takes it (the route reads `images` and `mask` itself, then
    validates the rest as ImagesEditRequest)."""

    images: list[_ImageReference] = Field(min_length=1)
    mask: _ImageReference | None = None


class ImagesVariationRequest(Request):
    """The form fields of /v1/images/variations (the image is a file part). As OpenAI's dall-e-2 variations:
    no prompt, no style."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    model: str | None = Field(None, min_length=1)
    n: int = Field(1, ge=1, le=10)
    size: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    user: str | None = None

    @field_validator("size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        return None if value in (None, "", "auto") else value


def unsupported_param(data: dict[str, Any]) -> tuple[str, str] | None:
    for name, reason in UNSUPPORTED.items():
        if data.get(name) not in (None, ""):
            return name, reason
    if data.get("output_format") in ("gif", "svg"):
        return "output_format", f"{data['output_format']} is not supported; use png, jpeg or webp"
    return None


def styled(body: _Common) -> Styled:
    """The preset (style_slug, or a preset slug given as `style`) and then the vivid/natural tone."""
    style = body.style if body.style is not None else (None if body.style_slug else DEFAULT_STYLE)
    presets: list[tuple[str | None, str]] = [(body.style_slug, "style_slug")]
    presets.append((style, "style"))
    return style_prompt(body.prompt, body.negative_prompt, presets)


def generation_input(body: _Common, model: ModelSpec, styled_prompt: Styled) -> dict[str, Any]:
    return generation_fields(model, styled_prompt, {
        "n": body.n,
        "size": body.size,
        "aspect_ratio": body.aspect_ratio,
        # Explicit steps win over what quality would choose.
        "steps": body.steps if body.steps is not None else steps_for_quality(model, body.quality),
        "guidance": body.guidance,
        "seed": body.seed,
        "output_format": body.output_format,
        # output_compression is the jpeg/webp quality; 0 would be unreadable, so it is floored at 1.
        "quality": max(1, body.output_compression) if body.output_compression is not None else None,
        "background": body.background,
        "loras": [lora.model_dump() for lora in body.loras] if body.loras else None,
        "enhance_prompt": body.enhance_prompt or None,
        # auto/low as moderation levels (the catalog's table); unset: the workspace's default level.
        "safety_tolerance": openai_level(body.moderation),
    })


def variation_model(body: ImagesVariationRequest) -> ModelSpec:
    """The model a variation runs on: the one named, else what `dall-e-2` answers here (OpenAI's variations take
    only dall-e-2), else the edit-image tool's."""
    from functions.core.catalog import get_catalog

    name = body.model or (VARIATION_MODEL if get_catalog().model(VARIATION_MODEL) else None)
    return pick_model(name, kind="image", references=True, references_field="image")


def variation_input(body: ImagesVariationRequest, model: ModelSpec) -> dict[str, Any]:
    """GenerationInput fields for a variation: the image comes as image_urls, added once it is stored. An
    image-to-image model redraws it at VARIATION_STRENGTH; a multi-reference editor redraws it from the prompt
    with the image as its reference (it has no strength)."""
    fields: dict[str, Any] = {"prompt": VARIATION_PROMPT, "n": body.n, "size": body.size,
                              "strength": None if model.references else VARIATION_STRENGTH}
    return {k: v for k, v in fields.items() if v is not None}


def images_response(job: Job, *, response_format: str | None = None) -> dict[str, Any]:
    """The OpenAI ImagesResponse for a succeeded job. `revised_prompt` is the prompt the model ran: the caller's,
    after style presets, rewritten by the prompt enhancer when the request asked (enhance_prompt).

    Without `response_format` each image carries both `url` and `b64_json` while they fit a response (5.5 MB
    of base64), the URL alone past that: clients written for gpt-image models (the Vercel AI SDK, n8n, Open
    WebUI) read `b64_json` and send no response_format, those written for DALL·E (LangChain) read `url`, and
    ArtAPI documents `url` as the default (docs/dialects.md)."""
    revised = job.revised_prompt or job.params.get("prompt")
    if response_format == "b64_json":
        data = [{"b64_json": b, "revised_prompt": revised} for b in outputs_base64(job, "use response_format=url")]
    else:
        data = [{"url": links.media_url(o.key), "revised_prompt": revised} for o in job.outputs]
        inline = outputs_base64_if_they_fit(job) if response_format is None else None
        for item, b64 in zip(data, inline or []):
            item["b64_json"] = b64
    first = job.outputs[0] if job.outputs else None
    width = first.width if first and first.width else job.params.get("width")
    height = first.height if first and first.height else job.params.get("height")
    return {
        "created": int(job.created_at),
        "data": data,
        # The catalog model that ran (the request may have named an alias, such as dall-e-3).
        "model": job.model,
        "output_format": job.params.get("output_format", "png"),
        "size": f"{width}x{height}" if width and height else None,
        "quality": quality_word(job.input.get("quality")),
        # What was made: transparent only when the background remover ran (params say so).
        "background": "transparent" if job.params.get("background") == "transparent" else "opaque",
        # OpenAI counts tokens; Darkroom counts none, and says what the images cost instead.
        "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                  "input_tokens_details": {"text_tokens": 0, "image_tokens": 0},
                  "credits": round(job.cost - (job.refunded or 0), 6)},
        # Darkroom's: the LoRA adapters that ran, with their scales and the sha256 of each file.
        **({"loras": job.loras} if job.loras else {}),
    }


def webhook_payload(job: Job) -> dict[str, Any]:
    """A job made through this dialect, as a webhook body: the synchronous response (with URLs), plus
    the job's id and status so a receiver can tell events apart."""
    body: dict[str, Any] = {"id": job.id, "object": "image.generation", "status": job.status.value,
                            "created": int(job.created_at), "model": job.model}
    if job.status == JobStatus.SUCCEEDED:
        body |= images_response(job, response_format="url")  # links, not megabytes of base64, in a webhook
    elif job.error is not None:
        body["error"] = {"message": job.error.message, "type": "api_error", "param": None, "code": job.error.code}
    return body


def models_list(models: list[ModelSpec], created: int, aliases: dict[str, str] | None = None) -> dict[str, Any]:
    """The catalog's image models, then the other vendors' names it answers (dall-e-3, gpt-image-1…): model
    pickers that keep only OpenAI's ids (n8n) or list only them (Open WebUI) find them here."""
    by_id = {m.id: m for m in models}
    named = [model_object(by_id[target], created, name=alias) for alias, target in (aliases or {}).items()
             if target in by_id]
    return {"object": "list", "data": [model_object(m, created) for m in models] + named}


def model_object(model: ModelSpec, created: int, *, name: str | None = None) -> dict[str, Any]:
    """`name`: an alias, listed as itself; `darkroom_model` says which catalog model answers it."""
    return {"id": name or model.id, "object": "model", "created": created, "owned_by": "darkroom",
            "darkroom_model": model.id}


# ---------------------------------------------------------------- errors

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
          403: "permission_error", 404: "invalid_request_error", 409: "invalid_request_error",
          413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}
# Field-level codes as ArtAPI names them.
_CODES = {("prompt", "string_too_long"): "prompt_too_long", ("size", "value_error"): "invalid_size",
          ("prompt", PROMPT_BLOCKED): BLOCKED}
# Generic codes that say less than the first field error's.
_GENERIC = {"invalid_request", "internal_error"}


def error_body(exc: DarkroomError) -> dict[str, Any]:
    first = exc.errors[0] if exc.errors else None
    param = first.field if first and first.field not in ("body", "authorization") else None
    code = exc.code
    if first is not None and code in _GENERIC:
        code = first.code
    if first is not None:
        code = _CODES.get((first.field, first.code), code)
    if isinstance(exc, GenerationFailed) and code not in ("generation_canceled", BLOCKED):
        code = "upstream_error"  # ArtAPI's code for a generation that failed on the GPU side
    error: dict[str, Any] = {"message": exc.message, "type": _TYPES.get(exc.status, "api_error"), "param": param,
                             "code": code}
    job_id = getattr(exc, "job_id", None)
    if job_id:
        error["job_id"] = job_id
    return {"error": error}
