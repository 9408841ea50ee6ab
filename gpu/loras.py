"""Per-request LoRA adapters: a content-addressed file cache, and applying adapters to a loaded pipeline for one call.

A request names its adapters (`Adapter`: a local .safetensors file, its sha256, a scale). `applied(pipe, family,
adapters)` loads them with diffusers' own loader (`load_lora_weights`, PEFT underneath), weights them with
`set_adapters`, and on exit removes every LoRA layer again (`unload_lora_weights`: PEFT puts each wrapped module's
original back, the very same parameters), so that the next call, with or without adapters, runs the pipeline
exactly as it was loaded: bit for bit. gpu.pipelines.generate holds the pipeline's run lock around all of it
(pipelines derived from one base share their modules, so they share their adapters too).

Two ways to apply them, chosen by the model's speed settings (functions/core/catalog.py, LoraHotswap):
- load and unload, the default: nothing about the pipeline is fixed in advance, so any adapter the family takes
  loads, on any component. Loading wraps modules in LoRA layers, which changes what torch.compile traced, so on a
  compiled denoiser each LoRA job would recompile.
- hot swap into slots (`prepare_hotswap`, for a compiled denoiser): while the model loads, before it is compiled,
  empty adapters (zero weights) wrap every linear layer of the denoiser; a request's adapters are copied into them
  with diffusers' `load_lora_weights(..., hotswap=True)` (PEFT's hotswap_adapter_from_state_dict underneath: a
  smaller rank is zero-padded, modules the adapter does not target are zeroed), scaled in place, and zeroed again
  after the job. The graph never changes, so nothing recompiles, and a job after a LoRA job runs exactly as on a
  fresh container. The slots bound what a request may bring: as many adapters as slots, each of at most the
  slots' rank, on the denoiser only (diffusers cannot hot-swap text-encoder LoRAs).

A LoRA in diffusers' format (`<component>.<module>.lora_A.weight`, `...lora_B.weight`) is checked against the
pipeline before anything is loaded: each component must be one the pipeline loads LoRAs into, each module must
exist there, and each low-rank pair must fit its shape; a LoRA made for another base fails with ValueError and
touches nothing. Other formats (kohya, ...) go through diffusers' conversion; any failure or unexpected key during
that load also raises ValueError, after removing what was loaded.

Importing this module is cheap: torch, diffusers and safetensors are imported inside the functions that use them.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu.model_io import MODEL_IO_LOCK

_SHA256 = re.compile(r"[0-9a-f]{64}")
SUFFIX = ".safetensors"


@dataclass(frozen=True)
class Adapter:
    """One LoRA of a request: a local .safetensors file, its content hash, and how strongly it applies."""

    path: Path
    sha256: str
    scale: float = 1.0


# ---- the file cache ----------------------------------------------------------------------------------------------


class LoraCache:
    """LoRA files stored by content hash (`<root>/<sha256>.safetensors`), at most `max_bytes` in all.

    Least recently used files are evicted first: `put` and `get` set a file's modification time (strictly
    increasing, so ties cannot reorder), and eviction removes the oldest. A file pinned by a running job
    (`pinned`) is never evicted; while pinned files alone exceed the bound, the cache stays over it until they are
    released (the next `put` evicts again). Writes are atomic (a temp file in `root`, then a rename), so readers,
    in this process or another, see a file whole or not at all. Thread-safe; pins count within this process only.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._pins: Counter[str] = Counter()
        self._clock = 0  # the last time stamp given (ns): each touch is later than every earlier one

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 (64 lowercase hex digits): {sha256!r}")
        return self.root / f"{sha256}{SUFFIX}"

    def get(self, sha256: str) -> Path | None:
        """The file with this content hash, marked as just used; None if it is not cached."""
        path = self.path(sha256)
        with self._lock:
            if not path.is_file():
                return None
            self._touch(path)
            return path

    def put(self, data: bytes) -> tuple[str, Path]:
        """Store `data` (a no-op but a touch if already stored); returns its sha256 and path. Evicts least recently
        used files (never a pinned one, nor this one) until the cache fits its bound."""
        if len(data) > self.max_bytes:
            raise ValueError(f"a LoRA of {len(data)} bytes does not fit a cache of {self.max_bytes} bytes")
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.path(sha256)
        with self._lock:
            if not path.is_file():
                fd, tmp = tempfile.mkstemp(prefix=f".{sha256}.", suffix=".tmp", dir=self.root)
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, path)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            self._touch(path)
            self._evict(keep=sha256)
        return sha256, path

    @contextmanager
    def pinned(self, sha256: str) -> Iterator[Path]:
        """The cached file, protected from eviction until the block ends (KeyError if it is not cached)."""
        with self._lock:
            path = self.get(sha256)
            if path is None:
                raise KeyError(f"LoRA {sha256} is not cached")
            self._pins[sha256] += 1
        try:
            yield path
        finally:
            with self._lock:
                self._pins[sha256] -= 1
                if self._pins[sha256] <= 0:
                    del self._pins[sha256]

    def total_bytes(self) -> int:
        with self._lock:
            return sum(size for _, _, size in self._entries())

    def _entries(self) -> list[tuple[int, str, int]]:
        """(last use in ns, sha256, size) of every cached file."""
        entries = []
        for path in self.root.glob(f"*{SUFFIX}"):
            sha256 = path.name[: -len(SUFFIX)]
            if not _SHA256.fullmatch(sha256):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed by another process
                continue
            entries.append((stat.st_mtime_ns, sha256, stat.st_size))
        return entries

    def _touch(self, path: Path) -> None:
        self._clock = max(time.time_ns(), self._clock + 1)
        os.utime(path, ns=(self._clock, self._clock))

    def _evict(self, keep: str) -> None:
        entries = sorted(self._entries())
        total = sum(size for _, _, size in entries)
        for _, sha256, size in entries:
            if total <= self.max_bytes:
                break
            if sha256 == keep or self._pins.get(sha256):
                continue
            (self.root / f"{sha256}{SUFFIX}").unlink(missing_ok=True)
            total -= size


