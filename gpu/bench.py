"""Benchmark the worker's stages per model and size: `python -m gpu.bench` (or `make bench`).

For each catalog model and a couple of sizes it measures, the way the worker runs a job:
load (weights from disk to the device, once per container), inference (the whole pipeline call) and, inside
it, VAE decode (timed with hooks on the decoder), encode (png + thumbnail, or mp4 + poster), and upload (to
S3 on a moto server this script starts). It reports images, or seconds of video, per second of job time
(inference + encode + upload) and the worker's overhead: (encode + upload) / inference.

Here it runs the tiny random-weight pipelines on CPU; on a CUDA machine it uses bfloat16, and with
--compile it compiles the denoiser. --weights points it at real weights (as DARKROOM_WEIGHTS does).
Results print as a table and go to docs/benchmarks.md with a description of the machine.

--full-size times the catalog's models at their real size with random weights instead (gpu/full_size.py builds
them; outputs are noise, only the times count): build, compile-cache load, warm-up, text encode, denoise, VAE decode
and encode, per speed --variant and batch size (1, 2, 4), into docs/benchmarks.md's own section. It needs CUDA:
without it the same harness runs the tiny pipelines at a tiny size, says so, and writes nothing there.
infra/bench/cuda_full_size.sh is the prepared run for a lent CUDA machine (gpu/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from functions.core.catalog import ModelSpec, SpeedSettings, get_catalog

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "docs" / "benchmarks.md"
# The rows of the last CUDA run of --full-size, kept in the repo: --report-only renders them by default, and
# infra/bench_calls.py prices GPU time per image from them (docs/cost.md). Absent until a CUDA run is copied here.
FULL_SIZE_ROWS = REPO_ROOT / "docs" / "full-size-rows.jsonl"
BUCKET = "darkroom-bench"


@dataclass
class Row:
    model: str
    task: str
    width: int
    height: int
    n: int
    steps: int
    frames: int | None
    fps: float | None
    load: float
    warmup: float
    inference: float
    vae_decode: float
    encode: float
    upload: float
    output_bytes: int
    # Loading one LoRA adapter into the pipeline and removing it after (a job's lora_load), when one was given.
    lora_load: float | None = None
    # What the speed settings (the model's, or --speed's) applied or fell back to (gpu/speed.py); "-": none on.
    speed: str = "-"

    @property
    def job_time(self) -> float:
        return self.inference + self.encode + self.upload

    @property
    def throughput(self) -> float:
        """Images, or seconds of video, per second of job time."""
        amount = self.n * (self.frames / self.fps if self.frames and self.fps else 1)
        return amount / self.job_time

    @property
    def unit(self) -> str:
        return "video s/s" if self.frames else "img/s"

    @property
    def overhead(self) -> float:
        return (self.encode + self.upload) / self.inference


def _parse_size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def _sizes_for(model: ModelSpec, args: argparse.Namespace, on_gpu: bool) -> list[tuple[int, int]]:
    if args.sizes:
        sizes = [_parse_size(s) for s in args.sizes.split(",")]
    elif on_gpu:  # real work: the model's default size, and half of it
        d = model.defaults
        sizes = [(d.width, d.height), (d.width // 2, d.height // 2)]
    else:  # tiny pipelines on a CPU
        sizes = [(256, 256), (512, 320) if model.type == "video" else (512, 512)]
    snap = model.multiple_of
    return [(max(model.min_side, w // snap * snap), max(model.min_side, h // snap * snap)) for w, h in sizes]


def parse_speed(text: str, base: SpeedSettings | None = None) -> SpeedSettings:
    """`--speed KEY=VALUE,...` over `base` (the model's settings): compile, attention, quantize, vae_tiling,
    channels_last, cache (a kind, or none) and cache.KNOB (threshold, cache_interval, ...: CacheSettings' fields),
    lora_hotswap.rank and lora_hotswap.slots (or lora_hotswap=none). ValueError for an unknown key or value."""
    import yaml

    settings = (base or SpeedSettings()).model_dump(exclude_none=True)
    knobs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--speed: {item!r} is not KEY=VALUE")
        value = yaml.safe_load(raw)  # true/false, numbers, strings
        if key == "cache":
            settings["cache"] = None if value in (None, "none") else {"kind": value}
        elif key.startswith("cache."):
            knobs[key.removeprefix("cache.")] = value
        elif key == "lora_hotswap" and value in (None, "none"):
            settings["lora_hotswap"] = None
        elif key.startswith("lora_hotswap."):  # rank, slots (LoraHotswap's fields)
            settings["lora_hotswap"] = {**(settings.get("lora_hotswap") or {}), key.removeprefix("lora_hotswap."): value}
        elif key in SpeedSettings.model_fields:
            settings[key] = value
        else:
            raise ValueError(f"--speed: unknown setting {key!r}; known: {', '.join(SpeedSettings.model_fields)}, "
                             "cache.KNOB, lora_hotswap.KNOB")
    if knobs:
        if not settings.get("cache"):
            raise ValueError("--speed: cache.KNOB needs a cache (cache=first_block, taylorseer or magcache)")
        settings["cache"] = {**settings["cache"], **knobs}
    return SpeedSettings.model_validate(settings)


def speed_cell(report: dict[str, str]) -> str:
    return "; ".join(f"{key}: {value}" for key, value in report.items()) or "-"


def bench_model(model: ModelSpec, size: tuple[int, int], args: argparse.Namespace, *,
                device: str, dtype: str, upload: Callable[[str, bytes, str], None]) -> Row:
    import torch

    from gpu import encode, pipelines, worker

    width, height = size
    steps = args.steps or model.defaults.steps
    steps = max(steps, model.min_steps)
    frames = None
    if model.type == "video":
        frames = args.frames or model.frames_for(args.duration or model.defaults.duration or 2,
                                                 float(model.defaults.fps or 24))
    req = _full_request(model, size, args.n, steps, frames)

    # Load: as a fresh container does (weights on disk, nothing cached in this process).
    pipelines.clear_cache()
    source = worker.weights_source(model)  # tiny ones are built here, before the clock starts
    builtin = worker.builtin_adapter(model)  # a built-in adapter's file too; its fusing is part of the load
    if device == "cuda":
        torch.cuda.empty_cache()
    speed = parse_speed(args.speed, model.speed) if args.speed else model.speed
    t0 = time.perf_counter()
    pipe = pipelines.load_pipeline(model.family, source, device=device, dtype=dtype, builtin=builtin, speed=speed)
    _sync(device)
    load = time.perf_counter() - t0
    if args.compile:
        denoiser = getattr(pipe, "transformer", None) or pipe.unet
        denoiser.compile(mode=args.compile_mode)

    # Warm-up (kernel selection, torch.compile): reported, not counted.
    t0 = time.perf_counter()
    pipelines.generate(pipe, model.family, req)
    _sync(device)
    warmup = time.perf_counter() - t0

    inference, decode, encoding, uploading = [], [], [], []
    size_bytes = 0
    for run in range(args.repeat):
        t0 = time.perf_counter()
        result = pipelines.generate(pipe, model.family, req)
        _sync(device)
        inference.append(time.perf_counter() - t0)
        decode.append(result.vae_decode)

        t0 = time.perf_counter()
        if model.type == "video":
            files = [(encode.encode_video(frames, req.fps or 24), "video/mp4") for frames in result.videos]
            files += [(encode.make_poster(frames[0]), "image/jpeg") for frames in result.videos]
        else:
            files = [(encode.encode_image(im, "png"), "image/png") for im in result.images]
            files += [(encode.make_thumbnail(im), "image/jpeg") for im in result.images]
        encoding.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        for index, (data, content_type) in enumerate(files):
            upload(f"bench/{model.id}/{width}x{height}/{run}/{index}", data, content_type)
        uploading.append(time.perf_counter() - t0)
        size_bytes = sum(len(data) for data, _ in files)

    # Best of the runs, as timeit reports: on a shared machine noise only ever adds time.
    return Row(model=model.id, task=model.task, width=width, height=height, n=req.n, steps=steps,
               frames=req.frames, fps=req.fps, load=load, warmup=warmup, inference=min(inference),
               vae_decode=min(decode), encode=min(encoding), upload=min(uploading), output_bytes=size_bytes,
               lora_load=_lora_load(model, pipe, req, args), speed=speed_cell(pipelines.speed_report(pipe)))


def _lora_load(model: ModelSpec, pipe: Any, req: Any, args: argparse.Namespace) -> float | None:
    """The best of a few loads and removals of one LoRA adapter around a call (GenerationResult.lora_load): --lora's
    file, or on tiny weights a tiny LoRA of the family (gpu/tiny.py); None without either."""
    from gpu import pipelines
    from gpu.loras import Adapter

    if args.lora:
        path = Path(args.lora)
    elif _weights() == "tiny":
        from gpu.tiny import ensure_tiny_lora

        path = ensure_tiny_lora(model.family, Path(os.environ.get("DARKROOM_DATA_DIR", ".darkroom")) / "models", "bench")
    else:
        return None
    with_lora = dataclasses.replace(req, loras=[Adapter(path=path, sha256="bench", scale=1.0)])
    return min(pipelines.generate(pipe, model.family, with_lora).lora_load for _ in range(max(1, args.repeat)))


def _reference(width: int, height: int) -> Any:
    import numpy as np
    from PIL import Image

    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1))


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


# --- the machine, the S3 stand-in, the report ------------------------------------------------------


def describe_machine(device: str, dtype: str, args: argparse.Namespace) -> dict[str, str]:
    import diffusers
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
        memory = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "unknown"
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} logical cores, torch using {torch.get_num_threads()} threads",
        "memory": memory,
        "accelerator": torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU)",
        "device / dtype": f"{device} / {dtype}" + (f", torch.compile ({args.compile_mode})" if args.compile else ""),
        "weights": "tiny random-weight pipelines (gpu/tiny.py)" if _weights() == "tiny" else
        f"real weights ({_weights()})",
        "software": f"Python {platform.python_version()}, torch {torch.__version__}, diffusers {diffusers.__version__}",
        "S3": "moto server on loopback (started by the benchmark)",
    }
    if hasattr(os, "getloadavg"):
        info["load average at start"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return info


def _weights() -> str:
    return os.environ.get("DARKROOM_WEIGHTS", "tiny")


class _S3:
    """A moto server with one bucket; uploads go through the worker's own storage module."""

    def __enter__(self) -> Callable[[str, bytes, str], None]:
        from infra.local.moto_server import MotoServer

        self.server = MotoServer()
        endpoint = self.server.start()
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
        os.environ.pop("AWS_PROFILE", None)
        from functions.core import aws, storage

        aws.reset_clients()
        aws.client("s3").create_bucket(Bucket=BUCKET)
        return lambda key, data, content_type: storage.put_bytes(key, data, content_type, bucket=BUCKET)

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


HEADERS = ["model", "task", "size", "frames", "n", "steps", "load s", "warm-up s", "inference s",
           "VAE decode s", "encode s", "upload s", "LoRA load s", "throughput", "overhead", "speed settings"]


def row_cells(row: Row) -> list[str]:
    return [
        row.model, row.task, f"{row.width}x{row.height}",
        f"{row.frames} @ {row.fps:g} fps" if row.frames and row.fps else "-", str(row.n), str(row.steps),
        f"{row.load:.2f}", f"{row.warmup:.2f}", f"{row.inference:.3f}", f"{row.vae_decode:.3f}",
        f"{row.encode:.3f}", f"{row.upload:.3f}", f"{row.lora_load:.3f}" if row.lora_load is not None else "-",
        f"{row.throughput:.2f} {row.unit}", f"{row.overhead:.2f}", row.speed,
    ]


def markdown(rows: list[Row], machine: dict[str, str], command: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `gpu/bench.py` (`make bench` or `python -m gpu.bench`); rerun it to refresh this page.",
        "",
        "Each row is one catalog model at one size, run the way the worker runs a job. Stages:",
        "",
        ("- **load**: weights from disk to the device, as a fresh container does (once per container; edit "
         "models load their text model's weights, then share them);"),
        "- **warm-up**: the first call (kernel selection, torch.compile), not counted below;",
        "- **inference**: the whole pipeline call (text encoders, denoising, VAE decode);",
        "- **VAE decode**: the part of inference spent in the VAE decoder (timed with hooks on it);",
        "- **encode**: PNG + JPEG thumbnail per image, or H.264 mp4 + JPEG poster per video;",
        "- **upload**: S3 PutObject of every file (a moto server on loopback here: no network latency);",
        ("- **LoRA load**: loading one LoRA adapter into the pipeline and removing it after, as a job that brings "
         "one does (`--lora FILE`; on tiny weights a tiny LoRA of the family), part of that job's inference;"),
        "- **throughput**: images, or seconds of video, per second of job time (inference + encode + upload);",
        "- **overhead**: the worker's own cost relative to the model's, (encode + upload) / inference;",
        ("- **speed settings**: what the model's speed settings (or `--speed`'s) applied, or why each fell back "
         "(gpu/speed.py)."),
        "",
        ("Times are seconds, the best of the measured runs for each stage (as `timeit` reports: on a shared "
         "machine, noise only ever adds time)."),
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in machine.items()],
        f"- command: `{command}`",
        "",
        "## Results",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "| " + " | ".join("---" if i < 2 else "---:" for i in range(len(HEADERS))) + " |",
        *["| " + " | ".join(row_cells(row)) + " |" for row in rows],
        "",
    ]
    if machine.get("weights", "").startswith("tiny"):
        lines += [
            "## Reading these numbers",
            "",
            ("- The weights are the tiny random ones: inference measures the pipelines' mechanics (the same "
             "classes, schedulers and VAE compression as the real models), not the real models' speed. Encode "
             "and upload depend only on pixels and frames, so they carry over to real weights at the same "
             "sizes, where inference is far heavier: the overhead ratio here overstates the real one."),
            ("- Video encode is H.264 (x264, preset fast, crf 18) of random-weight frames, which are noise: "
             "the worst case for x264, so real footage encodes faster and smaller."),
            ("- On a CUDA machine: `python -m gpu.bench --weights /path/to/weights [--compile]` (bfloat16; "
             "`--compile` compiles the denoiser, and the warm-up column shows the compile time)."),
            "",
        ]
    return "\n".join(lines)


def print_table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Darkroom worker benchmark")
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i < 2 or i == len(HEADERS) - 1 else "right")
    for row in rows:
        table.add_row(*row_cells(row))
    Console(width=220).print(table)


