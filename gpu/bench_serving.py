"""Serving benchmark of batching, both ways: `python -m gpu.bench_serving`.

gpu/batching.py runs requests of one shape that arrive within `wait_s` of each other as one pipeline call, up to
`max_images` outputs. Whether that pays depends on the model, the size and the GPU: a batch of images costs little
more than one image when one image does not fill the device, and nearly n times one when it does. This drives the
real `batching.Batcher` (a fresh one per measurement) with `clients` concurrent threads, each submitting requests
one after another (a closed loop: a client sends its next request when its last one came back), and records each
request's latency (submit to result) and how many requests shared its pipeline call.

The sweep, per model: unbatched (BatchPolicy(): max_images 1) and batched policies (each --batch-sizes, each wait
window: 0 ms and a short one, --window-fraction of the unbatched lone request's p50 unless --wait-ms names them),
each at every --clients count. The lone client (clients 1) with a batched policy measures what a single request
pays for the window (it waits it out: no peer comes); the rows with several clients measure throughput.
`recommend` turns one model's rows into the catalog's Serving values (functions/core/catalog.py), or None.

On CUDA the models are built at full size with random weights (gpu/full_size.py; outputs are noise, only the
times count) and the rows go to docs/benchmarks.md's serving section (SERVING_MARKER) and to --jsonl. Without CUDA
the tiny pipelines run at a tiny size, the output says so (TINY_NOTICE), and nothing is written to
docs/benchmarks.md (the --full-size convention).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from functions.core.catalog import ModelSpec, get_catalog
from gpu import bench

SERVING_MARKER = bench.SERVING_MARKER
# The sections of docs/benchmarks.md that may follow this one: it ends where the next of them starts.

CLIENTS = (1, 2, 4)
BATCH_IMAGES = (2, 4)
WINDOW_FRACTION = 0.05  # the short window: this share of the unbatched lone request's p50 (the rule allows 10 %)
LATENCY_SLACK = 1.10  # a request's p50 under a batched policy: at most this times the unbatched one
THROUGHPUT_GAIN = 1.05  # a batched policy is worth its config only above this times the unbatched throughput

TINY_NOTICE = ("No CUDA device: the serving benchmark runs the tiny random-weight pipelines (gpu/tiny.py) at a tiny "
               "size on the CPU; these figures say nothing of batching on a GPU, and are not written to "
               "docs/benchmarks.md.")


@dataclass
class ServingResult:
    """One (model, policy, client count) of the sweep. Seconds; throughput in requests per second."""

    model: str
    scale: str  # "full" (real architectures, random weights, CUDA) or "tiny" (the tiny pipelines, no CUDA)
    max_images: int  # BatchPolicy.max_images: 1 is unbatched
    wait_ms: int  # BatchPolicy.wait_s in milliseconds
    clients: int
    requests: int = 0  # completed
    failed: int = 0
    wall_s: float = 0.0
    throughput: float = 0.0
    p50: float | None = None
    p95: float | None = None
    mean_batch: float | None = None  # per request: how many requests shared its call, averaged over requests
    width: int = 0
    height: int = 0
    steps: int = 0
    frames: int | None = None
    run: str = ""  # when the sweep started: ratios compare rows of one run only
    note: str = ""
    machine: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def batched(self) -> bool:
        return self.max_images > 1

    @property
    def policy(self) -> str:
        return "unbatched" if not self.batched else f"batch ≤{self.max_images}, wait {self.wait_ms} ms"

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.failed == 0 and self.p50 is not None


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- measuring -----------------------------------------------------------------------------------------------------


def measure(pipe: Any, model: ModelSpec, *, size: tuple[int, int], steps: int, frames: int | None = None,
            clients: int, requests: int, policy: Any, device: str, seed: int = 1000) -> ServingResult:
    """`clients` threads, each sending `requests` requests one after another (n=1, each its own seed: gpu.bench's
    `_full_request` for `model` at `size`) through a fresh `batching.Batcher` under `policy` (a BatchPolicy).

    Latency: from a request's submit to its result (the result's images are host PIL images, so a CUDA call is
    finished by then). Wall: from the moment every client is released together to the last result, with the device
    synchronized at both ends. A request that fails stops its client; the failures are counted and the first
    one's message is the row's note."""
    from gpu import batching

    batcher = batching.Batcher()
    base = bench._full_request(model, size, 1, steps, frames)
    latencies: list[float] = []
    shared: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        start.wait()
        for k in range(requests):
            request = dataclasses.replace(base, seed=seed + index * requests + k)
            t0 = time.perf_counter()
            try:
                _result, together = batcher.generate(pipe, model.family, request, policy)
            except Exception as exc:  # noqa: BLE001 - a failed request (out of memory) is a result, not an end
                with lock:
                    errors.append(exc)
                return
            seconds = time.perf_counter() - t0
            with lock:
                latencies.append(seconds)
                shared.append(together)

    threads = [threading.Thread(target=client, args=(i,), name=f"bench-serving-{i}", daemon=True)
               for i in range(clients)]
    for thread in threads:
        thread.start()
    bench._sync(device)
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    bench._sync(device)
    wall = time.perf_counter() - t0
    return ServingResult(
        model=model.id, scale="full" if device == "cuda" else "tiny", max_images=policy.max_images,
        wait_ms=round(policy.wait_s * 1000), clients=clients, requests=len(latencies), failed=len(errors),
        wall_s=wall, throughput=len(latencies) / wall if wall > 0 else 0.0, p50=_percentile(latencies, 0.5),
        p95=_percentile(latencies, 0.95), mean_batch=sum(shared) / len(shared) if shared else None,
        width=size[0], height=size[1], steps=steps, frames=frames,
        note=f"failed: {bench._first_line(errors[0])}" if errors else "")


def warm_up(pipe: Any, model: ModelSpec, *, size: tuple[int, int], steps: int, frames: int | None,
            largest: int, device: str) -> None:
    """One call at each batch size up to `largest` (kernel selection for each shape), not counted."""
    from gpu import pipelines

    base = bench._full_request(model, size, 1, min(steps, 2), frames)
    if pipelines.batch_key(model.family, base) is None:
        largest = 1
    for n in range(1, largest + 1):
        pipelines.generate_together(pipe, model.family, [dataclasses.replace(base, seed=i) for i in range(n)])
        bench._sync(device)


def sweep(pipe: Any, model: ModelSpec, *, size: tuple[int, int], steps: int, frames: int | None = None,
          clients: Iterable[int] = CLIENTS, requests: int, batch_images: Iterable[int] = BATCH_IMAGES,
          wait_ms: Iterable[int] | None = None, window_fraction: float = WINDOW_FRACTION, device: str,
          emit: Callable[[ServingResult], None] = lambda result: None) -> list[ServingResult]:
    """Unbatched at each client count, then each batched policy (max_images in `batch_images`, wait in `wait_ms`;
    default 0 and `window_fraction` of the unbatched lone p50, at least 1 ms) at each client count. A model whose
    requests carry inputs (images: batch_key None) never batches: only its unbatched rows are measured."""
    from gpu import pipelines
    from gpu.batching import BatchPolicy

    counts = sorted(set(clients))
    results: list[ServingResult] = []

    def run(policy: BatchPolicy) -> None:
        for count in counts:
            result = measure(pipe, model, size=size, steps=steps, frames=frames, clients=count,
                             requests=requests, policy=policy, device=device)
            results.append(result)
            emit(result)

    run(BatchPolicy())
    if pipelines.batch_key(model.family, bench._full_request(model, size, 1, steps, frames)) is None:
        for result in results:
            result.note = result.note or "requests carry inputs (images): they never batch"
        return results
    if wait_ms is None:
        lone = next((r.p50 for r in results if r.clients == 1 and r.p50 is not None), None)
        if lone is None:
            lone = min((r.p50 for r in results if r.p50 is not None), default=0.0) or 0.0
        wait_ms = [0, max(1, round(window_fraction * lone * 1000))]
    for images in sorted(set(batch_images)):
        for wait in sorted(set(wait_ms)):
            run(BatchPolicy(max_images=images, wait_s=wait / 1000))
    return results


# --- the rule --------------------------------------------------------------------------------------------------------


def _choice(results: Sequence[ServingResult]) -> tuple[dict[str, int], ServingResult, ServingResult] | None:
    """recommend's choice, with the chosen policy's row at the highest client count and the unbatched one there."""
    if not results:
        return None
    models = {r.model for r in results}
    if len(models) > 1:
        raise ValueError(f"recommend takes one model's rows, not {sorted(models)}")
    unbatched = {r.clients: r for r in results if not r.batched and r.ok}
    lone = unbatched.get(1)
    top = max(r.clients for r in results)
    if lone is None or lone.p50 is None or top not in unbatched or unbatched[top].throughput <= 0:
        return None
    policies: dict[tuple[int, int], dict[int, ServingResult]] = {}
    for r in results:
        if r.batched:
            policies.setdefault((r.max_images, r.wait_ms), {})[r.clients] = r
    candidates: list[tuple[float, int, int, ServingResult]] = []
    for (images, wait), rows in policies.items():
        if not all(c in rows and rows[c].ok for c in unbatched):
            continue  # a client count not measured (or failed) with the policy: not shown to be safe
        if any(rows[c].p50 > LATENCY_SLACK * u.p50 for c, u in unbatched.items()):  # type: ignore[operator]
            continue
        gain = rows[top].throughput / unbatched[top].throughput
        if gain > THROUGHPUT_GAIN:
            candidates.append((gain, -images, -wait, rows[top]))
    if not candidates:
        return None
    _gain, _images, _wait, row = max(candidates, key=lambda c: c[:3])
    serving = {"concurrent_inputs": max(top, row.max_images), "batch_images": row.max_images,
               "batch_wait_ms": row.wait_ms}
    return serving, row, unbatched[top]


def recommend(results: Sequence[ServingResult]) -> dict[str, int] | None:
    """The catalog's Serving values these figures choose for one model, or None (no batching: the default).

    With U(c) the unbatched row at c clients and P(c) a batched policy's row (a policy: max_images > 1 and a wait):
    1. Needed: U(1) and U(C) measured without failures, C the highest client count among the rows; else None.
    2. A policy qualifies when it has a row without failures at every client count c where U(c) was measured
       without failures, and at every such c: p50(P(c)) <= 1.10 x p50(U(c)). At c = 1 this is the issue's rule: a single request's latency (its
       window waited out alone) stays within 10 % of unbatched; at c > 1 it adds that under load a request is
       not made more than 10 % slower than it would be unbatched at the same load (queueing included).
    3. Of the qualifying policies, the one with the highest throughput(P(C)) / throughput(U(C)) (ties: fewer
       images, then the shorter wait) is chosen if that ratio is above 1.05; otherwise None.
    4. The values: batch_images = its max_images, batch_wait_ms = its wait, concurrent_inputs = max(C,
       max_images) (the load it was measured under, and never fewer than one batch).
    ValueError when the rows are of more than one model."""
    choice = _choice(results)
    return choice[0] if choice else None


# --- the report ------------------------------------------------------------------------------------------------------

HEADERS = ["model", "scale", "size", "steps", "policy", "clients", "requests", "throughput req/s", "p50 s", "p95 s",
           "mean batch", "throughput / unbatched", "p50 / unbatched lone p50", "note"]


def _latest_runs(results: Iterable[ServingResult]) -> list[ServingResult]:
    """Each model's rows of its latest run (a --jsonl file holds every run's)."""
    results = list(results)
    latest: dict[str, str] = {}
    for r in results:
        latest[r.model] = max(latest.get(r.model, ""), r.run)
    return [r for r in results if r.run == latest[r.model]]


def _groups(results: Iterable[ServingResult]) -> dict[tuple[str, str], list[ServingResult]]:
    groups: dict[tuple[str, str], list[ServingResult]] = {}
    for r in results:
        groups.setdefault((r.model, r.run), []).append(r)
    return groups


def result_cells(result: ServingResult, peers: Sequence[ServingResult]) -> list[str]:
    """A row's cells; its ratios are to the unbatched rows among `peers` (the same model and run)."""
    same = next((p for p in peers if not p.batched and p.clients == result.clients and p.ok), None)
    lone = next((p for p in peers if not p.batched and p.clients == 1 and p.ok), None)
    ratio = f"{result.throughput / same.throughput:.2f}" if same and same.throughput and result.ok else "-"
    lone_ratio = f"{result.p50 / lone.p50:.2f}" if lone and lone.p50 and result.p50 is not None else "-"
    size = f"{result.width}x{result.height}" + (f", {result.frames} frames" if result.frames else "")
    return [result.model, result.scale, size, str(result.steps), result.policy, str(result.clients),
            str(result.requests), f"{result.throughput:.3f}", bench._f(result.p50, 3), bench._f(result.p95, 3),
            bench._f(result.mean_batch), ratio, lone_ratio, result.note or "-"]


