"""Replicate: the prediction request bodies and their input (Replicate's input names), their translation into
GenerationInput fields, the prediction object (statuses, output, tqdm-style logs, metrics, urls), the model and
version objects with an OpenAPI schema of each model's input and output, the file object, the webhook payload
and the problem-details error body.

A Replicate model name (`owner/name`) is a catalog alias (black-forest-labs/flux-schnell…), or `darkroom/<id>`
for a catalog model that has no alias with a slash. A model's version id is derived from its catalog id, so it
stays the same across deploys while the catalog does.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from functions.core import clock, links
from functions.core.catalog import ModelSpec, get_catalog
from functions.core.errors import DarkroomError, FieldError, ValidationFailed
from functions.core.generation import LORA_SCALE_RANGE, MAX_IMAGES, MAX_PROMPT_CHARS
from functions.core.jobs import Job, JobStatus
from functions.core.schema import Request
from functions.dialects.shared import bad_field

OWNER = "darkroom"
# Aliases that name a model in another vendor's API, never shown as a Replicate model name.
OTHER_VENDORS = ("fal-ai/",)
# Replicate's webhook events -> the job's events (functions/core/lifecycle.py emits `start` and `completed`).
# An image or video job has its output only when it finishes, so `output` is the terminal delivery; Darkroom's
# logs change when the job starts and when it ends (the step lines in between are read by polling or the
# stream), so `logs` is both deliveries.
EVENTS = {"start": ("start",), "output": ("completed",), "logs": ("start", "completed"), "completed": ("completed",)}
WebhookEvent = Literal["start", "output", "logs", "completed"]
# GenerationInput field -> what the caller sent, for errors that name it.
INPUT_NAMES = {"n": "input.num_outputs", "steps": "input.num_inference_steps", "quality": "input.output_quality",
               "image_urls": "input.image", "image_url": "input.image", "strength": "input.prompt_strength",
               "mask_url": "input.mask", "fps": "input.frames_per_second", "loras": "input.lora_weights",
               "guidance": "input.guidance", "prompt": "input.prompt", "negative_prompt": "input.negative_prompt",
               "aspect_ratio": "input.aspect_ratio", "width": "input.width", "height": "input.height",
               "size": "input.megapixels", "seed": "input.seed", "output_format": "input.output_format",
               "safety_checker": "input.disable_safety_checker"}
MEGAPIXELS = {"1": 1.0, "0.25": 0.25}
_RATIO = re.compile(r"^(\d{1,2}):(\d{1,2})$")


class PredictionInput(Request):
    """`input` of a prediction, in Replicate's names (FLUX's and SDXL's on Replicate). Unknown names are refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS, description="What to generate.")
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS, description="What to avoid.")
    num_outputs: int = Field(1, ge=1, le=MAX_IMAGES, description="Images to generate, one batch.")
    aspect_ratio: str | None = Field(None, description='Aspect ratio such as "16:9", at the model\'s default area.')
    width: int | None = Field(None, ge=64, le=4096, description="Output width in pixels (wins over aspect_ratio).")
    height: int | None = Field(None, ge=64, le=4096, description="Output height in pixels.")
    megapixels: Literal["1", "0.25"] | None = Field(None, description="Approximate output size in megapixels.")
    output_format: Literal["webp", "jpg", "jpeg", "png"] | None = Field(None, description="Image format.")
    output_quality: int | None = Field(None, ge=0, le=100, description="jpg/webp quality (0-100).")
    num_inference_steps: int | None = Field(None, ge=1, le=200, description="Denoising steps.")
    guidance: float | None = Field(None, ge=0, le=30, description="Guidance scale (FLUX's name).")
    guidance_scale: float | None = Field(None, ge=0, le=30, description="Guidance scale (SDXL's name).")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="Same seed, same image.")
    image: str | None = Field(None, min_length=1, description="Image to start from (img2img) or a video's first "
                                                             "frame: a /v1/files URL, a data: URI or an http(s) URL.")
    prompt_strength: float | None = Field(None, gt=0, le=1, description="How far img2img departs from `image`.")
    mask: str | None = Field(None, min_length=1, description="Inpainting mask: a PNG whose transparent pixels are "
                                                            "repainted.")
    frames_per_second: int | None = Field(None, ge=1, le=60, description="Video frames per second.")
    lora_weights: str | None = Field(None, min_length=1, max_length=2048,
                                     description="A LoRA: a Hugging Face repo (owner/name, huggingface.co/owner/name), "
                                                 "an https URL to a .safetensors file, or a LoRA of the workspace.")
    lora_scale: float | None = Field(None, ge=LORA_SCALE_RANGE[0], le=LORA_SCALE_RANGE[1],
                                     description="How strongly lora_weights applies (default 1).")
    extra_lora: str | None = Field(None, min_length=1, max_length=2048, description="A second LoRA.")
    extra_lora_scale: float | None = Field(None, ge=LORA_SCALE_RANGE[0], le=LORA_SCALE_RANGE[1],
                                           description="How strongly extra_lora applies (default 1).")
    go_fast: bool | None = Field(None, description="Accepted for compatibility: the model's speed settings apply "
                                                   "to every run.")
    disable_safety_checker: bool | None = Field(None, description="true: no output safety check (a 403 unless the "
                                                                  "workspace's operator allows keys to turn it off).")

    @field_validator("aspect_ratio")
    @classmethod
    def _ratio(cls, value: str | None) -> str | None:
        if value is not None and not _RATIO.match(value):
            raise ValueError('must look like "16:9"')
        return value


