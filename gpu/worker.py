"""The runtime-agnostic GPU worker: resolve the model, load (cached), run, encode, upload, report.

The same code runs inside the Modal class (gpu/modal_app.py) and in the local stack's worker pool.
It reports through the results queue; the complete function applies the terminal state.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from functions.core import messages, storage
from functions.core.errors import TransitionRejected
from functions.core.jobs import JobError, JobStatus, JobStore, Output
from functions.core.observability import logger
from gpu import encode
from gpu.catalog import ModelSpec, get_catalog
from gpu.pipelines import GenerationRequest, generate, load_pipeline

# Progress writes are throttled: one DynamoDB update per this many seconds at most.
PROGRESS_INTERVAL = 1.0


def weights_source(model: ModelSpec) -> str | Path:
    """Where the model's weights are: tiny random ones (local default), a weights directory, or a hub id.

    DARKROOM_WEIGHTS=tiny (default outside Modal) builds and caches a tiny pipeline of the model's family;
    DARKROOM_WEIGHTS=/path/to/dir reads real weights from /path/to/dir/<repo> (the Modal Volume layout);
    DARKROOM_WEIGHTS=hub loads the repo id with the Hugging Face cache (a machine with internet).
    """
    setting = os.environ.get("DARKROOM_WEIGHTS", "tiny")
    if setting == "tiny":
        from gpu.tiny import ensure_tiny_pipeline

        cache = Path(os.environ.get("DARKROOM_DATA_DIR", ".darkroom")) / "models"
        return ensure_tiny_pipeline(model.family, cache)
    if setting == "hub":
        return model.repo
    return Path(setting) / model.repo


def device_and_dtype() -> tuple[str, str]:
    import torch

    if torch.cuda.is_available():
        return "cuda", "bfloat16"
    return "cpu", "float32"


def load(model: ModelSpec):
    """The model's pipeline on this machine's best device, loaded once per process."""
    device, dtype = device_and_dtype()
    return load_pipeline(model.family, weights_source(model), device=device, dtype=dtype)


def execute(request: messages.WorkRequest, store: JobStore) -> messages.ResultMessage:
    """Run the job and upload its outputs. Raises on failure; `run` turns that into a failed result."""
    model = get_catalog().model(request.model)
    if model is None:
        raise LookupError(f"model {request.model!r} is not in this worker's catalog")
    params = request.params
    timings: dict[str, float] = {}
    started = time.perf_counter()
    pipe = load(model)
    timings["load"] = time.perf_counter() - started

    last_report = [0.0]

    def on_step(step: int, total: int) -> None:
        now = time.monotonic()
        if step == total or now - last_report[0] >= PROGRESS_INTERVAL:
            last_report[0] = now
            store.record_progress(request.job_id, step, total)

    gen = GenerationRequest(
        prompt=params["prompt"], negative_prompt=params.get("negative_prompt"), n=params.get("n", 1),
        width=params["width"], height=params["height"], steps=params["steps"], guidance=params.get("guidance"),
        seed=params.get("seed"),
    )
    t0 = time.perf_counter()
    images, seed = generate(pipe, model.family, gen, on_step=on_step)
    timings["inference"] = time.perf_counter() - t0

    fmt = params.get("output_format", "png")
    outputs: list[Output] = []
    t0 = time.perf_counter()
    encoded = [(encode.encode_image(img, fmt, params.get("quality")), encode.make_thumbnail(img)) for img in images]
    timings["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for index, (data, thumb) in enumerate(encoded):
        key = storage.output_key(request.workspace_id, request.job_id, index, "jpg" if fmt == "jpeg" else fmt)
        thumb_key = storage.thumbnail_key(request.workspace_id, request.job_id, index)
        storage.put_bytes(key, data, encode.CONTENT_TYPES[fmt], bucket=request.bucket)
        storage.put_bytes(thumb_key, thumb, "image/jpeg", bucket=request.bucket)
        outputs.append(Output(key=key, thumbnail_key=thumb_key, content_type=encode.CONTENT_TYPES[fmt],
                              width=images[index].width, height=images[index].height))
    timings["upload"] = time.perf_counter() - t0
    return messages.ResultMessage(job_id=request.job_id, outcome="succeeded", outputs=outputs, seed=seed,
                                  timings={k: round(v, 4) for k, v in timings.items()})


def run(request: messages.WorkRequest) -> messages.ResultMessage | None:
    """Take the job (queued → running), execute it and report. None if the job was not ours to run."""
    store = JobStore(request.jobs_table)
    job = store.get(request.job_id)
    if job is None or job.status != JobStatus.QUEUED:
        logger.info("job not runnable", extra={"job_id": request.job_id, "status": job and job.status})
        return None
    try:
        job, applied = store.transition(job, JobStatus.RUNNING)
    except TransitionRejected:
        return None
    if not applied:
        return None  # another worker took it
    # The complete function turns this into the optional generation.started webhook.
    messages.send(request.results_queue_url, messages.ResultMessage(job_id=job.id, outcome="started"))
    try:
        result = execute(request, store)
    except Exception as exc:  # noqa: BLE001 - any failure becomes a failed job with a clear error
        logger.exception("generation failed", extra={"job_id": request.job_id})
        code = getattr(exc, "code", None) or "generation_failed"
        result = messages.ResultMessage(job_id=request.job_id, outcome="failed",
                                        error=JobError(code=code, message=f"{type(exc).__name__}: {exc}"))
    messages.send(request.results_queue_url, result)
    return result


def run_safely(request: messages.WorkRequest) -> None:
    """For thread pools: log instead of losing an exception in a Future nobody reads."""
    try:
        run(request)
    except Exception:  # noqa: BLE001
        logger.exception("worker crashed", extra={"job_id": request.job_id})