# ---- applying adapters to a pipeline ------------------------------------------------------------------------------


def supports_lora(pipe_or_class: Any) -> bool:
    """Whether a pipeline (or pipeline class) has diffusers' LoRA loader."""
    return hasattr(pipe_or_class, "load_lora_weights")


def lora_components(pipe_or_class: Any) -> list[str]:
    """The components a LoRA file's keys may name (the prefix of `<component>.<module>.lora_A.weight`), in the
    loader's order. Wan's second expert (`transformer_2`) is loaded from `transformer.` keys, on request only
    (`load_into_transformer_2`), so it is not one of them."""
    return [name for name in getattr(pipe_or_class, "_lora_loadable_modules", []) if name != "transformer_2"]


# `<component>.<module path>.lora_A.weight`, `.lora_B.weight`, `.lora_B.bias` (PEFT's lora_bias).
_DIFFUSERS_KEY = re.compile(r"(?P<component>[A-Za-z0-9_]+)\.(?P<module>.+)\.(?P<part>lora_A\.weight|lora_B\.weight|"
                            r"lora_B\.bias)")


def check_fits(pipe: Any, family: str, path: Path) -> None:
    """ValueError unless the LoRA at `path`, if in diffusers' format, fits `pipe`: its components, modules and
    shapes. Reads the file's header only. A LoRA in another format is left to diffusers' conversion."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as e:  # not a safetensors file, truncated, ...
        raise ValueError(f"cannot read the LoRA {path.name}: {e}") from e
    if not shapes:
        raise ValueError(f"the LoRA {path.name} holds no weights")
    matches = {key: _DIFFUSERS_KEY.fullmatch(key) for key in shapes}
    if not all(matches.values()):
        return  # another format: diffusers converts it (or refuses) while loading
    allowed = [c for c in lora_components(pipe) if getattr(pipe, c, None) is not None]
    problems: list[str] = []
    for key, match in matches.items():
        assert match is not None
        component, module_path, part = match["component"], match["module"], match["part"]
        if component not in allowed:
            problems.append(f"{key}: {family} takes LoRAs on {allowed}, not on {component!r}")
            continue
        try:
            module = getattr(pipe, component).get_submodule(module_path)
        except AttributeError:
            problems.append(f"{key}: {family}'s {component} has no module {module_path!r}")
            continue
        problem = _shape_problem(module, part, shapes[key])
        if problem:
            problems.append(f"{key}: {problem}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"the LoRA {path.name} does not fit {family} (made for another model?): "
                         + "; ".join(problems[:3]) + more)


def _shape_problem(module: Any, part: str, shape: tuple[int, ...]) -> str | None:
    from torch import nn

    module = getattr(module, "base_layer", module)  # a module that already holds another adapter of this request
    if isinstance(module, nn.Linear):
        fan_in, fan_out = module.in_features, module.out_features
    elif isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        fan_in, fan_out = module.in_channels, module.out_channels
    else:
        return f"{type(module).__name__} takes no LoRA here"
    if part == "lora_A.weight" and (len(shape) < 2 or shape[1] != fan_in):
        return f"lora_A is {list(shape)}, the module takes {fan_in} inputs"
    if part == "lora_B.weight" and (len(shape) < 2 or shape[0] != fan_out):
        return f"lora_B is {list(shape)}, the module has {fan_out} outputs"
    if part == "lora_B.bias" and shape != (fan_out,):
        return f"lora_B's bias is {list(shape)}, the module has {fan_out} outputs"
    return None


class _Warnings(logging.Handler):
    """Collects diffusers' warnings while a LoRA loads (unexpected keys are only logged there)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _injected(pipe: Any, name: str) -> int:
    """How many modules of the pipeline hold LoRA layers of adapter `name`."""
    count = 0
    for component in getattr(pipe, "_lora_loadable_modules", []):
        model = getattr(pipe, component, None)
        if model is None:
            continue
        for module in model.modules():
            lora_a = getattr(module, "lora_A", None)
            if lora_a is not None and name in lora_a:
                count += 1
    return count