class PredictionRequest(Request):
    """POST /v1/models/{owner}/{name}/predictions and POST /v1/deployments/{owner}/{name}/predictions."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(description="The model's input (GET /v1/models/{owner}/{name}: openapi_schema).")
    webhook: str | None = Field(None, description="POSTed the prediction, signed (Standard Webhooks).")
    webhook_events_filter: list[WebhookEvent] | None = Field(None, min_length=1,
                                                             description="start, output, logs, completed.")
    webhook_completed: str | None = Field(None, description="Replicate's older spelling of a webhook with "
                                                            "webhook_events_filter [completed].")
    stream: bool | None = Field(None, description="Accepted for compatibility: every prediction has urls.stream.")


class VersionedPredictionRequest(PredictionRequest):
    """POST /v1/predictions: `version` names the model."""

    version: str = Field(min_length=1, max_length=256,
                         description="A version id (GET /v1/models/{owner}/{name}), owner/name, or owner/name:version.")


# ---------------------------------------------------------------- model names and versions


def model_name(model: ModelSpec) -> str:
    """`owner/name` of a catalog model: its first alias of that shape that is not another vendor's endpoint id (fal's),
    else darkroom/<id>."""
    return next((a for a in model.aliases if a.count("/") == 1 and not a.startswith(OTHER_VENDORS)),
                f"{OWNER}/{model.id}")


def shown_model(model: ModelSpec) -> ModelSpec:
    """The model a prediction names: an image-to-image (image-to-video) model that has no Replicate name of its own
    is its text model's `image` input (black-forest-labs/flux-schnell with an image ran flux-schnell-edit)."""
    if not model.takes_references or not model_name(model).startswith(f"{OWNER}/"):
        return model
    return next((m for m in get_catalog().models if m.edit_model == model.id), model)


def version_id(model: ModelSpec) -> str:
    return hashlib.sha256(f"darkroom-model:{model.id}".encode()).hexdigest()


def find_model(owner: str, name: str) -> ModelSpec | None:
    catalog = get_catalog()
    model = catalog.model(f"{owner}/{name}")
    if model is None and owner.lower() == OWNER:
        model = catalog.model(name)
    return model


