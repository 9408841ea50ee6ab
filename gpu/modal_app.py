"""The GPU side on Modal: `modal deploy gpu/modal_app.py`.

(No `from __future__ import annotations` here: Modal reads the parameter types at class creation.)

Read top to bottom: the images, the weights Volume and secrets, one class per pipeline family, and the
`download` entry point that fills the Volume. Each class runs the same runtime-agnostic worker as the
local stack (gpu/worker.py). A class is parameterized by the weights it serves (ModelSpec.weights): one
instance, so one pool of containers, serves every model on those weights (a text model, its edit, inpainting
and variations), and the dispatch function spawns `generate` on the instance of the job's model's weights.
"""

import logging
import os
import threading
from pathlib import Path

import modal
import modal.experimental

from functions.core.catalog import get_catalog
from gpu import pools
from gpu.weights import WEIGHTS_VOLUME

APP_NAME = "darkroom"
WEIGHTS_DIR = "/weights"
# LoRA adapters the jobs brought, by content hash (gpu/adapters.py): a Volume of their own, so that committing a new
# one never touches the weights' Volume, and containers started later find what earlier ones fetched.
LORAS_DIR = "/loras"
LORAS_VOLUME = "darkroom-loras"
# torch.compile's artifacts per pool, GPU type, torch version and settings (gpu/compile_cache.py), on the weights Volume.
COMPILE_CACHE = ".compile-cache"
# Weights load on the CPU in the GPU's dtype (before a snapshot, the GPU may not be attached yet).
LOAD_DTYPE = "bfloat16"

app = modal.App(APP_NAME)

# The image's Python, and the worker's packages pinned in one list: the test venv installs the same pins
# (Makefile), and tests/gpu/test_image_requirements.py resolves this list for this Python on Linux x86_64.
PYTHON_VERSION = "3.12"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
# What the image adds that the CPU test venv cannot install (torchvision's CUDA build): the file says why.
IMAGE_REQUIREMENTS = Path(__file__).with_name("requirements-image.txt")
# Installed last with --no-deps (invisible-watermark without the GUI OpenCV it declares): the file says why.
NO_DEPS_REQUIREMENTS = Path(__file__).with_name("requirements-nodeps.txt")
# add_local_python_source ships only .py files by default; the core package reads its catalog.yaml and
# styles.yaml at run time.
SOURCE_FILES_IGNORED = ~modal.FilePatternMatcher("**/*.py", "**/*.yaml", "**/*.json", "**/*.html")

# The attention kernels a model's `attention` setting may load from the Hub (FlashAttention 3 and 2, SageAttention 2),
# built for the image's torch: fetched while the image builds, into the image, because the serving containers are
# offline. The script runs alone (it imports nothing of ours), so only its own changes rebuild this layer.
ATTENTION_KERNELS_SCRIPT = Path(__file__).with_name("attention_kernels.py")
ATTENTION_KERNELS_IN_IMAGE = "/opt/darkroom/attention_kernels.py"
KERNELS_CACHE = "/opt/darkroom/kernels"

packages = (
    modal.Image.debian_slim(python_version=PYTHON_VERSION)
    .pip_install_from_requirements(str(REQUIREMENTS))
    .pip_install_from_requirements(str(IMAGE_REQUIREMENTS))
    .pip_install_from_requirements(str(NO_DEPS_REQUIREMENTS), extra_options="--no-deps")
    .env({"DARKROOM_WEIGHTS": WEIGHTS_DIR, "DARKROOM_LORA_CACHE": LORAS_DIR, "POWERTOOLS_SERVICE_NAME": "darkroom-gpu",
          "HF_HUB_DISABLE_TELEMETRY": "1", "KERNELS_CACHE": KERNELS_CACHE})
    .add_local_file(ATTENTION_KERNELS_SCRIPT, ATTENTION_KERNELS_IN_IMAGE, copy=True)
    .run_commands(f"python {ATTENTION_KERNELS_IN_IMAGE}")
)
# The operator's catalog additions (functions/core/catalog.py: DARKROOM_CATALOG_EXTRA, a revision pin, a model, its
# speed settings), read where `modal deploy` runs: the classes below are defined from them, so the containers must
# read the same file, or a class would serve (and snapshot) another catalog than the one it was defined from.
CATALOG_EXTRA_IN_IMAGE = "/opt/darkroom/catalog-extra.yaml"


