"""fal: the request bodies of fal's image and video apps, their translation into GenerationInput fields, the queue
statuses and logs, the result objects, the webhook payload and the error body `{"detail": …}`.

fal's apps are FastAPI apps: a request that does not validate is a 422 whose `detail` lists each field at fault
as `{loc, msg, type}` (the clients' ValidationError reads it); every other error is `{"detail": "…"}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator

from functions.core import clock, links
from functions.core.catalog import ModelSpec
from functions.core.errors import DarkroomError, FieldError, NotFound
from functions.core.generation import MAX_IMAGES, MAX_LORAS, MAX_PROMPT_CHARS, MAX_REFERENCES, LoraInput
from functions.core.jobs import Job, JobStatus
from functions.core.moderation import BLOCKED, checker_input
from functions.core.schema import Request
from functions.dialects.shared import Styled, bad_field, generation_fields, outputs_base64

# fal's image_size presets (its flux, SDXL and z-image apps), in pixels.
IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024), "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768), "landscape_16_9": (1024, 576),
}
ImageSizeName = Literal["square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"]
# Core GenerationInput field -> fal's name for it, for errors that name what the caller sent.
IMAGE_NAMES = {"model": "endpoint_id", "n": "num_images", "steps": "num_inference_steps", "guidance": "guidance_scale",
               "size": "image_size", "width": "image_size.width", "height": "image_size.height",
               "image_urls": "image_url"}
VIDEO_NAMES = {"model": "endpoint_id", "steps": "num_inference_steps", "guidance": "guidance_scale", "fps": "frames_per_second",
               "width": "resolution", "height": "resolution", "size": "resolution", "image_urls": "image_url"}
# The hosts fal's clients call: the queue and the synchronous run host, and the backup domains fal-client falls
# back to. Nothing else is a target Darkroom serves (rest.fal.ai's storage and tokens are fal's own).
QUEUE_HOSTS = frozenset({"queue.fal.run", "queue.falrun.com"})
RUN_HOSTS = frozenset({"fal.run", "falrun.com"})
# Where a field named in an error sits, for the `loc` of a 422 (everything else is in the body).
QUERY_FIELDS = frozenset({"fal_webhook", "logs"})
PATH_FIELDS = frozenset({"endpoint_id"})  # the model the path names (a license not accepted, …)
HEADER_FIELDS = frozenset({"x-fal-target-url", "authorization", "idempotency-key"})
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s?$")


class ImageSize(Request):
    """`image_size` as an object: explicit pixels."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(ge=64, le=4096)
    height: int = Field(ge=64, le=4096)


class _Common(Request):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    num_inference_steps: int | None = Field(None, ge=1, le=200)
    guidance_scale: float | None = Field(None, ge=0, le=30)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    image_url: str | None = Field(None, min_length=1)
    loras: list[LoraInput] | None = Field(None, max_length=MAX_LORAS)
    # Accepted for fal's clients; no safety checker runs yet (issue 25), so it changes nothing.
    enable_safety_checker: bool | None = None


class FalImageRequest(_Common):
    """The input of a fal image app (fal-ai/flux/schnell, fal-ai/flux/dev, fal-ai/flux-lora, …) whose endpoint id
    names a catalog image model. Unknown fields are a 422 naming them."""

    image_size: ImageSizeName | ImageSize | None = None
    num_images: int = Field(1, ge=1, le=MAX_IMAGES)
    # fal's multi-image edit apps (fal-ai/flux-2/edit, fal-ai/qwen-image-edit-plus, nano-banana's edit).
    image_urls: list[str] | None = Field(None, min_length=1, max_length=MAX_REFERENCES)
    output_format: Literal["jpeg", "png", "webp"] = "jpeg"
    strength: float | None = Field(None, gt=0, le=1)
    sync_mode: bool | None = None

    @field_validator("image_size", mode="before")
    @classmethod
    def _image_size(cls, value: Any) -> Any:
        """A preset's name or {width, height}; errors name image_size (and the side at fault)."""
        if value is None or isinstance(value, ImageSize):
            return value
        if isinstance(value, str):
            if value not in IMAGE_SIZES:
                raise ValueError(f"must be one of {', '.join(IMAGE_SIZES)}, or {{width, height}}")
            return value
        if isinstance(value, dict):
            try:
                return ImageSize.model_validate(value, strict=True)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'image_size'}: {e['msg']}" for e in exc.errors())
                raise ValueError(problems.replace("Extra inputs are not permitted", "is not a recognised field"))
        raise ValueError(f"must be one of {', '.join(IMAGE_SIZES)}, or an object {{width, height}}")


