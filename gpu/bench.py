"""Benchmark the worker's stages per model and size: `python -m gpu.bench` (or `make bench`).

For each catalog model and a couple of sizes it measures, the way the worker runs a job:
load (weights from disk to the device, once per container), inference (the whole pipeline call) and, inside
it, VAE decode (timed with hooks on the decoder), encode (png + thumbnail, or mp4 + poster), and upload (to
S3 on a moto server this script starts). It reports images, or seconds of video, per second of job time
(inference + encode + upload) and the worker's overhead: (encode + upload) / inference.

Here it runs the tiny random-weight pipelines on CPU; on a CUDA machine it uses bfloat16, and with
--compile it compiles the denoiser. --weights points it at real weights (as DARKROOM_WEIGHTS does).
Results print as a table and go to docs/benchmarks.md with a description of the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from functions.core.catalog import ModelSpec, SpeedSettings, get_catalog

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "docs" / "benchmarks.md"
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
    req = pipelines.GenerationRequest(prompt="a lighthouse on a cliff at dusk, waves, cinematic", n=args.n,
                                      width=width, height=height, steps=steps, guidance=model.defaults.guidance,
                                      seed=1)
    if model.task == "image-to-image":
        req.images, req.strength = [_reference(width, height)], model.defaults.strength
    elif model.task == "image-to-video":
        req.images = [_reference(width, height)]
    if model.type == "video":
        req.fps = float(model.defaults.fps or 24)
        req.frames = args.frames or model.frames_for(args.duration or model.defaults.duration or 2, req.fps)

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpu.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated catalog ids (default: every model)")
    parser.add_argument("--sizes", help="comma-separated WIDTHxHEIGHT (default: two per model)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: each model's default)")
    parser.add_argument("--n", type=int, default=1, help="images (or videos) per job")
    parser.add_argument("--frames", type=int, help="video frames (default: from --duration)")
    parser.add_argument("--duration", type=float, help="video seconds (default: the model's default)")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per row (the best is kept)")
    parser.add_argument("--weights", help="tiny, hub or a weights directory (default: DARKROOM_WEIGHTS, else tiny)")
    parser.add_argument("--lora", help="a LoRA .safetensors file whose load time to measure (default on tiny weights: "
                                       "a tiny one per family)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the denoiser (CUDA)")
    parser.add_argument("--compile-mode", default="max-autotune-no-cudagraphs")
    parser.add_argument("--speed", help="override the models' speed settings: KEY=VALUE,... (compile=none|regional|full, "
                                        "attention=native|flash|sage, quantize=none|fp8, vae_tiling=true, "
                                        "channels_last=true, cache=first_block|taylorseer|magcache|none, cache.KNOB=V)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown report path")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.speed:
        try:
            parse_speed(args.speed)
        except ValueError as exc:  # pydantic's ValidationError is one
            parser.error(str(exc))

    if args.weights:
        os.environ["DARKROOM_WEIGHTS"] = args.weights
    for quiet in ("DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        os.environ.setdefault(quiet, "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # from_pretrained's "Loading pipeline components" bars
    if _weights() != "hub":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gpu import worker

    catalog = get_catalog()
    models = [catalog.model(m) for m in args.models.split(",")] if args.models else list(catalog.models)
    if None in models:
        parser.error(f"unknown model in {args.models!r}")
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
        args.out.write_text(markdown(rows, machine, command.strip()))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
