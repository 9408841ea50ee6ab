"""The runtime-agnostic GPU worker: resolve the model, fetch references, load (cached), run, encode, upload,
report. One flow for every task: text-to-image, image-to-image, text-to-video and image-to-video.

The same code runs inside the Modal class (gpu/modal_app.py) and in the local stack's worker pool.
It reports through the results queue; the complete function applies the terminal state.
"""

from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path

from functions.core import aws, clock, messages, storage
from functions.core import moderation as policy
from functions.core.catalog import (
    BackgroundRemoverSpec,
    ModelSpec,
    PromptEnhancerSpec,
    SafetyCheckerSpec,
    WeightsPool,
    get_catalog,
)
from functions.core.errors import NotFound, TransitionRejected, describe
from functions.core.jobs import JobError, JobKey, JobStatus, JobStore, Output
from functions.core.observability import logger
from gpu import (
    adapters,
    background,
    batching,
    encode,
    enhance,
    inpaint,
    moderation,
    provenance,
    references,
    weights,
)
from gpu.pipelines import (
    Builtin,
    GenerationRequest,
    GenerationResult,
    extend_family,
    family_spec,
    generate,
    inpaint_family,
    load_pipeline,
    speed_report,
)

# Uploads of a job's outputs overlap the encoding of the next output: a few S3 PUTs at once.
UPLOAD_THREADS = 4


class JobCanceled(Exception):
    """The job stopped being this worker's to run (canceled, or failed by the sweeper) while it ran."""


class CancelWatch:
    """Each denoising step records progress with a write conditional on the job still running, and that write
    is the cancel check: once one is refused, the next step raises JobCanceled, which stops the pipeline
    before its next step (and before the VAE decode and the upload). At most one write is in flight, on the
    report thread when there is one, so a slow write never holds a step back or queues behind fast steps:
    a cancel stops the work within a step or two, whatever the step time."""

    def __init__(self, store: JobStore, job_id: str, reports: Executor | None, *,
                 run_deadline_seconds: int | None = None) -> None:
        self.store, self.job_id, self.reports = store, job_id, reports
        self.canceled = threading.Event()
        self.in_flight: Future | None = None
        self.latest: tuple[int, int] | None = None  # the last step seen
        self.recorded: tuple[int, int] | None = None  # the last step a write was made for
        # The heartbeat: a progress write pushes the job's run deadline out once it is past half-way, so a job
        # longer than run_deadline_seconds is not failed while it makes progress (and a short one writes no more).
        self.run_deadline_seconds = run_deadline_seconds or 0
        self.deadline = clock.now() + run_deadline_seconds if run_deadline_seconds else None

    def _record(self, step: int, total: int) -> None:
        now, extend = clock.now(), None
        if self.deadline is not None and now > self.deadline - self.run_deadline_seconds / 2:
            extend = now + self.run_deadline_seconds
        if not self.store.record_progress(self.job_id, step, total, deadline=extend):
            self.canceled.set()
        elif extend is not None:
            self.deadline = extend

    def on_step(self, step: int, total: int) -> None:
        self._raise_if_canceled(step, total)
        self.latest = (step, total)
        if self.reports is None:
            self.recorded = self.latest
            self._record(step, total)
            self._raise_if_canceled(step, total)
        elif self.in_flight is None or self.in_flight.done():
            self.recorded = self.latest
            self.in_flight = self.reports.submit(self._record, step, total)

    def settle(self) -> None:
        """After the last step: its check made (if a write was still in flight then) and waited for; raises
        JobCanceled if the job was canceled meanwhile."""
        if self.in_flight is not None:
            try:
                self.in_flight.result()
            except Exception:  # noqa: BLE001 - a progress write that failed (not refused) cancels nothing
                logger.warning("progress write failed", extra={"job_id": self.job_id})
        if self.latest is not None and self.recorded != self.latest and not self.canceled.is_set():
            self.recorded = self.latest
            self._record(*self.latest)
        self._raise_if_canceled()

    def _raise_if_canceled(self, step: int | None = None, total: int | None = None) -> None:
        if self.canceled.is_set():
            where = f" after step {step} of {total}" if step is not None else ""
            raise JobCanceled(f"job {self.job_id} is no longer running (canceled){where}: stopped")