# --- --full-size: the catalog's models at their real size, with random weights (gpu/full_size.py) ----------------

# docs/benchmarks.md's sections, each regenerated by its own command: this module's tiny table above them, then
# the full-size section, the serving section (gpu/bench_serving.py), then infra.bench's system section (everything
# from SYSTEM_MARKER on; the same string as infra/bench/__main__.py's).
FULL_SIZE_MARKER = "<!-- full-size benchmarks (python -m gpu.bench --full-size): this section is regenerated -->"
SERVING_MARKER = "<!-- serving benchmarks (python -m gpu.bench_serving): this section is regenerated -->"
SYSTEM_MARKER = "<!-- system benchmarks (python -m infra.bench): everything below is regenerated -->"
SECTION_MARKERS = (FULL_SIZE_MARKER, SERVING_MARKER, SYSTEM_MARKER)  # in page order
FULL_SIZE_BATCHES = (1, 2, 4)
FULL_SIZE_IMAGE = (1024, 1024)
TINY_IMAGE = (256, 256)  # --full-size without CUDA: the tiny pipelines, at a tiny size
TINY_FRAMES = 9  # 4k+1 (Wan) and 8k+1 (LTX)
NOT_MEASURED = "not measured yet"


@dataclass
class FullRow:
    """One (model, speed variant, batch size) of --full-size. Times in seconds; None: not reached (see note)."""

    model: str
    scale: str  # "full" (real architectures, random weights, CUDA) or "tiny" (the tiny pipelines, no CUDA)
    variant: str  # "eager", "model" (the catalog's settings) or --variant's KEY=VALUE,...
    width: int
    height: int
    n: int
    steps: int
    frames: int | None = None
    fps: float | None = None
    build: float | None = None  # the pipeline built and random-initialised on the device (once per variant)
    cache_load: float | None = None  # compiled artifacts loaded from --compile-cache (once per variant)
    warmup: float | None = None  # the first call at this batch size (with compile on: the compile)
    text_encode: float | None = None  # the text encoders' forwards (hooks)
    vae_decode: float | None = None  # the VAE decoder's forwards (hooks)
    postprocess: float | None = None  # decoded tensors to images or frames (the processor's postprocess, CPU)
    inference: float | None = None  # the whole pipeline call
    encode: float | None = None  # png + thumbnail, or mp4 + poster, per output (the worker's encode)
    # torch.cuda.max_memory_reserved over the measured call: what the allocator held (tensors and its cache), the
    # memory a GPU must have, not only what tensors used
    peak_gib: float | None = None
    parameters: float | None = None  # billions, the pipeline's components together
    speed: str = "-"
    # Batch size 1 only: the first output's PSNR against the eager variant's for the same weights and seed, and the
    # floor its settings must keep (gpu/quality.py); None where there is nothing to compare (eager itself).
    psnr: float | None = None
    floor: float | None = None
    # The eager row at batch size 1: its PSNR against itself under another exact attention kernel, the model's own
    # rounding drift (gpu/quality.py held_floor: the other variants' floors allow for it).
    rounding_db: float | None = None
    note: str = ""
    machine: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def below_floor(self) -> bool:
        return self.psnr is not None and self.floor is not None and self.psnr < self.floor

    @property
    def denoise(self) -> float | None:
        """The rest of the call: the denoising steps, with the latents' preparation and the scheduler."""
        if self.inference is None:
            return None
        return max(0.0, self.inference - (self.text_encode or 0) - (self.vae_decode or 0) - (self.postprocess or 0))

    @property
    def per_step(self) -> float | None:
        return self.denoise / self.steps if self.denoise is not None and self.steps else None

    @property
    def throughput(self) -> str:
        if self.inference is None:
            return "-"
        if self.frames and self.fps:
            return f"{self.n * self.frames / self.fps / self.inference:.3f} video s/s"
        return f"{self.n / self.inference:.3f} img/s"


