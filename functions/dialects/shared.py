"""Translations the synchronous dialects (OpenAI Images, AI Media Studio) share: quality words to steps,
style presets to prompts, resolution words to sizes, and core field names to each dialect's names."""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from functions.core import storage
from functions.core.catalog import ModelSpec
from functions.core.errors import DarkroomError, FieldError, PayloadTooLarge, ValidationFailed
from functions.core.jobs import Job, JobStatus, Output
from functions.core.moderation import BLOCKED
from functions.core.styles import Style, apply_style, style_defaults

Quality = Literal["auto", "standard", "hd", "low", "medium", "high"]
Background = Literal["auto", "transparent", "opaque"]
ImageFormat = Literal["png", "jpeg", "webp"]

# Lambda answers at most 6 MB; base64 grows data by a third. Above this, inline media is refused.
MAX_B64_BYTES = 5_500_000

# AI Media Studio / fal `resolution`: the long side of the output, in pixels.
RESOLUTIONS = {"0.5K": 512, "1K": 1024, "2K": 2048, "4K": 4096}


def steps_for_quality(model: ModelSpec, quality: str | None) -> int | None:
    """`quality` as denoising steps for this model, None for its default.

    low halves the model's default steps (never below its min_steps); hd/high take half as many again (at
    least one more), never past its max_steps; auto/standard/medium keep the default.
    """
    base = model.defaults.steps
    if quality == "low":
        return max(model.min_steps, math.ceil(base / 2))
    if quality in ("hd", "high"):
        return min(model.max_steps, max(base + 1, math.ceil(base * 1.5)))
    return None


def quality_word(quality: str | None) -> str:
    """The response's `quality` (the SDK's low/medium/high vocabulary) for what was requested."""
    return {"low": "low", "hd": "high", "high": "high"}.get(quality or "auto", "medium")


@dataclass
class Styled:
    prompt: str
    negative_prompt: str | None  # the caller's, joined with the presets'
    styles: list[Style] = field(default_factory=list)
    own_negative_prompt: str | None = None  # the caller's alone

    def __post_init__(self) -> None:
        if self.own_negative_prompt is None:
            self.own_negative_prompt = self.negative_prompt

    @property
    def applied(self) -> str | None:
        """The first preset applied (the caller's style_slug before a vivid/natural tone)."""
        return self.styles[0].slug if self.styles else None


def style_prompt(prompt: str, negative_prompt: str | None, presets: list[tuple[str | None, str]]) -> Styled:
    """Apply each (slug, field name) preset in order; a None slug is skipped. Unknown slugs are a 400
    that names the field."""
    styled = Styled(prompt, negative_prompt)
    for slug, field_name in presets:
        styled.prompt, styled.negative_prompt, style = apply_style(slug, styled.prompt, styled.negative_prompt,
                                                                   field=field_name)
        if style is not None:
            styled.styles.append(style)
    return styled


def generation_fields(model: ModelSpec, styled: Styled, explicit: dict[str, Any]) -> dict[str, Any]:
    """GenerationInput fields: the styled prompt, the presets' defaults, then the caller's own values
    (None values are dropped, so a preset default stands unless the caller set that field)."""
    fields: dict[str, Any] = {"prompt": styled.prompt}
    fields.update(style_defaults(styled.styles, model))
    fields.update({k: v for k, v in explicit.items() if v is not None})
    # A preset's negative prompt goes only where the model uses one; the caller's own always goes, so that a
    # model that would ignore it refuses it (functions/core/generation.py) rather than drop it unsaid.
    negative = styled.negative_prompt if model.uses_negative_prompt(fields.get("guidance")) else None
    if negative or styled.own_negative_prompt:
        fields["negative_prompt"] = negative or styled.own_negative_prompt
    return fields


_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_RATIO = re.compile(r"^(\d{1,2}):(\d{1,2})$")


def _proportions(value: str | None, pattern: re.Pattern[str]) -> tuple[int, int] | None:
    match = pattern.match(value or "")
    if match is None:
        return None
    a, b = (int(x) for x in match.groups())
    return (a, b) if a and b else None


