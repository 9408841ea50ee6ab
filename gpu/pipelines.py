"""Loading and running diffusers pipelines: the same code serves real weights and the tiny test ones.

Importing this module is cheap: torch and diffusers are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gpu.loras import Adapter
from gpu.model_io import MODEL_IO_LOCK

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline
    from PIL.Image import Image

    from functions.core.catalog import SpeedSettings


@dataclass(frozen=True)
class Family:
    """How one pipeline family is loaded and called."""

    pipeline: str  # the diffusers class
    # The family whose weights directory this one reads. A derived family (img2img, i2v) is built from
    # the loaded base pipeline with `from_pipe`, so both share every module (and the GPU memory).
    base: str
    output: Literal["image", "video"] = "image"
    takes_image: bool = False  # an init image (img2img) or a first frame (i2v)
    strength: bool = False  # img2img: denoise only `strength` of the way from the init image
    negative_prompt: bool = False  # FluxPipeline's only acts with true_cfg_scale > 1
    # Flux packs latents in 2x2 patches, so sizes must divide by 2 * vae_scale_factor (else it resizes).
    latent_patch: int = 1
    # LTX's scheduler stretches its sigmas to a terminal value: with one step that divides by zero.
    min_steps: int = 1
    mask: bool = False  # inpainting: repaints only where the mask is white
    # The family that serves this one's requests when they bring a mask (img2img -> inpaint, same weights).
    inpaint: str | None = None
    # A multi-reference editor: every output draws on up to this many reference images together (a collage,
    # a person from one and a place from another), passed whole as the pipeline's `image` list. 0: none, or
    # the init image of img2img (`takes_image`: one per output, used in turn). An inpainting family of such a
    # model takes images[0] as the image to repaint and the rest as references (`image_reference`).
    references: int = 0
    # An instruction editor: it makes nothing without at least one reference (it describes them to its text encoder).
    needs_references: bool = False
    # Video: the pipeline also takes a last frame, continues a given clip, or makes a soundtrack.
    last_frame: bool = False
    extend: bool = False
    audio: bool = False
    # LTX conditions on the frame rate (`frame_rate`); Wan has no such input: it makes its trained cadence.
    frame_rate: bool = True
    # The family that serves this one's requests that bring a clip to continue (text-to-video -> extension).
    extends: str | None = None
    # The pipeline argument that takes `guidance`. Qwen-Image's guidance_scale is for guidance-distilled weights;
    # its classifier-free guidance is true_cfg_scale, and runs only with a negative prompt (" " when none is sent).
    guidance_arg: str = "guidance_scale"


FAMILIES: dict[str, Family] = {
    "sdxl": Family("StableDiffusionXLPipeline", "sdxl", negative_prompt=True),  # sdxl-turbo, playground-v2
    "sdxl-img2img": Family("StableDiffusionXLImg2ImgPipeline", "sdxl", takes_image=True, strength=True,
                           negative_prompt=True, inpaint="sdxl-inpaint"),
    "sdxl-inpaint": Family("StableDiffusionXLInpaintPipeline", "sdxl", takes_image=True, strength=True,
                           negative_prompt=True, mask=True),
    "flux": Family("FluxPipeline", "flux", latent_patch=2),  # flux-schnell, flux-dev
    "flux-img2img": Family("FluxImg2ImgPipeline", "flux", takes_image=True, strength=True, latent_patch=2,
                           inpaint="flux-inpaint"),
    "flux-inpaint": Family("FluxInpaintPipeline", "flux", takes_image=True, strength=True, latent_patch=2, mask=True),
    # z-image-turbo. Its negative prompt acts through classifier-free guidance, so only with guidance > 0
    # (the turbo model's default is 0: one forward per step instead of two).
    "zimage": Family("ZImagePipeline", "zimage", negative_prompt=True, latent_patch=2),
    "zimage-img2img": Family("ZImageImg2ImgPipeline", "zimage", takes_image=True, strength=True, latent_patch=2,
                             negative_prompt=True, inpaint="zimage-inpaint"),
    "zimage-inpaint": Family("ZImageInpaintPipeline", "zimage", takes_image=True, strength=True, latent_patch=2,
                             negative_prompt=True, mask=True),
    # flux2-klein: text-to-image, and the same pipeline composes up to 4 references (BFL's limit for klein).
    "flux2-klein": Family("Flux2KleinPipeline", "flux2-klein", latent_patch=2, references=4,
                          inpaint="flux2-klein-inpaint"),
    "flux2-klein-inpaint": Family("Flux2KleinInpaintPipeline", "flux2-klein", takes_image=True, strength=True,
                                  latent_patch=2, mask=True, references=4),
    # FLUX.2 [dev]: 32B and guidance-distilled (guidance is an input to the transformer: one pass a step, so no
    # negative prompt); the same pipeline composes references, which BFL recommends keeping to 6.
    "flux2-dev": Family("Flux2Pipeline", "flux2-dev", latent_patch=2, references=6),
    "ltx": Family("LTXPipeline", "ltx", output="video", negative_prompt=True, min_steps=2),  # ltx-video
    "ltx-i2v": Family("LTXImageToVideoPipeline", "ltx", output="video", takes_image=True, negative_prompt=True,
                      min_steps=2),
    # Qwen-Image: 20B MMDiT, text-to-image, img2img and inpainting on one set of weights. Its scheduler stretches
    # its sigmas to a terminal one (one step is NaN).
    "qwenimage": Family("QwenImagePipeline", "qwenimage", negative_prompt=True, latent_patch=2, min_steps=2,
                        guidance_arg="true_cfg_scale"),
    "qwenimage-img2img": Family("QwenImageImg2ImgPipeline", "qwenimage", takes_image=True, strength=True,
                                negative_prompt=True, latent_patch=2, min_steps=2, guidance_arg="true_cfg_scale",
                                inpaint="qwenimage-inpaint"),
    "qwenimage-inpaint": Family("QwenImageInpaintPipeline", "qwenimage", takes_image=True, strength=True, mask=True,
                                negative_prompt=True, latent_patch=2, min_steps=2, guidance_arg="true_cfg_scale"),
    # Qwen-Image-Edit-2509 ("Plus"): instruction editing of 1 to 3 images together (the model card's range), each
    # seen by the Qwen2.5-VL text encoder and encoded by the VAE; real classifier-free guidance, as Qwen-Image.
    "qwenimage-edit-plus": Family("QwenImageEditPlusPipeline", "qwenimage-edit-plus", negative_prompt=True,
                                  latent_patch=2, min_steps=2, guidance_arg="true_cfg_scale", references=3,
                                  needs_references=True),
    # LTX-2: every video comes with a synchronized soundtrack (its own audio VAE and vocoder), kept when asked for.
    "ltx2": Family("LTX2Pipeline", "ltx2", output="video", negative_prompt=True, min_steps=2, audio=True,
                   extends="ltx2-extend"),
    # Its condition pipeline continues a clip: the clip's last frames condition the start of the new video.
    "ltx2-extend": Family("LTX2ConditionPipeline", "ltx2", output="video", negative_prompt=True, min_steps=2,
                          extend=True),
    "ltx2-i2v": Family("LTX2ImageToVideoPipeline", "ltx2", output="video", takes_image=True, negative_prompt=True,
                       min_steps=2, audio=True),
    # Wan 2.2 TI2V-5B: text-to-video, and image-to-video on the same weights (no image encoder: the first frame's
    # latents are kept while the rest denoise).
    "wan": Family("WanPipeline", "wan", output="video", negative_prompt=True, frame_rate=False),
    "wan-i2v": Family("WanImageToVideoPipeline", "wan", output="video", takes_image=True, negative_prompt=True,
                      frame_rate=False),
    # Wan 2.2 A14B: two 14B experts (high noise, then low noise) in one pipeline; text-to-video and image-to-video
    # are separate weights (their experts differ), so each is a base family.
    "wan-a14b": Family("WanPipeline", "wan-a14b", output="video", negative_prompt=True, frame_rate=False),
    "wan-a14b-i2v": Family("WanImageToVideoPipeline", "wan-a14b-i2v", output="video", takes_image=True,
                           negative_prompt=True, frame_rate=False),
    # Wan 2.1 FLF2V-14B: from a first and a last frame (both through its CLIP image encoder).
    "wan-flf2v": Family("WanImageToVideoPipeline", "wan-flf2v", output="video", takes_image=True,
                        negative_prompt=True, frame_rate=False, last_frame=True),
}
_DTYPES = {"float32", "float16", "bfloat16"}


def family_spec(family: str) -> Family:
    if family not in FAMILIES:
        raise ValueError(f"unknown pipeline family {family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[family]


def inpaint_family(family: str) -> str:
    """The family that runs `family`'s requests that bring a mask; ValueError if it cannot inpaint."""
    return _serving_family(family, "mask", "inpaint", "cannot inpaint (it takes no mask)")