def choice_line(model: str, results: Sequence[ServingResult]) -> str:
    choice = _choice(results)
    if choice is None:
        return (f"- {model}: defaults these figures choose: no batching (concurrent_inputs 1, batch_images 1, "
                "batch_wait_ms 0: the catalog's default)")
    serving, row, unbatched = choice
    lone = next(r for r in results if not r.batched and r.clients == 1 and r.ok)
    row_lone = next(r for r in results if r.max_images == row.max_images and r.wait_ms == row.wait_ms
                    and r.clients == 1)
    values = ", ".join(f"{key} {value}" for key, value in serving.items())
    return (f"- {model}: defaults these figures choose: {values} (throughput x{row.throughput / unbatched.throughput:.2f}"
            f" unbatched at {row.clients} clients; a lone request's p50 x{row_lone.p50 / lone.p50:.2f})")


def section_markdown(results: Iterable[ServingResult]) -> str:
    """docs/benchmarks.md's serving section: the rows (each model's latest run), and a line per model of the
    defaults they choose (`recommend`). Without rows it says that nothing was measured yet."""
    results = _latest_runs(results)
    lines = [
        SERVING_MARKER, "",
        "# Serving: batching requests that arrive together (`python -m gpu.bench_serving`)", "",
        ("gpu/batching.py runs requests of one model and shape that arrive within a wait window of each other as "
         "one pipeline call. Each row drives the worker's `Batcher` with that many clients, each sending its next "
         "request when its last came back (n=1, its own seed). **policy**: unbatched, or at most that many "
         "requests per call gathered for that wait; **p50/p95**: latency from submit to result; **mean batch**: "
         "how many requests shared a request's call, averaged over requests; **throughput / unbatched**: against "
         "the unbatched row at the same clients; **p50 / unbatched lone p50**: against one request alone, "
         "unbatched. The 1-client rows of a batched policy show what a lone request pays for the window."), "",
        (f"The rule (gpu/bench_serving.py `recommend`): a batched policy qualifies when its p50 at every client count "
         f"is within {LATENCY_SLACK - 1:.0%} of the unbatched p50 at that count (at 1 client: a single request's "
         "latency within 10 % of unbatched); of those, the best throughput at the highest client count is chosen "
         f"when it beats unbatched by more than {THROUGHPUT_GAIN - 1:.0%}, otherwise no batching."), "",
    ]
    if any(r.scale == "full" for r in results):
        from gpu import full_size

        lines += [f"**{full_size.NOISE}** Full-size models with random weights (gpu/full_size.py), eager.", ""]
    if any(r.scale == "tiny" for r in results):
        lines += [f"**{TINY_NOTICE}**", ""]
    machines = [r.machine for r in results if r.machine]
    lines += ["## Machine", ""]
    if machines:
        lines += [f"- {key}: {value}" for key, value in machines[-1].items()]
    else:
        lines += [f"- GPU: {bench.NOT_MEASURED}"]
    lines += ["", "## Results", "", "| " + " | ".join(HEADERS) + " |",
              "| " + " | ".join("---" if i < 5 or i == len(HEADERS) - 1 else "---:" for i in range(len(HEADERS)))
              + " |"]
    groups = _groups(results)
    for rows in groups.values():
        lines += ["| " + " | ".join(result_cells(r, rows)) + " |" for r in rows]
    if not groups:
        lines.append("| " + " | ".join([bench.NOT_MEASURED] + ["-"] * (len(HEADERS) - 1)) + " |")
    lines += ["", "## Defaults these figures choose", ""]
    if groups:
        lines += [choice_line(model, rows) for (model, _run), rows in groups.items()]
    else:
        lines.append(f"- {bench.NOT_MEASURED}: every model keeps the catalog's default (no batching)")
    lines.append("")
    return "\n".join(lines)