def weights_source(spec: ModelSpec | WeightsPool | BackgroundRemoverSpec | SafetyCheckerSpec
                   | PromptEnhancerSpec) -> Path:
    """The directory the weights load from: tiny random ones (local default), the Volume, or the Hub's cache.

    DARKROOM_WEIGHTS=tiny (default outside Modal) builds and caches a tiny pipeline of the model's family;
    DARKROOM_WEIGHTS=/path/to/dir reads the download of the pinned commit there (the Modal Volume's layout,
    gpu/weights.py; WeightsMissing, naming the fix, if it is not complete);
    DARKROOM_WEIGHTS=hub downloads the repo at its revision into the Hugging Face cache (a machine with internet).
    """
    setting = os.environ.get("DARKROOM_WEIGHTS", "tiny")
    if setting == "tiny":
        from gpu.tiny import ensure_tiny_classifier, ensure_tiny_pipeline, ensure_tiny_segmenter

        cache = Path(os.environ.get("DARKROOM_DATA_DIR", ".darkroom")) / "models"
        if isinstance(spec, BackgroundRemoverSpec):
            return ensure_tiny_segmenter(cache)
        if isinstance(spec, SafetyCheckerSpec):
            return ensure_tiny_classifier(cache)
        if isinstance(spec, PromptEnhancerSpec):
            from gpu.tiny import ensure_tiny_enhancer

            return ensure_tiny_enhancer(cache)
        return ensure_tiny_pipeline(spec.family, cache)
    if setting == "hub":
        return _hub_snapshot(spec.repo, spec.revision, tuple(spec.allow_patterns or ()))
    single = ModelSpec | BackgroundRemoverSpec | SafetyCheckerSpec | PromptEnhancerSpec
    name = spec.id if isinstance(spec, single) else ",".join(spec.models)
    if isinstance(spec, SafetyCheckerSpec):
        name = ""  # it comes with any model's download: the fix for a missing one names no model (`all`)
    return weights.resolve(Path(setting), spec.repo, spec.revision, model=name)


def adapter_file(spec: ModelSpec | WeightsPool) -> Path:
    """The local file of the model's built-in adapter (ModelSpec.adapter), where DARKROOM_WEIGHTS says weights are:
    tiny: a tiny random LoRA for the family's tiny pipeline (gpu/tiny.py), one per adapter, so the local stack and the
    tests fuse a real one; a directory (the Volume's layout): the download of the adapter's commit, which must hold
    its file (WeightsMissing otherwise); hub: the file, through the Hugging Face cache."""
    adapter = spec.adapter
    if adapter is None:
        raise ValueError(f"{spec.key if isinstance(spec, WeightsPool) else spec.id} has no built-in adapter")
    setting = os.environ.get("DARKROOM_WEIGHTS", "tiny")
    if setting == "tiny":
        from gpu.tiny import ensure_tiny_lora

        cache = Path(os.environ.get("DARKROOM_DATA_DIR", ".darkroom")) / "models"
        name = "builtin-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{adapter.repo}-{adapter.weight_name}")
        return ensure_tiny_lora(spec.family, cache, name=name)
    if setting == "hub":
        return _hub_file(adapter.repo, adapter.revision, adapter.weight_name)
    name = spec.id if isinstance(spec, ModelSpec) else ",".join(spec.models)
    path = weights.resolve(Path(setting), adapter.repo, adapter.revision, model=name) / adapter.weight_name
    if not path.is_file():
        raise weights.WeightsMissing(f"the built-in adapter {adapter.weight_name} of {name} is not on the weights "
                                     f"Volume: run `darkroom deploy --download-weights {name}`")
    return path