def extend_family(family: str) -> str:
    """The family that runs `family`'s requests that bring a clip to continue; ValueError if none can."""
    return _serving_family(family, "extend", "extends", "cannot extend a video")


def _serving_family(family: str, capable: str, pointer: str, refusal: str) -> str:
    """`family` itself if it has the capability, else the family it points to for it (same weights)."""
    spec = family_spec(family)
    if getattr(spec, capable):
        return family
    target = getattr(spec, pointer)
    if target is None:
        raise ValueError(f"{family} {refusal}")
    return target


def __getattr__(name: str) -> Any:
    # PIPELINE_CLASSES is built on first access (PEP 562) so importing this module stays cheap.
    if name == "PIPELINE_CLASSES":
        classes = {family: _pipeline_class(family) for family in FAMILIES}
        globals()[name] = classes  # later lookups find a plain module attribute
        return classes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    PIPELINE_CLASSES: dict[str, type]


def lora_families() -> set[str]:
    """The families whose pipeline class has diffusers' LoRA loader (`load_lora_weights`): they take
    GenerationRequest.loras (gpu/loras.py)."""
    return {family for family in FAMILIES if hasattr(_pipeline_class(family), "load_lora_weights")}


def _pipeline_class(family: str) -> type:
    with MODEL_IO_LOCK:
        import diffusers

        return getattr(diffusers, family_spec(family).pipeline)