def write_section(doc: Path, section: str) -> None:
    """Replace docs/benchmarks.md's serving section, keeping the rest (gpu.bench.write_section)."""
    bench.write_section(doc, SERVING_MARKER, section)


def read_results(path: Path) -> list[ServingResult]:
    if not path.exists():
        return []
    return [ServingResult(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def print_table(results: Sequence[ServingResult], *, tiny: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Darkroom serving benchmark: batching", caption=TINY_NOTICE if tiny else None)
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i < 5 or i == len(HEADERS) - 1 else "right")
    groups = _groups(results)
    for rows in groups.values():
        for r in rows:
            table.add_row(*result_cells(r, rows))
    console = Console(width=240)
    console.print(table)
    for (model, _run), rows in groups.items():
        console.print(choice_line(model, rows), markup=False, highlight=False)


# --- running ---------------------------------------------------------------------------------------------------------


def _ints(text: str, flag: str) -> list[int]:
    values = [int(v) for v in str(text).split(",") if v.strip()]
    if not values or min(values) < (0 if flag == "--wait-ms" else 1):
        raise ValueError(f"{flag}: comma-separated {'non-negative' if flag == '--wait-ms' else 'positive'} "
                         f"integers, not {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The serving sweep's flags."""
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)),
                        help="concurrent clients, comma-separated (default 1,2,4)")
    parser.add_argument("--requests", type=int, help="requests per client, one after another (default 4 on CUDA, "
                                                     "2 without)")
    parser.add_argument("--batch-sizes", dest="batch_images", default=",".join(map(str, BATCH_IMAGES)),
                        help="batched policies' max_images, comma-separated (default 2,4)")
    parser.add_argument("--wait-ms", dest="wait_ms", help="batched policies' wait windows in ms, comma-separated "
                                                          f"(default 0 and {WINDOW_FRACTION:.0%}% of the unbatched "  # %% in argparse
                                                          "lone request's p50)")
    parser.add_argument("--window-fraction", type=float, default=WINDOW_FRACTION,
                        help="the short window as a share of the unbatched lone p50 (default %(default)s)")
    parser.add_argument("--jsonl", dest="serving_jsonl", type=Path,
                        help="append each serving row to this file; the report is rendered from it")