def builtin_adapter(spec: ModelSpec | WeightsPool) -> Builtin | None:
    """What load_pipeline fuses into the model's weights (None: it has no built-in adapter)."""
    if spec.adapter is None:
        return None
    scheduler = spec.scheduler.items() if isinstance(spec.scheduler, dict) else spec.scheduler or ()
    return Builtin(adapter_file(spec), spec.adapter.scale, tuple(sorted(scheduler)))


@cache
def _hub_file(repo: str, revision: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, filename, revision=revision))


@cache
def _hub_snapshot(repo: str, revision: str, allow_patterns: tuple[str, ...]) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo, revision=revision, allow_patterns=list(allow_patterns) or None))


def device_and_dtype() -> tuple[str, str]:
    import torch

    if torch.cuda.is_available():
        return "cuda", "bfloat16"
    return "cpu", "float32"


def load(model: ModelSpec, family: str | None = None):
    """The model's pipeline (or `family`'s, on the same weights) on this machine's best device, loaded once
    per process, with the model's speed settings applied (gpu/speed.py; pipelines.speed_report says what they did).
    A compiled model is compiled here, before its first job runs (warm_up), with the artifacts kept under the local
    data directory (the Modal class does the same in its enter hook, on the weights Volume)."""
    device, dtype = device_and_dtype()
    source, builtin = weights_source(model), builtin_adapter(model)
    if not model.speed.is_default:
        base = family_spec(model.family).base
        pipe = load_pipeline(base, source, device=device, dtype=dtype, builtin=builtin, speed=model.speed)
        with _WARM_UP_LOCK:
            if "warm_up" not in speed_report(pipe):
                warm_up(model, pipe, base, device, Path(os.environ.get("DARKROOM_DATA_DIR", ".darkroom"))
                        / "compile-cache")
    return load_pipeline(family or model.family, source, device=device, dtype=dtype, builtin=builtin,
                         speed=model.speed)


def batch_policy(model: ModelSpec) -> batching.BatchPolicy:
    """How the model's jobs may share pipeline calls (catalog Serving): by default, not at all."""
    return batching.BatchPolicy(max_images=model.serving.batch_images, wait_s=model.serving.batch_wait_ms / 1000)


_WARM_UP_LOCK = threading.Lock()
WARM_UP_STEPS = 2  # the compiled graphs do not depend on the step count: the fewest a family takes, at least 2


def warm_up(spec: ModelSpec | WeightsPool, pipe, family: str, device: str, cache_root: Path | None, *,
            always: bool = False) -> bool:
    """Run a model with speed settings once before it takes jobs: no job pays for torch.compile, and a setting the
    model cannot run comes off here (said in its speed report) instead of failing every job. One generation at
    the model's default size (and clip length), after loading whatever an earlier container compiled for the same
    key (gpu/compile_cache.py); what this one compiled anew is saved for the next. The speed report's `warm_up`
    says how long it took and how many graphs came from the cache. Returns whether a new artifacts file was
    written (the Modal class then commits the Volume). A model without settings is left alone (False), unless
    `always` (before a GPU memory snapshot: the kernels a first generation loads are then in the snapshot).

    Sizes other than the default compile on first use (torch then marks the changed dimensions dynamic, once),
    and are saved with the rest when the container next warms up a new key."""
    from gpu import compile_cache
    from gpu.pipelines import note_speed

    if spec.speed.is_default and not always:
        return False
    catalog = get_catalog()
    model = spec if isinstance(spec, ModelSpec) else catalog.model(spec.models[0])
    assert model is not None
    request = _warm_up_request(model, family)
    shape = {"width": request.width, "height": request.height, "frames": request.frames, "family": family}
    weights_key = model.weights
    compiled = spec.speed.compile != "none"
    file = (compile_cache.path(cache_root, compile_cache.key(weights_key, spec.speed.key, device, shape))
            if cache_root is not None and compiled else None)
    loaded = compile_cache.load(file) if file is not None else 0
    hits, misses = compile_cache.graph_counts()
    started = time.perf_counter()
    try:
        generate(pipe, family, request)
    except Exception as exc:
        if not _turn_off_what_failed(model, pipe, exc):
            raise
        compiled, file = False, None
        generate(pipe, family, request)  # without them; what fails now fails the load, as without settings
    seconds = time.perf_counter() - started
    hits, misses = (now - before for now, before in zip(compile_cache.graph_counts(), (hits, misses), strict=True))
    saved = compile_cache.save(file) if file is not None and misses else 0
    size = f"{request.width}x{request.height}" + (f"x{request.frames}" if request.frames else "")
    note = f"{size}, {request.steps} steps: {seconds:.1f} s; " + (
        f"{hits} graphs from the cache ({_megabytes(loaded)} loaded), {misses} compiled"
        + (f" ({_megabytes(saved)} saved)" if saved else "") if compiled else "not compiled")
    note_speed(pipe, "warm_up", note)
    logger.info("warm-up", model=model.id, warm_up=note)
    return saved > 0