@dataclass(frozen=True)
class Builtin:
    """A model's built-in adapter, resolved to a local file (gpu/worker.py, builtin_adapter): the LoRA fused into the
    base pipeline's weights when it loads, at `scale`, and the scheduler config overrides its authors prescribe
    (sorted (name, value) pairs). The fused pipeline is cached apart from the plain one on the same source."""

    path: Path
    scale: float = 1.0
    scheduler: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        import json

        return f"{self.path}*{self.scale!r}" + (f"+{json.dumps(self.scheduler)}" if self.scheduler else "")


def _source_key(source: str | Path, builtin: Builtin | None, speed: SpeedSettings | None = None) -> str:
    """The cache key's source: the directory (or repo id), the built-in adapter fused into what loads from it, and the
    speed settings applied to it (none when they are the defaults)."""
    key = str(source) if builtin is None else f"{source}+{builtin.key}"
    return key + (f"~{speed.key}" if speed is not None and speed.key else "")


_CacheKey = tuple[str, str, str, str]
_cache: dict[_CacheKey, DiffusionPipeline] = {}
_load_locks: dict[_CacheKey, threading.Lock] = {}
# Keyed on a pipeline's scheduler: it holds per-call state, and pipelines derived with from_pipe share it
# (and every module), so two threads must never run pipelines sharing one at once.
_run_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_guard = threading.Lock()
# What gpu/speed.py applied to each loaded pipeline (or why it fell back), by pipeline; derived ones share their base's.
_speed_reports: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


def apply_speed(pipe: DiffusionPipeline, family: str, speed: SpeedSettings | None, device: str) -> dict[str, str]:
    """Apply a model's speed settings to a loaded base pipeline on its device (gpu/speed.py), once; remembered for
    speed_report. load_pipeline calls it; the Modal class calls it after moving its CPU-loaded pipeline to the GPU."""
    from gpu import speed as speed_settings

    with MODEL_IO_LOCK:
        report = speed_settings.apply(pipe, family, speed, device, unscoped=two_pass_without_cache_context(family))
    _speed_reports[pipe] = report
    return report


def note_speed(pipe: DiffusionPipeline, setting: str, note: str) -> None:
    """Add what happened later to a pipeline's speed report (its warm-up compile: gpu/worker.py, warm_up)."""
    _speed_reports[pipe] = {**_speed_reports.get(pipe, {}), setting: note}


def speed_report(pipe: DiffusionPipeline) -> dict[str, str]:
    """What the speed settings did to this pipeline (or its base), setting by setting; {} with the defaults."""
    return dict(_speed_reports.get(pipe, {}))


