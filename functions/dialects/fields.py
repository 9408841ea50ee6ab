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
_ENHANCE = ("true: the catalog's prompt enhancer (a small instruct LLM, greedy decoding) rewrites the prompt before "
            "generation; the rewrite runs and comes back as {} (Prompt enhancement, below); costs the enhancer's "
            "credits on top")
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
    "enhance_prompt": Mapped(_ENHANCE.format("revisedPrompt, with promptEnhancement"), True),
    "safety_tolerance": Mapped("output moderation level, 1 (strictest) to 6 (most permissive): the job runs at its "
                               "threshold (Moderation, below); default: the workspace's; above the most permissive "
                               "its operator allows: 403 naming it", 1),
    "safety_checker": Mapped("false: no output safety check; 403 naming it unless the workspace's operator allows "
                             "keys to turn the checker off", False),
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

_AIMS_SAFETY = ('the output safety checker\'s level, "1" (strictest) to "6" (Moderation, below); unset: the '
                "workspace's default; more permissive than the workspace allows: 403 naming it; a blocked output: "
                "400 moderation_blocked")

_OPENAI_COMMON: dict[str, Entry] = {
    "prompt": Mapped("what to generate (style presets may add to it, enhance_prompt rewrites it; revised_prompt "
                     "shows the prompt that ran)", "a fox"),
    "model": Mapped("a catalog id or alias; default: the create-image (edit-image) tool's model", "sdxl-turbo"),
    "n": Mapped("images, one batch", 2),
    "size": Mapped('"WxH" or auto', "512x512"),
    "quality": Mapped("low halves the steps; hd/high adds half again", "hd"),
    "response_format": Mapped("url (a media link, 24 h) or b64_json", "b64_json"),
    "output_format": Mapped("png, jpeg or webp", "webp"),
    "output_compression": Mapped("jpeg/webp quality", 40),
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
    "enhance_prompt": Mapped(_ENHANCE.format("each image's revised_prompt (dall-e-3's prompt revision, asked for; "
                                             "Darkroom extension)"), True),
    "stream": Rejected("true is refused: the call answers once the images exist", True),
    "moderation": Mapped("the output safety checker's level (Moderation, below): auto is level 2, low level 4; "
                         "unset: the workspace's default; more permissive than the workspace allows: 403 naming "
                         "it; a blocked output: 400 moderation_blocked", "low"),
    "user": Compat("an end-user id for OpenAI's abuse monitoring; recorded with the job and shown as end_user "
                   "with each of its blocked generations in the operator's moderation listing; it changes no output",
                   "user-123"),
    "safety_identifier": Compat("OpenAI's successor to user: an end-user id for abuse monitoring, recorded with the job "
                                "and shown as end_user with each of its blocked generations in the operator's "
                                "moderation listing (GET /api/admin/workspaces/{id}/moderation); it changes no "
                                "output", "user-123"),
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
    "user": Compat("an end-user id for OpenAI's abuse monitoring; recorded with the job and shown as end_user "
                   "with each of its blocked generations in the operator's moderation listing; it changes no output",
                   "user-123"),
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
    "enhance_prompt": Mapped(_ENHANCE.format("revised_prompt, with prompt_enhancement (the videos endpoint's "
                                             "field, taken here too)"), True),
    "safety_tolerance": Mapped(_AIMS_SAFETY, "1"),
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
    "enhance_prompt": Mapped(_ENHANCE.format("revised_prompt, with prompt_enhancement"), True),
    "auto_fix": Compat("a vendor retry-on-policy option; a blocked output fails the job here (no automatic "
                       "retry with a changed prompt)"),
    "safety_tolerance": Mapped(_AIMS_SAFETY, "1"),
}

# ---------------------------------------------------------------- fal (the endpoint id in the path names the model)

_FAL_SAFETY = Mapped("false: no output safety check (the checker switch, Moderation below); 403 naming it unless the "
                     "workspace's operator allows keys to turn the checker off. has_nsfw_concepts reports, per image, "
                     "whether the checker's score reached the level's threshold (a blocked job returns no image)",
                     False)
