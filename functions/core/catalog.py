"""The model catalog: data (catalog.yaml, plus an operator's extra file), validated with pydantic.

Import-light on purpose (pydantic only): the api Lambda ships this module without torch, and YAML is
imported and parsed on the first use of the catalog, not at import (yaml's import and a pure-Python parse cost
~45 ms of a cold start; libyaml's C loader, when present, parses it several times faster).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from .schema import Schema

Task = Literal["text-to-image", "image-to-image", "text-to-video", "image-to-video"]
TASK_TYPES: dict[str, str] = {
    "text-to-image": "image", "image-to-image": "image", "text-to-video": "video", "image-to-video": "video",
}
# Tasks whose jobs need reference images (the init image of an edit, the first frame of a video).
REFERENCE_TASKS: frozenset[str] = frozenset({"image-to-image", "image-to-video"})
# The task a model switches to when a request brings reference images.
_WITH_REFERENCES: dict[str, str] = {"text-to-image": "image-to-image", "text-to-video": "image-to-video"}
# A Hugging Face commit id: the only revision that cannot move under a memory snapshot (gpu/weights.py).
COMMIT = re.compile(r"[0-9a-f]{40}")

# The least work a job is priced at, as a share of one output at the model's defaults (ModelSpec.work).
MIN_WORK = 0.25
# An extension conditions on about this much of the clip's end (gpu/pipelines.py, CONDITION_FRAMES at 24 fps).
EXTEND_CONDITION_SECONDS = 1.0
# Loading and unloading one LoRA adapter, priced as this share of one output at the model's reference size and steps:
# the GPU-seconds it takes (reading the file, injecting its layers) are the container's, as an output's are.
LORA_LOAD_WORK = 0.1
# A multi-reference editor's pipeline shrinks each reference to at most this many pixels (FLUX.2: 1024x1024).
REFERENCE_PIXELS = 1024 * 1024


class Defaults(Schema):
    model_config = ConfigDict(extra="forbid")
    steps: int = 4
    guidance: float | None = None
    width: int = 1024
    height: int = 1024
    # image-to-image: how far the output may move from the reference (0 keeps it, 1 ignores it).
    strength: float | None = Field(None, gt=0, le=1)
    # video
    fps: int | None = None
    frames: int | None = None
    duration: float | None = None


class BuiltinAdapter(Schema):
    """A LoRA a model's weights come with: fused into them when they load (gpu/loras.py, `fuse`), so each step costs
    what the base model's does. A distillation LoRA (a few-step "Lightning" one) makes a fast variant of a base model
    this way, on the base's own files plus one adapter file. It is part of the model's `weights` (ModelSpec.weights):
    its own pool, its own container and its own loaded pipeline, while the base model stays as it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    repo: str
    weight_name: str  # the one file of the repo that is downloaded and fused
    # A commit id where one could be checked; a branch is resolved by the download, as a model's revision is.
    revision: str = "main"
    scale: float = 1.0

    @property
    def pinned(self) -> bool:
        return bool(COMMIT.fullmatch(self.revision))

    @property
    def key(self) -> str:
        return f"{self.repo}@{self.revision}/{self.weight_name}" + (f"*{self.scale:g}" if self.scale != 1 else "")


# The knobs of each cache kind: those diffusers 0.42.1's config classes have (gpu/speed.py passes them on).
_CACHE_KNOBS: dict[str, frozenset[str]] = {
    "first_block": frozenset({"threshold"}),
    "taylorseer": frozenset({"cache_interval", "disable_cache_before_step", "disable_cache_after_step", "max_order",
                             "use_lite_mode"}),
    "magcache": frozenset({"threshold", "max_skip_steps", "retention_ratio", "num_inference_steps", "mag_ratios"}),
}