def model_not_found(ref: str) -> DarkroomError:
    from functions.core.errors import NotFound

    return NotFound(f"Model {ref} not found; GET /api/models lists what this Darkroom serves (as "
                    f"{OWNER}/<id>, or an alias owner/name)", code="model_not_found")


def model_for_version(version: str) -> ModelSpec:
    """`version` as Replicate takes it: a version id, owner/name, or owner/name:version. A 404 otherwise, or for
    a version id that is not this model's."""
    ref, _, wanted = version.partition(":")
    if "/" in ref:
        owner, _, name = ref.partition("/")
        model = find_model(owner, name)
        if model is None or (wanted and wanted != version_id(model)):
            raise model_not_found(version)
        return model
    model = next((m for m in get_catalog().models if version_id(m) == ref), None)
    if model is None:
        raise model_not_found(f"version {version}")
    return model


# ---------------------------------------------------------------- translation


def webhook_events(body: PredictionRequest) -> list[str]:
    wanted = body.webhook_events_filter or ["completed"]
    return [event for event in ("start", "completed") if any(event in EVENTS[w] for w in wanted)]


def webhook_of(body: PredictionRequest) -> str | None:
    if body.webhook and body.webhook_completed and body.webhook != body.webhook_completed:
        raise bad_field("webhook_completed", "names another URL than webhook; send one of them", "invalid_value")
    return body.webhook or body.webhook_completed


def _lora_path(value: str) -> str:
    """huggingface.co/owner/name (with or without https://) is the repo owner/name."""
    bare = re.sub(r"^(https?://)?(www\.)?huggingface\.co/", "", value)
    if bare != value and "/resolve/" not in bare:
        return bare.rstrip("/")
    return value


def _loras(inp: PredictionInput) -> list[dict[str, Any]] | None:
    loras = []
    for path_field, scale_field in (("lora_weights", "lora_scale"), ("extra_lora", "extra_lora_scale")):
        path, scale = getattr(inp, path_field), getattr(inp, scale_field)
        if path is None:
            if scale is not None:
                raise bad_field(f"input.{scale_field}", f"needs input.{path_field}: the LoRA it scales", "required")
            continue
        loras.append({"path": _lora_path(path), "scale": 1.0 if scale is None else scale})
    return loras or None


def _megapixel_size(model: ModelSpec, inp: PredictionInput) -> tuple[int, int]:
    if inp.width is not None or inp.height is not None:
        raise bad_field("input.megapixels", "sets the size, as width and height do; send one or the other")
    rw, rh = (int(x) for x in (inp.aspect_ratio or "1:1").split(":"))
    if not rw or not rh:
        raise bad_field("input.aspect_ratio", "both sides must be positive")
    area = MEGAPIXELS[inp.megapixels] * 1024 * 1024
    step = model.multiple_of
    width = max(step, round(math.sqrt(area * rw / rh) / step) * step)
    height = max(step, round(math.sqrt(area * rh / rw) / step) * step)
    return width, height


def parse_prediction_input(data: Any) -> PredictionInput:
    from functions.core.generation import parse_input

    return parse_input(PredictionInput, data, prefix="input.")


def pick(model: ModelSpec, inp: PredictionInput) -> ModelSpec:
    """The catalog model that runs: the named one, or its image-to-image (image-to-video) counterpart when the
    input brings an image."""
    if not inp.image:
        if inp.mask or inp.prompt_strength is not None:
            raise bad_field("input.mask" if inp.mask else "input.prompt_strength", "needs input.image", "required")
        if model.takes_references:
            raise bad_field("input.image", f"is required: {model_name(model)} edits the image it is given", "required")
        return model
    counterpart = get_catalog().with_references(model)
    if counterpart is None:
        able = [model_name(m) for m in get_catalog().models
                if m.type == model.type and get_catalog().with_references(m) is not None]
        raise bad_field("input.image", f"{model_name(model)} takes no image; models that do: {', '.join(able)}",
                        "unsupported_parameter")
    return counterpart