def load_pipeline(
    family: str, source: str | Path, *, device: str = "cpu", dtype: str = "float32", builtin: Builtin | None = None,
    speed: SpeedSettings | None = None,
) -> DiffusionPipeline:
    """Load (once per process) the `family` pipeline from a local dir or a Hub repo id.

    Cached on (family, source, device, dtype), the source's key naming the built-in adapter when there is one:
    the base pipeline then has that LoRA fused into its weights and its scheduler overridden (`_apply_builtin`), a
    pipeline of its own beside the plain one. A derived family (img2img, i2v) first loads its base family from
    the same source (and adapter), then shares its modules. Thread-safe: concurrent callers of the same key wait
    for one load; different keys load in parallel. `speed` (the model's SpeedSettings) is applied to the base pipeline
    once it is on its device (apply_speed), and is part of the key when not the defaults.
    """
    spec = family_spec(family)
    cls = _pipeline_class(family)
    if dtype not in _DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    key = (family, _source_key(source, builtin, speed), device, dtype)
    with _guard:
        if key in _cache:
            return _cache[key]
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:
        if key in _cache:  # loaded by the thread we waited for
            return _cache[key]
        if spec.base != family:
            base = load_pipeline(spec.base, source, device=device, dtype=dtype, builtin=builtin, speed=speed)
            with MODEL_IO_LOCK:
                pipe = derive(cls, base)
            _speed_reports[pipe] = speed_report(base)  # the same modules, so the same settings
        else:
            import torch

            kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}  # diffusers 0.42 deprecates torch_dtype
            kwargs.update(no_library_watermark(cls))
            with MODEL_IO_LOCK:
                if Path(source).is_dir():
                    kwargs["local_files_only"] = True
                    _import_component_modules(Path(source))
                pipe = cls.from_pretrained(source, **kwargs).to(device)
            if builtin is not None:
                _apply_builtin(pipe, family, builtin)
            apply_speed(pipe, family, speed, device)  # after the fuse: a compiled or quantized layer takes no LoRA
        pipe.set_progress_bar_config(disable=True)
        with _guard:
            _cache[key] = pipe
        return pipe


def _apply_builtin(pipe: DiffusionPipeline, family: str, builtin: Builtin) -> None:
    """Fuse the built-in LoRA into the freshly loaded base pipeline (gpu/loras.py, fuse), then replace its scheduler
    with one of the same class on the overridden config (ValueError for a setting the scheduler does not take)."""
    from gpu import loras

    loras.fuse(pipe, family, builtin.path, builtin.scale)
    if builtin.scheduler:
        overrides = dict(builtin.scheduler)
        scheduler_cls = type(pipe.scheduler)
        unknown = sorted(set(overrides) - set(inspect.signature(scheduler_cls.__init__).parameters))
        if unknown:
            raise ValueError(f"{scheduler_cls.__name__} of {family} takes no {', '.join(unknown)}")
        pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config, **overrides)


def _import_component_modules(source: Path) -> None:
    """Import the project modules a saved pipeline's components come from. diffusers resolves a component's library
    (model_index.json's first entry) only among those it knows and those already imported; a tiny pipeline may keep
    a component of this project's (gpu.tiny's image-only Qwen2-VL processor), which a fresh process has not imported."""
    import importlib
    import json

    index = json.loads((source / "model_index.json").read_text())
    for entry in index.values():
        if isinstance(entry, list) and entry and isinstance(entry[0], str) and entry[0].startswith("gpu."):
            importlib.import_module(entry[0])


@functools.cache
def opens_cache_context(cls: type) -> bool:
    """Whether `cls`'s call names the cache context of each denoiser pass itself (`transformer.cache_context("cond")`,
    "uncond"), which diffusers' cache hooks (gpu/speed.py) need. diffusers 0.42.1's FluxPipeline does, its
    img2img and inpaint pipelines and Flux2Pipeline do not."""
    return "cache_context" in inspect.getsource(cls)


def two_pass_without_cache_context(family: str) -> list[str]:
    """The pipelines of `family`'s pool that make two denoiser passes a step (a negative prompt's) without naming
    their cache context: diffusers' cache hooks would take one pass's state for the other (cache_context below
    covers a single pass a step only), so gpu/speed.py refuses a cache for such a pool."""
    return [spec.pipeline for name, spec in FAMILIES.items()
            if spec.base == family and spec.negative_prompt and not opens_cache_context(_pipeline_class(name))]


@contextmanager
def cache_context(pipe: DiffusionPipeline) -> Iterator[None]:
    """For a pipeline that does not open its denoisers' cache context itself, the one context FluxPipeline opens
    around its single pass a step, over the whole call: the same thing for a family that makes one pass a step
    (gpu/speed.py refuses a cache for a pool with a two-pass family that opens none). Nothing otherwise."""
    from gpu.speed import denoisers

    cached = [module for _, module in denoisers(pipe) if getattr(module, "is_cache_enabled", False)]
    if not cached or opens_cache_context(type(pipe)):
        yield
        return
    with contextlib.ExitStack() as stack:
        for module in cached:
            stack.enter_context(module.cache_context("cond"))
        yield