class FalVideoRequest(_Common):
    """The input of a fal video app (fal-ai/wan/…, fal-ai/ltx-video, …) whose endpoint id names a catalog video
    model."""

    aspect_ratio: str | None = None
    resolution: str | None = None
    duration: float | str | None = None
    frames_per_second: int | None = Field(None, ge=1, le=60)

    @field_validator("duration", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        """fal's video apps take `duration` as a number or as a string such as "5" or "5s"."""
        if isinstance(value, str):
            match = _DURATION.match(value.strip())
            if not match:
                raise ValueError('must be a number of seconds, such as 5 or "5s"')
            value = float(match.group(1))
        if isinstance(value, bool) or not isinstance(value, int | float) or value is None:
            raise ValueError("must be a number of seconds")
        if not 0 < value <= 60:
            raise ValueError("must be more than 0 and at most 60 seconds")
        return float(value)


# ---------------------------------------------------------------- translation


def _loras(loras: list[LoraInput] | None) -> list[dict[str, Any]] | None:
    return [lora.model_dump() for lora in loras] if loras else None


def _size(image_size: str | ImageSize | None) -> tuple[str | None, dict[str, int]]:
    if image_size is None:
        return None, {}
    if isinstance(image_size, ImageSize):
        return None, {"width": image_size.width, "height": image_size.height}
    width, height = IMAGE_SIZES[image_size]
    return f"{width}x{height}", {}


def image_input(body: FalImageRequest, model: ModelSpec) -> tuple[dict[str, Any], dict[str, str]]:
    """(GenerationInput fields, field names for errors)."""
    size, pixels = _size(body.image_size)
    fields = generation_fields(model, Styled(body.prompt, body.negative_prompt), {
        "n": body.num_images, "size": size, **pixels, "steps": body.num_inference_steps,
        "guidance": body.guidance_scale, "seed": body.seed, "output_format": body.output_format,
        "image_urls": ([body.image_url] if body.image_url else []) + (body.image_urls or []) or None,
        "strength": body.strength,
        "loras": _loras(body.loras),
    })
    fields.update(checker_input(body.enable_safety_checker))
    # A reference at fault is named as the caller sent it: image_url first, then image_urls.
    names = dict(IMAGE_NAMES) if not body.image_urls else {**IMAGE_NAMES, "image_urls": "image_urls"}
    return fields, names | {"safety_checker": "enable_safety_checker"}


def video_input(body: FalVideoRequest, model: ModelSpec) -> tuple[dict[str, Any], dict[str, str]]:
    """(GenerationInput fields, field names for errors). The duration snaps to the nearest one the model makes."""
    from functions.dialects.aims import video_size

    names = dict(VIDEO_NAMES)
    aspect_ratio = None if body.aspect_ratio in (None, "auto") else body.aspect_ratio
    size = None
    if body.resolution:
        size = video_size(model, body.resolution, aspect_ratio)
        aspect_ratio = None
    else:
        names |= {"width": "aspect_ratio", "height": "aspect_ratio"}
    fields = generation_fields(model, Styled(body.prompt, body.negative_prompt), {
        "size": size, "aspect_ratio": aspect_ratio, "steps": body.num_inference_steps,
        "guidance": body.guidance_scale, "seed": body.seed, "fps": body.frames_per_second,
        "duration": model.snap_duration(body.duration) if body.duration is not None else None,
        "image_url": body.image_url, "loras": _loras(body.loras),
    })
    fields.update(checker_input(body.enable_safety_checker))
    return fields, names | {"safety_checker": "enable_safety_checker"}


# ---------------------------------------------------------------- statuses, logs and results

STATUS = {JobStatus.QUEUED: "IN_QUEUE", JobStatus.RUNNING: "IN_PROGRESS", JobStatus.SUCCEEDED: "COMPLETED",
          JobStatus.FAILED: "COMPLETED", JobStatus.CANCELED: "COMPLETED"}


def references(body: FalImageRequest | FalVideoRequest) -> bool:
    return bool(body.image_url or getattr(body, "image_urls", None))


@dataclass(frozen=True)
class Urls:
    """Where a request's queue routes are: fal's own host for a call through the proxy (the client sends those on
    through it), the Darkroom host's /fal/queue for fal-client."""

    base: str  # e.g. https://queue.fal.run/fal-ai/flux, without the subpath
    request_id: str

    def body(self) -> dict[str, str]:
        response = f"{self.base}/requests/{self.request_id}"
        return {"request_id": self.request_id, "response_url": response, "status_url": f"{response}/status",
                "cancel_url": f"{response}/cancel"}


def _log(message: str, at: float, level: str = "INFO") -> dict[str, Any]:
    return {"message": message, "level": level, "source": "user", "timestamp": clock.iso(at)}


def logs(job: Job) -> list[dict[str, Any]]:
    """The job's life as fal's log lines: queued, started, its denoising progress, and how it ended."""
    lines = [_log(f"Request queued for {job.model}", job.created_at)]
    if job.started_at:
        lines.append(_log("Generation started", job.started_at))
    if job.progress and job.status == JobStatus.RUNNING:
        lines.append(_log(f"Step {job.progress.get('step', 0)}/{job.progress.get('total', 0)}",
                          job.updated_at or job.started_at or job.created_at))
    end = job.finished_at or job.updated_at or job.created_at
    if job.status == JobStatus.SUCCEEDED:
        lines.append(_log(f"Generation completed: {len(job.outputs)} output(s)", end))
    elif job.status == JobStatus.FAILED:
        lines.append(_log(f"Generation failed: {job.error.message if job.error else 'unknown error'}", end, "ERROR"))
    elif job.status == JobStatus.CANCELED:
        lines.append(_log("Request canceled", end, "WARN"))
    return lines


def _inference_seconds(job: Job) -> float | None:
    timings = job.timings or {}
    if "inference" in timings:
        return round(float(timings["inference"]), 4)
    if job.started_at and job.finished_at:
        return round(job.finished_at - job.started_at, 4)
    return None


def status_body(job: Job, urls: Urls, *, with_logs: bool, queue_position: int = 0) -> dict[str, Any]:
    """GET …/requests/{id}/status: IN_QUEUE (with queue_position), IN_PROGRESS or COMPLETED (with metrics; with
    error and error_type when it did not succeed). `logs` is always there, null unless asked for."""
    body: dict[str, Any] = {"status": STATUS[job.status], **urls.body(), "logs": logs(job) if with_logs else None}
    if job.status == JobStatus.QUEUED:
        body["queue_position"] = queue_position
    if job.terminal:
        seconds = _inference_seconds(job)
        body["metrics"] = {"inference_time": seconds} if seconds is not None else {}
    if job.status == JobStatus.FAILED and not withheld(job):
        body["error"] = job.error.message if job.error else "Generation failed"
        body["error_type"] = job.error.code if job.error else "generation_failed"
    elif job.status == JobStatus.CANCELED:
        body["error"], body["error_type"] = "Request was canceled", "request_canceled"
    return body


def _file(job: Job, index: int, url: str) -> dict[str, Any]:
    output = job.outputs[index]
    item: dict[str, Any] = {"url": url, "content_type": output.content_type,
                            "file_name": output.key.rsplit("/", 1)[-1]}
    if output.bytes is not None:
        item["file_size"] = output.bytes
    return item


def result_body(job: Job, *, data_uris: bool | None = None) -> dict[str, Any]:
    """A succeeded job as fal's apps answer: images `{images: [{url, content_type, width, height}], seed,
    has_nsfw_concepts, timings, prompt}`, a video `{video: {url, content_type, …}, seed, prompt}`.
    `data_uris` (sync_mode): the files inline as data: URIs; by default, as the request asked."""
    if data_uris is None:
        data_uris = bool(job.input.get("sync_mode"))
    inline = outputs_base64(job, "omit sync_mode") if data_uris else None
    urls = [f"data:{o.content_type};base64,{inline[i]}" if inline else links.media_url(o.key)
            for i, o in enumerate(job.outputs)]
    seed = job.seed if job.seed is not None else job.params.get("seed")
    prompt = job.input.get("prompt", job.params.get("prompt"))
    if job.type == "video":
        output = job.outputs[0]
        video = {**_file(job, 0, urls[0]), "width": output.width, "height": output.height, "fps": output.fps,
                 "num_frames": output.frames, "duration": output.duration}
        return {"video": {k: v for k, v in video.items() if v is not None}, "seed": seed, "prompt": prompt}
    images = [{**_file(job, i, url), "width": o.width, "height": o.height}
              for i, (o, url) in enumerate(zip(job.outputs, urls, strict=True))]
    seconds = _inference_seconds(job)
    body: dict[str, Any] = {
        "images": images, "seed": seed,
        "has_nsfw_concepts": nsfw_concepts(job, len(images)),
        "timings": {"inference": seconds} if seconds is not None else {},
        "prompt": prompt,
    }
    if job.loras:
        body["loras"] = job.loras
    return body


def withheld(job: Job) -> bool:
    """An image job whose output the safety checker blocked: fal's apps answer it as a completed result whose images
    are withheld and flagged (has_nsfw_concepts), not as an error."""
    return (job.status == JobStatus.FAILED and job.type == "image" and job.error is not None
            and job.error.code == BLOCKED)


def withheld_body(job: Job) -> dict[str, Any]:
    """A blocked image job as fal's apps answer it: no image (none was stored), and per requested image whether
    the checker flagged it (the whole job is withheld when one is)."""
    report = job.moderation or {}
    count = int(job.params.get("n") or 1)
    blocked = set(report.get("blocked") or range(count))
    seed = job.seed if job.seed is not None else job.params.get("seed")
    return {"images": [], "seed": seed, "has_nsfw_concepts": [i in blocked for i in range(count)], "timings": {},
            "prompt": job.input.get("prompt", job.params.get("prompt"))}


def nsfw_concepts(job: Job, count: int) -> list[bool]:
    """Per image, whether the safety checker's score reached its threshold (functions/core/moderation.py). A job
    with such an image is blocked whole, so a succeeded one reports all false; with the checker off (or before it
    ran), there is no score, and nothing was flagged."""
    report = job.moderation or {}
    scores, threshold = report.get("scores") or [], report.get("threshold")
    if threshold is None or len(scores) != count:
        return [False] * count
    return [float(score) >= float(threshold) for score in scores]


def webhook_payload(job: Job) -> dict[str, Any]:
    """fal's webhook body: `{request_id, gateway_request_id, status: OK|ERROR, payload, error}`; the payload is the
    result on success, `{detail}` otherwise."""
    body: dict[str, Any] = {"request_id": job.id, "gateway_request_id": job.id}
    if job.status == JobStatus.SUCCEEDED:
        body.update(status="OK", payload=result_body(job, data_uris=False), error=None)
    elif withheld(job):
        body.update(status="OK", payload=withheld_body(job), error=None)
    else:
        reason = ("Request was canceled" if job.status == JobStatus.CANCELED
                  else job.error.message if job.error else "Generation failed")
        body.update(status="ERROR", payload={"detail": reason}, error=reason)
    return body


# ---------------------------------------------------------------- errors


class FalNotFound(NotFound):
    """An endpoint id fal's path names that no catalog model answers; or a request id that is not this
    workspace's."""

    code = "not_found"


class FalTargetRejected(DarkroomError):
    """The proxy's x-fal-target-url names no fal host Darkroom serves (fal's own proxy answers 412)."""

    status = 412
    code = "invalid_target_url"


@dataclass
class Located(FieldError):
    """A field error that says where the field is: body, query or header (fal's `loc` starts with it)."""

    where: str = "body"


def _loc(error: FieldError) -> list[Any]:
    field = error.field
    if field == "body":
        return ["body"]
    where = getattr(error, "where", None) or (
        "query" if field in QUERY_FIELDS else "header" if field in HEADER_FIELDS
        else "path" if field in PATH_FIELDS else "body")
    if where == "header":
        return [where, field.lower()]
    return [where, *(int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", field) if p)]


def _invalid_input(exc: DarkroomError) -> bool:
    """A 400 about the body or the query: fal's apps (FastAPI) answer those with 422. A missing or bad header (the
    proxy's x-fal-target-url) stays a 400, as fal's own proxy answers."""
    return exc.status == 400 and any(_loc(e)[0] != "header" for e in exc.errors)


def status_code(exc: DarkroomError) -> int:
    return 422 if _invalid_input(exc) else exc.status


def error_body(exc: DarkroomError) -> dict[str, Any]:
    """`detail` as fal's apps answer it; `message`, the whole sentence, is what @fal-ai/client's ApiError shows
    (it reads `body.message`, else only the status text)."""
    if exc.status == 400 and exc.errors:
        return {"detail": [{"loc": _loc(e), "msg": e.message, "type": e.code} for e in exc.errors],
                "message": exc.message}
    body: dict[str, Any] = {"detail": exc.message, "message": exc.message}
    fal_status = getattr(exc, "fal_status", None)
    if fal_status:
        body["status"] = fal_status
    job_id = getattr(exc, "job_id", None)
    if job_id:
        body["request_id"] = job_id
    return body


def unknown_endpoint(endpoint: str, served: list[str]) -> FalNotFound:
    listed = ", ".join(served) or "none"
    return FalNotFound(f"Application '{endpoint}' not found: no model of this Darkroom answers it. fal endpoints "
                       f"served here: {listed} (and darkroom/<catalog model id>)", code="application_not_found")


def refuse_in_progress(request_id: str) -> DarkroomError:
    """The result of a request that has not completed (fal answers 400)."""
    exc = DarkroomError(f"Request {request_id} is still in progress", code="request_in_progress")
    exc.status = 400
    return exc


def refuse(field_name: str, message: str, code: str = "invalid_value", *, where: str | None = None) -> DarkroomError:
    """A 400 naming the field (a 422 once rendered, unless the field is a header); `where` when the name alone
    does not say (an unknown query parameter)."""
    exc = bad_field(field_name, message, code)
    if where:
        exc.errors = [Located(field_name, message, code, where)]
    return exc