FULL_HEADERS = ["model", "variant", "size", "frames", "n", "steps", "params B", "build s", "cache load s",
                "warm-up s", "text encode s", "denoise s", "s/step", "VAE decode s", "post-process s", "encode s",
                "inference s", "throughput", "peak GiB", "PSNR vs eager dB", "speed settings", "note"]


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def full_row_cells(row: FullRow) -> list[str]:
    return [
        row.model + (" (tiny)" if row.scale == "tiny" else ""), row.variant, f"{row.width}x{row.height}",
        f"{row.frames} @ {row.fps:g} fps" if row.frames and row.fps else "-", str(row.n), str(row.steps),
        _f(row.parameters), _f(row.build), _f(row.cache_load), _f(row.warmup), _f(row.text_encode, 3),
        _f(row.denoise, 3), _f(row.per_step, 3), _f(row.vae_decode, 3), _f(row.postprocess, 3), _f(row.encode, 3),
        _f(row.inference, 3), row.throughput, _f(row.peak_gib, 1), psnr_cell(row), row.speed, row.note or "-",
    ]


def _db(value: float) -> str:
    return "identical" if value == float("inf") else f"{value:.1f}"


def psnr_cell(row: FullRow) -> str:
    if row.psnr is None:
        return "-" if row.rounding_db is None else f"rounding drift {_db(row.rounding_db)}"
    value = _db(row.psnr)
    if row.floor is None:
        return value
    return f"{value} < {row.floor:g}: not a default" if row.below_floor else f"{value} (floor {row.floor:g})"