def derive(cls: type, base: DiffusionPipeline) -> DiffusionPipeline:
    """`cls` on `base`'s very modules (one copy in memory), as `cls.from_pipe(base)` but without its dtype cast:
    diffusers 0.42.1's from_pipe ends with `.to(dtype)`, float32 unless told (huggingface/diffusers#12754), which
    upcast a bfloat16 base, shared modules and all, to twice its memory; told bfloat16, it would cast down the
    modules a model keeps in float32."""
    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in base.components.items() if k in params}
    kwargs.update({k: v for k, v in base.config.items() if k in params and k not in kwargs and not k.startswith("_")})
    return cls(**kwargs, **no_library_watermark(cls))


def no_library_watermark(cls: type) -> dict[str, Any]:
    """diffusers' SDXL pipelines hide their own invisible watermark in every output whenever invisible-watermark is
    importable (it is: gpu/provenance.py's optional watermark), and then fail on images under 256x256 pixels. Whether
    outputs are watermarked is the deployment's choice (ProvenanceWatermark, with Darkroom's payload): the
    library's own stays off, as it was before the package was installed."""
    return {"add_watermarker": False} if "add_watermarker" in inspect.signature(cls.__init__).parameters else {}


def remember(family: str, source: str | Path, device: str, dtype: str, pipe: DiffusionPipeline,
             builtin: Builtin | None = None, speed: SpeedSettings | None = None) -> None:
    """Put an already loaded pipeline in the cache (the Modal class loads on CPU, then moves it to the GPU), under the
    speed settings it was given (apply_speed)."""
    with _guard:
        _cache[(family, _source_key(source, builtin, speed), device, dtype)] = pipe


def clear_cache() -> None:
    """Forget every loaded pipeline (tests; freeing memory)."""
    with _guard:
        _cache.clear()
        _load_locks.clear()


@dataclass
class GenerationRequest:
    prompt: str
    negative_prompt: str | None = None
    n: int = 1  # images, or videos
    width: int = 1024
    height: int = 1024
    steps: int = 4
    guidance: float | None = None  # None: the pipeline's own default
    seed: int | None = None  # None: a random seed, returned in the result
    # img2img: init images, used in turn for the n outputs; i2v: images[0] is the first frame. Each is
    # cropped to the requested aspect ratio and resized to the requested size.
    images: list[Image] | None = None
    strength: float | None = None  # img2img only; None: the pipeline's default
    # Inpainting: "L", 255 where the image is repainted (gpu/inpaint.py converts OpenAI's alpha mask), at the
    # size of images[0]; fitted to the output size as the images are. Outside it the init image is kept.
    mask: Image | None = None
    # First-last-frame video: the last frame (images[0] is the first), fitted to the output size as it is.
    last_frame: Image | None = None
    frames: int | None = None  # video: frame count (LTX: 8k+1)
    audio: bool = False  # video: keep the soundtrack an audio family makes (GenerationResult.audio)
    # Extension: the frames of the clip to continue; `frames` is then the new frames (plus one) to add after it.
    clip: list[Image] | None = None
    # The model's most frames in one pipeline call (its catalog max_frames): an extension's conditioning frames are
    # generated too, so they take only the room `frames` leaves.
    max_frames: int | None = None
    fps: float | None = None  # video: frames per second (LTX conditions on it)
    # LoRA adapters applied for this call only, each at its scale (gpu/loras.py); families in lora_families().
    loras: list[Adapter] = field(default_factory=list)


@dataclass
class GenerationResult:
    seed: int
    images: list[Image] = field(default_factory=list)  # image families
    videos: list[list[Image]] = field(default_factory=list)  # video families: the frames of each video
    # Seconds spent in the VAE decoder (part of the call): the benchmark reports it as its own stage.
    vae_decode: float = 0.0
    # Seconds spent turning the decoded tensors into images or frames (the processor's postprocess, on the CPU):
    # a fixed cost per output, which the benchmark keeps out of its seconds per step.
    postprocess: float = 0.0
    # With GenerationRequest.audio: each video's soundtrack, [channels, samples] floats in [-1, 1], at audio_rate.
    audio: list[Any] = field(default_factory=list)
    audio_rate: int = 0
    # Seconds spent loading the request's LoRA adapters onto the pipeline (0 without any).
    lora_load: float = 0.0


def size_multiple(pipe: DiffusionPipeline, family: str) -> int:
    """What width and height must be multiples of (8 for SDXL, 16 for Flux, 32 for LTX)."""
    spec = family_spec(family)
    if spec.output == "video" and hasattr(pipe, "vae_spatial_compression_ratio"):  # LTX
        return int(pipe.vae_spatial_compression_ratio) * int(pipe.transformer_spatial_patch_size)
    if spec.output == "video":  # Wan: patches of (frames, height, width) latents
        return int(pipe.vae_scale_factor_spatial) * int(pipe.transformer.config.patch_size[1])
    return int(getattr(pipe, "vae_scale_factor", 8)) * spec.latent_patch