def _turn_off_what_failed(model: ModelSpec, pipe, exc: Exception) -> bool:
    """After the warm-up failed with the model's speed settings on: take off those that can come off (gpu/speed.py,
    turn_off), and say in the speed report why each is off. False when none could."""
    from gpu import speed
    from gpu.pipelines import note_speed

    off = speed.turn_off(pipe)
    if not off:
        return False
    why = f"failed at warm-up ({describe(exc).splitlines()[0][:200]})"
    report = speed_report(pipe)
    for setting in off:
        note_speed(pipe, setting, f"{report.get(setting, setting)}; {why}: off")
    logger.warning("speed settings off", model=model.id, settings=off, error=why)
    return True


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _warm_up_request(model: ModelSpec, family: str) -> GenerationRequest:
    """What a first job at the model's defaults would ask of `family`'s pipeline (the images it needs: grey)."""
    from PIL import Image

    spec = family_spec(family)
    defaults = model.defaults
    fields: dict = {"prompt": "warm-up", "width": defaults.width, "height": defaults.height, "seed": 0,
                    "steps": max(WARM_UP_STEPS, spec.min_steps, model.min_steps)}
    if spec.output == "video":
        fps = defaults.fps or 24
        frames = defaults.frames or (model.frames_for(defaults.duration, fps) if defaults.duration else None)
        fields.update(frames=frames, fps=float(fps))
    grey = Image.new("RGB", (defaults.width, defaults.height), (128, 128, 128))
    if spec.takes_image or spec.needs_references:
        fields["images"] = [grey]
    if spec.last_frame:
        fields["last_frame"] = grey
    return GenerationRequest(**fields)


