"""What a generation request means, whatever dialect it came in: validated input, resolved parameters.

Each dialect translates its request into `GenerationInput`; `resolve_params` turns that plus the catalog
model into the exact parameters the worker runs (so a retried job runs identically).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.core.catalog import MAX_LORAS, ModelSpec

from .errors import FieldError, ValidationFailed
from .schema import Request

MAX_PROMPT_CHARS = 4000
MAX_IMAGES = 10
MAX_REFERENCES = 10
# The range of a LoRA adapter's scale: 0 turns it off, 1 is its trained strength, negative scales invert it (slider
# adapters are trained to be used both ways). How many a request may bring: catalog.MAX_LORAS.
LORA_SCALE_RANGE = (-4.0, 4.0)
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
_RATIO = re.compile(r"^(\d{1,2}):(\d{1,2})$")
OutputFormat = Literal["png", "jpeg", "webp"]
Background = Literal["auto", "opaque", "transparent"]
# Formats that keep an alpha channel, hence can carry a transparent background.
ALPHA_FORMATS = ("png", "webp")
# With a mask, the masked region is repainted from noise (an inpaint), unless the caller sets strength.
MASK_STRENGTH = 1.0


class LoraInput(Request):
    """One LoRA adapter for one request, as fal spells it: `{path, scale}`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    path: str = Field(min_length=1, max_length=2048,
                      description="A LoRA of this workspace (its id, lora_…, from POST /api/loras), a public Hugging "
                                  "Face repo (owner/name, or owner/name/file.safetensors; @revision optional), or "
                                  "an https URL to a .safetensors file.")
    scale: float = Field(1.0, ge=LORA_SCALE_RANGE[0], le=LORA_SCALE_RANGE[1],
                         description="How strongly it applies: 0 off, 1 as trained, negative inverts it.")