def with_catalog_extra(base: modal.Image) -> modal.Image:
    extra = os.environ.get("DARKROOM_CATALOG_EXTRA")
    if not extra:
        return base
    return base.env({"DARKROOM_CATALOG_EXTRA": CATALOG_EXTRA_IN_IMAGE}).add_local_file(extra, CATALOG_EXTRA_IN_IMAGE)


# The GPU classes load only from the Volume: offline, so no library reaches for the Hub in a job.
image = with_catalog_extra(packages.env({"HF_HUB_OFFLINE": "1"})).add_local_python_source(
    "functions", "gpu", ignore=SOURCE_FILES_IGNORED)
# The download is the one function that must reach the Hub: the same packages, online.
download_image = with_catalog_extra(packages).add_local_python_source("functions", "gpu", ignore=SOURCE_FILES_IGNORED)

weights = modal.Volume.from_name(WEIGHTS_VOLUME, create_if_missing=True)
loras = modal.Volume.from_name(LORAS_VOLUME, create_if_missing=True)
# No AWS secret: each work request names the stack's worker role, which the worker assumes with the
# container's Modal OIDC identity token (template.yaml: ModalWorkerRole; functions/core/aws.py).
# HF_TOKEN, for gated weights such as FLUX.1-dev (used by `download` only).
hf_secret = modal.Secret.from_name("darkroom-hf", required_keys=["HF_TOKEN"])


def class_options(modal_class: str) -> dict:
    """What a class reserves, from the catalog's models it serves: one GPU type (they must agree), the largest
    memory request, startup timeout, run timeout and scale-down window, and the per-pool container cap."""
    gpus = {p.gpu for p in get_catalog().class_pools(modal_class)}
    if len(gpus) != 1:
        raise ValueError(f"models served by {modal_class} must name exactly one GPU type, got {sorted(gpus)}")
    return {
        "gpu": gpus.pop(),
        "memory": get_catalog().class_memory_gib(modal_class) * 1024,  # MiB
        "startup_timeout": get_catalog().class_startup_timeout(modal_class),
        "timeout": get_catalog().class_run_timeout(modal_class),
        "scaledown_window": get_catalog().class_scaledown_window(modal_class),
        # GPU memory snapshots (alpha): single-GPU CUDA classes, as Modal documents them. A restore that fails
        # boots the container without the snapshot (modal 1.5.1+), which then loads as a CPU snapshot would.
        # Off is the option left out: modal sends each value as a string (str(False) is "False"), which a server
        # reading the option's presence or non-emptiness would take for on.
        "experimental_options": {"enable_gpu_snapshot": True} if get_catalog().class_gpu_snapshot(modal_class) else {},
        # Per instance, so per set of weights: "each unique combination of parameters behaves like an
        # individual Modal Function with its own auto-scaling" (Modal, parametrized functions).
        "max_containers": pools.max_containers(),
    }


def concurrency(modal_class: str):
    """`@modal.concurrent` for a class whose pools take several jobs at once (catalog Serving.concurrent_inputs):
    their pipeline calls take turns (or share a batch: gpu/batching.py) while the rest of each job overlaps.
    Nothing for a class that takes one at a time."""
    inputs = get_catalog().class_concurrent_inputs(modal_class)
    return modal.concurrent(max_inputs=inputs) if inputs > 1 else (lambda cls: cls)


