"""Loading and running diffusers pipelines: the same code serves real weights and the tiny test ones.

Importing this module is cheap: torch and diffusers are imported inside the functions that need them.
"""

from __future__ import annotations

import secrets
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline
    from PIL.Image import Image

# Family -> diffusers class name; PIPELINE_CLASSES maps the same families to the classes themselves.
_FAMILY_CLASS_NAMES = {
    "sdxl": "StableDiffusionXLPipeline",  # sdxl-turbo, playground-v2
    "flux": "FluxPipeline",  # flux-schnell, flux-dev
}
# Families whose __call__ takes a classic negative_prompt (FluxPipeline's only acts with true_cfg_scale > 1).
_NEGATIVE_PROMPT_FAMILIES = {"sdxl"}
# Flux packs latents in 2x2 patches, so sizes must divide by 2 * vae_scale_factor (else it silently resizes).
_LATENT_PATCH = {"flux": 2}
_DTYPES = {"float32", "float16", "bfloat16"}
FAMILIES: tuple[str, ...] = tuple(_FAMILY_CLASS_NAMES)


def __getattr__(name: str) -> Any:
    # PIPELINE_CLASSES is built on first access (PEP 562) so importing this module stays cheap.
    if name == "PIPELINE_CLASSES":
        classes = {family: _pipeline_class(family) for family in _FAMILY_CLASS_NAMES}
        globals()[name] = classes  # later lookups find a plain module attribute
        return classes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    PIPELINE_CLASSES: dict[str, type]


def _pipeline_class(family: str) -> type:
    if family not in _FAMILY_CLASS_NAMES:
        raise ValueError(f"unknown pipeline family {family!r}; known: {sorted(_FAMILY_CLASS_NAMES)}")
    import diffusers

    return getattr(diffusers, _FAMILY_CLASS_NAMES[family])


_CacheKey = tuple[str, str, str, str]
_cache: dict[_CacheKey, DiffusionPipeline] = {}
_load_locks: dict[_CacheKey, threading.Lock] = {}
# A pipeline's scheduler holds per-call state, so two threads must never run the same pipeline at once.
_run_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def load_pipeline(
    family: str, source: str | Path, *, device: str = "cpu", dtype: str = "float32"
) -> DiffusionPipeline:
    """Load (once per process) the `family` pipeline from a local dir or a Hub repo id.

    Cached on (family, source, device, dtype). Thread-safe: concurrent callers of the same key wait for
    one load; different keys load in parallel.
    """
    cls = _pipeline_class(family)
    if dtype not in _DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    key = (family, str(source), device, dtype)
    with _guard:
        if key in _cache:
            return _cache[key]
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:
        if key in _cache:  # loaded by the thread we waited for
            return _cache[key]
        import torch

        kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}  # diffusers 0.42 deprecates torch_dtype
        if Path(source).is_dir():
            kwargs["local_files_only"] = True
        pipe = cls.from_pretrained(source, **kwargs)
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        with _guard:
            _cache[key] = pipe
        return pipe


def remember(family: str, source: str | Path, device: str, dtype: str, pipe: "DiffusionPipeline") -> None:
    """Put an already loaded pipeline in the cache (the Modal class loads on CPU, then moves it to the GPU)."""
    with _guard:
        _cache[(family, str(source), device, dtype)] = pipe


def clear_cache() -> None:
    """Forget every loaded pipeline (tests; freeing memory)."""
    with _guard:
        _cache.clear()
        _load_locks.clear()


@dataclass
class GenerationRequest:
    prompt: str
    negative_prompt: str | None = None
    n: int = 1
    width: int = 1024
    height: int = 1024
    steps: int = 4
    guidance: float | None = None  # None: the pipeline's own default
    seed: int | None = None  # None: a random seed, returned by generate()


def size_multiple(pipe: DiffusionPipeline, family: str) -> int:
    """What width and height must be multiples of for this pipeline (8 for SDXL, 16 for Flux)."""
    return int(getattr(pipe, "vae_scale_factor", 8)) * _LATENT_PATCH.get(family, 1)


def generate(
    pipe: DiffusionPipeline,
    family: str,
    req: GenerationRequest,
    *,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[list[Image], int]:
    """Run `req.n` images as one batch; return (images, seed used).

    Deterministic for a given seed: the initial noise comes from a CPU generator, which gives the same
    numbers on every device. `on_step(done, total)` is called after each denoising step.
    """
    multiple = size_multiple(pipe, family)
    if req.width <= 0 or req.height <= 0 or req.width % multiple or req.height % multiple:
        raise ValueError(
            f"width and height must be positive multiples of {multiple} for {family}, "
            f"got {req.width}x{req.height}"
        )
    if req.n < 1:
        raise ValueError(f"n must be at least 1, got {req.n}")
    if req.steps < 1:
        raise ValueError(f"steps must be at least 1, got {req.steps}")

    import torch

    seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
    kwargs: dict[str, Any] = {
        "prompt": req.prompt,
        "num_images_per_prompt": req.n,
        "width": req.width,
        "height": req.height,
        "num_inference_steps": req.steps,
        "generator": torch.Generator(device="cpu").manual_seed(seed),
        "output_type": "pil",
    }
    if req.guidance is not None:
        kwargs["guidance_scale"] = req.guidance
    if req.negative_prompt and family in _NEGATIVE_PROMPT_FAMILIES:
        kwargs["negative_prompt"] = req.negative_prompt
    if on_step is not None:

        def _callback(p: Any, i: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            # num_timesteps is set by the pipeline before its loop; it can differ from steps.
            on_step(i + 1, getattr(p, "num_timesteps", None) or req.steps)
            return tensors  # diffusers expects the (possibly modified) tensors back

        kwargs["callback_on_step_end"] = _callback

    with _run_lock(pipe), torch.inference_mode():
        images = pipe(**kwargs).images
    return list(images), seed


def _run_lock(pipe: Any) -> threading.Lock:
    with _guard:
        lock = _run_locks.get(pipe)
        if lock is None:
            lock = _run_locks[pipe] = threading.Lock()
        return lock