_FAL_COMMON: dict[str, Entry] = {
    "prompt": Mapped("what to generate", "a fox"),
    "negative_prompt": Mapped("what to avoid; a 422 naming it on a model that would not use it", "blurry",
                              {"endpoint": "darkroom/playground-v2"}),
    "num_inference_steps": Mapped("denoising steps, within the model's range", 2),
    "guidance_scale": Mapped("classifier-free guidance scale", 1.5),
    "seed": Mapped("same seed, same output", 7),
    "image_url": Mapped("a reference image: an edit endpoint's, or the text endpoint's image-to-image (image-to-video) "
                        "counterpart runs", UPLOAD),
    "loras": Mapped(_LORAS, [{"path": LORA, "scale": 0.8}]),
    "enable_safety_checker": _FAL_SAFETY,
}
FAL_IMAGE: dict[str, Entry] = {
    **_FAL_COMMON,
    "image_size": Mapped("a preset (square_hd 1024x1024, square 512x512, portrait_4_3 768x1024, portrait_16_9 "
                         "576x1024, landscape_4_3 1024x768, landscape_16_9 1024x576) or {width, height}",
                         "landscape_4_3"),
    "num_images": Mapped("images, one batch", 2),
    "image_urls": Mapped("reference images (fal's multi-image edit apps): a multi-reference model (flux2-klein, "
                         "qwen-image-edit-plus) composes them; after image_url when both are sent", [UPLOAD]),
    "output_format": Mapped("jpeg (fal's default), png or webp", "png"),
    "strength": Mapped("with image_url: how far the image departs from it", 0.3, {"image_url": UPLOAD}),
    "sync_mode": Mapped("true: the files come back as data: URIs in the result", True),
}
FAL_IMAGE_SIZE: dict[str, Entry] = {
    "width": Mapped("output width in pixels (each side within the model's range and multiple)", 768),
    "height": Mapped("output height in pixels", 768),
}
FAL_VIDEO: dict[str, Entry] = {
    **_FAL_COMMON,
    "negative_prompt": Mapped("what to avoid", "blurry"),
    "aspect_ratio": Mapped('"16:9", "1:1"…: the model\'s default area in this ratio (auto: the default)', "1:1"),
    "resolution": Mapped("480p/720p (short side) or 0.5K-4K (long side)", "480p"),
    "duration": Mapped('seconds, a number or "5s", snapped to the model\'s durations', 2),
    "frames_per_second": Mapped("frames per second, where the model takes one", 12),
}

# ---------------------------------------------------------------- Replicate

_REPLICATE_LORA = ("a LoRA (lora_… of the workspace, a Hugging Face repo as owner/name or huggingface.co/owner/name, or "
                   "an https URL to a .safetensors file), onto the model's base family; reported with the job")