# --variant each: eager, then every speed setting on its own (what `make bench` shows: each setting's effect on time
# and on the image, against eager).
EACH_SETTING = ("compile=regional", "cache=first_block", "cache=taylorseer", "quantize=fp8", "quantize=fp8_weight_only",
                "attention=flash", "attention=sage", "vae_tiling=true", "channels_last=true")


def expand_variants(variants: list[str]) -> list[str]:
    """--variant's values with "each" spelled out (eager first, once)."""
    out: list[str] = []
    for variant in variants:
        out += ["eager", *EACH_SETTING] if variant == "each" else [variant]
    return list(dict.fromkeys(out))


def parse_variant(text: str, model: ModelSpec) -> SpeedSettings:
    """A --variant: "eager" (no setting), "model" (the catalog's settings), or KEY=VALUE,... over eager (parse_speed)."""
    if text == "eager":
        return SpeedSettings()
    if text == "model":
        return model.speed
    return parse_speed(text)


def _full_request(model: ModelSpec, size: tuple[int, int], n: int, steps: int, frames: int | None) -> Any:
    """One benchmark request for `model` (tiny or full size): its defaults, a reference image where it takes one."""
    from gpu import pipelines

    width, height = size
    req = pipelines.GenerationRequest(prompt="a lighthouse on a cliff at dusk, waves, cinematic", n=n, width=width,
                                      height=height, steps=steps, guidance=model.defaults.guidance, seed=1)
    if model.task == "image-to-image":
        req.images, req.strength = [_reference(width, height)], model.defaults.strength
    elif model.task == "image-to-video":
        req.images = [_reference(width, height)]
    if model.type == "video":
        req.fps = float(model.defaults.fps or 24)
        req.frames = frames
    return req


def _encode_outputs(model: ModelSpec, result: Any, fps: float | None) -> float | str:
    """The worker's encode of every output, in seconds; or why it could not run here."""
    from gpu import encode

    t0 = time.perf_counter()
    try:
        if model.type == "video":
            for frames in result.videos:
                encode.encode_video(frames, fps or 24)
                encode.make_poster(frames[0])
        else:
            for image in result.images:
                encode.encode_image(image, "png")
                encode.make_thumbnail(image)
    except ImportError as exc:  # imageio-ffmpeg is not on the CUDA machine (a 68 MB wheel: over run's transfer limit)
        return f"encode not measured: {exc.name or exc} not installed"
    return time.perf_counter() - t0


def reference_path(args: argparse.Namespace, model: ModelSpec, size: tuple[int, int], steps: int,
                   frames: int | None) -> Path:
    """Where the eager variant's first output for this model, shape and weights' seed is kept: on disk, because
    infra/bench/cuda_full_size.sh runs the variants of a model in separate processes."""
    root = args.references or Path(tempfile.gettempdir()) / "darkroom-bench-references"
    return root / f"{model.id}-{size[0]}x{size[1]}-{steps}steps-{frames or 0}frames-seed{args.seed}.npy"


