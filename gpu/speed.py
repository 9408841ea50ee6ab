"""A model's speed settings (functions/core/catalog.py, SpeedSettings) applied to its loaded pipeline.

`apply` runs once per loaded base pipeline, after it is on its device (pipelines derived from it share its modules,
so they share what was applied). It returns, for each setting that is on, what was applied or why it fell back, so
nothing is skipped in silence: {"quantize": "fp8 unavailable on cpu: float32 kept", "compile": "regional: ..."}.

The order follows what each step needs of the others (diffusers 0.42.1's source):
1. quantize: torchao's `quantize_` swaps the Linear weights for fp8 tensor subclasses in place; whatever is compiled
   must trace those, so it comes first (torchao's and diffusers' guides quantize, then compile). "fp8" also casts
   each activation to fp8 and multiplies in fp8 (torch._scaled_mm: compute capability 8.9+); "fp8_weight_only"
   dequantizes the weights for a matmul in the model's dtype, so it halves weight memory on any device.
2. attention: `set_attention_backend` sets `_attention_backend` on each processor, which the dispatcher reads when
   the forward runs (and dynamo when it traces): before compile. The first of the setting's backends for this GPU
   that loads (gpu/attention_kernels.py: a package, or a Hub kernel the image build fetched) is the one set.
3. cache: `enable_cache` registers hooks (diffusers.hooks.HookRegistry) that replace the forward of the denoiser's
   blocks. `compile_repeated_blocks` / `Module.compile` wrap the module's call, which then runs the hooked forward,
   so the hooks must exist before the first compiled call; their data-dependent branches (skip or compute a step)
   break graphs, so with a cache the compile is not fullgraph.
4. vae_tiling, channels_last: independent of the rest (the VAE is not compiled); channels_last before compile so
   the traced convolutions see the layout they will run with.
5. lora_hotswap: the empty LoRA slots (gpu/loras.py, prepare_hotswap) wrap the denoiser's linear layers, which
   changes the modules compile traces: before compile, so that swapping adapters in later never recompiles.
6. compile last. It is lazy: the first call compiles (a container's warm-up), and a failure shows there, not here.

Importing this module is cheap: torch and diffusers are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from functions.core.catalog import CacheSettings, LoraHotswap, SpeedSettings

# The base families whose denoiser diffusers' FLUX_MAG_RATIOS were measured on (MagCache without mag_ratios).
_FLUX_MAG_FAMILIES = frozenset({"flux"})


def denoisers(pipe: Any) -> list[tuple[str, Any]]:
    """The pipeline's denoisers, by component name: the transformer or UNet (and Wan A14B's second expert)."""
    return [(name, module) for name in ("transformer", "transformer_2", "unet")
            if (module := getattr(pipe, name, None)) is not None]


def apply(pipe: Any, family: str, settings: SpeedSettings | None, device: str, *,
          unscoped: Sequence[str] = ()) -> dict[str, str]:
    """Apply `settings` to `pipe` (on `device`, its modules already there; `family` its base family; `unscoped` the
    pipelines of its pool that make two denoiser passes a step without naming their cache context, which diffusers'
    cache hooks would confuse: a cache is refused for them). Returns what each non-default setting did, or why it
    fell back."""
    if settings is None or settings.is_default:
        return {}
    report: dict[str, str] = {}
    models = denoisers(pipe)
    if settings.quantize != "none":
        report["quantize"] = _quantize(models, settings.quantize, device)
    if settings.attention != "native":
        report["attention"] = _attention(models, settings.attention, device)
    if settings.cache is not None:
        report["cache"] = _cache(models, settings.cache, family, unscoped)
    if settings.vae_tiling:
        report["vae_tiling"] = _vae_tiling(pipe)
    if settings.channels_last:
        report["channels_last"] = _channels_last(pipe, models)
    if settings.lora_hotswap is not None:
        report["lora_hotswap"] = _lora_hotswap(pipe, family, settings.lora_hotswap)
    if settings.compile != "none":
        cached = settings.cache is not None and not report["cache"].endswith(": none")
        report["compile"] = _compile(models, settings.compile, device, fullgraph=not cached)
    return report


def turn_off(pipe: Any) -> list[str]:
    """Take off the settings that can come off a loaded pipeline without reloading it, after it failed with them
    (worker.warm_up): its denoisers' cache hooks, compiled calls and attention backend. Returns the settings taken
    off. fp8 weights and hot-swap slots stay: they come off only with a reload."""
    off = []
    for _, module in denoisers(pipe):
        if getattr(module, "is_cache_enabled", False):
            module.disable_cache()
            off.append("cache")
        compiled = [m for m in module.modules() if getattr(m, "_compiled_call_impl", None) is not None]
        for submodule in compiled:  # what Module.compile set (compile_repeated_blocks compiles each block so)
            submodule._compiled_call_impl = None
        if compiled:
            off.append("compile")
        dispatched = [m.processor for m in module.modules()
                      if getattr(getattr(m, "processor", None), "_attention_backend", None) not in (None, "native")]
        if dispatched and hasattr(module, "reset_attention_backend"):
            module.reset_attention_backend()
            off.append("attention")
    return list(dict.fromkeys(off))


def _dtype(module: Any) -> str:
    param = next(module.parameters(), None)
    return str(param.dtype).removeprefix("torch.") if param is not None else "unknown dtype"


# torchao's config for each quantize setting, and whether it runs fp8 matmuls (which need the hardware).
_TORCHAO_CONFIGS = {
    "fp8": ("Float8DynamicActivationFloat8WeightConfig", True),
    "fp8_weight_only": ("Float8WeightOnlyConfig", False),
}


FP8_MATMUL_MULTIPLE = 16  # torch._scaled_mm's constraint on both dimensions of a weight


def _cuda_capability(device: str) -> tuple[int, int] | None:
    """The compute capability of `device`, or None when it is not a CUDA device this process can use."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability(torch.device(device))