def frame_multiple(pipe: DiffusionPipeline) -> int:
    """Video frame counts are frame_multiple * k + 1 (the VAE's temporal compression)."""
    if hasattr(pipe, "vae_temporal_compression_ratio"):  # LTX
        return int(pipe.vae_temporal_compression_ratio) * int(pipe.transformer_temporal_patch_size)
    return int(pipe.vae_scale_factor_temporal) * int(pipe.transformer.config.patch_size[0])


def fit(image: Image, width: int, height: int) -> Image:
    """`image` as RGB at exactly width x height: centre-cropped to that aspect ratio, then resized."""
    from PIL import Image, ImageOps

    return ImageOps.fit(image.convert("RGB"), (width, height), method=Image.Resampling.BICUBIC)


def effective_steps(steps: int, strength: float) -> int:
    """img2img runs int(steps * strength) steps; raise `steps` until at least one runs."""
    while int(steps * strength) < 1:
        steps += 1
    return steps


def _validate(pipe: DiffusionPipeline, family: str, spec: Family, req: GenerationRequest) -> None:
    multiple = size_multiple(pipe, family)
    if req.width <= 0 or req.height <= 0 or req.width % multiple or req.height % multiple:
        raise ValueError(
            f"width and height must be positive multiples of {multiple} for {family}, "
            f"got {req.width}x{req.height}"
        )
    if req.n < 1:
        raise ValueError(f"n must be at least 1, got {req.n}")
    if req.steps < spec.min_steps:
        raise ValueError(f"steps must be at least {spec.min_steps} for {family}, got {req.steps}")
    if spec.takes_image and not req.images:
        raise ValueError(f"{family} needs at least one input image")
    if spec.needs_references and not req.images:
        raise ValueError(f"{family} edits images: it needs at least one")
    if not (spec.takes_image or spec.references) and req.images:
        raise ValueError(f"{family} takes no input image")
    if spec.references and req.images and len(req.images) > spec.references + spec.takes_image:
        raise ValueError(f"{family} takes at most {spec.references} reference images, got {len(req.images)}")
    if spec.mask and req.mask is None:
        raise ValueError(f"{family} needs a mask")
    if req.mask is not None and not spec.mask:
        raise ValueError(f"{family} takes no mask; its inpainting family is {spec.inpaint}")
    if req.mask is not None and req.images and req.mask.size != req.images[0].size:
        raise ValueError(f"the mask is {req.mask.width}x{req.mask.height} but the image is "
                         f"{req.images[0].width}x{req.images[0].height}")
    if req.strength is not None and not spec.strength:
        raise ValueError(f"{family} takes no strength")
    if req.strength is not None and not 0 < req.strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {req.strength}")
    if spec.extend and not req.clip:
        raise ValueError(f"{family} needs a clip to continue")
    if req.clip and not spec.extend:
        raise ValueError(f"{family} takes no clip; its extension family is {spec.extends}")
    if req.audio and not spec.audio:
        raise ValueError(f"{family} makes no audio")
    if spec.last_frame and req.last_frame is None:
        raise ValueError(f"{family} needs a last frame")
    if req.last_frame is not None and not spec.last_frame:
        raise ValueError(f"{family} takes no last frame")
    if spec.output == "video":
        step = frame_multiple(pipe)
        if req.frames is None or req.frames < 1 or (req.frames - 1) % step:
            raise ValueError(f"frames must be {step}k+1 for {family}, got {req.frames}")
        if req.fps is None or req.fps <= 0:
            raise ValueError(f"fps must be positive for {family}, got {req.fps}")
    elif req.frames is not None or req.fps is not None:
        raise ValueError(f"{family} makes images: frames and fps do not apply")
    if req.loras and not hasattr(pipe, "load_lora_weights"):
        raise ValueError(f"{family} takes no LoRA adapters ({type(pipe).__name__} has no LoRA loader)")


def generate(
    pipe: DiffusionPipeline,
    family: str,
    req: GenerationRequest,
    *,
    on_step: Callable[[int, int], None] | None = None,
) -> GenerationResult:
    """Run `req.n` images (or videos) as one batch.

    Deterministic for a given seed: the initial noise comes from a CPU generator, which gives the same
    numbers on every device. `on_step(done, total)` is called after each denoising step; `total` is the
    number of steps that actually run (fewer than req.steps for img2img).
    """
    return generate_together(pipe, family, [req], on_step=on_step)[0]