def _first_output(model: ModelSpec, result: Any) -> Any:
    """The first output's 8-bit pixels: the image, or the video's first, middle and last frames."""
    import numpy as np

    if model.type == "video":
        frames = result.videos[0]
        return np.stack([np.asarray(f.convert("RGB")) for f in (frames[0], frames[len(frames) // 2], frames[-1])])
    return np.asarray(result.images[0].convert("RGB"))


def _against_eager(model: ModelSpec, speed: SpeedSettings, result: Any,
                   reference: Path) -> tuple[float | None, float | None, str]:
    """(PSNR against the eager output, the settings' floor, a note when there was none to compare with). The eager
    variant keeps its output for the others instead."""
    import numpy as np

    from gpu import quality

    pixels = _first_output(model, result)
    floor = quality.floor_db(speed)
    if floor is None:  # eager: the reference every other variant of this model is held to
        reference.parent.mkdir(parents=True, exist_ok=True)
        np.save(reference, pixels)
        return None, None, ""
    if not reference.exists():
        return None, floor, "quality not compared: run the eager variant first"
    rounding = _rounding_file(reference)
    rounding_db = json.loads(rounding.read_text())["db"] if rounding.exists() else None
    held = quality.held_floor(floor, rounding_db)
    note = f"floor {floor:g} lowered to eager's own rounding drift" if held < floor else ""
    return quality.psnr(pixels, np.load(reference)), held, note


def _joined(*notes: str) -> str:
    return "; ".join(filter(None, notes))


def _rounding_file(reference: Path) -> Path:
    return reference.with_suffix(".rounding.json")


def _rounding_drift(pipe: Any, model: ModelSpec, req: Any, reference: Path) -> float | None:
    """Eager against itself with another exact attention kernel (memory-efficient instead of flash on CUDA, the math
    kernel on a CPU): the same sums in another order. Its PSNR is the model's own rounding drift, which the other
    variants' floors allow for (quality.held_floor); kept beside the reference for them. None: no such kernel."""
    import numpy as np
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from gpu import pipelines, quality

    backend = SDPBackend.EFFICIENT_ATTENTION if torch.cuda.is_available() else SDPBackend.MATH
    try:
        with sdpa_kernel([backend]):
            other = pipelines.generate(pipe, model.family, req)
    except RuntimeError:  # "No available kernel": the shapes or dtype this kernel does not take
        return None
    db = quality.psnr(_first_output(model, other), np.load(reference))
    _rounding_file(reference).write_text(json.dumps({"db": db, "kernel": backend.name}))
    return db


def _free(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


def full_size_shape(model: ModelSpec, args: argparse.Namespace, on_gpu: bool) -> tuple[tuple[int, int], int, int | None]:
    """(size, steps, frames) of a --full-size row: 1024x1024 images and the video models' default clips on CUDA,
    a tiny size without it; --sizes (its first), --steps and --frames override them."""
    if args.sizes:
        size = _parse_size(args.sizes.split(",")[0])
    elif not on_gpu:
        size = TINY_IMAGE
    elif model.type == "video":
        size = (model.defaults.width, model.defaults.height)
    else:
        size = FULL_SIZE_IMAGE
    snap = model.multiple_of
    size = (max(model.min_side, size[0] // snap * snap), max(model.min_side, size[1] // snap * snap))
    steps = max(args.steps or (model.defaults.steps if on_gpu else min(model.defaults.steps, 2)), model.min_steps)
    frames = None
    if model.type == "video":
        fps = float(model.defaults.fps or 24)
        default = model.defaults.frames or model.frames_for(model.defaults.duration or 2, fps)
        frames = args.frames or (default if on_gpu else TINY_FRAMES)
    return size, steps, frames


def bench_full_size(model: ModelSpec, variant: str, args: argparse.Namespace, *, device: str, dtype: str,
                    machine: dict[str, str], started: float, emit: Callable[[FullRow], None]) -> list[FullRow]:
    """One model under one speed variant: build it (full size on CUDA, tiny without), apply the settings, then for
    each batch size a warm-up call and the measured calls (the best is kept), each output encoded as the worker
    does. A batch that fails (out of memory, say) is a row with a note; the next one still runs. Rows that would
    start after the model's --budget seconds (since `started`) are rows noted "skipped"."""
    import torch

    from gpu import compile_cache, full_size, pipelines

    on_gpu = device == "cuda"
    size, steps, frames = full_size_shape(model, args, on_gpu)
    speed = parse_variant(variant, model)
    base: dict[str, Any] = {
        "model": model.id, "scale": "full" if on_gpu else "tiny", "variant": variant, "width": size[0],
        "height": size[1], "steps": steps, "frames": frames, "fps": float(model.defaults.fps or 24) if frames else None,
        "machine": machine,
    }
    rows: list[FullRow] = []

    def add(row: FullRow) -> None:
        rows.append(row)
        emit(row)

    batches = [int(b) for b in args.batch_sizes.split(",")]
    over = args.budget and time.perf_counter() - started > args.budget
    if over:
        for n in batches:
            add(FullRow(n=n, note=f"skipped: over the model's {args.budget:g} s budget", **base))
        return rows

    _free(device)
    try:
        built = full_size.pipeline(model, device=device, dtype=dtype, seed=args.seed) if on_gpu else \
            full_size.tiny_pipeline(model)
        family = pipelines.family_spec(model.family)
        report = pipelines.apply_speed(built.pipe, family.base, speed, device)
        pipe = built.pipe if family.base == model.family else pipelines.derive(
            pipelines._pipeline_class(model.family), built.pipe)
    except Exception as exc:  # noqa: BLE001 - a model that cannot be built is a row that says why
        for n in batches:
            add(FullRow(n=n, note=f"failed to build: {_first_line(exc)}", **base))
        return rows
    base.update(build=built.seconds, parameters=sum(built.parameters.values()) / 1e9, speed=speed_cell(report))

    cache_file = None
    if args.compile_cache and speed.compile != "none":
        shape = {"width": size[0], "height": size[1], "frames": frames, "steps": steps}
        cache_file = compile_cache.path(args.compile_cache, compile_cache.key(
            f"full-size:{model.repo}", speed.key, device, shape))
        t0 = time.perf_counter()
        if compile_cache.load(cache_file):
            base["cache_load"] = time.perf_counter() - t0
            cache_file = None  # loaded: nothing new to save

    encoders = [m for name in ("text_encoder", "text_encoder_2", "text_encoder_3")
                if (m := getattr(pipe, name, None)) is not None]
    last: tuple[float, int] | None = None  # (seconds the last batch took, its n): the next one's estimate
    for n in batches:
        if args.budget:
            elapsed = time.perf_counter() - started
            estimate = last[0] * n / last[1] if last else 0.0
            if elapsed + estimate > args.budget:
                add(FullRow(n=n, note=f"skipped: over the model's {args.budget:g} s budget", **base))
                continue
        t_batch = time.perf_counter()
        row = FullRow(n=n, **base)
        req = _full_request(model, size, n, steps, frames)
        try:
            # Warm-up: kernel selection, and with compile the compile itself. Fewer steps unless a cache is on
            # (MagCache's schedule is laid out for the real step count).
            warm = dataclasses.replace(req, steps=steps if speed.cache else min(steps, 2))
            graphs = compile_cache.graph_counts()
            t0 = time.perf_counter()
            pipelines.generate(pipe, model.family, warm)
            _sync(device)
            row.warmup = time.perf_counter() - t0
            if speed.compile != "none":  # what the cache-load row spared: graphs loaded, not compiled
                hits, misses = (now - before for now, before in zip(compile_cache.graph_counts(), graphs, strict=True))
                row.note = f"warm-up: {hits} graphs from the cache, {misses} compiled"
            best: tuple[float, float, Any] | None = None
            for _ in range(max(1, args.repeat)):
                if on_gpu:
                    torch.cuda.reset_peak_memory_stats()
                with contextlib.ExitStack() as stack:
                    timers = [stack.enter_context(pipelines._timed(m)) for m in encoders]
                    t0 = time.perf_counter()
                    result = pipelines.generate(pipe, model.family, req)
                    _sync(device)
                    seconds = time.perf_counter() - t0
                    text = sum(timer() for timer in timers)
                if best is None or seconds < best[0]:
                    best = (seconds, text, result)
                if on_gpu:
                    row.peak_gib = torch.cuda.max_memory_reserved() / 2**30
            assert best is not None
            row.inference, row.text_encode, result = best
            row.vae_decode, row.postprocess = result.vae_decode, result.postprocess
            if n == 1:
                reference = reference_path(args, model, size, steps, frames)
                row.psnr, row.floor, note = _against_eager(model, speed, result, reference)
                row.note = _joined(row.note, note)
                if row.floor is None:  # eager: also its own rounding drift, while the budget allows one more call
                    _rounding_file(reference).unlink(missing_ok=True)
                    if args.budget and time.perf_counter() - started + row.inference > args.budget:
                        row.note = _joined(row.note, "rounding drift not measured: over the model's budget")
                    else:
                        row.rounding_db = _rounding_drift(pipe, model, req, reference)
            encoded = _encode_outputs(model, result, req.fps)
            if isinstance(encoded, str):
                row.note = _joined(row.note, encoded)
            else:
                row.encode = encoded
            del result, best
        except Exception as exc:  # noqa: BLE001 - out of memory at a batch size is a result, not an end
            row.note = f"failed: {_first_line(exc)}"
        if row.note.startswith("failed"):
            _free(device)  # after the except block, once the exception (and the tensors its frames hold) is gone
        last = (time.perf_counter() - t_batch, n)
        add(row)
    if cache_file is not None and any(r.inference is not None for r in rows):
        compile_cache.save(cache_file)
    del pipe, built
    _free(device)
    return rows


def full_size_markdown(rows: list[FullRow]) -> str:
    """docs/benchmarks.md's full-size section: the measured rows (CUDA only), and beside the published anchors what
    was measured, or NOT_MEASURED."""
    from gpu import full_size, quality

    measured = [r for r in rows if r.scale == "full"]
    machines = [r.machine for r in measured if r.machine]
    lines = [
        FULL_SIZE_MARKER, "",
        "# Full-size models, random weights (`python -m gpu.bench --full-size`)", "",
        (f"**{full_size.NOISE}** Each catalog model is built at its real size from its real configuration "
        "(gpu/model_configs, each file naming its source), random-initialised on the GPU in bfloat16 (gpu/full_size.py "
        "says how, and why the tokenizers are the tiny ones), and run through the worker's own pipeline code: "
        "1024x1024 images, and the video models' default clips. Speed does not depend on the weights' values, "
        "except for the denoiser caches (First Block Cache, TaylorSeer, MagCache), whose skipped steps depend on "
        "the outputs: their rows time the hooks on noise, not the real models' skip rate."), "",
        ("Stages, in seconds: **build** (the pipeline built and random-initialised on the GPU; a real container's "
        "load reads weights instead), **cache load** (compiled artifacts from `--compile-cache`, gpu/compile_cache.py), "
        "**warm-up** (the first call at that batch size, with fewer steps; with compile on, the compile), **text "
        "encode**, **denoise** (the rest of the call: the steps, latents and scheduler), **s/step** (denoise / steps), "
        "**VAE decode**, **post-process** (the decoded tensors made images or frames, on the CPU: a cost per output, "
        "kept out of s/step), **encode** (PNG + thumbnail, or H.264 + poster, per output) and **inference** (the whole "
        "call). Each row is one measured call (or the best of `--repeat`). n is the batch (num_images_per_prompt). "
        "A row's steps may be fewer than the model's default to fit the benchmark's time on a lent GPU: s/step is "
        "what carries over. **PSNR vs eager** (batch size 1): the first image, or a video's first, middle and last "
        "frames, against the eager variant's for the same random weights and seed, held to the floor of the "
        "settings the variant turns on (gpu/quality.py); on random weights it measures numerical drift, which the "
        "denoising steps amplify, not how a real image looks. So the eager row also shows the model's own **rounding "
        "drift** (eager against itself under another exact attention kernel: the same sums in another order), and "
        "where that drift is larger than a setting's floor the setting is held to the drift instead, never under "
        f"{quality.BROKEN_DB:g} dB. Cold start from a Modal GPU memory snapshot needs "
        "Modal: not measured here."), "",
        "## Published anchors beside what was measured here", "",
        "| model | published (MODELS.md) | measured here: eager, n=1 |",
        "| --- | --- | --- |",
    ]
    anchors = {
        "flux-schnell": "1024², H100: about 1.2 s eager, 0.7 s with torch.compile (Modal)",
        "flux-dev": "compile + First Block Cache about 3x faster (Modal)",
        "flux2-klein": "about 0.3 s on a GB200, 1.2 s on an RTX 5090 (BFL)",
        "z-image-turbo": "sub-second on an H800 (Tongyi-MAI)",
        "qwen-image": "none published",
        "wan2.2-ti2v-5b": "none for TI2V-5B (Wan 2.2 I2V A14B, 720p, 81 frames, 40 steps: 250 s on 8 H100s)",
    }
    for model_id, anchor in anchors.items():
        eager = [r for r in measured if r.model == model_id and r.variant == "eager" and r.n == 1
                 and r.inference is not None]
        cell = NOT_MEASURED
        if eager:
            r = min(eager, key=lambda r: r.inference or 0)
            cell = (f"{r.inference:.2f} s at {r.width}x{r.height}" + (f", {r.frames} frames" if r.frames else "")
                    + f", {r.steps} steps ({_f(r.per_step, 3)} s/step), {r.machine.get('accelerator', '?')}")
        lines.append(f"| {model_id} | {anchor} | {cell} |")
    lines += ["", *defaults_markdown(measured), "", "## Machine", ""]
    if machines:
        for key, value in machines[-1].items():
            lines.append(f"- {key}: {value}")
    else:
        lines += [f"- GPU: {NOT_MEASURED} (no CUDA machine has run `infra/bench/cuda_full_size.sh` yet)"]
    lines += ["", "## Results", "", "| " + " | ".join(FULL_HEADERS) + " |",
              "| " + " | ".join("---" if i < 2 else "---:" for i in range(len(FULL_HEADERS))) + " |"]
    if measured:
        lines += ["| " + " | ".join(full_row_cells(r)) + " |" for r in measured]
    else:
        catalog = get_catalog()
        defaults = argparse.Namespace(sizes=None, steps=None, frames=None)
        for model_id in full_size.MUST_HAVE:
            model = catalog.model(model_id)
            assert model is not None
            (width, height), steps, frames = full_size_shape(model, defaults, on_gpu=True)
            cells = [model_id, "eager", f"{width}x{height}", f"{frames} @ {model.defaults.fps or 24:g} fps" if frames
                     else "-", "1, 2, 4", str(steps), *[NOT_MEASURED] * (len(FULL_HEADERS) - 6)]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


# A setting must save at least this much of eager's time to be chosen: one call's timing varies by a few percent, and
# a setting that did nothing (fell back, or a cache that skipped no step) must not win by noise.
MIN_SPEEDUP = 1.05


def chosen_defaults(rows: list[FullRow]) -> dict[str, tuple[FullRow, FullRow]]:
    """Per model, the speed variant these rows choose as its default, with the eager row it was measured against:
    the fastest inference at batch size 1 among the variants that kept their quality floor (gpu/quality.py) against
    that eager output and are at least MIN_SPEEDUP faster than it. A variant that failed, or was not compared with
    eager, is not chosen; eager always qualifies."""
    chosen: dict[str, tuple[FullRow, FullRow]] = {}
    for model_id in dict.fromkeys(r.model for r in rows):
        ones = [r for r in rows if r.model == model_id and r.n == 1 and r.inference is not None]
        eager = next((r for r in ones if r.variant == "eager"), None)
        if eager is None or eager.inference is None:
            continue
        kept = [r for r in ones if r is eager or (
            r.psnr is not None and not r.below_floor and (r.inference or 0) * MIN_SPEEDUP <= eager.inference)]
        chosen[model_id] = (min(kept, key=lambda r: r.inference or 0.0), eager)
    return chosen


def defaults_markdown(rows: list[FullRow]) -> list[str]:
    """What chosen_defaults picks per model, beside what catalog.yaml has: the step from figures to defaults."""
    catalog = get_catalog()
    lines = ["## Defaults these figures choose", "",
             ("Per model: the fastest variant at batch size 1 that kept its PSNR floor against eager "
              f"(gpu/quality.py) and saved at least {MIN_SPEEDUP - 1:.0%} of eager's time, and whether "
              "catalog.yaml's `speed` already says so."), ""]
    chosen = chosen_defaults(rows)
    if not chosen:
        return [*lines, f"- {NOT_MEASURED}: no CUDA run has measured an eager row and its variants."]
    for model_id, (row, eager) in chosen.items():
        model = catalog.model(model_id)
        settings = parse_variant(row.variant, model) if model is not None else None
        speedup = (eager.inference or 0) / (row.inference or 1)
        quality = "" if row is eager else f", PSNR {psnr_cell(row)}"
        agrees = model is not None and settings == model.speed
        verdict = "catalog.yaml agrees" if agrees else (
            f"catalog.yaml has {model.speed.key or 'eager'}: change it" if model is not None else "not in the catalog")
        lines.append(f"- {model_id}: {row.variant} ({row.inference:.3f} s against eager {eager.inference:.3f} s, "
                     f"{speedup:.2f}x{quality}); {verdict}")
    return lines


@dataclass(frozen=True)
class GpuTime:
    """A model's measured GPU time per output at its default steps, under the settings its rows chose."""

    model: str
    seconds: float
    variant: str
    accelerator: str
    basis: str


def gpu_time_per_output(rows: list[FullRow]) -> dict[str, GpuTime]:
    """Per model (CUDA rows only), the GPU seconds one output takes at the model's default steps, under the variant
    chosen_defaults picks: text encode + s/step x default steps + VAE decode + encode, from its batch-size-1 row (a
    row run at fewer steps is scaled by s/step; an encode not measured counts 0, and the basis says so)."""
    catalog = get_catalog()
    times: dict[str, GpuTime] = {}
    for model_id, (row, _eager) in chosen_defaults([r for r in rows if r.scale == "full"]).items():
        model = catalog.model(model_id)
        if model is None or row.per_step is None:
            continue
        steps = model.defaults.steps
        seconds = ((row.text_encode or 0) + row.per_step * steps + (row.vae_decode or 0) + (row.postprocess or 0)
                   + (row.encode or 0))
        basis = (f"{row.variant} at {row.width}x{row.height}" + (f", {row.frames} frames" if row.frames else "")
                 + f": {row.per_step:.3f} s/step x {steps} steps + text encode, VAE decode, post-process"
                 + (" and encode" if row.encode is not None else " (encode not measured)"))
        times[model_id] = GpuTime(model_id, seconds, row.variant, row.machine.get("accelerator", "?"), basis)
    return times


def write_section(doc: Path, marker: str, section: str) -> None:
    """Replace the section of docs/benchmarks.md that starts at `marker` (one of SECTION_MARKERS, the system one
    excepted) up to the next section's marker, keeping the rest; without one yet, it goes before the sections that
    follow it in page order (or at the end)."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    start = text.find(marker)
    if start >= 0:
        after = start + len(marker)
        ends = [i for other in SECTION_MARKERS if other != marker and (i := text.find(other, after)) >= 0]
        head, rest = text[:start], text[min(ends):] if ends else ""
    else:
        later = SECTION_MARKERS[SECTION_MARKERS.index(marker) + 1:]
        ats = [i for other in later if (i := text.find(other)) >= 0]
        head, rest = (text[:min(ats)], text[min(ats):]) if ats else (text, "")
    parts = [part for part in (head.strip(), section.strip(), rest.strip()) if part]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n\n".join(parts) + "\n")


def write_full_size_section(doc: Path, section: str) -> None:
    write_section(doc, FULL_SIZE_MARKER, section)


def _kept_sections(doc: Path) -> str:
    """What the tiny table's rewrite keeps of docs/benchmarks.md: the sections below it."""
    if not doc.exists():
        return ""
    text = doc.read_text()
    starts = [i for marker in SECTION_MARKERS if (i := text.find(marker)) >= 0]
    return "\n" + text[min(starts):] if starts else ""


def jsonl_line(row: Any) -> str:
    """One benchmark row (a dataclass) as a line of a --jsonl file."""
    return json.dumps(dataclasses.asdict(row)) + "\n"


def read_rows(path: Path) -> list[FullRow]:
    if not path.exists():
        return []
    return [FullRow(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def full_size_machine(device: str, dtype: str) -> dict[str, str]:
    import diffusers
    import torch
    import transformers

    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "accelerator": torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU): tiny pipelines",
        "device / dtype": f"{device} / {dtype}",
        "software": (f"Python {platform.python_version()}, torch {torch.__version__}"
                     + (f" (CUDA {torch.version.cuda})" if device == "cuda" else "")
                     + f", diffusers {diffusers.__version__}, transformers {transformers.__version__}"),
        "weights": "random (gpu/full_size.py): outputs are noise, only the times count",
    }
    if device == "cuda":
        _free_bytes, total = torch.cuda.mem_get_info()
        info["GPU memory"] = f"{total / 2**30:.0f} GiB"
    return info


def run_full_size(models: list[ModelSpec], args: argparse.Namespace, argv: list[str]) -> int:
    """--full-size: every model under every --variant (default: eager, and the catalog's settings when it has any),
    at each --batch-sizes. On CUDA the rows go to --jsonl (appended as each finishes, so a run cut off by its
    timeout keeps what it measured) and docs/benchmarks.md's full-size section is rewritten from that file; without
    CUDA it runs the tiny pipelines (full_size.TINY_NOTICE) and writes nothing to docs/benchmarks.md."""
    import torch

    from gpu import full_size

    device, dtype = ("cuda", "bfloat16") if torch.cuda.is_available() else ("cpu", "float32")
    if device != "cuda":
        print(full_size.TINY_NOTICE, file=sys.stderr, flush=True)
    print(full_size.NOISE, file=sys.stderr, flush=True)
    machine = full_size_machine(device, dtype)
    rows: list[FullRow] = []

    def emit(row: FullRow) -> None:
        print(" | ".join(full_row_cells(row)), file=sys.stderr, flush=True)
        if args.jsonl:
            args.jsonl.parent.mkdir(parents=True, exist_ok=True)
            with args.jsonl.open("a") as f:
                f.write(jsonl_line(row))

    for model in models:
        started = time.perf_counter()
        variants = expand_variants(args.variant or ["eager", *(["model"] if not model.speed.is_default else [])])
        for variant in variants:
            rows += bench_full_size(model, variant, args, device=device, dtype=dtype, machine=machine,
                                    started=started, emit=emit)
    print_full_table(rows, tiny=device != "cuda")
    if device == "cuda" and not args.no_write:
        everything = read_rows(args.jsonl) if args.jsonl else rows
        write_full_size_section(args.out, full_size_markdown(everything))
        print(f"wrote {args.out}")
    return 0


def print_full_table(rows: list[FullRow], *, tiny: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from gpu import full_size

    table = Table(title="Darkroom full-size benchmark", caption=full_size.NOISE + (" " + full_size.TINY_NOTICE
                                                                                 if tiny else ""))
    for i, header in enumerate(FULL_HEADERS):
        table.add_column(header, justify="left" if i < 2 or i >= len(FULL_HEADERS) - 2 else "right")
    for row in rows:
        table.add_row(*full_row_cells(row))
    Console(width=260).print(table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gpu.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated catalog ids (default: every model)")
    parser.add_argument("--sizes", help="comma-separated WIDTHxHEIGHT (default: two per model)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: each model's default)")
    parser.add_argument("--n", type=int, default=1, help="images (or videos) per job")
    parser.add_argument("--frames", type=int, help="video frames (default: from --duration)")
    parser.add_argument("--duration", type=float, help="video seconds (default: the model's default)")
    parser.add_argument("--repeat", type=int, help="measured runs per row, the best kept (default 3; 1 with --full-size)")
    parser.add_argument("--weights", help="tiny, hub or a weights directory (default: DARKROOM_WEIGHTS, else tiny)")
    parser.add_argument("--lora", help="a LoRA .safetensors file whose load time to measure (default on tiny weights: "
                                       "a tiny one per family)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the denoiser (CUDA)")
    parser.add_argument("--compile-mode", default="max-autotune-no-cudagraphs")
    parser.add_argument("--speed", help="override the models' speed settings: KEY=VALUE,... (compile=none|regional|full, "
                                        "attention=native|flash|sage, quantize=none|fp8|fp8_weight_only, vae_tiling=true, "
                                        "channels_last=true, cache=first_block|taylorseer|magcache|none, cache.KNOB=V)")
    full = parser.add_argument_group(
        "full size", "--full-size: the models at their real size with random weights (gpu/full_size.py), on CUDA; "
        "without CUDA the tiny pipelines, at a tiny size, and nothing written")
    full.add_argument("--full-size", action="store_true", help="real architectures, random weights: outputs are noise, "
                                                                "only the times count")
    full.add_argument("--variant", action="append", help="a speed variant to time (repeatable): eager, model (the "
                                                         "catalog's settings), each (eager and every setting alone) "
                                                         "or KEY=VALUE,... as --speed over eager "
                                                         "(default: eager, and model when it sets anything)")
    full.add_argument("--batch-sizes", default=",".join(map(str, FULL_SIZE_BATCHES)),
                      help="images (videos) per call, comma-separated (default 1,2,4)")
    full.add_argument("--budget", type=float, help="seconds per model: later rows are noted 'skipped' past it")
    full.add_argument("--seed", type=int, default=0, help="the random weights' seed")
    full.add_argument("--references", type=Path, help="where the eager variant's outputs are kept for the other "
                      "variants' PSNR (default: a folder under the system's temporary directory)")
    full.add_argument("--jsonl", type=Path, help="append each row to this file; the report is rendered from it")
    full.add_argument("--report-only", action="store_true", help="rewrite docs/benchmarks.md's full-size section from "
                                                                  "--jsonl's rows (a CUDA run's), running nothing")
    full.add_argument("--compile-cache", type=Path, help="a directory of compiled artifacts (gpu/compile_cache.py): "
                                                         "loaded when there, saved after a compile")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown report path")
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked through: its flags, variants, batch sizes and catalog ids (`models`, the
    ModelSpecs), so that a run fails here, before it builds anything. An error exits 2, as argparse does."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.report_only:
        args.jsonl = args.jsonl or FULL_SIZE_ROWS
        if not args.jsonl.exists():
            parser.error(f"--report-only renders --jsonl FILE (a CUDA run's rows; default {FULL_SIZE_ROWS.name}); "
                         "give an existing file")
        return args
    if args.repeat is None:
        args.repeat = 1 if args.full_size else 3
    if args.full_size and (args.speed or args.compile or args.weights or args.lora):
        parser.error("--full-size builds random weights and takes its settings from --variant, not --speed, "
                     "--compile, --weights or --lora")
    try:
        if args.variant:
            for variant in expand_variants(args.variant):
                if variant not in ("eager", "model"):
                    parse_speed(variant)
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        if not sizes or min(sizes) < 1:
            raise ValueError(f"--batch-sizes: positive integers, not {args.batch_sizes!r}")
        if args.speed:
            parse_speed(args.speed)
    except ValueError as exc:  # pydantic's ValidationError is one
        parser.error(str(exc))
    catalog = get_catalog()
    models = [catalog.model(m) for m in args.models.split(",")] if args.models else list(catalog.models)
    if None in models:
        parser.error(f"unknown model in {args.models!r}")
    args.model_specs = models
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        rows = [row for row in read_rows(args.jsonl) if row.scale == "full"]
        write_full_size_section(args.out, full_size_markdown(rows))
        print(f"wrote {args.out} from {len(rows)} full-size rows of {args.jsonl}")
        if args.out == DEFAULT_OUT and args.jsonl.resolve() != FULL_SIZE_ROWS.resolve():
            # The repo keeps the rows its page shows: docs/cost.md prices GPU time from them.
            FULL_SIZE_ROWS.write_text("".join(map(jsonl_line, rows)))
            print(f"kept them in {FULL_SIZE_ROWS}: rerun `python -m infra.bench_calls --write docs/cost.md`")
        return 0

    if args.weights:
        os.environ["DARKROOM_WEIGHTS"] = args.weights
    for quiet in ("DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        os.environ.setdefault(quiet, "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # from_pretrained's "Loading pipeline components" bars
    if _weights() != "hub":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")

    models = args.model_specs
    if args.full_size:
        return run_full_size(models, args, argv if argv is not None else sys.argv[1:])

    from gpu import worker

    device, dtype = worker.device_and_dtype()

    machine = describe_machine(device, dtype, args)
    rows: list[Row] = []
    with _S3() as upload:
        for model in models:
            assert model is not None
            for size in _sizes_for(model, args, device == "cuda"):
                row = bench_model(model, size, args, device=device, dtype=dtype, upload=upload)
                rows.append(row)
                print(" | ".join(row_cells(row)), file=sys.stderr, flush=True)
    print_table(rows)
    if not args.no_write:
        command = "python -m gpu.bench" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        kept = _kept_sections(args.out)  # the full-size and system sections, regenerated by their own commands
        args.out.write_text(markdown(rows, machine, command.strip()) + kept)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
