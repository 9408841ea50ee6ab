"""Catalog models at their real size, with random weights: what `python -m gpu.bench --full-size` times.

Weights cannot be downloaded here, nor on the GPU machines the benchmark runs on, but a model's speed depends on
its architecture, sizes and dtypes, not on its weights' values. So each model is built from its real configs,
random-initialised on the GPU, and run through the worker's own pipeline code (gpu/pipelines.py: generate,
apply_speed, derive). Its outputs are noise; only the times count, and every report says so (NOISE).

How a full-size pipeline is put together (`pipeline`):

1. **The skeleton: the model's tiny pipeline** (gpu/tiny.py, `build_tiny`, in memory). It brings what holds no
   weights: the pipeline class, its scheduler (built as the real repo's scheduler_config), its pipeline config
   (Wan's expand_timesteps, boundary_ratio...), its tokenizers and processors. Tokenizers cannot be downloaded
   either; tiny.py builds them in code (byte-level BPE without merges for CLIP and Qwen, with the real chat
   templates and drop counts, a byte-level T5/UMT5 vocabulary...). A full-size pipeline needs nothing more
   of them: the text encoders' embedding tables take their shapes from the real configs (vocab_size), not
   from the tokenizer, and every id a small tokenizer emits is a valid row of the real table. Prompts
   tokenise into a few more tokens than the real tokenizers make (one per byte, about 50 for the bench's
   prompt against about 12), which costs the text encoder and the joint attention a few tokens in several
   thousand at 1024x1024: under 1% of a step. Pipelines that pad to max_sequence_length (FLUX.2, Z-Image,
   Wan's UMT5) see exactly the real sequence lengths. Token ids the text encoder's config names
   (`*_token_id`: image and vision tokens for Qwen-Image-Edit-Plus) are taken from the tiny tokenizer, whose
   ids they must match.
2. **Every weight-holding component at full size**: each config under gpu/model_configs/<owner>--<repo>/ (the
   published config.json, with its `_source`) is built by gpu/footprint.py's `build_component`, the code that
   checks every catalog model's memory, with its parameters on the meta device and its buffers real (rotary
   tables and position ids are computed by the class, not left random: a random position id would index out
   of bounds). No 12B-parameter model is ever initialised on the CPU.
3. **Random init on the device** (`materialize`): each parameter gets an uninitialised tensor on the device in
   its load dtype (bfloat16, except the modules a class keeps in float32 when loaded: `_keep_in_fp32_modules`,
   UMT5's `wo`, Wan's norms and time embedder), filled in place by one seeded normal_ on the device: mean 0,
   standard deviation fan_in**-0.5 for matrices (so activations neither vanish nor overflow bfloat16 through
   60 blocks), 0.02 for vectors (norm scales, biases). A 20B transformer fills in about a second on an H100.
   Tied parameters stay tied. Persistent floating buffers take the load dtype, as a checkpoint's would.
4. The pipeline is constructed from the skeleton's class with these components (as gpu.pipelines.derive does),
   so its derived attributes (VAE scale factors, latent channels) come from the real components.

What random weights do not reproduce: threshold-based denoiser caches (First Block Cache, TaylorSeer, MagCache)
skip steps according to how much the outputs change from step to step, which random weights do not model; their
rows time the hooks' cost and the steps they skipped on noise, not the skip rate of the real model. Everything
else (compile, fp8, attention backends, VAE tiling, batch sizes) costs what it costs on the real weights.

On a machine without CUDA there is no full size: the same harness runs the tiny pipelines (TINY_NOTICE), so the
stages, batch sizes and settings are exercised everywhere, and nothing it measures there is written into
docs/benchmarks.md.

Importing this module is cheap: torch, diffusers and transformers load in the functions that need them.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gpu import footprint
from gpu.model_io import MODEL_IO_LOCK

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline
    from torch import nn

    from functions.core.catalog import ModelSpec

# The must-haves (issue 23): the models the CUDA script runs first.
MUST_HAVE = ("flux2-klein", "z-image-turbo", "qwen-image", "wan2.2-ti2v-5b")

NOISE = "Outputs are noise: every weight is random; only the times count."
TINY_NOTICE = ("No CUDA device: --full-size runs at tiny size only (the tiny random-weight pipelines of gpu/tiny.py, "
               "at small sizes); these times say nothing of the full-size models' speed, and are not written to "
               "docs/benchmarks.md.")

VECTOR_STD = 0.02  # vectors: norm scales, biases, modulation tables


def keep_in_fp32(module: nn.Module) -> set[str]:
    """The module names a class keeps in float32 when loaded in a lower dtype (diffusers' and transformers'
    `_keep_in_fp32_modules`, and transformers' `_keep_in_fp32_modules_strict`)."""
    names: set[str] = set()
    for attr in ("_keep_in_fp32_modules", "_keep_in_fp32_modules_strict"):
        value = getattr(module, attr, None) or ()
        names.update([value] if isinstance(value, str) else value)
    return names


def _fill_(tensor: Any, generator: Any) -> None:
    """A seeded normal init in place: std fan_in**-0.5 for matrices and convolutions, VECTOR_STD for vectors."""
    if not tensor.is_floating_point():
        tensor.zero_()
        return
    if tensor.dim() >= 2:
        fan_in = tensor[0].numel()
        tensor.normal_(0.0, fan_in ** -0.5, generator=generator)
    else:
        tensor.normal_(0.0, VECTOR_STD, generator=generator)


def materialize(module: nn.Module, *, device: str, dtype: Any, seed: int = 0) -> nn.Module:
    """Give every parameter still on the meta device storage on `device`, in `dtype` (float32 for the modules the
    class keeps in float32), filled by a seeded normal init; move the buffers to `device`, persistent floating
    ones in `dtype`. In place; returns `module`. Tied parameters stay one parameter."""
    import torch

    fp32 = keep_in_fp32(module)
    # On the meta device (tests: the whole pipeline's shapes, no memory) there is nothing to fill.
    generator = None if device == "meta" else torch.Generator(device=device).manual_seed(seed)
    done: dict[int, torch.nn.Parameter] = {}
    with torch.no_grad():
        for prefix, sub in module.named_modules():
            path = prefix.split(".") if prefix else []
            for name, param in list(sub._parameters.items()):
                if param is None:
                    continue
                if id(param) in done:
                    sub._parameters[name] = done[id(param)]
                    continue
                target = torch.float32 if fp32 & {*path, name} else dtype
                if not param.is_floating_point():
                    target = param.dtype
                data = torch.empty(param.shape, dtype=target, device=device)
                if generator is not None:
                    _fill_(data, generator)
                new = torch.nn.Parameter(data, requires_grad=False)
                done[id(param)] = new
                sub._parameters[name] = new
            for name, buffer in list(sub._buffers.items()):
                if buffer is None:
                    continue
                if buffer.is_meta:  # a class that builds a buffer from a meta parameter: give it storage
                    real = torch.empty(buffer.shape, dtype=buffer.dtype, device=device)
                    if generator is not None:
                        _fill_(real, generator)
                    sub._buffers[name] = real
                    continue
                persistent = name not in sub._non_persistent_buffers_set
                cast = persistent and buffer.is_floating_point() and not (fp32 & {*path, name})
                sub._buffers[name] = buffer.to(device=device, dtype=dtype if cast else buffer.dtype)
    module.eval()
    module.requires_grad_(False)
    return module


def unmaterialized(module: nn.Module) -> list[str]:
    """The parameters and buffers of `module` still without storage (on the meta device): none once materialized."""
    tensors = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    return [name for name, tensor in tensors if tensor.is_meta]


def _text_encoder_ids(config: dict[str, Any], tiny: Any) -> dict[str, Any]:
    """`config` with the `*_token_id` values the tiny text encoder's config holds (its tokenizer's ids)."""
    tiny_config = getattr(tiny, "config", None)
    if tiny_config is None:
        return config
    ids = {k: v for k, v in tiny_config.to_dict().items() if k.endswith("_token_id") and k in config and v is not None}
    return {**config, **ids}


def build_component(repo: str, name: str, *, device: str, dtype: Any, seed: int = 0,
                    tiny: Any = None) -> nn.Module:
    """One component of `repo` at its real size (footprint.build_component on the meta device), materialized on
    `device` with random weights. `tiny`: the tiny pipeline's same component, whose token ids a text encoder takes."""
    config = footprint.component_configs(repo)[name]
    if "_class_name" not in config and tiny is not None:
        config = _text_encoder_ids(config, tiny)
    module = footprint.build_component(config, buffers=True, dtype=dtype)
    return materialize(module, device=device, dtype=dtype, seed=seed)


@dataclass
class Built:
    pipe: DiffusionPipeline
    seconds: float  # skeleton, meta build and random init, to the device
    parameters: dict[str, int] = field(default_factory=dict)  # per full-size component


def _construct(cls: type, components: dict[str, Any], config: Iterable[tuple[str, Any]]) -> Any:
    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in components.items() if k in params}
    kwargs.update({k: v for k, v in config if k in params and k not in kwargs and not k.startswith("_")})
    return cls(**kwargs)


