"""AI Media Studio: the request bodies, their translation into GenerationInput fields, the image and video
objects, the model listings, the webhook payload and the error body `{"error": "…"}`."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from functions.core import links
from functions.core.catalog import ModelSpec
from functions.core.errors import DarkroomError
from functions.core.generation import MAX_LORAS, MAX_PROMPT_CHARS, LoraInput
from functions.core.jobs import Job, JobStatus
from functions.core.schema import Request
from functions.dialects.shared import (
    RESOLUTIONS,
    Background,
    ImageFormat,
    Quality,
    Styled,
    bad_field,
    generation_fields,
    outputs_base64,
    size_for_resolution,
    steps_for_quality,
    style_prompt,
)

MAX_IMAGE_URLS = 10
# Core GenerationInput field -> this dialect's name, for errors that name what the caller sent.
IMAGE_NAMES = {"steps": "quality", "width": "size", "height": "size", "guidance": "style_slug"}
VIDEO_NAMES = {"guidance": "cfg_scale", "width": "aspect_ratio", "height": "aspect_ratio"}
_VIDEO_RESOLUTION = re.compile(r"^(\d{3,4})p$")


def _safety(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if text not in {"1", "2", "3", "4", "5", "6"}:
        raise ValueError('must be "1" (strictest) to "6" (least strict)')
    return text


class ImagesGenerateRequest(Request):
    """POST /api/v1/images/generate. Model-specific options of every documented model are accepted;
    those the local pipelines have no use for are recorded with the job. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(None, min_length=1)
    n: int = Field(1, ge=1, le=8)
    size: str | None = None
    aspect_ratio: str | None = None
    resolution: Literal["0.5K", "1K", "2K", "4K"] | None = None
    output_format: ImageFormat | None = None
    quality: Quality | None = None
    background: Background | None = None
    style: Literal["natural", "vivid"] | None = None
    style_slug: str | None = None
    image_urls: list[str] | None = Field(None, min_length=1, max_length=MAX_IMAGE_URLS)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    make_public: bool = False
    # Darkroom's extension, in fal's spelling: [{path, scale}].
    loras: list[LoraInput] | None = Field(None, max_length=MAX_LORAS)
    # The videos endpoint's field, taken here too: the catalog's prompt enhancer rewrites the prompt (revised_prompt).
    enhance_prompt: bool | None = None
    # The output safety checker's level, "1" (strictest) to "6" (functions/core/moderation.py).
    safety_tolerance: str | None = None
    # Recorded only.
    limit_generations: bool | None = None
    enable_web_search: bool | None = None
    sync_mode: bool | None = None

    @field_validator("safety_tolerance", mode="before")
    @classmethod
    def _check_safety(cls, value: Any) -> str | None:
        return _safety(value)