class _Generator:
    """Loads one set of weights per container (from the Volume, once, snapshotted) and runs jobs for every
    model on them: the container loads the weights' text pipeline, and the worker derives the edit, inpaint
    and image-to-video pipelines from it with `from_pipe` (gpu/pipelines.py), sharing every module.

    Subclasses declare `weights: str = modal.parameter()`: Modal reads parameters from the class itself.
    """

    weights: str

    def _pool(self):
        pool = get_catalog().weights_pool(self.weights)
        if pool is None:
            raise ValueError(f"{self.weights!r} are not weights of any catalog model (ModelSpec.weights)")
        return pool

    def _gpu_snapshot(self) -> bool:
        return get_catalog().class_gpu_snapshot(type(self).__name__)

    @modal.enter(snap=True)
    def load(self) -> None:
        # Runs before the memory snapshot: imports and weights on CPU are restored, not repeated. With the class's
        # GPU snapshot on, the GPU is attached here too, and the whole start (the move, the speed settings, the
        # compile and a warm-up generation) is captured: a restored container takes its first job at once.
        import time

        from gpu import pipelines, worker

        started = time.perf_counter()
        pool = self._pool()
        self.family = pipelines.family_spec(pool.family).base
        self.source = worker.weights_source(pool)
        # A built-in adapter (a distillation LoRA) is fused here, on CPU, so the snapshot holds the fused weights.
        self.builtin = worker.builtin_adapter(pool)
        self.pipe = pipelines.load_pipeline(self.family, self.source, device="cpu", dtype=LOAD_DTYPE,
                                            builtin=self.builtin)
        self.load_seconds = time.perf_counter() - started
        self.started = False
        self.device_seconds = 0.0
        if self._gpu_snapshot():
            self._start_on_device(before_snapshot=True)
        self.snapshot_at = time.time()  # wall clock: a restore reads it back in another container, later

    @modal.enter(snap=False)
    def start(self) -> None:
        import secrets
        import time

        import torch

        from gpu import pipelines

        if self.started:
            # Restored from a GPU snapshot: every container restores the same RNG state, so draw a fresh one for
            # anything that samples from torch's global generator (job seeds come from the OS: pipelines.py).
            torch.manual_seed(secrets.randbits(63))
        else:
            self._start_on_device(before_snapshot=False)
        # What the snapshot spared this container, with each job's speed report: the work done before it, and how
        # long after it this container began (seconds: the container that took it; more: a restore).
        kind, where = ("GPU", "before") if self._gpu_snapshot() else ("CPU", "after")
        pipelines.note_speed(self.pipe, "snapshot", (
            f"{kind} memory snapshot: weights loaded in {self.load_seconds:.1f} s before it, device start "
            f"{self.device_seconds:.1f} s {where} it; this container began {time.time() - self.snapshot_at:.0f} s "
            "after it was taken"))

    def _start_on_device(self, *, before_snapshot: bool) -> None:
        import time

        import torch

        from gpu import pipelines, worker

        started = time.perf_counter()
        device, dtype = worker.device_and_dtype()  # cuda/bfloat16 on Modal; cpu/float32 under .local()
        if device != "cuda" and not modal.is_local():
            # A GPU container without CUDA would run every job on its CPU, minutes each, billed as GPU time.
            raise RuntimeError(f"no CUDA device in a {self._pool().gpu} container (torch {torch.__version__})")
        if before_snapshot and device == "cuda":
            # Modal: compiling with inductor's worker pool can make the snapshot fail; one thread avoids it (the
            # compile runs once per deploy and GPU type, when the snapshot is made, or loads from the cache).
            import torch._inductor.config

            torch._inductor.config.compile_threads = 1
        if dtype == LOAD_DTYPE:
            # The device only: a dtype cast would take the modules from_pretrained keeps in float32
            # (_keep_in_fp32_modules: Wan's norms, time embedder and scale-shift table) down to bfloat16.
            self.pipe.to(device)
        else:  # .local() on a CPU: float32 throughout
            self.pipe.to(device=device, dtype=getattr(torch, dtype))
        # The pool's speed settings (compile, cache hooks, fp8, ...) on the GPU: what they make is device-specific.
        # The worker logs what they did with each job (pipelines.speed_report).
        speed = self._pool().speed
        pipelines.apply_speed(self.pipe, self.family, speed, device)
        # The worker asks the pipeline cache for (family, source, device, dtype, speed): hand it this pipeline (the
        # base of every derived family), and forget the CPU entries, whose modules have just moved.
        pipelines.clear_cache()
        pipelines.remember(self.family, self.source, device, dtype, self.pipe, builtin=self.builtin, speed=speed)
        # A compiled model compiles now, before it takes inputs, from the artifacts an earlier container of the
        # pool saved on the Volume for this GPU, torch and settings; the first container saves them. Before a GPU
        # snapshot every model warms up, compiled or not: the CUDA kernels it loads and the cuBLAS/cuDNN state are
        # then in the snapshot too.
        snapshotting = before_snapshot and not modal.is_local()  # .local() runs the snap=True hook, but takes none
        if worker.warm_up(self._pool(), self.pipe, self.family, device, Path(WEIGHTS_DIR) / COMPILE_CACHE,
                          always=snapshotting) and not modal.is_local():
            commit_cache(weights, "compiled artifacts")
        if snapshotting and device == "cuda":
            # The warm-up's freed activations stay reserved in torch's caching allocator, and a GPU snapshot copies
            # every device allocation: given back, the snapshot holds the weights and kernels, not a video decode's
            # workspace (smaller, and faster to restore). The first job reserves what it needs again.
            import gc

            gc.collect()
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        self.device_seconds = time.perf_counter() - started
        self.started = True

    @modal.method()
    def generate(self, request: dict) -> dict | None:
        from functions.core import aws
        from functions.core.messages import WorkRequest
        from gpu import adapters, worker

        work = WorkRequest.model_validate(request)
        model = get_catalog().model(work.model)
        if model is None or model.weights != self.weights:
            raise ValueError(f"{work.model!r} does not run on {self.weights} (sent to the wrong pool)")
        try:
            result = worker.run(work)
            if adapters.take_added() and not modal.is_local():
                commit_cache(loras, "LoRA files")  # the adapter files this job fetched, for containers started later
        except aws.IdentityTokenRefused:
            # This container's token is read once and now refused: stop taking inputs, so the next job (and
            # this one, retried by Modal) runs on a fresh container with a fresh token instead of failing here.
            if not modal.is_local():
                modal.experimental.stop_fetching_inputs()
            raise
        return result.model_dump() if result else None