def _fp8_matmul_missing(device: str) -> str | None:
    """Why `device` cannot run fp8 matmuls (torch._scaled_mm), or None when it can."""
    capability = _cuda_capability(device)
    if capability is None:
        return f"unavailable on {device}"
    if capability < (8, 9):
        return f"unavailable on compute capability {capability[0]}.{capability[1]} (needs 8.9+)"
    return None


def _quantize(models: list[tuple[str, Any]], mode: str, device: str) -> str:
    kept = ", ".join(sorted({_dtype(m) for _, m in models})) or "nothing"
    if not models:
        return f"{mode}: no denoiser to quantize: none"
    config_name, needs_fp8_matmul = _TORCHAO_CONFIGS[mode]
    if needs_fp8_matmul and (missing := _fp8_matmul_missing(device)):
        return f"{mode} {missing}: {kept} kept"
    if importlib.util.find_spec("torchao") is None:
        return f"{mode} unavailable: torchao not installed: {kept} kept"
    from torchao import quantization

    config_cls = getattr(quantization, config_name, None)
    if config_cls is None:
        return f"{mode} unavailable: this torchao has no {config_name}: {kept} kept"
    import torch

    def fits(module: Any, _name: str = "") -> bool:
        # fp8 matmuls (torch._scaled_mm) take only dimensions that are multiples of 16: other layers stay as they are
        return isinstance(module, torch.nn.Linear) and (
            not needs_fp8_matmul or (module.in_features % FP8_MATMUL_MULTIPLE == 0
                                     and module.out_features % FP8_MATMUL_MULTIPLE == 0))

    counts = []
    for name, module in models:
        linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        quantized = sum(fits(m) for m in linears)
        # set_inductor_config=False: torchao would otherwise turn on inductor's coordinate-descent tuning for the
        # whole process, which makes every later compile (this model's, the warm-up's) far slower
        quantization.quantize_(module, config_cls(set_inductor_config=False), filter_fn=fits)
        counts.append(f"{name} ({quantized} of {len(linears)} linear layers"
                      + (f"; {len(linears) - quantized} not multiples of {FP8_MATMUL_MULTIPLE} kept" if
                         quantized < len(linears) else "") + ")")
    return f"{mode} (torchao {config_name}) on {', '.join(counts)}, computing in {kept}"