class CacheSettings(Schema):
    """A diffusers cache hook on the denoiser (diffusers.hooks): it reuses a block's output from an earlier step when
    the input barely moved, so a step costs less and the image drifts a little from the uncached one. Only the knobs
    diffusers 0.42.1's configs have; unset ones keep diffusers' defaults. `first_block`: FirstBlockCacheConfig
    (threshold); `taylorseer`: TaylorSeerCacheConfig (cache_interval, disable_cache_before_step,
    disable_cache_after_step, max_order, use_lite_mode); `magcache`: MagCacheConfig (threshold, max_skip_steps,
    retention_ratio, num_inference_steps: the step count its schedule is laid out for, and mag_ratios: per-step
    magnitude ratios of the checkpoint, None: diffusers' FLUX_MAG_RATIOS, which only fit FLUX.1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["first_block", "taylorseer", "magcache"]
    threshold: float | None = Field(None, gt=0)
    cache_interval: int | None = Field(None, ge=1)
    disable_cache_before_step: int | None = Field(None, ge=0)
    disable_cache_after_step: int | None = Field(None, ge=0)
    max_order: int | None = Field(None, ge=0)
    use_lite_mode: bool | None = None
    max_skip_steps: int | None = Field(None, ge=1)
    retention_ratio: float | None = Field(None, ge=0, le=1)
    num_inference_steps: int | None = Field(None, ge=1)
    mag_ratios: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _check_knobs(self) -> CacheSettings:
        knobs = {k for k in type(self).model_fields if k != "kind" and getattr(self, k) is not None}
        foreign = sorted(knobs - _CACHE_KNOBS[self.kind])
        if foreign:
            raise ValueError(f"cache {self.kind} takes no {', '.join(foreign)}")
        return self

    def options(self) -> dict[str, Any]:
        """The knobs that are set, as the diffusers config takes them."""
        return {k: getattr(self, k) for k in _CACHE_KNOBS[self.kind] if getattr(self, k) is not None}


# LoRA adapters per request (fal and most servers allow a handful; each one is loaded into the model for the job).
MAX_LORAS = 4


class LoraHotswap(Schema):
    """LoRA adapters swapped into a compiled denoiser without recompiling it (diffusers' and PEFT's hot swap).

    While the model loads, before it is compiled, each of `slots` empty adapters of rank `rank` wraps every linear
    layer of the denoiser (its weights zero: it adds nothing). A request's adapters are then copied into the slots
    (a smaller rank is zero-padded) and zeroed again after the job, so the compiled graph never changes: no
    recompilation per adapter, and every container runs the same graph, with or without adapters. The price: the
    slots' low-rank products run on every request (about 2 * rank * (in + out) FLOPs a layer per token: a few per
    cent at rank 64 on a 3072-wide transformer), and what a request may bring is bounded: at most `slots` adapters,
    each of rank at most `rank`, on the denoiser's linear layers only (not the text encoders, which are not
    compiled but which the hot swap cannot reach). The API refuses the rest at submit (functions/core/loras.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rank: int = Field(64, ge=1, le=1024)
    slots: int = Field(1, ge=1, le=MAX_LORAS)


class SpeedSettings(Schema):
    """How a model's pipeline is made faster once it is loaded (gpu/speed.py applies them, and reports what it applied
    or why it fell back). The defaults change nothing. They change the loaded pipeline object, so models on the same
    weights (one pool, one pipeline) must agree on them (Catalog checks)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # torch.compile of the denoiser: "regional" its repeated blocks (compile_repeated_blocks; the whole denoiser
    # where its class names none), "full" the whole denoiser.
    compile: Literal["none", "regional", "full"] = "none"
    cache: CacheSettings | None = None
    # The attention kernels of the denoiser's attention processors (set_attention_backend), on a CUDA device:
    # "flash" FlashAttention 3 on Hopper, else 2; "sage" SageAttention 2 (gpu/attention_kernels.py says which runs).
    attention: Literal["native", "flash", "sage"] = "native"
    vae_tiling: bool = False  # decode (and encode) in tiles: less peak memory at large sizes and long videos
    channels_last: bool = False  # the convolutional modules (UNet, VAE) in channels-last memory format
    # The denoiser's linear layers through torchao: "fp8" quantizes weights and activations (fp8 matmuls: faster and
    # half the weight memory; CUDA compute capability 8.9+, else bf16 kept and said so); "fp8_weight_only" stores the
    # weights in fp8 and computes in the model's dtype (half the weight memory, no fp8 matmul: any device).
    quantize: Literal["none", "fp8", "fp8_weight_only"] = "none"
    # Request LoRAs hot-swapped into fixed slots, so that a compiled denoiser is not recompiled for each adapter.
    lora_hotswap: LoraHotswap | None = None

    @model_validator(mode="after")
    def _hotswap_needs_compile(self) -> SpeedSettings:
        if self.lora_hotswap is not None and self.compile == "none":
            raise ValueError("lora_hotswap only matters for a compiled denoiser (compile: regional or full): "
                             "uncompiled, adapters load and unload with no recompilation to save")
        return self

    @property
    def is_default(self) -> bool:
        return self == SpeedSettings()

    @property
    def key(self) -> str:
        """What is set, compactly: part of the pipeline cache's key (empty for the defaults)."""
        return "" if self.is_default else self.model_dump_json(exclude_defaults=True)


class Serving(Schema):
    """How one container of a pool takes jobs. The defaults: one job at a time, each its own pipeline call.

    `concurrent_inputs` > 1: a container takes that many jobs at once (Modal's `@modal.concurrent`, per class: the
    largest of its pools'); their pipeline calls still take turns on the GPU, but a job's reference downloads,
    encoding and upload overlap another's denoising. `batch_images` > 1 (with concurrent inputs): jobs of the same
    shape that arrive within `batch_wait_ms` of the first run as one pipeline call of at most that many outputs
    (gpu/batching.py), each from its own seed; a batched image may differ from the unbatched one in the low bits."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    concurrent_inputs: int = Field(1, ge=1, le=32)
    batch_images: int = Field(1, ge=1, le=16)
    batch_wait_ms: int = Field(0, ge=0, le=1000)

    @model_validator(mode="after")
    def _batches_need_company(self) -> Serving:
        if self.batch_images > 1 and self.concurrent_inputs < 2:
            raise ValueError("batch_images > 1 needs concurrent_inputs of 2 or more: a container taking one job at a "
                             "time has nothing to batch it with")
        if self.batch_wait_ms and self.batch_images < 2:
            raise ValueError("batch_wait_ms only matters with batch_images > 1")
        return self


class ModelSpec(Schema):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    task: Task
    family: str
    repo: str
    # A commit id, so the weights a memory snapshot was taken of never change under it. A branch or tag is
    # resolved to a commit by the download, which records it on the Volume (gpu/weights.py): allowed for
    # repos whose commit could not be checked, and reported by `darkroom deploy` as unpinned.
    revision: str = "main"
    gated: bool = False
    # Only these files of the repo are downloaded (some repos also hold many single-file checkpoints).
    allow_patterns: list[str] | None = None
    # A LoRA fused into the weights at load (a distilled few-step variant of the base model), and the scheduler
    # settings its authors prescribe with it (overrides of the pipeline's scheduler config). Both are part of
    # `weights`: a model with them is a pool of its own, apart from the plain model on the same repo.
    adapter: BuiltinAdapter | None = None
    scheduler: dict[str, Any] | None = None
    # Speed settings applied to the loaded pipeline (gpu/speed.py); the defaults change nothing.
    speed: SpeedSettings = Field(default_factory=SpeedSettings)
    # How a container takes jobs: several at once, and batched (gpu/batching.py); the defaults: one at a time.
    serving: Serving = Field(default_factory=Serving)
    gpu: str = "H100"
    modal_class: str
    # The container's memory request (Modal reserves 128 MiB unless told): it holds the whole pipeline in RAM
    # before the memory snapshot, at the dtype it is stored in. Warm pools are priced from it.
    memory_gib: int = Field(16, ge=1, le=1024)
    # How long a container may take to load the weights from the Volume and snapshot them before it takes
    # inputs (Modal's startup_timeout); the dispatch deadline covers it.
    startup_timeout: int = Field(600, ge=60, le=3600)
    # The longest one job may run on its GPU (Modal's input timeout, set per class: the longest of its models').
    # Past it Modal stops the input, and nothing reports the job until the sweeper fails it: it must cover the
    # model's largest request at its defaults. A running job's progress writes keep the sweeper off meanwhile.
    run_timeout: int = Field(900, ge=60, le=86400)
    # How long an idle container waits for the next job before it stops (Modal's scaledown_window, set per class:
    # the longest of its models'). Each burst of work ends with this much idle GPU time (docs/cost.md); with a
    # memory snapshot a cold start is a restore, so a short window costs a sparse user little latency.
    scaledown_window: int = Field(300, ge=2, le=3600)
    # Modal's GPU memory snapshot (alpha; gpu/modal_app.py): the move to the GPU, the speed settings and a warm-up
    # run before the snapshot, so a cold start restores a warm, compiled model instead of redoing them. Set per
    # class: on only when every model of the class leaves it on (one that cannot be snapshotted turns it off).
    gpu_snapshot: bool = True
    credits_per_image: float = 1
    credits_per_second: float | None = None  # video models: credits per second of output
    defaults: Defaults = Field(default_factory=Defaults)
    min_steps: int = 1
    max_steps: int = 50
    # Pixel bounds and granularity: diffusion VAEs downscale by 8 and FLUX packs 2x2 latents, hence 16.
    min_side: int = 256
    max_side: int = 2048
    multiple_of: int = 16
    # Video: allowed durations in seconds (an API snaps to the nearest), and the frame-count rule:
    # frames = frame_multiple * k + 1 (LTX's VAE compresses 8 frames into one latent frame, plus the first).
    durations: list[float] = Field(default_factory=list)
    frame_multiple: int = 1
    max_frames: int | None = None
    # The frame rates a video model makes; empty: any (LTX conditions on the rate it is given). Wan takes no rate
    # and makes its trained cadence, so another rate would only slow or speed up the playback.
    frame_rates: list[int] = Field(default_factory=list)
    # What the model can do beyond its task (GET /api/models reports them as `capabilities`, Catalog.capabilities;
    # the APIs refuse a request that needs one it lacks). Each must agree with its pipeline family in gpu/
    # (tests/gpu/test_catalog_families.py), so the API never accepts what the worker cannot do.
    audio: bool = False  # a video model that makes a synchronized soundtrack (muxed into the mp4 as AAC)
    mask: bool = False  # an image model that inpaints: a mask repaints part of the first image, keeps the rest
    # A negative prompt steers away through classifier-free guidance, which runs only when guidance is above
    # cfg_above (SDXL and LTX: 1; Z-Image: 0). Distilled models default to no guidance, so with their defaults
    # it has no effect: a request that sends one must also set guidance above it (functions/core/generation.py).
    negative_prompt: bool = False
    cfg_above: float = Field(1.0, ge=0)
    last_frame: bool = False  # a video model that also takes the last frame (first-last-frame to video)
    extend: bool = False  # a video model that continues a given clip (extend_video_url)
    # The license the weights are under (an id; license_url has the text). Models not free for every commercial
    # use (non-commercial, or gated on revenue or users) are refused until the operator accepts their license
    # (Settings.accepted_licenses; `darkroom deploy --accept-license`).
    license: str = "unspecified"
    license_url: str | None = None
    commercial_use: bool = False
    license_note: str = ""
    # A multi-reference editor: how many reference images every output composes together (its pipeline family
    # takes them as one list: gpu/pipelines.py, Family.references). None: an image-to-image model's one init
    # image per output (several are used in turn), or an image-to-video model's first frame.
    references: int | None = Field(None, ge=1)
    # The model to switch to when a request brings reference images: the image-to-image (or
    # image-to-video) model on the same weights.
    edit_model: str | None = None
    aliases: list[str] = Field(default_factory=list)
    description: str = ""

    @property
    def type(self) -> str:
        return TASK_TYPES[self.task]

    @property
    def weights(self) -> str:
        """The weights this model runs on: one Modal pool (one warm container) serves every model that shares
        them, text-to-image, edit, inpainting and variations alike. A built-in adapter and scheduler overrides are
        part of them: the fused weights are another set of weights."""
        return weights_key(self.repo, self.revision, self.adapter, self.scheduler)

    @property
    def pinned(self) -> bool:
        return bool(COMMIT.fullmatch(self.revision)) and (self.adapter is None or self.adapter.pinned)

    @property
    def takes_references(self) -> bool:
        return self.task in REFERENCE_TASKS

    @property
    def images_per_output(self) -> int:
        """How many reference images each output draws on: a multi-reference editor's `references`, one for an
        image-to-image model (its init image) or an image-to-video model (its first frame), none otherwise."""
        return self.references or (1 if self.takes_references else 0)

    def uses_negative_prompt(self, guidance: float | None) -> bool:
        """Whether a negative prompt acts at this guidance (None: the model's default)."""
        guidance = guidance if guidance is not None else self.defaults.guidance
        return self.negative_prompt and (guidance or 0.0) > self.cfg_above

    def license_accepted(self, accepted: str) -> bool:
        """Whether the operator's accepted licenses (comma-separated ids, or `*`) let this model run."""
        return self.commercial_use or license_allowed(self.license, accepted)

    @property
    def base_credits(self) -> float:
        """The price of one output (an image, or a second of video) at the reference size and steps."""
        if self.type == "video":
            assert self.credits_per_second is not None  # checked when the catalog loads
            return self.credits_per_second
        return self.credits_per_image

    def denoiser_passes(self, guidance: float | None) -> int:
        """The denoiser passes a step makes at `guidance` (None: the model's default): two with classifier-free
        guidance (the prompt's and the negative, or empty, prompt's), else one. The pipelines run it where a
        negative prompt acts (uses_negative_prompt; Qwen-Image's with the " " gpu/pipelines.py sends), and LTX-2's
        (the audio models) at any guidance: diffusers' audio_guidance_scale, 7 unless set (the worker never sets
        it), turns it on for the video too (its two further passes a step, spatio-temporal and modality guidance,
        run at any guidance as well: they are in its credits). `work` prices the ratio to the default's;
        tests/gpu/test_catalog_families.py counts the passes the pipelines make."""
        return 2 if self.uses_negative_prompt(guidance) or (self.negative_prompt and self.audio) else 1

    def work(self, params: dict[str, Any]) -> float:
        """How much GPU work one output of `params` is, against the model's own defaults (1.0): a denoiser's
        time grows with the pixels (or pixels of each frame), the steps that run (img2img runs steps × strength)
        and the passes each step makes (two with classifier-free guidance: denoiser_passes). At least MIN_WORK:
        the text encoder, the decode and the upload do not shrink."""
        d = self.defaults
        pixels = (params.get("width") or d.width or 1) * (params.get("height") or d.height or 1)
        reference_pixels = (d.width or 1) * (d.height or 1)

        def run(steps: int, strength: float | None) -> float:
            return max(1.0, steps * strength) if strength else float(steps)

        steps = run(params.get("steps") or d.steps, params.get("strength"))
        reference_steps = run(d.steps, d.strength if self.takes_references and self.type == "image" else None)
        passes = self.denoiser_passes(params.get("guidance")) / self.denoiser_passes(None)
        if self.references:
            # A multi-reference editor attends to every reference's tokens as well as the output's: each counts
            # as an image of the output's size, up to the megapixel the pipelines shrink references to.
            pixels += len(params.get("references") or ()) * min(pixels, REFERENCE_PIXELS)
        return max(MIN_WORK, pixels / reference_pixels * steps / reference_steps * passes)

    def seconds(self, params: dict[str, Any]) -> float:
        """The seconds of video a job is priced as: its duration, times the frames it makes against those the
        duration takes at the model's default rate (a higher fps makes more frames, each a denoised one: LTX takes
        1-60). An extension also runs the clip's last frames through the model: EXTEND_CONDITION_SECONDS more,
        whatever the rate asked for (at most CONDITION_FRAMES of the clip, gpu/pipelines.py)."""
        duration = params.get("duration") or self.defaults.duration or 0
        if duration <= 0:
            return 0.0
        frames = params.get("frames") or self.frames_for(duration, params.get("fps"))
        seconds = duration * frames / self.frames_for(duration)
        return seconds + (EXTEND_CONDITION_SECONDS if params.get("extend_video") else 0)

    def price(self, params: dict[str, Any]) -> float:
        """What a job of `params` costs: base credits × outputs (images, or seconds of video) × work."""
        outputs = params.get("n", 1)
        if self.type == "video":
            outputs *= self.seconds(params)
        adapters = len(params.get("loras") or ())
        return round(self.base_credits * (outputs * self.work(params) + adapters * LORA_LOAD_WORK), 4)

    def pricing(self) -> dict[str, Any]:
        """The price rule, as GET /api/models publishes it."""
        d = self.defaults
        unit = "second" if self.type == "video" else "image"
        passes = self.denoiser_passes(None)
        # Only where guidance can change the passes (a model whose guidance runs one pass whatever it is says none).
        guided = self.denoiser_passes(self.cfg_above + 1) != self.denoiser_passes(0.0)
        # Frames against those at the default rate: only where the rate may change (Wan makes its one rate).
        outputs = "n × seconds" + (f" × frames / frames at {d.fps} fps" if len(self.frame_rates) != 1 else "") \
            if unit == "second" else "n"
        return {"credits": self.base_credits, "per": unit,
                "reference": {"width": d.width, "height": d.height, "steps": d.steps},
                "minimum_work": MIN_WORK,
                "formula": f"credits × {outputs} × max({MIN_WORK}, "
                           f"width × height / ({d.width} × {d.height}) × steps / {d.steps}"
                           + (f" × passes / {passes}" if guided else "") + ")"
                           + (" (img2img: steps × strength against the default strength's)"
                              if self.takes_references and self.type == "image" and d.strength else "")
                           + (f" (each reference adds the output's pixels, at most {REFERENCE_PIXELS})"
                              if self.references else "")
                           + (f" (passes: 2 a step with guidance above {self.cfg_above:g}, classifier-free "
                              f"guidance; else 1)" if guided else "")
                           + (f" (an extension: seconds + {EXTEND_CONDITION_SECONDS:g}, for the clip's end it "
                              "continues from)" if self.extend else "")
                           + f" + credits × {LORA_LOAD_WORK} per LoRA adapter (its load time)"}

    def snap_duration(self, seconds: float) -> float:
        """The allowed duration nearest to `seconds` (the shorter one on a tie: it costs less)."""
        if not self.durations:
            raise ValueError(f"{self.id} is not a video model")
        return min(sorted(self.durations), key=lambda d: abs(d - seconds))

    def frames_for(self, duration: float, fps: float | None = None) -> int:
        """The frame count that best fills `duration` seconds at `fps`, following the model's frame rule."""
        fps = fps or self.defaults.fps
        if not fps or fps <= 0 or duration <= 0:
            raise ValueError(f"{self.id}: duration and fps must be positive")
        step = self.frame_multiple
        frames = max(1, round(duration * fps / step)) * step + (1 if step > 1 else 0)
        return min(frames, self.max_frames) if self.max_frames else frames

    def valid_frames(self, frames: int) -> bool:
        if frames < 1 or (self.max_frames and frames > self.max_frames):
            return False
        return self.frame_multiple == 1 or (frames - 1) % self.frame_multiple == 0

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if not 1 <= self.min_steps <= self.defaults.steps <= self.max_steps:
            raise ValueError(f"{self.id}: defaults.steps must be within min_steps..max_steps")
        if self.references and self.task != "image-to-image":
            raise ValueError(f"{self.id}: references (a multi-reference editor) is for image-to-image models")
        if self.type != "video":
            return self
        d = self.defaults
        if not (self.durations and d.fps and d.duration and self.credits_per_second):
            raise ValueError(f"video model {self.id} needs durations, defaults.fps, defaults.duration and "
                             "credits_per_second")
        if min(self.durations) <= 0:
            raise ValueError(f"{self.id}: durations must be positive")
        if self.frame_rates and d.fps not in self.frame_rates:
            raise ValueError(f"{self.id}: defaults.fps {d.fps} is not one of frame_rates {self.frame_rates}")
        if d.frames is not None and d.frames != self.frames_for(d.duration, d.fps):
            raise ValueError(f"{self.id}: defaults.frames {d.frames} does not match defaults.duration "
                             f"{d.duration}s at {d.fps} fps ({self.frames_for(d.duration, d.fps)} frames)")
        return self


class ToolSpec(Schema):
    model_config = ConfigDict(extra="forbid")
    slug: str
    name: str
    description: str = ""
    task: Task
    type: str
    default_model: str


class AuxiliaryModelSpec(Schema):
    """A small model beside the catalog's generators, downloaded with them (gpu/modal_app.py, download): which
    checkpoint, at which revision, and which of its files."""

    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    repo: str
    revision: str = "main"
    allow_patterns: list[str] | None = None
    description: str = ""


class BackgroundRemoverSpec(AuxiliaryModelSpec):
    """The segmentation model that makes transparent backgrounds (gpu/background.py): any transformers
    semantic-segmentation checkpoint whose labels include the background class(es) named here."""

    # Labels (as in the checkpoint's config.id2label, case-insensitive) that are background.
    background_labels: list[str] = Field(min_length=1)


class PromptEnhancerSpec(AuxiliaryModelSpec):
    """The small instruct LLM that rewrites prompts (`enhance_prompt`, POST /api/prompts/enhance; gpu/enhance.py):
    any transformers causal-LM checkpoint with a chat template. It runs on the GPU of the image or video model the
    job names, loaded on the first job that asks for it (docs: gpu/README.md, "Prompt enhancement")."""

    license: str
    license_url: str | None = None
    # The published parameter count (bfloat16 bytes are twice it): tests/gpu/test_prompt_enhancer.py checks it
    # against the architecture and that every weights pool still fits its GPU with the enhancer beside it.
    parameters: int = Field(gt=0)
    # The rewrite's bound, in generated tokens (greedy decoding: the same prompt always gives the same rewrite).
    max_new_tokens: int = Field(120, ge=8, le=512)
    # What one rewrite costs, added to the job's price (a generation with enhance_prompt, or the whole price of
    # POST /api/prompts/enhance).
    credits: float = Field(0.2, ge=0)
    # The system message: how to rewrite. The caller's prompt is the user message.
    instruction: str = Field(min_length=1)


# Moderation levels, 1 (strictest) to 6 (most permissive): AI Media Studio's safety_tolerance, and the scale every
# dialect's safety parameter maps onto (functions/core/moderation.py).
MODERATION_LEVELS = (1, 2, 3, 4, 5, 6)


class SafetyCheckerSpec(AuxiliaryModelSpec):
    """The image-safety classifier run on every output before it is stored (gpu/moderation.py): any transformers
    image-classification checkpoint; an output's score is the summed probability of its `unsafe_labels`."""

    license: str
    # Labels (as in the checkpoint's config.id2label, case-insensitive) that are unsafe.
    unsafe_labels: list[str] = Field(min_length=1)
    # A video is judged on this many frames, spread evenly from the first to the last.
    video_frames: int = Field(8, ge=1, le=64)


class ModerationPolicy(Schema):
    """The one policy table: each level's threshold (an output whose unsafe score is at least its level's is
    blocked), the level a request that asks for none gets, the most permissive one a workspace allows unless its
    operator set another, and how the OpenAI dialect's `moderation` words map onto levels (docs/fields.md)."""

    model_config = ConfigDict(extra="forbid")
    checker: SafetyCheckerSpec
    thresholds: dict[int, float]
    default_level: int = Field(2, ge=1, le=6)
    workspace_max_level: int = Field(4, ge=1, le=6)
    openai: dict[Literal["auto", "low"], int]

    @model_validator(mode="after")
    def _check(self) -> ModerationPolicy:
        if sorted(self.thresholds) != list(MODERATION_LEVELS):
            raise ValueError(f"moderation.thresholds: one per level {list(MODERATION_LEVELS)}, got {sorted(self.thresholds)}")
        values = [self.thresholds[level] for level in MODERATION_LEVELS]
        if any(not 0 <= v <= 1 for v in values) or values != sorted(values):
            raise ValueError("moderation.thresholds: between 0 and 1, never stricter at a more permissive level")
        if self.default_level > self.workspace_max_level:
            raise ValueError("moderation.default_level is more permissive than workspace_max_level")
        if set(self.openai) != {"auto", "low"} or any(v not in MODERATION_LEVELS for v in self.openai.values()):
            raise ValueError("moderation.openai: a level (1-6) for auto and for low")
        return self


def license_allowed(license_id: str, accepted: str) -> bool:
    names = {name.strip().lower() for name in accepted.split(",") if name.strip()}
    return "*" in names or license_id.lower() in names


def weights_key(repo: str, revision: str, adapter: BuiltinAdapter | None = None,
                scheduler: dict[str, Any] | None = None) -> str:
    """`repo@revision`, then `+adapter-repo@revision/file` with a built-in adapter, and `+scheduler:<hash>` of
    scheduler overrides: the Modal class's parameter, so it stays short."""
    key = f"{repo}@{revision}"
    if adapter is not None:
        key += f"+{adapter.key}"
    if scheduler:
        canonical = json.dumps(scheduler, sort_keys=True, separators=(",", ":"))
        key += f"+scheduler:{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"
    return key


@dataclass(frozen=True)
class WeightsPool:
    """The models sharing one set of weights, and what their Modal pool needs (one class instance per pool): the
    largest memory and startup time any of them asks for."""

    key: str
    repo: str
    revision: str
    family: str  # the family of the pool's text model: the pipeline a container loads at start
    modal_class: str
    gpu: str
    memory_gib: int
    startup_timeout: int
    allow_patterns: tuple[str, ...] | None
    models: tuple[str, ...]
    gated: bool
    # The LoRA fused into these weights at load, and the scheduler overrides that go with it (sorted pairs).
    adapter: BuiltinAdapter | None = None
    scheduler: tuple[tuple[str, Any], ...] = ()
    speed: SpeedSettings = dataclasses.field(default_factory=SpeedSettings)  # what the models agree on
    serving: Serving = dataclasses.field(default_factory=Serving)  # likewise

    @property
    def pinned(self) -> bool:
        return bool(COMMIT.fullmatch(self.revision)) and (self.adapter is None or self.adapter.pinned)


class Catalog(Schema):
    models: list[ModelSpec]
    tools: list[ToolSpec]
    # Names of other vendors' models (OpenAI's), each served by a catalog model: GET /v1/models lists them.
    aliases: dict[str, str] = Field(default_factory=dict)
    # None: `background: transparent` is refused with a 400 (no model to make it).
    background_remover: BackgroundRemoverSpec | None = None
    # None: `enhance_prompt` and POST /api/prompts/enhance are refused with a 400 (no model to rewrite with).
    prompt_enhancer: PromptEnhancerSpec | None = None
    # The output safety checker and its policy table: every output is judged before it is stored. A catalog
    # built without one (a test's) gets the shipped catalog.yaml's.
    moderation: ModerationPolicy = Field(default_factory=lambda: _shipped_moderation())

    @model_validator(mode="after")
    def _check_references(self) -> Catalog:
        by_id = {m.id: m for m in self.models}
        for tool in self.tools:
            if tool.default_model not in by_id:
                raise ValueError(f"tool {tool.slug}: default_model {tool.default_model!r} is not in the catalog")
        for model in self.models:
            if model.edit_model is None:
                continue
            edit = by_id.get(model.edit_model)
            if edit is None:
                raise ValueError(f"{model.id}: edit_model {model.edit_model!r} is not in the catalog")
            if edit.task != _WITH_REFERENCES.get(model.task):
                raise ValueError(f"{model.id}: edit_model {edit.id} is a {edit.task} model, not "
                                 f"{_WITH_REFERENCES.get(model.task, 'a reference task')}")
            if edit.weights != model.weights:
                raise ValueError(f"{model.id}: edit_model {edit.id} must use the same weights (and built-in adapter)")
        for key, models in self._by_weights().items():
            for field in ("modal_class", "gpu", "speed", "serving"):
                values = {getattr(m, field) for m in models}
                if len(values) > 1:
                    raise ValueError(f"models on the same weights ({key}: {', '.join(m.id for m in models)}) run "
                                     f"in one Modal pool, so they must agree on {field}, got {sorted(map(repr, values))}")
        return self

    def _by_weights(self) -> dict[str, list[ModelSpec]]:
        groups: dict[str, list[ModelSpec]] = {}
        for model in self.models:
            groups.setdefault(model.weights, []).append(model)
        return groups

    def weights_pools(self) -> dict[str, WeightsPool]:
        """Every set of weights in the catalog, keyed as ModelSpec.weights, with the models it serves."""
        pools = {}
        for key, models in self._by_weights().items():
            first = models[0]
            text = next((m for m in models if not m.takes_references), first)
            patterns = sorted({p for m in models for p in (m.allow_patterns or [])})
            pools[key] = WeightsPool(
                key=key, repo=first.repo, revision=first.revision, family=text.family, modal_class=first.modal_class,
                gpu=first.gpu, memory_gib=max(m.memory_gib for m in models),
                startup_timeout=max(m.startup_timeout for m in models),
                allow_patterns=tuple(patterns) if all(m.allow_patterns for m in models) else None,
                models=tuple(m.id for m in models), gated=any(m.gated for m in models), adapter=first.adapter,
                scheduler=tuple(sorted((first.scheduler or {}).items())), speed=first.speed, serving=first.serving)
        return pools

    def weights_pool(self, key: str) -> WeightsPool | None:
        return self.weights_pools().get(key)

    def class_pools(self, modal_class: str) -> list[WeightsPool]:
        """The pools one Modal class serves: its memory and startup_timeout are the largest of theirs."""
        return [p for p in self.weights_pools().values() if p.modal_class == modal_class]

    def class_startup_timeout(self, modal_class: str) -> int:
        return max(p.startup_timeout for p in self.class_pools(modal_class))

    def class_run_timeout(self, modal_class: str) -> int:
        return max(m.run_timeout for m in self.models if m.modal_class == modal_class)

    def class_scaledown_window(self, modal_class: str) -> int:
        return max(m.scaledown_window for m in self.models if m.modal_class == modal_class)

    def class_gpu_snapshot(self, modal_class: str) -> bool:
        return all(m.gpu_snapshot for m in self.models if m.modal_class == modal_class)

    def class_concurrent_inputs(self, modal_class: str) -> int:
        """How many jobs a container of the class takes at once (Modal's concurrency is per class too)."""
        return max(p.serving.concurrent_inputs for p in self.class_pools(modal_class))

    def class_memory_gib(self, modal_class: str) -> int:
        """What each container of the class reserves (Modal's memory is set per class, not per instance)."""
        return max(p.memory_gib for p in self.class_pools(modal_class))

    def model(self, name: str) -> ModelSpec | None:
        """A model by id or alias (case-insensitive)."""
        return self._index().get(name.lower())

    def tool(self, slug: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.slug == slug), None)

    def models_for(self, task: str) -> list[ModelSpec]:
        return [m for m in self.models if m.task == task]

    def with_references(self, model: ModelSpec) -> ModelSpec | None:
        """The model that serves `model`'s request when it brings reference images: itself if it takes
        them, else its edit_model; None if it has no such counterpart."""
        if model.takes_references:
            return model
        return self.model(model.edit_model) if model.edit_model else None

    def capabilities(self, model: ModelSpec) -> dict[str, Any]:
        """What a request naming `model` can ask for: its own capabilities joined with its edit model's (a text model
        switches to it when the request brings images). `references` is how many images each output composes
        (0: none); `lora`: whether its pipeline takes LoRA adapters (functions/core/lora_signatures.json)."""
        from .lora_files import supports

        edit = self.with_references(model) if model.edit_model else None
        both = [m for m in (model, edit) if m is not None]
        return {"references": max(m.images_per_output for m in both),
                "mask": any(m.mask for m in both),
                "last_frame": any(m.last_frame for m in both),
                "extend": any(m.extend for m in both),
                "audio": any(m.audio for m in both),
                "lora": all(supports(self.base_family(m)) for m in both),
                "negative_prompt": any(m.negative_prompt for m in both)}

    def base_family(self, model: ModelSpec) -> str:
        """The pipeline family a model's weights load as (its pool's text model's family): what LoRAs are made for."""
        pool = self.weights_pool(model.weights)
        return pool.family if pool is not None else model.family

    def tasks(self, model: ModelSpec) -> list[str]:
        """Every task a request naming `model` can run (with images it switches to its edit model)."""
        caps = self.capabilities(model)
        edit = self.with_references(model) if model.edit_model else None
        tasks = [model.task] + ([edit.task] if edit is not None and edit is not model else [])
        if caps["references"] > 1:
            tasks.append("multi-reference-editing")
        if caps["mask"]:
            tasks.append("inpainting")
        if caps["last_frame"]:
            tasks.append("first-last-frame-to-video")
        if caps["extend"]:
            tasks.append("video-extension")
        return tasks

    def facts(self, model: ModelSpec, accepted_licenses: str) -> dict[str, Any]:
        """What every listing (GET /api/models, AI Media Studio's discovery routes) reports of a model beside its
        dialect's own fields: what it can do, the sizes, durations and frame rates it makes, its price, and its
        license (`enabled`: whether this deployment runs it, given the licenses the operator accepted)."""
        facts: dict[str, Any] = {
            "tasks": self.tasks(model), "capabilities": self.capabilities(model),
            "sizes": {"min_side": model.min_side, "max_side": model.max_side, "multiple_of": model.multiple_of,
                      "default": f"{model.defaults.width}x{model.defaults.height}"},
            "credits": model.base_credits, "pricing": model.pricing(),
            "license": model.license, "license_url": model.license_url, "commercial_use": model.commercial_use,
            "enabled": model.license_accepted(accepted_licenses)}
        if model.license_note:
            facts["license_note"] = model.license_note
        if model.type == "video":
            facts["durations"] = model.durations
            facts["frame_rates"] = model.frame_rates  # empty: any (1-60), the model conditions on it
            facts["default_fps"] = model.defaults.fps
            facts["max_frames"] = model.max_frames
        return facts

    def able(self, kind: str, capability: str, at_least: int = 1) -> list[str]:
        """The ids of the `kind` models (image or video) that a request may name to get `capability`: for an
        error that says which models could serve what was refused."""
        return [m.id for m in self.models if m.type == kind and int(self.capabilities(m)[capability]) >= at_least]

    def _index(self) -> dict[str, ModelSpec]:
        index: dict[str, ModelSpec] = {}
        for model in self.models:
            for name in (model.id, *model.aliases):
                index[name.lower()] = model
        return index


def _merge(base: dict, extra: dict) -> dict:
    """An operator's file adds models and tools, or replaces those with the same id/slug."""
    merged = dict(base)
    for section, key in (("models", "id"), ("tools", "slug")):
        by_key = {entry[key]: entry for entry in base.get(section, [])}
        for entry in extra.get(section) or []:
            by_key[entry[key]] = entry
        merged[section] = list(by_key.values())
    if "background_remover" in extra:  # replaced whole (or turned off with null)
        merged["background_remover"] = extra["background_remover"]
    if "prompt_enhancer" in extra:  # likewise
        merged["prompt_enhancer"] = extra["prompt_enhancer"]
    if extra.get("moderation"):  # the policy table and its checker, replaced whole
        merged["moderation"] = extra["moderation"]
    # Named aliases (any case): the operator's file points one elsewhere, adds one, or turns one off (null).
    merged["aliases"] = {alias.lower(): target for section in (base, extra)
                         for alias, target in (section.get("aliases") or {}).items()}
    return merged


def _with_aliases(data: dict) -> dict:
    """The catalog's named aliases (`aliases: {name: model id}`) added to their models' own alias lists; a
    null target turns the name off."""
    named = {alias.lower(): target for alias, target in (data.get("aliases") or {}).items() if target is not None}
    models = [dict(m, aliases=list(m.get("aliases") or [])) for m in data["models"]]
    ids = {m["id"] for m in models}
    for alias, target in named.items():
        entry = next((m for m in models if m["id"] == target), None)
        if entry is None:
            raise ValueError(f"alias {alias!r} points at {target!r}, which is not in the catalog")
        if alias in ids:
            raise ValueError(f"alias {alias!r} is a model's own id")
        for other in models:  # a name points at one model: moving it takes it off the one it was on
            other["aliases"] = [a for a in other["aliases"] if a.lower() != alias]
        entry["aliases"].append(alias)
    return {**data, "models": models, "aliases": named}


def load_yaml(path: Path) -> dict:
    import yaml

    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@lru_cache(maxsize=1)
def _shipped_moderation() -> ModerationPolicy:
    return ModerationPolicy.model_validate(load_yaml(Path(__file__).with_name("catalog.yaml"))["moderation"])


@lru_cache(maxsize=1)
def get_catalog() -> Catalog:
    data = load_yaml(Path(__file__).with_name("catalog.yaml"))
    extra_path = os.environ.get("DARKROOM_CATALOG_EXTRA")
    if extra_path:
        data = _merge(data, load_yaml(Path(extra_path)) or {})
    return Catalog.model_validate(_with_aliases(data))