def remove_all(pipe: Any) -> None:
    """Remove every LoRA layer from the pipeline's LoRA-loadable components (their original modules go back)."""
    for component in getattr(pipe, "_lora_loadable_modules", []):
        model = getattr(pipe, component, None)
        if model is None:
            continue
        from peft.tuners.tuners_utils import BaseTunerLayer

        if not any(isinstance(m, BaseTunerLayer) for m in model.modules()) and not hasattr(model, "peft_config"):
            continue
        if hasattr(model, "unload_lora"):  # diffusers models
            model.unload_lora()
        else:  # transformers text encoders
            from diffusers.loaders.lora_base import _remove_text_encoder_monkey_patch

            _remove_text_encoder_monkey_patch(model)


@contextmanager
def applied(pipe: Any, family: str, adapters: list[Adapter] | tuple[Adapter, ...]) -> Iterator[float]:
    """Load `adapters` onto `pipe` for the block, weighted by their scales; yields the seconds loading took. On exit
    (or on any failure while loading) every LoRA layer is removed again. The caller holds the pipeline's run lock.

    ValueError: the pipeline has no LoRA loader, a scale is not finite, or a LoRA does not fit the pipeline.
    """
    if not adapters:
        yield 0.0
        return
    if not supports_lora(pipe):
        raise ValueError(f"{family} ({type(pipe).__name__}) takes no LoRA adapters")
    for adapter in adapters:
        if not math.isfinite(adapter.scale):
            raise ValueError(f"a LoRA scale must be finite, got {adapter.scale}")
    slots = hotswap_slots(pipe)
    if slots is not None:
        with _swapped_in(pipe, family, slots, adapters) as seconds:
            yield seconds
        return

    from diffusers.utils import logging as diffusers_logging


    names = [f"request_lora_{i}" for i in range(len(adapters))]
    started = time.perf_counter()
    try:
        remove_all(pipe)  # nothing should be left, but a job must never run on another's adapters
        for name, adapter in zip(names, adapters, strict=True):
            check_fits(pipe, family, Path(adapter.path))
            warnings = _Warnings()
            root = diffusers_logging.get_logger("diffusers")
            root.addHandler(warnings)
            try:
                with MODEL_IO_LOCK:  # the first load imports peft and diffusers' loader modules
                    pipe.load_lora_weights(str(adapter.path), adapter_name=name)
            except Exception as e:
                raise ValueError(f"the LoRA {Path(adapter.path).name} does not load into {family}: {e}") from e
            finally:
                root.removeHandler(warnings)
            unexpected = [m for m in warnings.messages if "unexpected keys" in m or "missing keys" in m]
            if unexpected:
                raise ValueError(f"the LoRA {Path(adapter.path).name} does not fit {family}: {unexpected[0][:500]}")
            if not _injected(pipe, name):
                raise ValueError(f"the LoRA {Path(adapter.path).name} has no weights for {family}'s "
                                 f"{lora_components(pipe)} (made for another model?)")
        pipe.set_adapters(names, adapter_weights=[float(a.scale) for a in adapters])
    except BaseException:
        remove_all(pipe)
        raise
    try:
        yield time.perf_counter() - started
    finally:
        remove_all(pipe)