def size_for_resolution(model: ModelSpec, resolution: str, *, size: str | None = None,
                        aspect_ratio: str | None = None) -> str:
    """"WxH" whose long side is the resolution's, in the proportions of aspect_ratio, else size, else the
    model's default; each side snapped to the model's multiple_of."""
    long_side = RESOLUTIONS[resolution]
    rw, rh = (_proportions(aspect_ratio, _RATIO) or _proportions(size, _SIZE)
              or (model.defaults.width, model.defaults.height))
    scale = long_side / max(rw, rh)
    step = model.multiple_of
    width = max(step, round(rw * scale / step) * step)
    height = max(step, round(rh * scale / step) * step)
    return f"{width}x{height}"


def rename_fields(exc: DarkroomError, names: dict[str, str]) -> DarkroomError:
    """The core's field names (GenerationInput's) as the dialect calls them, in the errors and in the
    message. A field matches by its full name, else by its head (`image_urls.0` by `image_urls`);
    fields without a mapping keep their name."""
    if not exc.errors:
        return exc

    def rename(name: str) -> str:
        return names.get(name) or names.get(name.split(".", 1)[0]) or name

    renamed = [FieldError(rename(e.field), e.message, e.code) for e in exc.errors]
    if renamed == exc.errors:
        return exc
    exc.errors = renamed
    for lead in ("Invalid request: ", "Not allowed: "):
        if exc.message.startswith(lead):
            exc.message = lead + "; ".join(f"{e.field}: {e.message}" for e in renamed)
    return exc


def json_field(value: Any) -> Any:
    """A structured field sent as a JSON string (a multipart form's only way to carry a list of objects)."""
    if not isinstance(value, str):
        return value
    import json

    try:
        return json.loads(value)
    except ValueError:
        raise ValueError("must be a JSON array of objects (a form field carries it JSON-encoded)") from None


def bad_field(field_name: str, message: str, code: str = "invalid_value") -> ValidationFailed:
    return ValidationFailed(f"Invalid request: {field_name}: {message}",
                            errors=[FieldError(field_name, message, code)], code=code)