def generation_input(model: ModelSpec, inp: PredictionInput, image: str | None = None,
                     mask: str | None = None) -> dict[str, Any]:
    """GenerationInput fields for `model` (as `pick` chose it). `image` and `mask` are the references the route
    made of the input's (a stored data: URI, a /v1/files URL), else the input's own values."""
    if inp.guidance is not None and inp.guidance_scale is not None:
        raise bad_field("input.guidance_scale", "is the same setting as input.guidance; send one of them")
    fields: dict[str, Any] = {
        "prompt": inp.prompt, "negative_prompt": inp.negative_prompt, "n": inp.num_outputs,
        "aspect_ratio": inp.aspect_ratio, "width": inp.width, "height": inp.height,
        "steps": inp.num_inference_steps, "seed": inp.seed,
        "guidance": inp.guidance if inp.guidance is not None else inp.guidance_scale,
        "output_format": {"jpg": "jpeg"}.get(inp.output_format or "", inp.output_format),
        "quality": max(1, inp.output_quality) if inp.output_quality is not None else None,
        "strength": inp.prompt_strength, "mask_url": mask or inp.mask, "fps": inp.frames_per_second,
        "loras": _loras(inp),
    }
    if inp.megapixels is not None:
        fields["width"], fields["height"] = _megapixel_size(model, inp)
        fields["aspect_ratio"] = None
    if inp.disable_safety_checker is not None:
        from functions.core.moderation import checker_input

        fields.update(checker_input(not inp.disable_safety_checker))
    reference = image or inp.image
    if reference:
        fields["image_urls"] = [reference]
    if model.type == "video":
        fields.pop("output_format")
        fields.pop("quality")
        if fields["n"] == 1:
            fields.pop("n")
    return {k: v for k, v in fields.items() if v is not None}


# ---------------------------------------------------------------- the prediction object

STATUSES = {JobStatus.QUEUED: "starting", JobStatus.RUNNING: "processing", JobStatus.SUCCEEDED: "succeeded",
            JobStatus.FAILED: "failed", JobStatus.CANCELED: "canceled"}
CANCEL_AFTER_CODE = "cancel_after"


def status(job: Job) -> str:
    """Replicate's word for the job's state: `aborted` for a job its Cancel-After deadline ended before it
    started, `canceled` for one it stopped while running (or that was canceled)."""
    if job.status == JobStatus.CANCELED and job.error and job.error.code == CANCEL_AFTER_CODE and not job.started_at:
        return "aborted"
    return STATUSES[job.status]


def _iso(ts: float | None) -> str | None:
    return clock.iso(ts) if ts else None


def _bar(step: int, total: int) -> str:
    """A tqdm line, as a model's logs carry it and the clients parse it (Prediction.progress)."""
    fraction = step / total if total else 0
    filled = int(fraction * 10)
    return f"{int(fraction * 100):3d}%|{'█' * filled}{' ' * (10 - filled)}| {step}/{total}"


def logs(job: Job) -> str:
    lines: list[str] = []
    params = job.params
    seed = job.model_dump().get("seed") if job.status == JobStatus.SUCCEEDED else params.get("seed")
    if seed is not None:
        lines.append(f"Using seed: {seed}")
    if job.started_at is None:
        return "\n".join(lines)
    what = (f"{params.get('duration')} s video" if job.type == "video"
            else f"{params.get('n', 1)} image{'s' if params.get('n', 1) != 1 else ''}")
    lines.append(f"Running {job.model}: {what} at {params.get('width')}x{params.get('height')}")
    total = (job.progress or {}).get("total") or params.get("steps") or 0
    step = (job.progress or {}).get("step", 0)
    if job.status == JobStatus.SUCCEEDED:
        step = total
    lines += [_bar(i, total) for i in range(min(step, total) + 1)] if total else []
    if job.status == JobStatus.SUCCEEDED and job.finished_at:
        lines.append(f"Generated {len(job.outputs)} output{'s' if len(job.outputs) != 1 else ''} in "
                     f"{job.finished_at - job.started_at:.2f}s")
    return "\n".join(lines) + "\n"