REPLICATE_INPUT: dict[str, Entry] = {
    "prompt": Mapped("what to generate", "a fox"),
    "negative_prompt": Mapped("what to avoid; a 422 on a model that would not use it", "blurry",
                              {"model": "darkroom/playground-v2"}),
    "num_outputs": Mapped("images, one batch", 2),
    "aspect_ratio": Mapped("the model's default area in this ratio", "16:9"),
    "width": Mapped("output width in pixels (wins over aspect_ratio)", 512),
    "height": Mapped("output height in pixels", 512),
    "megapixels": Mapped('"1" or "0.25": about that many pixels, in aspect_ratio (1:1 by default)', "0.25"),
    "output_format": Mapped("webp, jpg (jpeg) or png; png when omitted", "webp"),
    "output_quality": Mapped("jpg/webp quality", 40, {"output_format": "webp"}),
    "num_inference_steps": Mapped("denoising steps", 2),
    "guidance": Mapped("classifier-free guidance scale (FLUX's name)", 4.5, {"model": "black-forest-labs/flux-dev"}),
    "guidance_scale": Mapped("the same, under SDXL's name; a 422 if guidance is sent too", 4.5,
                             {"model": "black-forest-labs/flux-dev"}),
    "seed": Mapped("same seed, same image", 7),
    "image": Mapped("img2img (the model's image-to-image counterpart runs) or a video's first frame: a POST /v1/files "
                    "urls.get, a data: URI (stored as an upload) or an http(s) URL", UPLOAD),
    "prompt_strength": Mapped("how far img2img departs from the image", 0.3, {"image": UPLOAD}),
    "mask": Mapped("inpainting: transparent pixels of this PNG are repainted", MASK, {"image": UPLOAD}),
    "frames_per_second": Mapped("video frames per second", 12, {"model": "darkroom/ltx-video"}),
    "lora_weights": Mapped(_REPLICATE_LORA + "; at scale lora_scale", LORA),
    "lora_scale": Mapped("how strongly lora_weights applies (default 1); a 422 without lora_weights", 0.5,
                         {"lora_weights": LORA}),
    "extra_lora": Mapped("a second LoRA, the same way", "lora_89abcdef0123456789abcdef"),
    "extra_lora_scale": Mapped("how strongly extra_lora applies (default 1)", 0.5,
                               {"extra_lora": "lora_89abcdef0123456789abcdef"}),
    "go_fast": Compat("Replicate's switch for its fp8/compiled path; here the model's speed settings (chosen by the "
                      "operator, per model) apply to every run, so there is nothing to switch per request"),
    "disable_safety_checker": Mapped("true: no output safety check (the checker switch, Moderation below); 403 naming it "
                                     "unless the workspace's operator allows keys to turn the checker off", True),
}
REPLICATE_CREATE: dict[str, Entry] = {
    "input": Mapped("the model's input (the rows above)", {"prompt": "another prompt"}),
    "webhook": Mapped("POSTed the prediction, signed (Standard Webhooks; secret: GET /v1/webhooks/default/secret)",
                      "https://example.com/hook"),
    "webhook_events_filter": Mapped("start: a delivery when the job starts; completed and output: when it ends (its "
                                    "output exists only then); logs: both (the step lines in between are read by "
                                    "polling or the stream); default completed", ["start"],
                                    {"webhook": "https://example.com/hook"}),
    "webhook_completed": Mapped("Replicate's older spelling of webhook with the completed event",
                                "https://example.com/hook"),
    "stream": Compat("every prediction has urls.stream (server-sent output, logs, error and done), so the flag "
                     "Replicate deprecated has nothing left to switch"),
}
REPLICATE_VERSIONED: dict[str, Entry] = {
    **REPLICATE_CREATE,
    "version": Mapped("the model: a version id (GET /v1/models/{owner}/{name}: latest_version.id), owner/name or "
                      "owner/name:version", "darkroom/sdxl-turbo"),
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
    lines += enhancement_section()
    lines += moderation_section()
    return "\n".join(lines)


def enhancement_section() -> list[str]:
    """What `enhance_prompt` runs (catalog.yaml `prompt_enhancer`)."""
    from functions.core.catalog import get_catalog

    spec = get_catalog().prompt_enhancer
    if spec is None:
        return ["## Prompt enhancement", "", "No prompt_enhancer is configured: `enhance_prompt: true` is a 400.", ""]
    return ["## Prompt enhancement", "",
            (f"`enhance_prompt: true` (native `input`, OpenAI extra body, AI Media Studio images and videos) rewrites "
             f"the prompt, after style presets, with {spec.name} ({spec.repo}, {spec.license}) on the job's GPU "
             f"before generation: greedy decoding (the same prompt always gets the same rewrite, so a rewrite and a "
             f"seed give the same output), at most {spec.max_new_tokens} tokens, chat-template artefacts stripped. "
             "The prompt that ran comes back as `revised_prompt` (OpenAI: on each image; AI Media Studio: beside "
             "the images or the video, with `prompt_enhancement`; native: `revisedPrompt` and `promptEnhancement`) "
             "and in the webhook. When the rewrite is unusable (empty once cleaned), the original prompt runs and "
             "`prompt_enhancement.note` says so: never silently. POST /api/prompts/enhance returns the rewrite "
             f"without generating. Each rewrite costs {spec.credits:g} credits, on top of the generation."), ""]


def moderation_section() -> list[str]:
    """The one policy table every dialect's safety parameter maps onto (catalog.yaml `moderation`)."""
    from functions.core.catalog import get_catalog

    table = get_catalog().moderation
    checker = table.checker
    lines = ["## Moderation", "",
             (f"Every output image, and {checker.video_frames} evenly spaced frames of every video, is scored by "
              f"the output safety checker ({checker.repo}, {checker.license}: catalog.yaml says why it was chosen) "
              "on the job's GPU before anything is stored. An output whose unsafe score is at or above the job's "
              "level's threshold is blocked: the whole job fails with `moderation_blocked` (a job of n images with "
              "one blocked stores none of them), nothing is uploaded, and the job is charged (README: Guarantees). "
              "Its scores, level and threshold stay on the job record; the operator lists blocked jobs with "
              "GET /api/admin/workspaces/{id}/moderation."), "",
             "| level | blocked at or above | AI Media Studio `safety_tolerance` | OpenAI `moderation` |",
             "|---|---:|---|---|"]
    for level in sorted(table.thresholds):
        words = [word for word, value in table.openai.items() if value == level]
        lines.append(f"| {level}{' (default)' if level == table.default_level else ''} | {table.thresholds[level]:g} "
                     f"| \"{level}\" | {', '.join(words) or '—'} |")
    lines += ["",
              ("Native `input.safety_tolerance` takes the level as an integer (1–6), `input.safety_checker: false` "
               "turns the checker off. fal's `enable_safety_checker` and Replicate's `disable_safety_checker` map "
               "onto the same switch through `functions.core.moderation.checker_input` (off: false and true); left "
               "on, the job runs at the workspace's default level."),
              "",
              (f"Per workspace, the operator sets (PUT /api/admin/workspaces/{{id}}/moderation) the most permissive "
               f"level its keys may ask for (default {table.workspace_max_level}), whether they may turn the checker "
               "off (default: no), and terms a prompt may not contain (whole words, any case). A request asking for "
               "more than its workspace allows is a 403 naming the field; a prompt with a blocked term a 400 naming "
               "`prompt` (OpenAI: code moderation_blocked), before any job exists: nothing charged, no GPU time. "
               "A request that asks for no level gets the default level, or the workspace's maximum if that is "
               "stricter."), ""]
    return lines


if __name__ == "__main__":
    print(markdown(), end="")