class VideosGenerateRequest(Request):
    """POST /api/v1/videos/generate."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(None, min_length=1)
    duration: float | None = Field(None, gt=0, le=600)
    aspect_ratio: str | None = None
    audio: bool = False
    make_public: bool = False
    image_url: str | None = None
    image_urls: list[str] | None = Field(None, min_length=1, max_length=MAX_IMAGE_URLS)
    first_frame_url: str | None = None
    last_frame_url: str | None = None
    extend_video_url: str | None = None
    cfg_scale: float | None = Field(None, ge=0, le=30)
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    resolution: str | None = None
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    loras: list[LoraInput] | None = Field(None, max_length=MAX_LORAS)
    # The output safety checker's level, "1" (strictest) to "6" (functions/core/moderation.py).
    safety_tolerance: str | None = None
    # The catalog's prompt enhancer rewrites the prompt (the response's revised_prompt).
    enhance_prompt: bool | None = None
    # Recorded only.
    auto_fix: bool | None = None

    @field_validator("safety_tolerance", mode="before")
    @classmethod
    def _check_safety(cls, value: Any) -> str | None:
        return _safety(value)

    @model_validator(mode="after")
    def _one_first_frame(self) -> VideosGenerateRequest:
        if self.image_url and self.first_frame_url:
            raise ValueError("image_url and first_frame_url both name the first frame; send one of them")
        return self

    @property
    def references(self) -> list[tuple[str, str]]:
        """(field, URL) of each reference image, the first frame first."""
        refs: list[tuple[str, str]] = []
        if self.first_frame_url:
            refs.append(("first_frame_url", self.first_frame_url))
        if self.image_url:
            refs.append(("image_url", self.image_url))
        refs += [(f"image_urls.{i}", u) for i, u in enumerate(self.image_urls or [])]
        return refs


# ---------------------------------------------------------------- translation


def image_styles(body: ImagesGenerateRequest) -> Styled:
    return style_prompt(body.prompt, body.negative_prompt, [(body.style_slug, "style_slug"), (body.style, "style")])


def image_input(body: ImagesGenerateRequest, model: ModelSpec, styled: Styled) -> tuple[dict[str, Any], dict]:
    """(GenerationInput fields, field names for errors). aspect_ratio wins over size (GenerationInput's rule);
    resolution scales whichever gave the proportions to its long side."""
    names = dict(IMAGE_NAMES)
    size, aspect_ratio = body.size, body.aspect_ratio
    if size == "auto":
        size = None
    if body.resolution:
        size = size_for_resolution(model, body.resolution, size=size, aspect_ratio=aspect_ratio)
        aspect_ratio = None
        names |= {"size": "resolution", "width": "resolution", "height": "resolution"}
    fields = generation_fields(model, styled, {
        "n": body.n, "size": size, "aspect_ratio": aspect_ratio, "seed": body.seed,
        "steps": steps_for_quality(model, body.quality), "output_format": body.output_format,
        "image_urls": body.image_urls, "background": body.background, "loras": _loras(body.loras),
        "enhance_prompt": body.enhance_prompt or None,
        "safety_tolerance": _level(body.safety_tolerance),
    })
    return fields, names


def _level(safety_tolerance: str | None) -> int | None:
    """"1"-"6" as the moderation level; None: the workspace's default."""
    return int(safety_tolerance) if safety_tolerance is not None else None


def _loras(loras: list[LoraInput] | None) -> list[dict[str, Any]] | None:
    return [lora.model_dump() for lora in loras] if loras else None


def video_size(model: ModelSpec, resolution: str, aspect_ratio: str | None) -> str:
    """"480p"/"720p"…: that many pixels on the short side; "0.5K"…"4K": that many on the long side."""
    if resolution in RESOLUTIONS:
        return size_for_resolution(model, resolution, aspect_ratio=aspect_ratio)
    match = _VIDEO_RESOLUTION.match(resolution)
    if not match:
        raise bad_field("resolution", 'must look like "480p" or "720p" (or 0.5K, 1K, 2K, 4K)')
    short = int(match.group(1))
    rw, rh = model.defaults.width, model.defaults.height
    if aspect_ratio and (m := re.match(r"^(\d{1,2}):(\d{1,2})$", aspect_ratio)) and all(map(int, m.groups())):
        rw, rh = (int(x) for x in m.groups())
    scale = short / min(rw, rh)
    step = model.multiple_of
    return f"{max(step, round(rw * scale / step) * step)}x{max(step, round(rh * scale / step) * step)}"


def video_input(body: VideosGenerateRequest, model: ModelSpec) -> tuple[dict[str, Any], dict]:
    """(GenerationInput fields, field names for errors). The duration is snapped to the nearest one the model
    makes (the catalog's rule), so a request for 100 s gets the longest rather than an error."""
    names = dict(VIDEO_NAMES)
    size, aspect_ratio = None, body.aspect_ratio
    if aspect_ratio == "auto":
        aspect_ratio = None
    if body.resolution:
        size = video_size(model, body.resolution, aspect_ratio)
        aspect_ratio = None
        names |= {"size": "resolution", "width": "resolution", "height": "resolution"}
    fields = generation_fields(model, Styled(body.prompt, body.negative_prompt), {
        "size": size, "aspect_ratio": aspect_ratio, "seed": body.seed, "guidance": body.cfg_scale,
        "duration": model.snap_duration(body.duration) if body.duration is not None else None,
        "image_url": body.image_url, "first_frame_url": body.first_frame_url, "image_urls": body.image_urls,
        "last_frame_url": body.last_frame_url, "audio": body.audio or None,
        "extend_video_url": body.extend_video_url, "loras": _loras(body.loras),
        "enhance_prompt": body.enhance_prompt or None,
        "safety_tolerance": _level(body.safety_tolerance),
    })
    return fields, names


# ---------------------------------------------------------------- rendering


def _share_url(job: Job) -> str | None:
    value = getattr(job, "share_url", None) or job.model_dump().get("share_url")
    return value if isinstance(value, str) and value else None


def image_objects(job: Job, *, data_uris: bool = False) -> list[dict[str, Any]]:
    """One object per image of a succeeded job. A single image carries the generation's id (readable with
    GET /api/generations/{id}); a batch's images are `<generation id>-<index>`, each naming its generation."""
    share = _share_url(job)
    inline = outputs_base64(job, "omit sync_mode") if data_uris else None
    images = []
    for index, output in enumerate(job.outputs):
        url = f"data:{output.content_type};base64,{inline[index]}" if inline else links.media_url(output.key)
        image = {"id": job.id if len(job.outputs) == 1 else f"{job.id}-{index}", "generation_id": job.id,
                 "url": url, "status": "completed", "width": output.width, "height": output.height}
        if share:
            image["share_url"] = share
        images.append(image)
    return images


def _credits_used(job: Job) -> Any:
    return number(float(getattr(job, "cost", 0) or 0) - float(getattr(job, "refunded", None) or 0))


def images_response(job: Job, *, credits_remaining: float | None, style_applied: str | None = None,
                    data_uris: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": job.status == JobStatus.SUCCEEDED,
        "images": image_objects(job, data_uris=data_uris),
        "credits_used": _credits_used(job),
        "credits_remaining": number(credits_remaining),
    }
    if style_applied:
        body["style_applied"] = style_applied
    if job.loras:
        body["loras"] = job.loras
    body.update(enhancement(job))
    return body


def enhancement(job: Job) -> dict[str, Any]:
    """A job that asked for prompt enhancement: `revised_prompt` (the prompt the model ran) and `prompt_enhancement`
    ({model, enhanced, tokens, note}); nothing for one that did not (or has not run yet)."""
    if job.revised_prompt is None:
        return {}
    return {"revised_prompt": job.revised_prompt, "prompt_enhancement": job.prompt_enhancement}


def ratio(width: int | None, height: int | None) -> str | None:
    if not width or not height:
        return None
    g = math.gcd(width, height)
    return f"{width // g}:{height // g}"


def video_object(job: Job) -> dict[str, Any]:
    output = job.outputs[0] if job.outputs else None
    width = output.width if output else job.params.get("width")
    height = output.height if output else job.params.get("height")
    video: dict[str, Any] = {
        "id": job.id,
        "url": links.media_url(output.key) if output and job.status == JobStatus.SUCCEEDED else None,
        "status": "completed" if job.status == JobStatus.SUCCEEDED else (
            "failed" if job.terminal else "processing"),
        "model": job.model,
        "duration": number(job.params.get("duration")),
        "aspect_ratio": job.input.get("aspect_ratio") or ratio(width, height),
        "audio": bool(output.audio) if output else bool(job.params.get("audio")),
        "width": width,
        "height": height,
        "fps": output.fps if output else job.params.get("fps"),
        "frames": output.frames if output else None,
        "thumbnail_url": links.media_url(output.thumbnail_key) if output and output.thumbnail_key else None,
    }
    share = _share_url(job)
    if share:
        video["share_url"] = share
    return video


def video_response(job: Job, *, credits_remaining: float | None) -> dict[str, Any]:
    body = {"success": job.status == JobStatus.SUCCEEDED, "video": video_object(job),
            "credits_used": _credits_used(job), "credits_remaining": number(credits_remaining)}
    if job.loras:
        body["loras"] = job.loras
    body.update(enhancement(job))
    return body


def number(value: Any) -> Any:
    """Whole numbers as ints (20, not 20.0), as the vendor shows credits and durations."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def webhook_payload(job: Job) -> dict[str, Any]:
    """A job made through this dialect, as a webhook body: the image or video object, with the job's
    status in the dialect's words (`completed`/`failed`) and its credits."""
    body: dict[str, Any] = {"id": job.id, "type": job.type, "status": _status(job),
                            "credits_used": _credits_used(job)}
    if job.type == "video":
        body["video"] = video_object(job)
    else:
        body["images"] = image_objects(job) if job.status == JobStatus.SUCCEEDED else []
    if job.error is not None:
        body["error"] = job.error.message
    if job.loras:
        body["loras"] = job.loras
    body.update(enhancement(job))
    return body


def _status(job: Job) -> str:
    if job.status == JobStatus.SUCCEEDED:
        return "completed"
    return "failed" if job.terminal else "processing"


def model_entry(model: ModelSpec, facts: dict[str, Any]) -> dict[str, Any]:
    """A model as the discovery endpoints list it; `facts` are the catalog's (Catalog.facts): tasks,
    capabilities, sizes, durations and frame rates, credits and license."""
    entry: dict[str, Any] = {"id": model.id, "name": model.name, "model_type": model.task, "type": model.type,
                             "aliases": model.aliases, "description": model.description, **facts}
    defaults = model.defaults.model_dump(exclude_none=True)
    if model.type == "video":
        entry["credit_cost"] = number(model.credits_per_second)
        entry["credit_unit"] = "second"
        entry["durations"] = [number(d) for d in model.durations]
        entry["audio"] = facts["capabilities"]["audio"]
    else:
        entry["credit_cost"] = number(model.credits_per_image)
        entry["credit_unit"] = "image"
    entry["defaults"] = {k: number(v) for k, v in defaults.items()}
    entry["defaults"]["size"] = f"{model.defaults.width}x{model.defaults.height}"
    entry["pricing"] = model.pricing()  # credit_cost is at the defaults: larger or longer work costs more
    return entry


def error_body(exc: DarkroomError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": exc.message, "code": exc.code}
    job_id = getattr(exc, "job_id", None)
    if job_id:
        body["job_id"] = job_id
    return body