def batch_key(family: str, req: GenerationRequest) -> tuple | None:
    """What requests must share to run as one pipeline call (generate_together): everything but the prompt, the
    seed and the count. None for a request that runs alone: one with images, a mask, a clip or adapters (their
    inputs are per request, or they change the model for the call)."""
    if req.images or req.mask is not None or req.clip or req.last_frame is not None or req.loras:
        return None
    return (family, req.width, req.height, req.steps, req.guidance, req.negative_prompt, req.strength, req.frames,
            req.fps, req.audio)


def generate_together(
    pipe: DiffusionPipeline,
    family: str,
    reqs: list[GenerationRequest],
    *,
    on_step: Callable[[int, int], None] | None = None,
) -> list[GenerationResult]:
    """Run several requests as one pipeline call: their prompts, each repeated n times, as one batch, each image's
    initial noise drawn from its own request's seed exactly as `generate` draws it alone (one CPU generator per
    request, drawn in order: the same numbers). Requests after the first must have its batch_key. The results
    come back in order, each with its own seed and outputs; a batch's VAE decode time is shared out by image."""
    spec = family_spec(family)
    for req in reqs:
        _validate(pipe, family, spec, req)
    req = reqs[0]
    if len(reqs) > 1 and (batch_key(family, req) is None
                          or any(batch_key(family, other) != batch_key(family, req) for other in reqs[1:])):
        raise ValueError("requests run together only when everything but their prompts, seeds and counts agree")

    import torch

    seeds = [r.seed if r.seed is not None else secrets.randbelow(2**31) for r in reqs]
    generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
    count_key = "num_videos_per_prompt" if spec.output == "video" else "num_images_per_prompt"
    kwargs: dict[str, Any] = {
        "prompt": req.prompt,
        count_key: req.n,
        "width": req.width,
        "height": req.height,
        "num_inference_steps": req.steps,
        "generator": generators[0],
        "output_type": "pil",
    }
    if len(reqs) > 1:
        # One prompt per output; each output's noise from its request's generator, used in turn for that
        # request's outputs (one draw of n, or n draws of one, give the same numbers from a CPU generator).
        kwargs["prompt"] = [r.prompt for r in reqs for _ in range(r.n)]
        kwargs[count_key] = 1
        kwargs["generator"] = [g for r, g in zip(reqs, generators, strict=True) for _ in range(r.n)]
    if req.guidance is not None:
        kwargs[spec.guidance_arg] = req.guidance
    if req.negative_prompt and spec.negative_prompt:
        kwargs["negative_prompt"] = req.negative_prompt
    elif spec.guidance_arg == "true_cfg_scale" and (req.guidance or 0) > 1:
        kwargs["negative_prompt"] = " "  # as Qwen-Image's own examples: guidance needs a negative prompt to run
    mask = None
    if req.images and spec.references and not spec.takes_image:
        # A multi-reference editor: every output draws on all of them, whole (the pipeline sizes them itself).
        kwargs["image"] = [image.convert("RGB") for image in req.images]
    elif req.images:
        init = req.images[:1] if spec.references else req.images
        fitted = [fit(image, req.width, req.height) for image in init]
        # img2img: one init image per output, reused in turn; i2v: the first frame of every video.
        kwargs["image"] = [fitted[i % len(fitted)] for i in range(req.n)] if spec.strength else fitted[0]
        if spec.references and len(req.images) > 1:  # inpainting on a multi-reference editor
            kwargs["image_reference"] = [image.convert("RGB") for image in req.images[1:]]
    if req.mask is not None:
        from gpu import inpaint

        mask = inpaint.fit_mask(req.mask, req.width, req.height)
        kwargs["mask_image"] = [mask] * req.n
    if spec.strength:
        strength = req.strength if req.strength is not None else _default_strength(pipe)
        kwargs["strength"] = strength
        kwargs["num_inference_steps"] = effective_steps(req.steps, strength)
    if spec.output == "video":
        kwargs["num_frames"] = req.frames
        if spec.frame_rate:
            kwargs["frame_rate"] = req.fps
    if req.last_frame is not None:
        kwargs["last_image"] = fit(req.last_frame, req.width, req.height)
    clip = tail = None
    if req.clip:
        from diffusers.pipelines.ltx2 import LTX2VideoCondition

        clip = [fit(frame, req.width, req.height) for frame in req.clip]
        room = req.max_frames - req.frames + 1 if req.max_frames else len(clip)
        tail = clip[-_condition_frames(min(len(clip), room), frame_multiple(pipe)):]
        # The clip's last frames are the video's first (its latents, kept); the pipeline continues from them.
        kwargs["conditions"] = [LTX2VideoCondition(frames=tail, index=0, strength=1.0)]
        kwargs["num_frames"] = len(tail) + req.frames - 1
    if on_step is not None:

        def _callback(p: Any, i: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            # num_timesteps is set by the pipeline before its loop; it can differ from steps.
            on_step(i + 1, getattr(p, "num_timesteps", None) or req.steps)
            return tensors  # diffusers expects the (possibly modified) tensors back

        kwargs["callback_on_step_end"] = _callback

    from gpu import loras

    # Adapters go on and come off under the run lock: pipelines derived from one base share its modules.
    # LoRA layers are made outside inference mode (they are parameters); the call runs inside it.
    with (_run_lock(pipe), loras.applied(pipe, family, req.loras) as lora_load, torch.inference_mode(),
          _timed(pipe.vae.decoder) as decode_time, _timed_postprocess(pipe) as postprocess_time, cache_context(pipe)):
        out = pipe(**kwargs)
    total = sum(r.n for r in reqs)
    results, first = [], 0
    for r, seed in zip(reqs, seeds, strict=True):
        outputs = slice(first, first + r.n)
        first += r.n
        result = GenerationResult(seed=seed, vae_decode=decode_time() * r.n / total,
                                  postprocess=postprocess_time() * r.n / total, lora_load=lora_load)
        if spec.output == "video":
            result.videos = [list(frames) for frames in out.frames[outputs]]
            if clip is not None and tail is not None:  # the whole clip, then what follows its last frame
                result.videos = [clip + frames[len(tail):] for frames in result.videos]
            if r.audio:
                # The vocoder's rate, not the audio VAE's (its mel input runs at a lower one).
                result.audio = [track.float().cpu() for track in out.audio[outputs]]
                result.audio_rate = int(pipe.vocoder.config.output_sampling_rate)
        else:
            result.images = list(out.images[outputs])
        if mask is not None:
            from gpu import inpaint

            result.images = [inpaint.keep_unmasked(kwargs["image"][i], image, mask)
                             for i, image in enumerate(result.images)]
        results.append(result)
    return results


# At most this many of a clip's last frames condition its extension (about a second at 24 fps): enough for the
# motion to carry on, while each one costs the transformer as much as a generated frame.
CONDITION_FRAMES = 25


def _condition_frames(available: int, step: int) -> int:
    """The most of a clip's last frames, at most CONDITION_FRAMES, that the VAE takes whole (step*k + 1)."""
    return (min(available, CONDITION_FRAMES) - 1) // step * step + 1


def _default_strength(pipe: Any) -> float:
    return float(inspect.signature(type(pipe).__call__).parameters["strength"].default)


@contextmanager
def _timed(module: Any) -> Iterator[Callable[[], float]]:
    """Time every forward of `module` (hooks, removed on exit); yields a function returning the total."""
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)  # kernels are async
    total = [0.0]
    started = [0.0]

    def before(*_: Any) -> None:
        sync()
        started[0] = time.perf_counter()

    def after(*_: Any) -> None:
        sync()
        total[0] += time.perf_counter() - started[0]

    handles = [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield lambda: total[0]
    finally:
        for handle in handles:
            handle.remove()


# The processor methods diffusers' pipelines end with: decoded tensors to PIL images, or to each video's frames.
_POSTPROCESS = (("video_processor", "postprocess_video"), ("image_processor", "postprocess"))


@contextmanager
def _timed_postprocess(pipe: Any) -> Iterator[Callable[[], float]]:
    """Time the pipeline's post-processing (its processor's postprocess method, wrapped on the instance for the
    call, under the run lock); yields a function returning the total (0 where the pipeline has no such method)."""
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    total = [0.0]
    wrapped = next(((processor, name) for attr, name in _POSTPROCESS
                    if (processor := getattr(pipe, attr, None)) is not None and hasattr(processor, name)), None)
    if wrapped is None:
        yield lambda: total[0]
        return
    processor, name = wrapped
    original, own = getattr(processor, name), name in vars(processor)

    def timed(*args: Any, **kwargs: Any) -> Any:
        sync()
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - started

    setattr(processor, name, timed)
    try:
        yield lambda: total[0]
    finally:
        if own:
            setattr(processor, name, original)
        else:
            delattr(processor, name)  # the class's method again


def _run_lock(pipe: Any) -> threading.Lock:
    with _guard:
        lock = _run_locks.get(pipe.scheduler)
        if lock is None:
            lock = _run_locks[pipe.scheduler] = threading.Lock()
        return lock