def execute(request: messages.WorkRequest, store: JobStore,
            reports: Executor | None = None) -> messages.ResultMessage:
    """Run the job and upload its outputs. Raises on failure; `run` turns that into a failed result.

    `request.params` holds what the API resolved: prompt, negative_prompt, n, width, height, steps,
    guidance, seed, output_format and quality (images); `references` (a list of {"url"} or {"upload_key"})
    and `strength` for image-to-image; `references` (the first is the first frame) for image-to-video;
    `frames`, or `duration` (seconds), and `fps` for video; `last_frame` (a reference) for a first-last-frame
    video. Catalog defaults fill what is missing.
    `mask` (a reference to an OpenAI-style alpha PNG) makes an edit inpaint; `background: "transparent"`
    removes the background of every image after generation. Progress is written on `reports` when given
    (in order, off the denoising loop), else inline.
    """
    model = get_catalog().model(request.model)
    if model is None:
        raise LookupError(f"model {request.model!r} is not in this worker's catalog")
    params = request.params
    timings: dict[str, float] = {}
    if params.get("enhance_only"):
        return _enhance_only(request, params, timings)

    # References first: a bad one fails the job before any GPU time is spent.
    images = None
    if model.takes_references:
        t0 = time.perf_counter()
        images = references.load_references(params.get("references") or [], workspace_id=request.workspace_id,
                                             bucket=request.bucket, allow_loopback=request.allow_loopback_urls,
                                             cover=(params["width"], params["height"]))
        timings["fetch"] = time.perf_counter() - t0
        if not images:
            raise references.InvalidReference(f"{model.id} ({model.task}) needs at least one reference image")
    elif params.get("references"):
        hint = f"; its edit model is {model.edit_model}" if model.edit_model else ""
        raise references.InvalidReference(f"{model.id} ({model.task}) takes no reference images{hint}")

    # The prompt the model runs: the caller's (styled), or its rewrite when the job asked for one (GPU time, so
    # after the references that could fail the job).
    rewrite = _enhance(params, timings) if params.get("enhance_prompt") else None
    gen = GenerationRequest(
        prompt=rewrite.prompt if rewrite else params["prompt"], negative_prompt=params.get("negative_prompt"),
        n=params.get("n", 1),
        width=params["width"], height=params["height"], steps=params["steps"], guidance=params.get("guidance"),
        seed=params.get("seed"), images=images,
    )
    if model.task == "image-to-image":
        gen.strength = params.get("strength", model.defaults.strength)
    family = model.family
    if params.get("mask"):
        alpha = inpaint.load_mask(params["mask"], workspace_id=request.workspace_id, bucket=request.bucket,
                                  allow_loopback=request.allow_loopback_urls)
        if not images:
            raise inpaint.InvalidMask("mask: needs an image to edit")
        gen.mask = inpaint.repaint_mask(alpha, images[0])
        family = inpaint_family(model.family)
    remover = _background_remover(model, params)
    if model.type == "video":
        gen.frames, gen.fps = video_timing(model, params)
    if params.get("audio"):
        if not model.audio:
            raise ValueError(f"{model.id} makes no audio")
        gen.audio = True
    if params.get("extend_video"):
        family = extend_family(model.family)
        # The continuation plays at the clip's own rate (LTX conditions on it), so the two parts match.
        gen.clip, clip_fps = references.load_clip(
            params["extend_video"], "extend_video", workspace_id=request.workspace_id, bucket=request.bucket,
            cover=(params["width"], params["height"]), max_frames=model.max_frames or 257,
            allow_loopback=request.allow_loopback_urls)
        gen.fps = clip_fps or gen.fps
        gen.max_frames = model.max_frames
    if params.get("last_frame"):
        if not model.last_frame:
            raise references.InvalidReference(f"{model.id} takes no last frame")
        gen.last_frame = references.load_reference(
            params["last_frame"], "last_frame", workspace_id=request.workspace_id, bucket=request.bucket,
            allow_loopback=request.allow_loopback_urls, cover=(params["width"], params["height"]))
    # The C2PA signing certificate, before any GPU time: one configured but unusable fails the job here.
    stamp = provenance.stamp_for(request, model, images, edit=model.type == "image")

    watch = CancelWatch(store, request.job_id, reports, run_deadline_seconds=request.run_deadline_seconds)
    specs = params.get("loras") or []
    t0 = time.perf_counter()
    # The adapters' files before the model: a bad one fails the job before any GPU time is spent. They stay
    # pinned in the LoRA cache until the call is done.
    with adapters.job_adapters(specs, workspace_id=request.workspace_id, bucket=request.bucket,
                               allow_loopback=request.allow_loopback_urls) as gen.loras:
        if specs:
            timings["lora_fetch"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pipe = load(model, family)
        timings["load"] = time.perf_counter() - t0
        speed = speed_report(pipe)  # what the speed settings did, or why one fell back: reported with the job
        t0 = time.perf_counter()
        result, together = batching.BATCHER.generate(pipe, family, gen, batch_policy(model), on_step=watch.on_step)
        if together > 1:
            speed = {**speed, "batch": f"one pipeline call with {together - 1} other job{'s' if together > 2 else ''}"}
    timings["inference"] = time.perf_counter() - t0
    timings["vae_decode"] = result.vae_decode  # part of inference
    if specs:
        timings["lora_load"] = result.lora_load  # part of inference: loading and unloading the adapters
    watch.settle()  # the last step's check: a job canceled meanwhile uploads nothing
    if remover is not None:
        t0 = time.perf_counter()
        result.images = background.remove_background(result.images, remover, weights_source(remover),
                                                     device=device_and_dtype()[0])
        timings["background"] = time.perf_counter() - t0
    # The safety checker, on what would be stored: a blocked output fails the job here, before any upload.
    t0 = time.perf_counter()
    checker = get_catalog().moderation.checker
    outputs_checked = {"videos": result.videos} if model.type == "video" else {"images": result.images}
    report = moderation.check(checker, weights_source(checker), threshold=policy.job_threshold(params),
                              level=(params.get("moderation") or {}).get("level"), device=device_and_dtype()[0],
                              **outputs_checked)
    timings["moderation"] = time.perf_counter() - t0

    if model.type == "video":
        assert gen.fps is not None
        outputs = _store_videos(request, result, gen.fps, timings, stamp)
    else:
        outputs = _store_images(request, result.images, params.get("output_format", "png"), params.get("quality"),
                                timings, stamp)
    return messages.ResultMessage(job_id=request.job_id, workspace_id=request.workspace_id, outcome="succeeded",
                                  outputs=outputs, seed=result.seed,
                                  timings={k: round(v, 4) for k, v in timings.items()},
                                  loras=adapters.reported(specs, gen.loras), speed=speed, moderation=report,
                                  provenance=stamp.report(video=model.type == "video"), **_enhanced(rewrite))


def _enhance(params: dict, timings: dict[str, float]) -> enhance.Rewrite:
    """The job's prompt rewritten by the catalog's prompt enhancer (gpu/enhance.py), or the prompt itself with the
    note saying why not (the job records it)."""
    spec = get_catalog().prompt_enhancer
    if spec is None:
        raise ValueError("enhance_prompt needs the catalog's prompt_enhancer, and none is configured")
    t0 = time.perf_counter()
    device, dtype = device_and_dtype()
    rewrite = enhance.rewrite(params["prompt"], spec, weights_source(spec), device=device, dtype=dtype)
    timings["enhance"] = time.perf_counter() - t0
    if not rewrite.enhanced:
        logger.warning("prompt enhancement fell back to the original prompt", extra={"note": rewrite.note})
    return rewrite


def _enhanced(rewrite: enhance.Rewrite | None) -> dict:
    """The result's revised_prompt and prompt_enhancement (nothing when the job asked for no rewrite)."""
    if rewrite is None:
        return {}
    spec = get_catalog().prompt_enhancer
    return {"revised_prompt": rewrite.prompt, "prompt_enhancement": rewrite.record(spec.id if spec else "unknown")}


def _enhance_only(request: messages.WorkRequest, params: dict, timings: dict[str, float]) -> messages.ResultMessage:
    """POST /api/prompts/enhance: the rewrite alone, no generation (no outputs; the model named only chose the GPU
    pool it runs on)."""
    rewrite = _enhance(params, timings)
    return messages.ResultMessage(job_id=request.job_id, workspace_id=request.workspace_id, outcome="succeeded",
                                  timings={k: round(v, 4) for k, v in timings.items()}, **_enhanced(rewrite))


def _background_remover(model: ModelSpec, params: dict) -> BackgroundRemoverSpec | None:
    """The catalog's background remover when the job asks for a transparent background (the API has
    checked the format keeps alpha; checked again here for jobs submitted by other means)."""
    if params.get("background") != "transparent":
        return None
    remover = get_catalog().background_remover
    if remover is None:
        raise ValueError("background: transparent needs the catalog's background_remover, and none is configured")
    if model.type != "image" or params.get("output_format", "png") not in ("png", "webp"):
        raise ValueError("background: transparent needs png or webp images")
    return remover


def video_timing(model: ModelSpec, params: dict) -> tuple[int, float]:
    """(frames, fps): `frames` as given, else enough frames for `duration` (or the default duration)."""
    fps = float(params.get("fps") or model.defaults.fps or 0)
    if fps <= 0:
        raise ValueError(f"{model.id}: fps must be positive")
    duration = float(params.get("duration") or model.defaults.duration or 0)
    frames = int(params.get("frames") or model.frames_for(duration, fps))
    if not model.valid_frames(frames):
        raise ValueError(f"{model.id}: {frames} frames is not a valid count (frames = {model.frame_multiple}k+1, "
                         f"at most {model.max_frames})")
    return frames, fps


def _store_images(request: messages.WorkRequest, images: list, fmt: str, quality: int | None,
                  timings: dict[str, float], stamp: provenance.Stamp) -> list[Output]:
    """Encode each image (watermarked and signed: `stamp`) and upload it while the next one encodes (uploads wait
    on the network, not the CPU). The thumbnail, a preview for Darkroom's own pages, is neither.

    timings: "encode" is the encoding time (provenance included), "upload" what is left of the uploads once
    encoding is done."""
    ext = "jpg" if fmt == "jpeg" else fmt
    outputs, uploads = [], []
    encoding = 0.0
    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="gpu-worker-upload") as pool:
        for index, image in enumerate(images):
            t0 = time.perf_counter()
            data = stamp.sign(encode.encode_image(stamp.mark(image), fmt, quality), encode.CONTENT_TYPES[fmt],
                              f"{request.job_id}-{index}.{ext}")
            thumb = encode.make_thumbnail(image)
            encoding += time.perf_counter() - t0
            key = storage.output_key(request.workspace_id, request.job_id, index, ext)
            thumb_key = storage.thumbnail_key(request.workspace_id, request.job_id, index)
            uploads.append(pool.submit(storage.put_bytes, key, data, encode.CONTENT_TYPES[fmt], bucket=request.bucket))
            uploads.append(pool.submit(storage.put_bytes, thumb_key, thumb, "image/jpeg", bucket=request.bucket))
            outputs.append(Output(key=key, thumbnail_key=thumb_key, content_type=encode.CONTENT_TYPES[fmt],
                                  width=image.width, height=image.height, bytes=len(data)))
        t0 = time.perf_counter()
        for upload in uploads:
            upload.result()  # an upload's error fails the job
        timings["upload"] = time.perf_counter() - t0
    timings["encode"] = encoding
    return outputs