# ---- hot swap into fixed slots (a compiled denoiser) ---------------------------------------------------------------

SLOT_PREFIX = "slot_"
_SLOTS_ATTRIBUTE = "_darkroom_lora_slots"  # on the denoiser module: pipelines derived from the base share it


@dataclass(frozen=True)
class Slots:
    """The empty adapters a denoiser holds for hot swap: their names (one per adapter a request may bring), their
    rank, and the component they are on."""

    names: tuple[str, ...]
    rank: int
    component: str


def hotswap_slots(pipe: Any) -> Slots | None:
    """The pipeline's hot-swap slots, if `prepare_hotswap` gave its denoiser some."""
    for component in lora_components(pipe):
        slots = getattr(getattr(pipe, component, None), _SLOTS_ATTRIBUTE, None)
        if slots is not None:
            return slots
    return None


def prepare_hotswap(pipe: Any, family: str, rank: int, count: int) -> str:
    """Give the pipeline's denoiser `count` empty adapters of rank `rank` on every linear layer, for `applied` to
    hot-swap request adapters into. Called once per loaded base pipeline, before its denoiser is compiled
    (gpu/speed.py). Returns what was done, for the speed report; ValueError if the pipeline cannot take them."""
    if count < 1 or rank < 1:
        raise ValueError(f"hot swap needs at least one slot of rank 1 or more, got {count} of rank {rank}")
    if not supports_lora(pipe):
        raise ValueError(f"{family} ({type(pipe).__name__}) takes no LoRA adapters")
    if hotswap_slots(pipe) is not None:
        raise ValueError(f"{family}'s denoiser already has hot-swap slots")
    component = next((c for c in lora_components(pipe) if c in ("transformer", "unet")
                      and getattr(pipe, c, None) is not None), None)
    if component is None:
        raise ValueError(f"{family} ({type(pipe).__name__}) loads no LoRA into a denoiser")
    denoiser = getattr(pipe, component)
    if getattr(denoiser, "peft_config", None):
        raise ValueError(f"{family}'s {component} already holds adapters {sorted(denoiser.peft_config)}")

    import torch
    from torch import nn


    with MODEL_IO_LOCK:  # the first use imports peft
        from peft import LoraConfig
        from peft.tuners.lora import LoraLayer
        from peft.utils.hotswap import _convert_scalings_to_tensor

    # Every linear layer, by its full path: a LoRA may target any of them (the attention projections, the MLPs,
    # the modulation and embedding layers), and a hot swap cannot add a layer the slots do not already wrap.
    targets = sorted(name for name, module in denoiser.named_modules() if isinstance(module, nn.Linear))
    if not targets:
        raise ValueError(f"{family}'s {component} has no linear layer to hold a LoRA")
    dtype = next(denoiser.parameters()).dtype
    names = tuple(f"{SLOT_PREFIX}{i}" for i in range(count))
    with MODEL_IO_LOCK:
        for name in names:
            # alpha = rank: scaling 1; a swapped-in adapter's own alpha / rank replaces it, module by module.
            denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets), adapter_name=name)
    denoiser.set_adapters(list(names), [1.0] * count)
    with torch.no_grad():
        for module in denoiser.modules():
            if isinstance(module, LoraLayer):
                for name in names:
                    for table in (module.lora_A, module.lora_B):
                        table[name].to(dtype=dtype)
    # A tensor, not a float, so that setting a request's scale (in place) does not change what dynamo guards on.
    _convert_scalings_to_tensor(denoiser)
    slots = Slots(names=names, rank=rank, component=component)
    _reset(denoiser, slots)
    setattr(denoiser, _SLOTS_ATTRIBUTE, slots)
    return f"{count} slot{'s' if count > 1 else ''} of rank {rank} on {component}'s {len(targets)} linear layers"