@contextlib.contextmanager
def _process_default_kept():
    """`set_attention_backend` also makes its backend the process's default (diffusers' _AttentionBackendRegistry),
    which every processor without a backend of its own then runs: other models' in this process, and this model's
    once `turn_off` resets them. Put back, a setting stays on the model that names it."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    default = _AttentionBackendRegistry._active_backend
    try:
        yield
    finally:
        _AttentionBackendRegistry.set_active_backend(default)


def _attention(models: list[tuple[str, Any]], setting: str, device: str) -> str:
    """The first backend of `setting` (gpu/attention_kernels.py: best first for this GPU) that every denoiser with
    dispatchable attention takes; what each one tried lacked, when none does."""
    from gpu import attention_kernels

    capability = _cuda_capability(device)
    if capability is None:
        return f"{setting} needs a CUDA device, not {device}: native"
    dispatchable, refused = [], []
    for name, module in models:
        if hasattr(module, "set_attention_backend") and any(
                hasattr(getattr(m, "processor", None), "_attention_backend") for m in module.modules()):
            dispatchable.append((name, module))
        else:
            refused.append(f"{name} ({type(module).__name__}) has no dispatchable attention processors")
    tried = []
    for backend in attention_kernels.candidates(setting, capability) if dispatchable else ():
        if why := attention_kernels.missing(backend):
            tried.append(f"{backend.name}: {why}")
            continue
        try:
            with _process_default_kept():
                for _, module in dispatchable:
                    module.set_attention_backend(backend.name)
        except Exception as exc:  # noqa: BLE001 - diffusers' requirement checks, and a Hub kernel's load: not in the
            # cache (FileNotFoundError), no build for this GPU or torch (ValueError), its own imports (ImportError)
            for _, module in dispatchable:
                module.reset_attention_backend()
            tried.append(f"{backend.name}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
            continue
        source = f"{'/'.join(map(str, attention_kernels.hub_kernel(backend)))} from the Hub" if backend.from_hub \
            else backend.package
        applied = ", ".join(name for name, _ in dispatchable)
        return (f"{setting}: {backend.kernel} ({backend.name}, {source}) on {applied}"
                + (f" (native: {'; '.join(refused)})" if refused else ""))
    if dispatchable and not tried:
        tried.append(f"no {setting} kernel for compute capability {capability[0]}.{capability[1]}")
    return f"{setting} unavailable: {'; '.join(refused + tried)}: native"


def cache_config(cache: CacheSettings, family: str) -> tuple[Any, str]:
    """The diffusers config for `cache`, and a note on what it was given; ValueError when it cannot be made."""
    from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

    options = cache.options()
    if cache.kind == "first_block":
        return FirstBlockCacheConfig(**options), ""
    if cache.kind == "taylorseer":
        return TaylorSeerCacheConfig(**options), ""
    note = ""
    if options.get("mag_ratios") is None:
        if family not in _FLUX_MAG_FAMILIES:
            raise ValueError(f"magcache needs mag_ratios for {family} (diffusers ships FLUX.1's only)")
        from diffusers.hooks.mag_cache import FLUX_MAG_RATIOS

        options["mag_ratios"] = FLUX_MAG_RATIOS
        note = ", FLUX_MAG_RATIOS"
    else:
        options["mag_ratios"] = list(options["mag_ratios"])
    config = MagCacheConfig(**options)
    return config, f"{note}, laid out for {config.num_inference_steps} steps"


# Cache hooks diffusers 0.42.1 registers on a denoiser but cannot run, by (kind, denoiser class): found by
# `python -m gpu.bench --full-size --variant each` over every family; tests/gpu/test_speed_settings.py runs each
# one unguarded to prove it still fails (an entry diffusers has fixed fails that test).
_CACHE_BREAKS = {
    ("first_block", "Flux2Transformer2DModel"): (
        "diffusers' First Block Cache takes the residual of its first block (double-stream: two tensors) from its "
        "last (single-stream: one), a TypeError at the first step"),
}


def cache_refusal(kind: str, denoiser: Any) -> str | None:
    """Why diffusers' `kind` cache cannot go on `denoiser` (a module, or its class), or None when it can."""
    cls = denoiser if isinstance(denoiser, type) else type(denoiser)
    if not hasattr(cls, "enable_cache"):
        return "no cache hooks"
    return _CACHE_BREAKS.get((kind, cls.__name__))