def _inference_mode(pipe: Any) -> None:
    """As from_pretrained leaves a loaded pipeline: every module in eval mode (a module built from its config is in
    training mode, where the text encoders' dropout would draw new noise on every call: slower, and no two calls of
    one seed alike), and no progress bar."""
    import torch

    for value in pipe.components.values():
        if isinstance(value, torch.nn.Module):
            value.eval()
    pipe.set_progress_bar_config(disable=True)


def pipeline(model: ModelSpec, *, device: str, dtype: str = "bfloat16", seed: int = 0) -> Built:
    """`model`'s base pipeline at full size, with random weights, on `device` (see the module's docstring).
    ValueError if a weight-holding component of the pipeline has no real config in gpu/model_configs."""
    import torch

    from gpu import tiny

    torch_dtype = getattr(torch, dtype)
    start = time.perf_counter()
    skeleton = tiny.build_tiny(model.family)
    configs = footprint.component_configs(model.repo)
    components = dict(skeleton.components)
    missing = sorted(name for name, value in components.items()
                     if isinstance(value, torch.nn.Module) and name not in configs)
    if missing:
        raise ValueError(f"{model.repo}: no config under {footprint.config_dir(model.repo)} for {', '.join(missing)}")
    sizes = {}
    for index, name in enumerate(configs):
        module = build_component(model.repo, name, device=device, dtype=torch_dtype, seed=seed + index,
                                 tiny=components.get(name))
        components[name] = module
        sizes[name] = footprint.count_parameters(module)
    with MODEL_IO_LOCK:
        pipe = _construct(type(skeleton), components, skeleton.config.items())
    _inference_mode(pipe)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return Built(pipe=pipe, seconds=time.perf_counter() - start, parameters=sizes)


def tiny_pipeline(model: ModelSpec) -> Built:
    """The tiny pipeline of `model`'s family, in memory, on the CPU: what --full-size runs without CUDA."""
    import torch

    from gpu import tiny

    start = time.perf_counter()
    pipe = tiny.build_tiny(model.family)
    _inference_mode(pipe)
    sizes = {name: footprint.count_parameters(value) for name, value in pipe.components.items()
             if isinstance(value, torch.nn.Module)}
    return Built(pipe=pipe, seconds=time.perf_counter() - start, parameters=sizes)