def _store_videos(request: messages.WorkRequest, result: GenerationResult, fps: float,
                  timings: dict[str, float], stamp: provenance.Stamp) -> list[Output]:
    """Encode each video (with its soundtrack when the job asked for one), sign it (`stamp`), and upload it with
    its poster (unsigned: a preview)."""
    t0 = time.perf_counter()
    videos = result.videos
    tracks = [t.numpy() for t in result.audio] or [None] * len(videos)
    encoded = [(stamp.sign(encode.encode_video(frames, fps, track, result.audio_rate), encode.CONTENT_TYPES["mp4"],
                           f"{request.job_id}-{index}.mp4"), encode.make_poster(frames[0]))
               for index, (frames, track) in enumerate(zip(videos, tracks))]
    timings["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    outputs = []
    for index, ((data, poster), frames) in enumerate(zip(encoded, videos)):
        key = storage.output_key(request.workspace_id, request.job_id, index, "mp4")
        poster_key = storage.thumbnail_key(request.workspace_id, request.job_id, index)
        storage.put_bytes(key, data, encode.CONTENT_TYPES["mp4"], bucket=request.bucket)
        storage.put_bytes(poster_key, poster, "image/jpeg", bucket=request.bucket)
        # encode_video keeps even sizes whole; generated sizes are multiples of 32.
        width, height = frames[0].width - frames[0].width % 2, frames[0].height - frames[0].height % 2
        outputs.append(Output(key=key, thumbnail_key=poster_key, content_type=encode.CONTENT_TYPES["mp4"],
                              width=width, height=height, frames=len(frames), fps=fps,
                              duration=round(len(frames) / fps, 3), bytes=len(data),
                              audio=True if result.audio else None))
    timings["upload"] = time.perf_counter() - t0
    return outputs


def run(request: messages.WorkRequest) -> messages.ResultMessage | None:
    """Take the job (queued → running), execute it and report. None if the job was not ours to run.

    Raises IdentityTokenRefused when STS refuses the container's identity token: no job can be taken or
    reported with it, so the job is left as it is (queued, for another container) rather than failed."""
    try:
        return _run(request)
    except Exception as exc:
        if not aws.token_refused(exc):
            raise
        expiry = aws.token_expiry()
        logger.error("STS refused this container's identity token; it takes no more jobs",
                     extra={"job_id": request.job_id, "error_code": exc.response["Error"]["Code"],  # type: ignore[attr-defined]
                            "token_exp": expiry, "token_expired": expiry is not None and expiry <= time.time()})
        raise aws.IdentityTokenRefused(f"the identity token was refused ({exc}); token exp {expiry}") from exc


def _run(request: messages.WorkRequest) -> messages.ResultMessage | None:
    if request.aws_role_arn:
        # On Modal: act as the stack's worker role, by the container's OIDC identity token (no AWS keys).
        aws.use_web_identity(request.aws_role_arn, request.aws_region)
    store = JobStore(request.jobs_table)
    # One conditional write takes the job, with no read first: it fails unless the job is still queued.
    try:
        job, applied = store.transition(JobKey(request.job_id, request.workspace_id), JobStatus.RUNNING)
    except (TransitionRejected, NotFound) as exc:
        logger.info("job not runnable", extra={"job_id": request.job_id, "reason": str(exc)})
        return None
    if not applied:
        return None  # another worker took it
    # Reports go out on one thread beside the work, in order: the started report (the complete function
    # turns it into the optional generation.started webhook) and the progress writes.
    started_report = messages.ResultMessage(job_id=job.id, outcome="started")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpu-worker-report") as reports:
        started = reports.submit(messages.send, request.results_queue_url, started_report)
        try:
            result = execute(request, store, reports)
        except JobCanceled as exc:
            # Nothing to report: the job ended when it was canceled (its credits settled then), and nothing
            # was uploaded. The GPU is free for the next job.
            logger.info("generation stopped", extra={"job_id": request.job_id, "reason": str(exc)})
            return None
        except Exception as exc:
            if aws.token_refused(exc):
                raise  # not the job's fault, and nothing could report it: run() hands it to the container
            logger.exception("generation failed", extra={"job_id": request.job_id})
            code = getattr(exc, "code", None)
            # A coded error (a bad reference) is the caller's to fix: its message is written for them.
            message = str(exc) if code else describe(exc)
            result = messages.ResultMessage(job_id=request.job_id, workspace_id=request.workspace_id,
                                            outcome="failed",
                                            error=JobError(code=code or "generation_failed", message=message),
                                            moderation=getattr(exc, "report", None))
        # The result never overtakes the started report; if that one failed, it is sent again first.
        if started.exception() is not None:
            logger.warning("started report failed; sending it again", extra={"job_id": job.id})
            send_report(request.results_queue_url, started_report)
        send_report(request.results_queue_url, result)
    return result


# The result is the only record of the work (its outputs are uploaded, the GPU time spent): a send that fails past
# botocore's own retries (a throttled or unreachable SQS) is tried again for about two minutes before the call
# fails. A failed call is no help: Modal's retry finds the job running and does nothing, and the sweeper fails it.
REPORT_RETRY_DELAYS = (1, 2, 4, 8, 15, 30, 60)
_wait = time.sleep  # the waits between tries (a test's to replace)


def send_report(queue_url: str, report: messages.ResultMessage) -> None:
    for delay in (*REPORT_RETRY_DELAYS, None):
        try:
            messages.send(queue_url, report)
            return
        except Exception as exc:
            if delay is None or aws.token_refused(exc):
                raise
            logger.warning("report not sent; trying again", extra={"job_id": report.job_id, "outcome": report.outcome,
                                                                   "in_seconds": delay, "error": describe(exc)})
            _wait(delay)


def run_safely(request: messages.WorkRequest) -> None:
    """For thread pools: log instead of losing an exception in a Future nobody reads."""
    try:
        run(request)
    except Exception:  # noqa: BLE001
        logger.exception("worker crashed", extra={"job_id": request.job_id})
