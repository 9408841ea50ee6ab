"""Every request field of every dialect, and what Darkroom does with it: the one list that docs/fields.md is
generated from and that tests/unit/test_field_registry.py holds the request models to.

A field is one of:
- `Mapped`: it changes the work (the worker's parameters, the model that runs) or the response. `sample` is
  a value that must make a difference, and `context` other fields it needs to (a video model, an image);
  the test translates a request with and without it and fails if nothing changes.
- `Rejected`: validated, and `sample` is refused with a 400 naming the field (other values are accepted).
- `Compat`: accepted only for compatibility with the vendor's clients, and recorded with the job; `reason`
  says why it has no effect here.

Run `python -m functions.dialects.fields > docs/fields.md` after changing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UPLOAD = "upload://up_0123456789abcdef01234567/photo.png"
MASK = "upload://up_0123456789abcdef01234567/mask.png"
LORA = "lora_0123456789abcdef01234567"
_LORAS = ("LoRA adapters, [{path, scale}] as fal spells them (at most 4): a LoRA of the workspace (POST /api/loras), "
          "a Hugging Face repo or an https URL to a .safetensors file; each must fit the model's base family (a 400 "
          "at submit otherwise); the job, the response and the webhook report each one's scale and sha256")


@dataclass(frozen=True)
class Mapped:
    what: str
    sample: Any
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    what: str
    sample: Any
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Compat:
    reason: str
    sample: Any = True  # a value the request model accepts (the test sends it)


Entry = Mapped | Rejected | Compat

# ---------------------------------------------------------------- native: /api/run, /api/generate

NATIVE_INPUT: dict[str, Entry] = {
    "prompt": Mapped("what to generate", "a lighthouse at dusk"),
    "negative_prompt": Mapped("what to avoid; a 400 on a model that would not use it (no classifier-free guidance, or "
                              "guidance at or below its threshold: GET /api/models, capabilities)", "blurry",
                              {"model": "sdxl-turbo", "guidance": 2.0}),
    "n": Mapped("images per request, one batch", 2),
    "width": Mapped("output width in pixels (wins over size and aspect_ratio)", 512),
    "height": Mapped("output height in pixels", 512),
    "size": Mapped('"WxH"', "512x768"),
    "aspect_ratio": Mapped("the model's default area in this ratio; wins over size", "16:9"),
    "steps": Mapped("denoising steps", 2),
    "guidance": Mapped("classifier-free guidance scale", 1.5),
    "seed": Mapped("same seed, same image", 7),
    "output_format": Mapped("png, jpeg or webp", "webp"),
    "quality": Mapped("jpeg/webp quality", 60),
    "image_urls": Mapped("reference images: the model's image-to-image counterpart runs; a multi-reference "
                         "model (flux2-klein) composes several into each output, others use them in turn",
                         [UPLOAD]),
    "image_url": Mapped("one reference image", UPLOAD),
    "first_frame_url": Mapped("the first frame of an image-to-video job", UPLOAD, {"model": "ltx-video"}),
    "audio": Mapped("video: a soundtrack muxed into the mp4 as AAC (models with the audio capability)", True,
                    {"model": "ltx-2"}),
    "extend_video_url": Mapped("video: a clip (mp4) to continue for `duration` seconds more (models with the extend "
                               "capability)", "https://example.com/v.mp4", {"model": "ltx-2"}),
    "last_frame_url": Mapped("the last frame of a first-last-frame video (models with the last_frame capability)",
                             UPLOAD, {"model": "wan2.1-flf2v-14b", "first_frame_url": UPLOAD}),
    "strength": Mapped("how far image-to-image departs from the reference", 0.3, {"image_urls": [UPLOAD]}),
    "mask_url": Mapped("inpainting: transparent pixels of this PNG are repainted, the rest kept", MASK,
                       {"image_urls": [UPLOAD]}),
    "background": Mapped("transparent: background removed into the alpha channel (png/webp)", "transparent"),
    "duration": Mapped("video seconds, snapped to the model's durations", 6, {"model": "ltx-video"}),
    "fps": Mapped("video frames per second", 12, {"model": "ltx-video"}),
    "loras": Mapped(_LORAS, [{"path": LORA, "scale": 0.8}]),
    "make_public": Mapped("a public share page (shareUrl)", True),
}
LORA_INPUT: dict[str, Entry] = {
    "path": Mapped("lora_… (a LoRA of the workspace), owner/name[/file.safetensors][@revision] (a Hugging Face "
                   "file), or an https URL to a .safetensors file", "lora_89abcdef0123456789abcdef"),
    "scale": Mapped("how strongly it applies, -4 to 4: 0 off, 1 as trained, negative inverts it", 0.5),
}
NATIVE_RUN: dict[str, Entry] = {
    "tool": Mapped("the tool (GET /api/tools) whose default model runs", "create-video"),
    "model": Mapped("a model of that tool instead of its default", "sdxl-turbo"),
    "input": Mapped("the generation parameters (the rows above)", {"prompt": "another prompt"}),
    "webhook": Mapped("POSTed the finished job, signed (Standard Webhooks)", "https://example.com/hook"),
    "webhook_events_filter": Mapped("also deliver generation.started with start", ["start", "completed"]),
}
NATIVE_GENERATE: dict[str, Entry] = {name: NATIVE_RUN[name] for name in ("model", "input", "webhook",
                                                                         "webhook_events_filter")}

# ---------------------------------------------------------------- OpenAI-compatible

_OPENAI_COMMON: dict[str, Entry] = {
    "prompt": Mapped("what to generate (style presets may add to it; revised_prompt shows the result)", "a fox"),
    "model": Mapped("a catalog id or alias; default: the create-image (edit-image) tool's model", "sdxl-turbo"),
    "n": Mapped("images, one batch", 2),
    "size": Mapped('"WxH" or auto', "512x512"),
    "quality": Mapped("low halves the steps; hd/high adds half again", "hd"),
    "response_format": Mapped("url (a media link, 24 h) or b64_json", "b64_json"),
    "output_format": Mapped("png, jpeg or webp", "webp"),
    "output_compression": Mapped("jpeg/webp quality", 40),
_AIMS_SAFETY = ('the output safety checker\'s level, "1" (strictest) to "6" (Moderation, below); unset: the '
                "workspace's default; more permissive than the workspace allows: 403 naming it; a blocked output: "
                "400 moderation_blocked")

    "background": Mapped("transparent: background removed (png/webp; jpeg is a 400)", "transparent"),
    "style": Mapped("vivid (default), natural, or a preset slug: applied to the prompt", "natural"),
    "style_slug": Mapped("a preset (GET /api/v1/styles), applied before style", "anime-style"),
    "negative_prompt": Mapped("what to avoid (Darkroom extension); a 400 on a model that would not use it",
                              "blurry", {"model": "sdxl-turbo", "guidance": 2.0}),
    "seed": Mapped("same seed, same image (Darkroom extension)", 7),
    "steps": Mapped("denoising steps, validated as the native API's; wins over quality (Darkroom extension)", 2),
    "guidance": Mapped("classifier-free guidance scale (Darkroom extension)", 1.5, {"model": "flux-dev"}),
    "aspect_ratio": Mapped("the model's default area in this ratio; wins over size (Darkroom extension)", "16:9"),
    "loras": Mapped(_LORAS + " (Darkroom extension, sent as extra body; in a multipart edit as JSON, or as the SDKs "
                    "spell lists: loras[][path], loras[][scale])", [{"path": LORA, "scale": 0.8}]),
    "stream": Rejected("true is refused: the call answers once the images exist", True),
    "moderation": Mapped("the output safety checker's level (Moderation, below): auto is level 2, low level 4; "
                         "unset: the workspace's default; more permissive than the workspace allows: 403 naming "
                         "it; a blocked output: 400 moderation_blocked", "low"),
    "user": Compat("an end-user id for OpenAI's abuse monitoring; recorded with the job only", "user-123"),
    "safety_identifier": Compat("OpenAI's successor to user; recorded with the job only", "user-123"),
    "partial_images": Compat("only meaningful while streaming, which is refused", 2),
}
OPENAI_GENERATE: dict[str, Entry] = dict(_OPENAI_COMMON)
OPENAI_EDIT: dict[str, Entry] = {
    **_OPENAI_COMMON,
    "input_fidelity": Compat("a gpt-image control of how closely faces follow the input; the diffusion "
                             "pipelines have no such knob (strength is the nearest, from the catalog)", "high"),
}
OPENAI_VARIATION: dict[str, Entry] = {
    "model": Mapped("a catalog id or alias; default: the edit-image tool's model", "sdxl-turbo"),
    "n": Mapped("variations, one batch", 2),
    "size": Mapped('"WxH"', "512x512"),
    "response_format": Mapped("url (a media link, 24 h) or b64_json", "b64_json"),
    "user": Compat("an end-user id for OpenAI's abuse monitoring; recorded with the job only", "user-123"),
}

# ---------------------------------------------------------------- AI Media Studio

AIMS_IMAGES: dict[str, Entry] = {
    "prompt": Mapped("what to generate", "a fox"),
    "model": Mapped("a catalog id or alias; default: the create-image tool's model", "sdxl-turbo"),
    "n": Mapped("images, one batch (1-8)", 2),
    "size": Mapped('"WxH"', "512x512"),
    "aspect_ratio": Mapped("wins over size", "16:9"),
    "resolution": Mapped("0.5K-4K: the long side in pixels", "0.5K"),
    "output_format": Mapped("png, jpeg or webp", "webp"),
    "quality": Mapped("low halves the steps; hd/high adds half again", "hd"),
    "background": Mapped("transparent: background removed (png/webp; jpeg is a 400)", "transparent"),
    "style": Mapped("natural or vivid, applied to the prompt", "natural"),
    "style_slug": Mapped("a preset, applied to the prompt (style_applied)", "anime-style"),
    "image_urls": Mapped("reference images: the model's image-to-image counterpart runs; a multi-reference "
                         "model (flux2-klein) composes several into each output, others use them in turn",
                         [UPLOAD]),
    "seed": Mapped("same seed, same image", 7),
    "negative_prompt": Mapped("what to avoid; a 400 on a model that would not use it", "blurry",
                              {"model": "playground-v2"}),
    "make_public": Mapped("a public share page (share_url)", True),
    "loras": Mapped(_LORAS + " (Darkroom extension)", [{"path": LORA, "scale": 0.8}]),
    "sync_mode": Mapped("true: the images come back as data: URIs", True),
    "safety_tolerance": Compat("a fal.ai moderation level; the local pipelines run no moderation model", "2"),
    "limit_generations": Compat("a fal.ai option for multi-image prompt rounds; one request is one batch here"),
    "enable_web_search": Compat("a fal.ai option; the pipelines do not search the web"),
}
AIMS_VIDEOS: dict[str, Entry] = {
    "prompt": Mapped("what to generate", "a fox running"),
    "model": Mapped("a catalog id or alias; default: the create-video tool's model", "ltx-video-fast"),
    "duration": Mapped("seconds, snapped to the model's durations", 2),
    "aspect_ratio": Mapped("the model's default area in this ratio", "1:1"),
    "audio": Mapped("true: a soundtrack muxed into the mp4 as AAC (ltx-2), reported as audio; a 400 naming the "
                    "models that make audio on others", True, {"model": "ltx-2"}),
    "make_public": Mapped("a public share page (share_url)", True),
    "image_url": Mapped("the first frame: the image-to-video counterpart runs", UPLOAD),
    "image_urls": Mapped("reference images; the first is the first frame", [UPLOAD]),
    "first_frame_url": Mapped("the first frame", UPLOAD),
    "last_frame_url": Mapped("the last frame: a first-last-frame model (wan2.1-flf2v-14b) ends the video on it; "
                             "a 400 naming the models that can on others", UPLOAD,
                             {"model": "wan2.1-flf2v-14b", "image_url": UPLOAD}),
    "extend_video_url": Mapped("a clip to continue: the result is the clip, then `duration` seconds more (ltx-2); a "
                               "400 naming the models that extend on others", "https://example.com/v.mp4",
                               {"model": "ltx-2"}),
    "cfg_scale": Mapped("guidance scale", 3.0),
    "negative_prompt": Mapped("what to avoid", "blurry"),
    "resolution": Mapped("480p/720p (short side) or 0.5K-4K (long side)", "480p"),
    "seed": Mapped("same seed, same video", 7),
    "loras": Mapped(_LORAS + " (Darkroom extension)", [{"path": LORA, "scale": 0.8}]),
    "enhance_prompt": Compat("a vendor prompt rewriter; Darkroom runs the prompt as given"),
    "auto_fix": Compat("a vendor retry-on-policy option; no moderation runs here"),
    "safety_tolerance": Compat("a vendor moderation level; the local pipelines run no moderation model", "2"),
}

# The request models, by "module:Class", with their rows: what the test walks and the docs show.
REGISTRY: dict[str, tuple[str, dict[str, Entry]]] = {
    "functions.core.generation:GenerationInput": ("native `input` (/api/run, /api/generate)", NATIVE_INPUT),
    "functions.core.generation:LoraInput": ("each of `loras`, in every dialect", LORA_INPUT),
    "functions.api.native:RunRequest": ("native POST /api/run", NATIVE_RUN),
    "functions.api.native:GenerateRequest": ("native POST /api/generate", NATIVE_GENERATE),
    "functions.dialects.openai:ImagesGenerateRequest": ("OpenAI POST /v1/images/generations", OPENAI_GENERATE),
    "functions.dialects.openai:ImagesEditRequest": (
        ("OpenAI POST /v1/images/edits (form fields, files image, image[] and mask; or JSON with "
         "images: [{image_url}] and mask: {image_url}, data: or http(s) URLs)"), OPENAI_EDIT),
    "functions.dialects.openai:ImagesVariationRequest": (
        "OpenAI POST /v1/images/variations (form fields; file: image)", OPENAI_VARIATION),
    "functions.dialects.aims:ImagesGenerateRequest": ("AI Media Studio POST /api/v1/images/generate", AIMS_IMAGES),
    "functions.dialects.aims:VideosGenerateRequest": ("AI Media Studio POST /api/v1/videos/generate", AIMS_VIDEOS),
}


def _describe(entry: Entry) -> tuple[str, str]:
    if isinstance(entry, Mapped):
        return "mapped", entry.what
    if isinstance(entry, Rejected):
        return "validated, some values refused", entry.what
    return "accepted only for compatibility", entry.reason


def markdown() -> str:
    from functions.dialects.openai import UNSUPPORTED

    lines = ["# Request fields, dialect by dialect", "",
             "Generated from `functions/dialects/fields.py` (`python -m functions.dialects.fields > docs/fields.md`);",
             "`tests/unit/test_field_registry.py` fails on a request field missing here and on a `mapped` field",
             "that changes neither the work nor the response. Unknown fields are refused with a 400 everywhere.", ""]
    for title, rows in REGISTRY.values():
        lines += [f"## {title}", "", "| field | kind | what it does |", "|---|---|---|"]
        lines += [f"| `{name}` | {kind} | {what} |" for name, (kind, what) in
                  ((n, _describe(e)) for n, e in rows.items())]
        lines.append("")
    lines += ["## Refused by name (OpenAI)", "", "| field | why |", "|---|---|"]
    lines += [f"| `{name}` | {reason} |" for name, reason in UNSUPPORTED.items()]
    lines += ["", ("The native `input.style` (a preset slug) is applied to the prompt before `input` is "
                   "validated, as the other dialects' `style_slug`."), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
    "functions.dialects.replicate:PredictionInput": ("Replicate `input` (every prediction route)", REPLICATE_INPUT),
    "functions.dialects.replicate:PredictionRequest": (
        "Replicate POST /v1/models/{owner}/{name}/predictions, POST /v1/deployments/{owner}/{name}/predictions",
        REPLICATE_CREATE),
    "functions.dialects.replicate:VersionedPredictionRequest": ("Replicate POST /v1/predictions", REPLICATE_VERSIONED),
    "functions.dialects.fal:FalImageRequest": (
        ("fal image endpoints (POST /fal/queue/{endpoint id}, /fal/run/…, /fal/proxy): fal-ai/flux/schnell, "
         "fal-ai/flux/dev, fal-ai/flux-lora, …"), FAL_IMAGE),
    "functions.dialects.fal:ImageSize": ("fal `image_size` as an object", FAL_IMAGE_SIZE),
    "functions.dialects.fal:FalVideoRequest": (
        "fal video endpoints: fal-ai/wan/…, fal-ai/ltx-video, … (the query's fal_webhook: fal's webhook body, signed)",
        FAL_VIDEO),