def _cache(models: list[tuple[str, Any]], cache: CacheSettings, family: str, unscoped: Sequence[str]) -> str:
    from functions.core.errors import describe

    try:
        config, note = cache_config(cache, family)
    except ValueError as exc:
        return f"{cache.kind}: {exc}: none"
    applied, refused = [], []
    for name, module in models:
        why = cache_refusal(cache.kind, module)
        if why:
            refused.append(f"{name} ({type(module).__name__}): {why}")
        elif unscoped:
            refused.append(f"{name}: {', '.join(unscoped)} run two passes a step without naming the cache context")
        else:
            try:
                module.enable_cache(config)
            except Exception as exc:  # noqa: BLE001 - a model the hook cannot find its blocks in (ValueError, IndexError)
                with contextlib.suppress(Exception):  # hooks registered before the failure come off again
                    module.disable_cache()
                refused.append(f"{name}: {describe(exc).splitlines()[0]}")
                continue
            applied.append(name)
    knobs = ", ".join(f"{k}={v}" for k, v in sorted(cache.options().items()) if k != "mag_ratios")
    if not applied:
        return f"{cache.kind}: {'; '.join(refused)}: none"
    return (f"{cache.kind} ({knobs or 'diffusers defaults'}{note}) on {', '.join(applied)}"
            + (f" (none: {'; '.join(refused)})" if refused else ""))


def _lora_hotswap(pipe: Any, family: str, hotswap: LoraHotswap) -> str:
    from gpu import loras

    try:
        return loras.prepare_hotswap(pipe, family, hotswap.rank, hotswap.slots)
    except ValueError as exc:  # no LoRA loader, no linear layer: adapters then load and unload (and recompile)
        return f"{exc}: load and unload"


def _vae_tiling(pipe: Any) -> str:
    vae = getattr(pipe, "vae", None)
    if vae is None or not hasattr(vae, "enable_tiling"):
        return f"{type(vae).__name__ if vae is not None else 'no VAE'} cannot tile: none"
    vae.enable_tiling()
    return f"{type(vae).__name__}.enable_tiling()"


def _channels_last(pipe: Any, models: list[tuple[str, Any]]) -> str:
    """Channels-last for the modules with 2-D convolutions only (Module.to refuses it for a Conv3d's 5-D weights;
    a transformer has no convolution for it to help)."""
    import torch

    candidates = [*models, ("vae", getattr(pipe, "vae", None))]
    applied, skipped = [], []
    for name, module in candidates:
        if module is None:
            continue
        # isinstance, not type: Qwen-Image's and Wan's VAEs subclass Conv3d (causal convolutions).
        convolutions = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Conv3d)]
        if convolutions and not any(isinstance(m, torch.nn.Conv3d) for m in convolutions):
            module.to(memory_format=torch.channels_last)
            applied.append(name)
        else:
            skipped.append(name)
    if not applied:
        return f"no module with 2-D convolutions only ({', '.join(skipped)}): none"
    return f"on {', '.join(applied)}" + (f" (not {', '.join(skipped)}: no 2-D convolutions only)" if skipped else "")


def cxx_compiler() -> str | None:
    """The C++ compiler inductor builds CPU kernels with (torch._inductor.config.cpp.cxx), if there is one."""
    from torch._inductor import config

    names = [c for c in (config.cpp.cxx if isinstance(config.cpp.cxx, tuple) else (config.cpp.cxx,)) if c]
    return next((path for name in [*names, "g++", "c++", "clang++"] if (path := shutil.which(name))), None)


def _compile(models: list[tuple[str, Any]], mode: str, device: str, *, fullgraph: bool) -> str:
    if not models:
        return f"{mode}: no denoiser to compile: eager"
    if not device.startswith("cuda") and cxx_compiler() is None:
        return f"{mode}: no C++ compiler for inductor on {device}: eager"
    done = []
    for name, module in models:
        blocks = getattr(module, "_repeated_blocks", None)
        if mode == "regional" and blocks:
            module.compile_repeated_blocks(fullgraph=fullgraph)
            done.append(f"{name} regional ({', '.join(blocks)})")
        else:
            module.compile(fullgraph=fullgraph)
            why = f" ({type(module).__name__} names no repeated blocks)" if mode == "regional" else ""
            done.append(f"{name} full{why}")
    return "; ".join(done) + f", fullgraph={fullgraph}, compiled on the first call"