class GenerationInput(Request):
    """The generation parameters every dialect can express. Unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS, description="What to generate.")
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS, description="What to avoid.")
    n: int = Field(1, ge=1, le=MAX_IMAGES, description="Number of images, generated as one batch.")
    width: int | None = Field(None, ge=64, le=4096, description="Output width in pixels.")
    height: int | None = Field(None, ge=64, le=4096, description="Output height in pixels.")
    size: str | None = Field(None, description='Output size as "WIDTHxHEIGHT", e.g. "1024x1024".')
    aspect_ratio: str | None = Field(None, description='Aspect ratio such as "16:9"; takes precedence over size.')
    steps: int | None = Field(None, ge=1, le=200, description="Denoising steps (model default if omitted).")
    guidance: float | None = Field(None, ge=0, le=30, description="Classifier-free guidance scale.")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="Same seed, same image.")
    output_format: OutputFormat = Field("png", description="png, jpeg or webp.")
    quality: int | None = Field(None, ge=1, le=100, description="jpeg/webp quality.")
    image_urls: list[str] | None = Field(None, max_length=MAX_REFERENCES,
                                         description="Reference images (http(s) URLs or upload:// references): "
                                                     "image-to-image, or the first frame of a video.")
    image_url: str | None = Field(None, description="One reference image (same as image_urls with one entry).")
    first_frame_url: str | None = Field(None, description="The first frame of an image-to-video generation.")
    extend_video_url: str | None = Field(None, description="A clip (mp4) to continue: the video is the clip, then "
                                                           "`duration` seconds more (models with the extend "
                                                           "capability).")
    last_frame_url: str | None = Field(None, description="The last frame of a first-last-frame video (models with "
                                                         "the last_frame capability; a first frame is needed too).")
    strength: float | None = Field(None, gt=0, le=1, description="How far image-to-image departs from the reference.")
    mask_url: str | None = Field(None, description="Inpainting: a PNG the size of the first reference image whose "
                                                   "transparent pixels (alpha 0) are repainted; the rest is kept.")
    background: Background | None = Field(None, description="transparent: the background is removed (alpha "
                                                            "channel; png or webp). auto and opaque: opaque.")
    duration: float | None = Field(None, gt=0, le=60, description="Video length in seconds (snapped to the model's).")
    audio: bool | None = Field(None, description="Video: a synchronized soundtrack, muxed into the mp4 as AAC (models "
                                                 "with the audio capability).")
    fps: int | None = Field(None, ge=1, le=60, description="Video frames per second.")
    loras: list[LoraInput] | None = Field(None, max_length=MAX_LORAS,
                                          description=f"LoRA adapters (at most {MAX_LORAS}), applied together for "
                                                      "this job only; each must fit the model's family.")
    make_public: bool = Field(False, description="Give the output a public share page (share_url).")
    enhance_prompt: bool | None = Field(None, description="true: a small instruct LLM (the catalog's prompt_enhancer) "
                                        "rewrites the prompt into a detailed one before generation, deterministically "
                                        "(greedy decoding); the job's revised_prompt is the prompt that ran. Costs "
                                        "the enhancer's credits. POST /api/prompts/enhance shows the rewrite first.")
    safety_tolerance: int | None = Field(None, ge=1, le=6, description="Output moderation level, 1 (strictest) to 6 "
                                         "(most permissive): an output the safety checker scores at or above the "
                                         "level's threshold fails the job (moderation_blocked). Default: the "
                                         "workspace's; above the most permissive its operator allows: 403.")
    safety_checker: bool | None = Field(None, description="false: no output safety check (403 unless the "
                                                          "workspace's operator allows keys to turn it off).")

    @field_validator("size")
    @classmethod
    def _size_shape(cls, value: str | None) -> str | None:
        if value is not None and value != "auto" and not _SIZE.match(value):
            raise ValueError('must look like "1024x1024"')
        return value

    @field_validator("aspect_ratio")
    @classmethod
    def _ratio_shape(cls, value: str | None) -> str | None:
        if value is not None and value != "auto" and not _RATIO.match(value):
            raise ValueError('must look like "16:9"')
        return value


def parse_input(model: type[BaseModel], data: Any, *, prefix: str = "", strict: bool = True) -> Any:
    """Validate with pydantic; turn its errors into a ValidationFailed that names each field and reason.

    Strict, as OpenAI's API is: a JSON `true` is no integer and `"yes"` or `1` no boolean, `"2"` no number.
    Multipart forms pass strict=False: every field of a form is a string, and is read as its type."""
    if not isinstance(data, dict):
        raise ValidationFailed("Request body must be a JSON object",
                               errors=[FieldError(prefix.rstrip(".") or "body", "must be a JSON object", "invalid_type")])
    try:
        return model.model_validate(data, strict=strict)
    except ValidationError as exc:
        raise validation_failed(exc, prefix=prefix) from None


def validation_failed(exc: ValidationError, *, prefix: str = "") -> ValidationFailed:
    errors = []
    for err in exc.errors():
        field = prefix + ".".join(str(p) for p in err["loc"]) if err["loc"] else prefix.rstrip(".") or "body"
        code = {"extra_forbidden": "unknown_field", "missing": "required"}.get(err["type"], err["type"])
        message = "is not a recognised field" if code == "unknown_field" else err["msg"]
        message = message.removeprefix("Value error, ")
        errors.append(FieldError(field, message, code))
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return ValidationFailed(f"Invalid request: {summary}", errors=errors)


def _bad(field: str, message: str, code: str = "invalid_value") -> ValidationFailed:
    return ValidationFailed(f"Invalid request: {field}: {message}", errors=[FieldError(field, message, code)],
                            code=code)


def _snap(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def resolve_size(model: ModelSpec, inp: GenerationInput, *, prefix: str = "") -> tuple[int, int]:
    """width/height: explicit pixels, else aspect_ratio (at the model's default area), else size, else default."""
    width, height = model.defaults.width, model.defaults.height
    if inp.aspect_ratio and inp.aspect_ratio != "auto":
        rw, rh = (int(x) for x in inp.aspect_ratio.split(":"))
        if rw == 0 or rh == 0:
            raise _bad(prefix + "aspect_ratio", "both sides must be positive")
        area = model.defaults.width * model.defaults.height
        width = _snap(math.sqrt(area * rw / rh), model.multiple_of)
        height = _snap(math.sqrt(area * rh / rw), model.multiple_of)
    elif inp.size and inp.size != "auto":
        width, height = (int(x) for x in inp.size.split("x"))
    if inp.width is not None:
        width = inp.width
    if inp.height is not None:
        height = inp.height
    for side, value in (("width", width), ("height", height)):
        if model.min_side <= value <= model.max_side and value % model.multiple_of == 0:
            continue
        # Name the input that produced the bad side: the explicit pixel field, else the ratio or size.
        if getattr(inp, side) is not None:
            field = side
        elif inp.aspect_ratio and inp.aspect_ratio != "auto":
            field = "aspect_ratio"
        else:
            field = "size"
        if not model.min_side <= value <= model.max_side:
            raise _bad(prefix + field, f"{width}x{height} is outside {model.min_side}..{model.max_side} pixels per "
                                       f"side for {model.id}", "invalid_size")
        raise _bad(prefix + field, f"{width}x{height}: each side must be a multiple of {model.multiple_of} for "
                                   f"{model.id}", "invalid_size")
    return width, height


def resolve_params(model: ModelSpec, inp: GenerationInput, *, prefix: str = "") -> dict[str, Any]:
    """The exact parameters the worker will run, defaults filled in from the catalog."""
    width, height = resolve_size(model, inp, prefix=prefix)
    steps = inp.steps if inp.steps is not None else model.defaults.steps
    if steps > model.max_steps:
        raise _bad(prefix + "steps", f"must be at most {model.max_steps} for {model.id}")
    if steps < model.min_steps:  # else charged, then refused by the worker (gpu/pipelines.py, Family.min_steps)
        raise _bad(prefix + "steps", f"must be at least {model.min_steps} for {model.id}")
    params: dict[str, Any] = {
        "prompt": inp.prompt,
        "n": inp.n,
        "width": width,
        "height": height,
        "steps": steps,
        "guidance": inp.guidance if inp.guidance is not None else model.defaults.guidance,
        "seed": inp.seed,
        "output_format": inp.output_format,
        "quality": inp.quality,
    }
    if inp.negative_prompt:
        _check_negative_prompt(model, params["guidance"], prefix)
        params["negative_prompt"] = inp.negative_prompt
    if inp.background == "transparent":
        _check_transparent(model, inp, prefix)
        params["background"] = "transparent"
    if inp.enhance_prompt:
        check_enhancer(prefix + "enhance_prompt")
        params["enhance_prompt"] = True
    return {k: v for k, v in params.items() if v is not None}


def check_enhancer(field: str) -> None:
    """A 400 naming `field` when the catalog has no prompt enhancer (nothing could rewrite the prompt)."""
    from functions.core.catalog import get_catalog

    if get_catalog().prompt_enhancer is None:
        raise _bad(field, "prompt enhancement is not available: no prompt_enhancer is configured in the catalog",
                   "unsupported_parameter")


def _check_negative_prompt(model: ModelSpec, guidance: float | None, prefix: str) -> None:
    """A negative prompt the model would not use is refused, not dropped: distilled models have no
    classifier-free guidance to steer with, and the others use it only with guidance above their threshold."""
    from functions.core.catalog import get_catalog

    if model.uses_negative_prompt(guidance):
        return
    if not model.negative_prompt:
        able = get_catalog().able(model.type, "negative_prompt")
        raise _bad(prefix + "negative_prompt", f"{model.id} takes no negative prompt (it runs without classifier-"
                                               f"free guidance); models that take one: {', '.join(able) or 'none'}",
                   "unsupported_parameter")
    raise _bad(prefix + "negative_prompt", f"{model.id} uses a negative prompt only with guidance above "
                                           f"{model.cfg_above:g} (classifier-free guidance), and guidance is "
                                           f"{guidance or 0:g}; set guidance above {model.cfg_above:g} or omit "
                                           "negative_prompt", "unsupported_parameter")


def _check_transparent(model: ModelSpec, inp: GenerationInput, prefix: str) -> None:
    from functions.core.catalog import get_catalog

    if model.type != "image":
        raise _bad(prefix + "background", f"{model.id} makes video; transparent backgrounds are for images")
    if inp.output_format not in ALPHA_FORMATS:
        raise _bad(prefix + "background", f"transparent needs an output format with alpha (png or webp); "
                                          f"output_format is {inp.output_format}", "unsupported_format")
    if get_catalog().background_remover is None:
        raise _bad(prefix + "background", "transparent is not available: no background_remover is configured "
                                          "in the catalog", "unsupported_parameter")


def _references(inp: GenerationInput, workspace_id: str, prefix: str) -> list[dict[str, str]]:
    from .uploads import resolve_reference

    named = [("first_frame_url", inp.first_frame_url), ("image_url", inp.image_url)]
    named += [(f"image_urls.{i}", url) for i, url in enumerate(inp.image_urls or [])]
    refs = [resolve_reference(url, workspace_id, prefix + name) for name, url in named if url]
    if len(refs) > MAX_REFERENCES:
        raise _bad(prefix + "image_urls", f"at most {MAX_REFERENCES} reference images")
    return refs


def _check_mask(mask: dict[str, str], image: dict[str, str], field: str) -> None:
    """OpenAI's mask rules at submit, where both files are uploads (their headers are read); for URLs the
    worker checks, once it has fetched them."""
    from . import imageinfo
    from .uploads import upload_header

    if "upload_key" not in mask:
        return
    image_header = upload_header(image["upload_key"]) if "upload_key" in image else None
    problem = imageinfo.mask_problem(upload_header(mask["upload_key"]), image_header)
    if problem:
        raise _bad(field, problem, "invalid_mask")


def _check_composed(model: ModelSpec, inp: GenerationInput, count: int, prefix: str) -> None:
    """A multi-reference editor composes up to `model.references` images (with a mask: the image to repaint, then
    that many references), and has no strength to set except when it inpaints."""
    from functions.core.catalog import get_catalog

    repainted = 1 if inp.mask_url else 0  # with a mask, the first image is repainted, not composed
    if count > model.references + repainted:
        others = [m.id for m in get_catalog().models if (m.references or 0) + repainted >= count]
        raise _bad(prefix + "image_urls", f"{model.id} composes at most {model.references} reference images"
                                          f"{' besides the image to repaint' if inp.mask_url else ''}, got {count}; "
                                          f"models that take {count}: {', '.join(others) or 'none are configured'}",
                   "too_many_references")
    if inp.strength is not None and not inp.mask_url:
        raise _bad(prefix + "strength", f"{model.id} composes its reference images whole and has no strength; "
                                        "strength applies to its inpainting (with a mask)", "unsupported_parameter")


def _check_one_per_output(model: ModelSpec, inp: GenerationInput, count: int, prefix: str) -> None:
    """An image-to-image model edits one image per output (n images: each its own, in turn) and an image-to-video
    model starts from one first frame: more images than that would go unused, so they are refused, naming the
    models that compose that many."""
    from functions.core.catalog import get_catalog

    room = inp.n if model.type == "image" else 1
    if count <= room:
        return
    able = [m.id for m in get_catalog().models if m.type == model.type and (m.references or 0) >= count]
    what = (f"edits one image per output (n={inp.n})" if model.type == "image"
            else "starts from one image (the first frame)")
    raise _bad(prefix + "image_urls", f"{model.id} {what}, got {count} images; models that compose {count}: "
                                      f"{', '.join(able) or 'none are configured'}", "too_many_references")


def _check_extend(model: ModelSpec, inp: GenerationInput, refs: list, prefix: str) -> None:
    from functions.core.catalog import get_catalog

    if not model.extend:
        able = get_catalog().able("video", "extend")
        raise _bad(prefix + "extend_video_url", f"{model.id} does not extend videos; models that do: "
                                                f"{', '.join(able) or 'none are configured'}", "unsupported_parameter")
    if refs or inp.last_frame_url:
        raise _bad(prefix + "extend_video_url", "continues a clip from its last frames: send it without a first or "
                                                "last frame", "invalid_value")
    if inp.audio:
        raise _bad(prefix + "audio", "an extension's soundtrack cannot continue the clip's: send audio or "
                                     "extend_video_url, not both", "unsupported_parameter")


def _check_last_frame(model: ModelSpec, refs: list, prefix: str) -> None:
    from functions.core.catalog import get_catalog

    if not model.last_frame:
        able = get_catalog().able("video", "last_frame")
        raise _bad(prefix + "last_frame_url", f"{model.id} does not take a last frame; models that do: "
                                              f"{', '.join(able) or 'none are configured'}", "unsupported_parameter")
    if not refs:
        raise _bad(prefix + "last_frame_url", "needs a first frame too (first_frame_url, image_url or image_urls)",
                   "required")


def _loras(model: ModelSpec, loras: list[LoraInput], workspace_id: str, prefix: str) -> list[dict[str, Any]]:
    """Each adapter, judged at submit against the base family of the model that will run (functions/core/loras.py)."""
    from functions.core.catalog import get_catalog

    from . import lora_files
    from . import loras as registry

    family = get_catalog().base_family(model)
    if not lora_files.supports(family):
        able = [m.id for m in get_catalog().models if m.type == model.type and get_catalog().capabilities(m)["lora"]]
        raise _bad(prefix + "loras", f"{model.id} takes no LoRA adapters; models that do: {', '.join(able) or 'none'}",
                   "unsupported_parameter")
    hotswap = model.speed.lora_hotswap  # adapters swapped into fixed slots: as many as slots, of bounded rank
    if hotswap is not None and len(loras) > hotswap.slots:
        raise _bad(prefix + "loras", f"{model.id} takes at most {hotswap.slots} LoRA adapter"
                                     f"{'s' if hotswap.slots > 1 else ''} at once, not {len(loras)}", "too_many_loras")
    return [registry.for_job(workspace_id, lora.path, lora.scale, family, f"{prefix}loras.{i}.path",
                             max_rank=hotswap.rank if hotswap is not None else None)
            for i, lora in enumerate(loras)]


def check_license(model: ModelSpec, field: str = "model") -> None:
    """A 400 naming `field` unless the model is free for commercial use or the operator accepted its license."""
    from functions.core.catalog import get_catalog

    from .settings import get_settings

    if model.license_accepted(get_settings().accepted_licenses):
        return
    free = [m.id for m in get_catalog().models if m.type == model.type and m.commercial_use and not m.takes_references]
    raise _bad(field, f"{model.id} is under the {model.license} license, which is not free for every commercial use"
                      f"{' (' + model.license_note + ')' if model.license_note else ''}; it runs once the operator "
                      f"accepts that license (AcceptedLicenses, or darkroom deploy --accept-license {model.license}). "
                      f"Models free for commercial use: {', '.join(free) or 'none are configured'}",
               "license_not_accepted")


def resolve_request(model: ModelSpec, inp: GenerationInput, *, workspace_id: str,
                    prefix: str = "") -> tuple[ModelSpec, dict[str, Any]]:
    """The model that will run and its exact parameters, for every task.

    Reference images switch a text-to-image (text-to-video) model to its image-to-image (image-to-video)
    counterpart; video durations snap to the model's nearest supported one and fix the frame count.
    """
    from functions.core.catalog import get_catalog

    from . import moderation
    from .uploads import resolve_reference

    refs = _references(inp, workspace_id, prefix)
    check_license(model)
    # Before any other work: a prompt the workspace refuses, or a level it does not allow, costs nothing.
    safety = moderation.resolve(inp.prompt, inp.safety_tolerance, inp.safety_checker, workspace_id=workspace_id,
                                prefix=prefix)
    if refs and not model.takes_references:
        if not model.edit_model:
            raise _bad(prefix + "image_urls", f"{model.id} does not take reference images")
        model = get_catalog().model(model.edit_model) or model
    if model.takes_references and not refs:
        raise _bad(prefix + "image_urls", f"{model.id} ({model.task}) needs at least one reference image",
                   "required")
    if refs and model.references is not None:
        _check_composed(model, inp, len(refs), prefix)
    elif refs:
        _check_one_per_output(model, inp, len(refs), prefix)
    params = resolve_params(model, inp, prefix=prefix)
    if inp.mask_url:
        if model.type != "image" or not refs:
            raise _bad(prefix + "mask_url", f"a mask needs an image to edit (image_urls) and an image model; "
                                            f"{model.id} is a {model.task} model")
        if not model.mask:
            raise _bad(prefix + "mask_url", f"{model.id} does not inpaint; models that do: "
                                            f"{', '.join(get_catalog().able('image', 'mask')) or 'none'}",
                       "unsupported_parameter")
        params["mask"] = resolve_reference(inp.mask_url, workspace_id, prefix + "mask_url")
        _check_mask(params["mask"], refs[0], prefix + "mask_url")
    if inp.extend_video_url:
        _check_extend(model, inp, refs, prefix)
        params["extend_video"] = resolve_reference(inp.extend_video_url, workspace_id, prefix + "extend_video_url")
    if inp.audio:
        if not model.audio:
            able = get_catalog().able("video", "audio")
            raise _bad(prefix + "audio", f"{model.id} makes no audio; models that do: "
                                         f"{', '.join(able) or 'none are configured'}", "unsupported_parameter")
        params["audio"] = True
    if inp.last_frame_url:
        _check_last_frame(model, refs, prefix)
        params["last_frame"] = resolve_reference(inp.last_frame_url, workspace_id, prefix + "last_frame_url")
    elif model.last_frame:
        raise _bad(prefix + "last_frame_url", f"is required: {model.id} makes a video from a first and a last frame",
                   "required")
    if inp.loras:
        params["loras"] = _loras(model, inp.loras, workspace_id, prefix)
    if refs:
        params["references"] = refs
        if model.type == "image":
            default = MASK_STRENGTH if inp.mask_url else model.defaults.strength
            params["strength"] = inp.strength if inp.strength is not None else default
    params["moderation"] = safety
    if model.type == "video":
        if inp.n != 1:
            raise _bad(prefix + "n", "video models make one video per request")
        duration = model.snap_duration(inp.duration if inp.duration is not None else model.defaults.duration)
        fps = inp.fps or model.defaults.fps
        if model.frame_rates and fps not in model.frame_rates:
            raise _bad(prefix + "fps", f"{model.id} makes {' or '.join(map(str, model.frame_rates))} frames per second "
                                       "(it takes no frame rate: another would only change the playback speed)")
        params.update(duration=duration, fps=fps, frames=model.frames_for(duration, fps))
        params.pop("output_format", None)
        params.pop("quality", None)
    elif inp.duration is not None or inp.fps is not None:
        raise _bad(prefix + ("duration" if inp.duration is not None else "fps"), f"{model.id} makes images, not video")
    return model, {k: v for k, v in params.items() if v is not None}