def output(job: Job) -> Any:
    if job.status != JobStatus.SUCCEEDED:
        return None
    urls = [links.media_url(o.key) for o in job.outputs]
    return urls[0] if job.type == "video" and len(urls) == 1 else urls


def prediction_urls(job_id: str) -> dict[str, str]:
    base = f"{links.public_base_url()}/v1/predictions/{job_id}"
    return {"get": base, "cancel": f"{base}/cancel", "stream": f"{base}/stream"}


def prediction(job: Job, *, waited: bool = False) -> dict[str, Any]:
    """The job as a Replicate prediction. `waited`: the answer to a create with `Prefer: wait` whose wait ran
    out, where an unfinished prediction is `starting` (replicate-python takes any other status for finished)."""
    model = get_catalog().model(job.model)
    model = shown_model(model) if model else None
    metrics: dict[str, Any] = {}
    if job.started_at and job.finished_at:
        metrics["predict_time"] = round(job.finished_at - job.started_at, 3)
    if job.finished_at:
        metrics["total_time"] = round(job.finished_at - job.created_at, 3)
    if job.status == JobStatus.SUCCEEDED and job.type == "image":
        metrics["image_count"] = len(job.outputs)
    shown = status(job)
    if waited and not job.terminal:
        shown = "starting"
    body: dict[str, Any] = {
        "id": job.id,
        "model": model_name(model) if model else f"{OWNER}/{job.model}",
        "version": version_id(model) if model else "",
        "input": job.input,
        "output": output(job),
        "logs": logs(job),
        "error": job.error.message if job.status == JobStatus.FAILED and job.error else None,
        "status": shown,
        "source": "api",
        "data_removed": False,
        "metrics": metrics,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.finished_at),
        "urls": prediction_urls(job.id),
    }
    if job.webhook:
        body["webhook"] = job.webhook
    return body


def webhook_payload(job: Job) -> dict[str, Any]:
    """A job made through this dialect, as a webhook body: the prediction, as GET /v1/predictions/{id} shows it."""
    return prediction(job)


# ---------------------------------------------------------------- server-sent events


def sse_events(job: Job) -> str:
    """The finished (or, past the wait, unfinished) job as Replicate's stream: `logs` events line by line, an
    `output` event per output URL, then `error` (a failure) and `done`, each with an `id:` line (replicate-python
    drops events without one)."""
    events: list[tuple[str, str]] = [("logs", line) for line in logs(job).splitlines()]
    out = output(job)
    events += [("output", url) for url in ([out] if isinstance(out, str) else out or [])]
    if job.status == JobStatus.FAILED:
        events.append(("error", job.error.message if job.error else "Generation failed"))
    if job.terminal:
        reason = {JobStatus.CANCELED: "canceled", JobStatus.FAILED: "error"}.get(job.status)
        events.append(("done", json.dumps({"reason": reason} if reason else {})))
    chunks = []
    for index, (event, data) in enumerate(events):
        data_lines = "".join(f"data: {line}\n" for line in (data.split("\n") or [""]))
        chunks.append(f"event: {event}\nid: {job.id}:{index}\n{data_lines}\n")
    return "".join(chunks)


# ---------------------------------------------------------------- models, versions, files