class GenerationFailed(DarkroomError):
    """A synchronous call's job ended without outputs: failed (refunded) or canceled."""

    status = 500
    code = "generation_failed"

    def __init__(self, message: str, *, job_id: str, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.job_id = job_id


class ContentBlocked(GenerationFailed):
    """The job's output was blocked by the safety checker (functions/core/moderation.py): a content-policy 400,
    not a server error, so clients do not retry it. Nothing was stored; the job was charged."""

    status = 400
    code = BLOCKED


class ReferenceRejected(GenerationFailed):
    """The job failed on an image the caller sent (a reference unreachable, not an image or too large; a
    mask the worker found unusable): the caller's to fix, so a 400 naming the field, not a server error."""

    status = 400
    code = "invalid_reference"


# Worker failures that are the caller's to fix, by the job's error code -> the request field they name
# (None: the dialect's references field). Answered as a 400, not a server error.
CALLER_ERRORS: dict[str, str | None] = {"invalid_reference": None, "invalid_mask": "mask"}


def require_success(job: Job, *, references_field: str = "image_urls") -> Job:
    """The job if it succeeded; otherwise GenerationFailed naming the job and the reason."""
    if job.status == JobStatus.SUCCEEDED:
        return job
    refunded = " (its credits were refunded)" if getattr(job, "cost", 0) else ""
    if job.status == JobStatus.CANCELED:
        # Not worth a client's automatic retry: someone canceled it on purpose.
        raise GenerationFailed(f"Generation {job.id} was canceled{refunded}", job_id=job.id,
                               code="generation_canceled", headers={"x-should-retry": "false"})
    reason = job.error.message if job.error else "unknown error"
    code = job.error.code if job.error else "generation_failed"
    if code == BLOCKED:
        raise ContentBlocked(f"Generation {job.id}: {reason}", job_id=job.id, headers={"x-should-retry": "false"})
    if code in CALLER_ERRORS:
        field_name = CALLER_ERRORS[code] or references_field
        reason = reason.removeprefix(f"{field_name}: ")
        raise ReferenceRejected(f"Invalid request: {field_name}: {reason} (generation {job.id}{refunded})",
                                job_id=job.id, code=code, errors=[FieldError(field_name, reason, code)])
    raise GenerationFailed(f"Generation {job.id} failed{refunded}: {reason}", job_id=job.id, code=code)


def unknown_model(name: str, field_name: str, available: list[ModelSpec]) -> ValidationFailed:
    """400 naming the field, listing the models the caller could use instead."""
    ids = ", ".join(m.id for m in available)
    return ValidationFailed(f"Invalid request: {field_name}: unknown model {name!r}; available models: {ids}",
                            errors=[FieldError(field_name, f"unknown model {name!r}; one of {ids}", "model_not_found")],
                            code="model_not_found")


# The tool whose default model serves a request that names no model, by (type, with references).
DEFAULT_TOOLS = {("image", False): "create-image", ("image", True): "edit-image",
                 ("video", False): "create-video", ("video", True): "image-to-video"}


def pick_model(name: str | None, *, kind: str, references: bool, field_name: str = "model",
               references_field: str = "image_urls") -> ModelSpec:
    """The catalog model that serves the request: the named one (id or alias) or the default tool's, switched
    to its reference-taking counterpart (edit_model) when the request brings reference images."""
    from functions.core.catalog import get_catalog

    catalog = get_catalog()
    if name is None:
        tool = catalog.tool(DEFAULT_TOOLS[(kind, references)]) or catalog.tool(DEFAULT_TOOLS[(kind, False)])
        model = catalog.model(tool.default_model) if tool else None
        if model is None:
            raise bad_field(field_name, f"no {kind} model is configured", "model_not_found")
    else:
        model = catalog.model(name)
        if model is None or model.type != kind:
            raise unknown_model(name, field_name, [m for m in catalog.models if m.type == kind])
    counterpart = catalog.with_references(model)
    if references and counterpart is not model:
        if counterpart is None:
            able = [m.id for m in catalog.models if m.type == kind and catalog.with_references(m) is not None]
            raise bad_field(field_name, f"{model.id} cannot take reference images ({references_field}); models "
                                        f"that can: {', '.join(able) or 'none are configured'}",
                            "model_not_supported")
        model = counterpart
    elif not references and model.takes_references:
        raise bad_field(references_field, f"is required: {model.id} ({model.task}) edits the images it is given",
                        "required")
    return model


def outputs_base64_if_they_fit(job: Job) -> list[str] | None:
    """The job's outputs base64-encoded when they fit a response (MAX_B64_BYTES), else None: outputs that will
    not fit are never downloaded."""
    total = sum((_size_of(o) + 2) // 3 * 4 for o in job.outputs)
    if total > MAX_B64_BYTES:
        return None
    return [base64.b64encode(storage.get_bytes(o.key)).decode() for o in job.outputs]


def _size_of(output: Output) -> int:
    """The output's size: recorded by the worker, or (older jobs) asked of S3 with a one-byte range."""
    if output.bytes is not None:
        return output.bytes
    content_range = storage.open_object(output.key, byte_range="bytes=0-0").content_range or "/0"
    return int(content_range.rsplit("/", 1)[1])


def outputs_base64(job: Job, hint: str) -> list[str]:
    """The job's outputs read from S3, base64-encoded, or a 413 (naming the job, which stays readable) when
    they would not fit a response; `hint` says what to ask for instead."""
    blobs = [storage.get_bytes(o.key) for o in job.outputs]
    total = sum((len(b) + 2) // 3 * 4 for b in blobs)
    if total > MAX_B64_BYTES:
        too_large = PayloadTooLarge(
            f"The {len(blobs)} outputs of generation {job.id} are {total / 1e6:.1f} MB as base64, over the "
            f"{MAX_B64_BYTES / 1e6:.1f} MB a response can carry; {hint}, or read them with "
            f"GET /api/generations/{job.id}", code="response_too_large")
        too_large.job_id = job.id  # the dialects' error bodies carry it, as for a timeout
        raise too_large
    return [base64.b64encode(b).decode() for b in blobs]