_commits = threading.Lock()


def commit_cache(volume, what: str) -> bool:
    """Commit a Volume that holds a cache (fetched LoRA files, compiled artifacts): one commit at a time in the
    container, whose inputs run side by side (@modal.concurrent). A commit that fails costs a later container a
    fetch or a compile, never this job, whose result is already sent: logged, not raised."""
    try:
        with _commits:
            volume.commit()
        return True
    except Exception:
        logging.getLogger("darkroom.gpu").warning("Volume commit failed (%s kept in this container only)", what,
                                                  exc_info=True)
        return False


_class_options = {
    "image": image,
    "volumes": {WEIGHTS_DIR: weights, LORAS_DIR: loras},
    "enable_memory_snapshot": True,
    # An input whose container stopped taking inputs (a refused identity token), or died, runs again on
    # another container; a job already taken is not run twice (the worker's conditional take).
    "retries": modal.Retries(max_retries=2, initial_delay=1.0, backoff_coefficient=1.0),
}


@app.cls(**class_options("FluxGenerator"), **_class_options)
@concurrency("FluxGenerator")
class FluxGenerator(_Generator):
    """flux-schnell, flux-dev and their edit and inpaint models."""

    weights: str = modal.parameter()


@app.cls(**class_options("SDXLGenerator"), **_class_options)
@concurrency("SDXLGenerator")
class SDXLGenerator(_Generator):
    """sdxl-turbo, playground-v2 and their edit and inpaint models."""

    weights: str = modal.parameter()


@app.cls(**class_options("LTXVideoGenerator"), **_class_options)
@concurrency("LTXVideoGenerator")
class LTXVideoGenerator(_Generator):
    """ltx-video (text-to-video) and ltx-video-i2v (image-to-video)."""

    weights: str = modal.parameter()


@app.cls(**class_options("Flux2KleinGenerator"), **_class_options)
@concurrency("Flux2KleinGenerator")
class Flux2KleinGenerator(_Generator):
    """flux2-klein: text-to-image, multi-reference edits and inpainting."""

    weights: str = modal.parameter()


@app.cls(**class_options("Flux2DevGenerator"), **_class_options)
@concurrency("Flux2DevGenerator")
class Flux2DevGenerator(_Generator):
    """flux2-dev: text-to-image and multi-reference edits."""

    weights: str = modal.parameter()


@app.cls(**class_options("ZImageGenerator"), **_class_options)
@concurrency("ZImageGenerator")
class ZImageGenerator(_Generator):
    """z-image-turbo and its edit and inpaint models."""

    weights: str = modal.parameter()