def _input_schema(model: ModelSpec) -> dict[str, Any]:
    catalog = get_catalog()
    caps = catalog.capabilities(model)
    schema = PredictionInput.model_json_schema()
    props: dict[str, Any] = schema["properties"]
    drop: set[str] = set()
    if catalog.with_references(model) is None:
        drop |= {"image", "prompt_strength", "mask"}
    elif not caps["mask"]:
        drop.add("mask")
    if not caps["lora"]:
        drop |= {"lora_weights", "lora_scale", "extra_lora", "extra_lora_scale"}
    if not caps["negative_prompt"]:
        drop.add("negative_prompt")
    if model.type == "video":
        drop |= {"output_format", "output_quality", "num_outputs", "megapixels"}
    else:
        drop.add("frames_per_second")
    for name in drop:
        props.pop(name, None)
    defaults = model.defaults
    for name, value in (("num_inference_steps", defaults.steps), ("guidance", defaults.guidance),
                        ("guidance_scale", defaults.guidance), ("frames_per_second", defaults.fps)):
        if name in props and value is not None:
            props[name]["default"] = value
    if "num_inference_steps" in props:
        props["num_inference_steps"]["maximum"] = model.max_steps
    for order, name in enumerate(props):
        props[name]["x-order"] = order
    return {"type": "object", "title": "Input", "required": ["prompt"], "properties": props}


def _output_schema(model: ModelSpec) -> dict[str, Any]:
    uri = {"type": "string", "format": "uri"}
    if model.type == "video":
        return {**uri, "title": "Output"}
    return {"type": "array", "items": uri, "title": "Output"}


def version_object(model: ModelSpec) -> dict[str, Any]:
    return {
        "id": version_id(model),
        "created_at": "2024-01-01T00:00:00.000Z",
        "cog_version": "darkroom",
        "openapi_schema": {
            "openapi": "3.0.2",
            "info": {"title": model.name, "version": "0.1.0"},
            "paths": {},
            "components": {"schemas": {"Input": _input_schema(model), "Output": _output_schema(model)}},
        },
    }


def model_object(model: ModelSpec, owner: str, name: str) -> dict[str, Any]:
    base = links.public_base_url()
    return {
        "url": f"{base}/v1/models/{owner}/{name}",
        "owner": owner,
        "name": name,
        "description": model.description,
        "visibility": "public",
        "github_url": None,
        "paper_url": None,
        "license_url": getattr(model, "license_url", None),
        "run_count": 0,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": version_object(model),
    }


def file_object(record: dict[str, Any]) -> dict[str, Any]:
    """A stored input file as Replicate shows one; urls.get is what a prediction's input may name."""
    return {
        "id": record["id"],
        "name": record["name"],
        "content_type": record["content_type"],
        "size": record["size"],
        "etag": record["sha256"][:32],
        "checksums": {"sha256": record["sha256"], "md5": record["md5"]},
        "metadata": record.get("metadata") or {},
        "created_at": clock.iso(record["created_at"]),
        "expires_at": clock.iso(record["expires_at"]) if record.get("expires_at") else None,
        "urls": {"get": f"{links.public_base_url()}/v1/files/{record['id']}"},
    }


# ---------------------------------------------------------------- errors

TITLES = {400: "Bad request", 401: "Unauthenticated", 402: "Insufficient credit", 403: "Forbidden",
          404: "Not found", 405: "Method not allowed", 409: "Conflict", 413: "Payload too large",
          422: "Input validation failed", 429: "Too many requests", 500: "Internal server error",
          503: "Service unavailable", 504: "Gateway timeout"}


def status_code(exc: DarkroomError) -> int:
    """Replicate answers invalid input with 422 (its clients raise the same error class for every 4xx)."""
    return 422 if isinstance(exc, ValidationFailed) and exc.status == 400 else exc.status


def error_body(exc: DarkroomError) -> dict[str, Any]:
    """RFC 7807 problem details, as Replicate's API answers and its clients read them (title, detail, status)."""
    code = status_code(exc)
    body: dict[str, Any] = {"type": f"urn:darkroom:error:{exc.code}", "title": TITLES.get(code, "Error"),
                            "status": code, "detail": exc.message, "code": exc.code}
    if exc.errors:
        body["invalid_fields"] = [_field(e) for e in exc.errors]
    job_id = getattr(exc, "job_id", None)
    if job_id:
        body["prediction_id"] = job_id
    return body


def _field(error: FieldError) -> dict[str, str]:
    return {"type": error.code, "field": error.field, "description": error.message}