def _slot_layers(denoiser: Any, name: str) -> Iterator[Any]:
    from peft.tuners.lora import LoraLayer

    for module in denoiser.modules():
        if isinstance(module, LoraLayer) and name in module.lora_A:
            yield module


def _reset(denoiser: Any, slots: Slots) -> None:
    """Every slot back to what prepare_hotswap made: zero weights, scaling 1 (it then adds exactly nothing)."""
    import torch

    with torch.no_grad():
        for name in slots.names:
            for module in _slot_layers(denoiser, name):
                module.lora_A[name].weight.zero_()
                module.lora_B[name].weight.zero_()
                module.scaling[name].fill_(1.0)


def _rank(path: Path) -> int:
    """The largest rank of any low-rank pair in the file (its header only): the smaller dimension of each
    lora_A / lora_down matrix (diffusers', PEFT's and kohya's names)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        ranks = [f.get_slice(key).get_shape()[0] for key in f.keys()  # noqa: SIM118 (not a dict)
                 if (".lora_A." in key or ".lora_down." in key) and len(f.get_slice(key).get_shape()) >= 2]
    return max(ranks, default=0)


@contextmanager
def _hotswap_fixes() -> Iterator[None]:
    """Two corrections to PEFT 0.21.2's hot swap, for the length of one load (under MODEL_IO_LOCK; diffusers imports
    both functions from peft.utils.hotswap when it runs):
    - hotswap_adapter_from_state_dict looks up a module's rank and alpha patterns with the parameter's key
      (`...to_q.lora_A.slot_0.weight`), which no pattern names, so an adapter with per-module alphas (kohya's) would
      run with its default alpha everywhere. After the swap, each swapped module's scaling is set from the patterns
      looked up by its module path, as PEFT does when it loads an adapter plainly.
    - check_hotswap_configs_compatible refuses an adapter whose alpha pattern differs from the slot's, which the
      first fix makes right; it still refuses any other adapter type, and DoRA (a swap does not carry magnitudes).
    """
    from peft.utils import hotswap
    from peft.utils.other import get_pattern_key

    original_swap, original_check = hotswap.hotswap_adapter_from_state_dict, hotswap.check_hotswap_configs_compatible

    def check(config0: Any, config1: Any) -> None:
        if config0.peft_type != config1.peft_type:
            raise ValueError(f"a {config1.peft_type.value} adapter cannot replace a {config0.peft_type.value} one")
        if getattr(config1, "use_dora", False):
            raise ValueError("a DoRA adapter cannot be hot-swapped")

    def swap(model: Any, state_dict: dict[str, Any], adapter_name: str, config: Any, **kwargs: Any) -> None:
        original_swap(model, state_dict, adapter_name, config, **kwargs)
        suffix = f".{adapter_name}.weight"
        for module_path in {key.rsplit(".", 3)[0] for key in state_dict if key.endswith(suffix)}:
            rank = config.rank_pattern.get(get_pattern_key(config.rank_pattern.keys(), module_path), config.r)
            alpha = config.alpha_pattern.get(get_pattern_key(config.alpha_pattern.keys(), module_path),
                                             config.lora_alpha)
            scaling = alpha / math.sqrt(rank) if config.use_rslora else alpha / rank
            hotswap._update_scaling(model.get_submodule(module_path), adapter_name, float(scaling))

    hotswap.hotswap_adapter_from_state_dict, hotswap.check_hotswap_configs_compatible = swap, check
    try:
        yield
    finally:
        hotswap.hotswap_adapter_from_state_dict, hotswap.check_hotswap_configs_compatible = original_swap, original_check


@contextmanager
def _swapped_in(pipe: Any, family: str, slots: Slots, adapters: list[Adapter] | tuple[Adapter, ...]
                ) -> Iterator[float]:
    """`applied` for a pipeline with hot-swap slots: each adapter copied into a slot, its scale multiplied into the
    slot's scaling tensors in place; every slot zeroed again on exit or on any failure."""
    import torch
    from diffusers.utils import logging as diffusers_logging


    denoiser = getattr(pipe, slots.component)
    if len(adapters) > len(slots.names):
        raise ValueError(f"{family} takes at most {len(slots.names)} LoRA adapter{'s' if len(slots.names) > 1 else ''} "
                         f"at once (hot-swapped into its compiled {slots.component}), not {len(adapters)}")
    started = time.perf_counter()
    try:
        for name, adapter in zip(slots.names, adapters, strict=False):
            path = Path(adapter.path)
            check_fits(pipe, family, path)
            rank = _rank(path)
            if rank > slots.rank:
                raise ValueError(f"the LoRA {path.name} has rank {rank}; {family} hot-swaps adapters of rank "
                                 f"{slots.rank} at most")
            warnings = _Warnings()
            root = diffusers_logging.get_logger("diffusers")
            root.addHandler(warnings)
            try:
                with MODEL_IO_LOCK, _hotswap_fixes():
                    pipe.load_lora_weights(str(path), adapter_name=name, hotswap=True)
            except Exception as e:
                raise ValueError(f"the LoRA {path.name} does not hot-swap into {family}: {e}") from e
            finally:
                root.removeHandler(warnings)
            # diffusers only warns when a file holds nothing for a component; for the slots' it is a refusal.
            nothing = f"No LoRA keys associated to {type(denoiser).__name__}"
            refused = [m for m in warnings.messages if nothing in m or "unexpected keys" in m]
            if refused:
                raise ValueError(f"the LoRA {path.name} has no weights for {family}'s {slots.component} "
                                 f"(made for another model?): {refused[0][:300]}")
            with torch.no_grad():
                for module in _slot_layers(denoiser, name):
                    module.scaling[name].mul_(float(adapter.scale))
    except BaseException:
        _reset(denoiser, slots)
        raise
    try:
        yield time.perf_counter() - started
    finally:
        _reset(denoiser, slots)


# ---- fusing a model's built-in adapter -----------------------------------------------------------------------------

BUILTIN_NAME = "builtin"


def fuse(pipe: Any, family: str, path: Path, scale: float = 1.0) -> None:
    """Fuse the LoRA at `path` into `pipe`'s weights for good, at `scale` (a catalog model's built-in adapter,
    functions/core/catalog.py BuiltinAdapter): loaded with diffusers' loader, merged into the base layers
    (`fuse_lora`, with diffusers' NaN check), then its LoRA layers removed (`unload_lora_weights`), so that the
    pipeline runs at the base model's cost and a request's own adapters load on top of it as on any other (`applied`).

    Checked as a request's adapter is: ValueError, touching nothing, if it does not fit the pipeline or injects no
    layer (it would fuse nothing). Called once, while the pipeline loads, before anything else can use it."""
    if not supports_lora(pipe):
        raise ValueError(f"{family} ({type(pipe).__name__}) takes no LoRA adapters: it cannot have a built-in one")
    if not math.isfinite(scale):
        raise ValueError(f"a LoRA scale must be finite, got {scale}")

    from diffusers.utils import logging as diffusers_logging


    path = Path(path)
    check_fits(pipe, family, path)
    warnings = _Warnings()
    root = diffusers_logging.get_logger("diffusers")
    root.addHandler(warnings)
    try:
        try:
            with MODEL_IO_LOCK:  # the first load imports peft and diffusers' loader modules
                pipe.load_lora_weights(str(path), adapter_name=BUILTIN_NAME)
        except Exception as e:
            raise ValueError(f"the built-in LoRA {path.name} does not load into {family}: {e}") from e
        unexpected = [m for m in warnings.messages if "unexpected keys" in m or "missing keys" in m]
        if unexpected:
            raise ValueError(f"the built-in LoRA {path.name} does not fit {family}: {unexpected[0][:500]}")
        if not _injected(pipe, BUILTIN_NAME):
            raise ValueError(f"the built-in LoRA {path.name} has no weights for {family}'s {lora_components(pipe)}")
        pipe.fuse_lora(lora_scale=float(scale), safe_fusing=True, adapter_names=[BUILTIN_NAME])
        pipe.unload_lora_weights()
    except BaseException:
        remove_all(pipe)
        raise
    finally:
        root.removeHandler(warnings)