@app.cls(**class_options("QwenImageGenerator"), **_class_options)
@concurrency("QwenImageGenerator")
class QwenImageGenerator(_Generator):
    """qwen-image (text-to-image, edits and inpainting), qwen-image-lightning (Qwen-Image's weights with its
    Lightning LoRA fused: a pool of its own) and qwen-image-edit-plus (one pool each: separate weights)."""

    weights: str = modal.parameter()


@app.cls(**class_options("LTX2Generator"), **_class_options)
@concurrency("LTX2Generator")
class LTX2Generator(_Generator):
    """ltx-2: text-to-video and image-to-video, with a soundtrack."""

    weights: str = modal.parameter()


@app.cls(**class_options("WanGenerator"), **_class_options)
@concurrency("WanGenerator")
class WanGenerator(_Generator):
    """wan2.2-ti2v-5b: text-to-video and image-to-video."""

    weights: str = modal.parameter()


@app.cls(**class_options("WanA14BGenerator"), **_class_options)
@concurrency("WanA14BGenerator")
class WanA14BGenerator(_Generator):
    """wan2.2-t2v-a14b and wan2.2-i2v-a14b (one pool each: separate weights)."""

    weights: str = modal.parameter()


@app.cls(**class_options("WanFirstLastFrameGenerator"), **_class_options)
@concurrency("WanFirstLastFrameGenerator")
class WanFirstLastFrameGenerator(_Generator):
    """wan2.1-flf2v-14b: a video from a first and a last frame."""

    weights: str = modal.parameter()


# One repo's download in one container, all of them at once: in a row, every model's weights (some 400 GB) do not
# fit one function's time. A repo of over 100 GB at a slow 50 MB/s takes about 40 minutes.
FETCH_TIMEOUT_SECONDS = 3 * 3600


@app.function(image=download_image, volumes={WEIGHTS_DIR: weights}, secrets=[hf_secret], timeout=6 * 3600)
def download(models: str = "") -> list[str]:
    """Fill the Volume with each catalog model's weights at its revision (gpu/weights.py's layout), once per
    set of weights; already complete commits are skipped.

    `models` is comma-separated catalog ids (all models when empty): `modal run` can only pass plain types.
    With any image model comes the catalog's background remover (for `background: transparent`); with any model, the
    output safety checker (catalog `moderation.checker`), which every job runs before it stores its outputs, and the
    prompt enhancer (catalog `prompt_enhancer`), which any job may ask for (`enhance_prompt`, gpu/enhance.py).
    Each repo is fetched by its own call of `fetch_weights`, in parallel on Modal (in a row when run locally); one
    that fails does not stop the others, and the download fails after them, naming it.
    Prints one line per set of weights: the commit, and whether a branch moved (a redeploy picks that up).
    """
    targets = download_targets(models)
    runs = [(repo, revision, sorted(patterns) if patterns is not None else None, ignore_others)
            for (repo, revision), (patterns, ignore_others, _) in targets.items()]
    if modal.is_local():
        results: list = []
        for run in runs:
            try:
                results.append(fetch_weights.local(*run))
            except Exception as exc:  # noqa: BLE001 - reported with the others, below
                results.append(exc)
    else:
        results = list(fetch_weights.starmap(runs, return_exceptions=True))
    done: list[str] = []
    failed: list[str] = []
    for ((repo, revision), (_, _, ids)), result in zip(targets.items(), results, strict=True):
        if isinstance(result, BaseException):
            print(f"{', '.join(ids)}: {repo}@{revision} FAILED: {result!r}")
            failed.append(repo)
            continue
        commit, moved = result
        note = f" (was {moved}: redeploy so warm snapshots load it)" if moved else ""
        print(f"{', '.join(ids)}: {repo}@{revision} -> {commit}{note}")
        done.extend(i for i in ids if i not in done)
    if failed:
        raise RuntimeError(f"weights not downloaded: {', '.join(failed)} (the others are; run it again to retry)")
    return done