def check_args(args: argparse.Namespace) -> None:
    """ValueError for a malformed serving flag (--clients, --batch-images, --wait-ms, --requests)."""
    _ints(args.clients, "--clients")
    _ints(args.batch_images, "--batch-sizes")
    if args.wait_ms:
        _ints(args.wait_ms, "--wait-ms")
    if args.requests is not None and args.requests < 1:
        raise ValueError("--requests: a positive integer")


def _build(model: ModelSpec, device: str, dtype: str, seed: int) -> Any:
    from gpu import full_size, pipelines

    built = full_size.pipeline(model, device=device, dtype=dtype, seed=seed) if device == "cuda" else \
        full_size.tiny_pipeline(model)
    family = pipelines.family_spec(model.family)
    if family.base == model.family:
        return built.pipe
    return pipelines.derive(pipelines._pipeline_class(model.family), built.pipe)


def run(models: Sequence[ModelSpec], args: argparse.Namespace) -> int:
    """The sweep for each model (`sweep`), printed; on CUDA appended to --serving-jsonl and written into
    args.out's serving section (unless --no-write). With --report-only: that section rewritten from
    --serving-jsonl's full-size rows, running nothing. Reads args.clients, requests, batch_images, wait_ms,
    window_fraction, serving_jsonl (add_arguments) and sizes, steps, frames, seed, out, no_write, report_only."""
    import torch

    out = Path(getattr(args, "out", None) or bench.DEFAULT_OUT)
    jsonl = getattr(args, "serving_jsonl", None)
    if getattr(args, "report_only", False):
        if not jsonl or not Path(jsonl).exists():
            print("--report-only renders --serving-jsonl FILE (a CUDA run's rows); give an existing file",
                  file=sys.stderr)
            return 2
        rows = [r for r in read_results(Path(jsonl)) if r.scale == "full"]
        write_section(out, section_markdown(rows))
        print(f"wrote {out} from {len(rows)} full-size serving rows of {jsonl}")
        return 0

    from gpu import full_size

    device, dtype = ("cuda", "bfloat16") if torch.cuda.is_available() else ("cpu", "float32")
    tiny = device != "cuda"
    if tiny:
        print(TINY_NOTICE, file=sys.stderr, flush=True)
    print(full_size.NOISE, file=sys.stderr, flush=True)
    machine = bench.full_size_machine(device, dtype)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    clients = _ints(args.clients, "--clients")
    batch_images = _ints(args.batch_images, "--batch-sizes")
    wait_ms = _ints(args.wait_ms, "--wait-ms") if getattr(args, "wait_ms", None) else None
    requests = args.requests or (2 if tiny else 4)
    shape_args = argparse.Namespace(sizes=getattr(args, "sizes", None), steps=getattr(args, "steps", None),
                                    frames=getattr(args, "frames", None))
    results: list[ServingResult] = []

    def emit(result: ServingResult) -> None:
        result.run, result.machine = stamp, machine
        print(" | ".join(result_cells(result, results + [result])), file=sys.stderr, flush=True)
        if jsonl:
            Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
            with Path(jsonl).open("a") as f:
                f.write(bench.jsonl_line(result))

    for model in models:
        size, steps, frames = bench.full_size_shape(model, shape_args, on_gpu=not tiny)
        stage = "build"
        try:
            pipe = _build(model, device, dtype, getattr(args, "seed", 0) or 0)
            stage = "warm up"
            warm_up(pipe, model, size=size, steps=steps, frames=frames, largest=max(batch_images), device=device)
        except Exception as exc:  # noqa: BLE001 - a model that cannot be built or run is a row that says why
            failed = ServingResult(model=model.id, scale="tiny" if tiny else "full", max_images=1, wait_ms=0,
                                   clients=1, width=size[0], height=size[1], steps=steps, frames=frames,
                                   note=f"failed to {stage}: {bench._first_line(exc)}")
            pipe = None
            bench._free(device)
            emit(failed)
            results.append(failed)
            continue

        def keep(result: ServingResult) -> None:
            emit(result)
            results.append(result)

        sweep(pipe, model, size=size, steps=steps, frames=frames, clients=clients, requests=requests,
              batch_images=batch_images, wait_ms=wait_ms, window_fraction=args.window_fraction, device=device,
              emit=keep)
        del pipe
        bench._free(device)
    print_table(results, tiny=tiny)
    if not tiny and not getattr(args, "no_write", False):
        everything = read_results(Path(jsonl)) if jsonl else results
        write_section(out, section_markdown([r for r in everything if r.scale == "full"]))
        print(f"wrote {out}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked through (check_args, and the catalog ids as `model_specs`); errors exit 2."""
    parser = argparse.ArgumentParser(prog="python -m gpu.bench_serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="flux-schnell", help="comma-separated catalog ids (default flux-schnell)")
    parser.add_argument("--sizes", help="WIDTHxHEIGHT (default: 1024x1024 or the video default on CUDA, "
                                        f"{bench.TINY_IMAGE[0]}x{bench.TINY_IMAGE[1]} without)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's on CUDA, 2 without)")
    parser.add_argument("--frames", type=int, help="video frames (default: the model's clip on CUDA)")
    parser.add_argument("--seed", type=int, default=0, help="the random weights' seed")
    add_arguments(parser)
    parser.add_argument("--report-only", action="store_true", help="rewrite the serving section from --jsonl's "
                                                                   "full-size rows, running nothing")
    parser.add_argument("--out", type=Path, default=bench.DEFAULT_OUT, help="markdown report path")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    catalog = get_catalog()
    args.model_specs = [catalog.model(m) for m in args.models.split(",")]
    if None in args.model_specs:
        parser.error(f"unknown model in {args.models!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for quiet in ("DIFFUSERS_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        os.environ.setdefault(quiet, "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return run(args.model_specs, args)


if __name__ == "__main__":
    raise SystemExit(main())