def download_targets(models: str) -> dict[tuple[str, str], tuple[set[str] | None, bool, list[str]]]:
    """(repo, revision) -> (allow patterns, None for the whole repo; whether other checkpoint formats are left out;
    the catalog ids it serves). Everything asked of one repo is one download, so no two containers write one
    commit directory: pools on one repo (a model and its variant with a built-in adapter) share it."""
    catalog = get_catalog()
    wanted = {m.strip() for m in models.split(",") if m.strip()}
    pools = [p for p in catalog.weights_pools().values() if not wanted or wanted & set(p.models)]
    targets: dict[tuple[str, str], tuple[set[str] | None, bool, list[str]]] = {}

    def add(repo: str, revision: str, patterns, ignore_others: bool, ids: list[str]) -> None:
        known, ignoring, serving = targets.get((repo, revision), (set(), True, []))
        merged = None if patterns is None or (known is None) else known | set(patterns)
        targets[(repo, revision)] = merged, ignoring and ignore_others, serving + [i for i in ids if i not in serving]

    for p in pools:
        add(p.repo, p.revision, p.allow_patterns, True, p.models)
        if p.adapter is not None:  # the built-in adapter: its one file, in its repo's own commit directory
            add(p.adapter.repo, p.adapter.revision, (p.adapter.weight_name,), True, p.models)
    remover = catalog.background_remover
    image_models = {m.id for m in catalog.models if m.type == "image"}
    if remover is not None and (not wanted or image_models & wanted):
        # Its checkpoint may be a pytorch_model.bin only: nothing is ignored for it.
        add(remover.repo, remover.revision, remover.allow_patterns or None, False, [remover.id])
    enhancer = catalog.prompt_enhancer
    if enhancer is not None and pools:
        # Any model's job may ask for enhance_prompt (and POST /api/prompts/enhance runs on any model's pool).
        add(enhancer.repo, enhancer.revision, enhancer.allow_patterns or None, True, [enhancer.id])
    checker = catalog.moderation.checker
    if pools or checker.id in wanted:  # the output safety checker runs on every job of every model
        add(checker.repo, checker.revision, checker.allow_patterns or None, False, [checker.id])
    return targets


@app.function(image=download_image, volumes={WEIGHTS_DIR: weights}, secrets=[hf_secret],
              timeout=FETCH_TIMEOUT_SECONDS)
def fetch_weights(repo: str, revision: str, patterns: list[str] | None, ignore_others: bool) -> tuple[str, str | None]:
    """One repo's download (`download` calls it): its commit, and the one its branch named before if that moved."""
    from gpu import weights as layout

    fetched = _fetch(layout, repo, revision, tuple(patterns) if patterns else None, ignore_others)
    weights.commit()
    return fetched


# Formats and variants no pipeline here loads: other frameworks' checkpoints, and the fp16 copies beside full-precision
# files (SDXL's `*.fp16.safetensors`; the pipelines load without `variant=`, so the fp16 files were never read).
OTHER_CHECKPOINT_FORMATS = ["*.ckpt", "*.bin", "*.pth", "*.onnx*", "*.msgpack", "*.fp16.safetensors"]


def _fetch(layout, repo: str, revision: str, patterns, ignore_others: bool) -> tuple[str, str | None]:
    """Download one repo's commit into its own directory, unless it is complete already. Returns the commit,
    and the one the branch named before when it moved."""
    from huggingface_hub import HfApi, snapshot_download

    root = Path(WEIGHTS_DIR)
    token = os.environ.get("HF_TOKEN") or None
    commit = revision if layout.is_commit(revision) else HfApi().repo_info(repo, revision=revision, token=token).sha
    target = root / layout.commit_path(repo, commit)
    # A download of named files only (a built-in adapter's) needs them there too: another adapter file of the same
    # commit may have completed the directory first. A file added beside the others changes none a snapshot was
    # taken with.
    named = list(patterns or ()) if not any(c in p for p in patterns or () for c in "*?[") else []
    if not (root / layout.marker_path(repo, commit)).is_file() or not all((target / p).is_file() for p in named):
        snapshot_download(repo, revision=commit, local_dir=target, token=token,
                          allow_patterns=list(patterns) if patterns else None,
                          ignore_patterns=OTHER_CHECKPOINT_FORMATS if ignore_others else None)
        files = [str(p.relative_to(target)) for p in target.rglob("*") if p.is_file() and ".cache" not in p.parts]
        layout.mark_complete(root, repo, revision, commit, files)
    return commit, layout.point(root, repo, revision, commit)
