"""torch.compile's work kept between containers: a compiled model's artifacts, saved once, loaded by every later
container instead of compiling again (torch's "mega-cache": `torch.compiler.save_cache_artifacts` and
`load_cache_artifacts`, which carry inductor's FX graph cache, its autotuning results and the compiled kernels).

A file per key, `<root>/<key>.bin`. The key names everything the compiled code depends on: the weights (pool), the
device (a GPU's name: kernels are tuned for it), the versions of the packages it traces, the speed settings, and the
shape the warm-up compiles for. Deployed, the root is a directory on the weights Volume (gpu/modal_app.py), so the
first container of a pool after a deploy compiles and saves, and every later one loads. Locally it is a directory
under the dev stack's cache.

Writes are atomic (a temp file, then a rename): a container never reads half a file. Importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

SUFFIX = ".bin"


def device_name(device: str) -> str:
    """What a compiled kernel is specific to: the GPU's model name, or the CPU's architecture."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu-{platform.machine()}"


# The packages whose code the compiled graphs trace: torch's own; diffusers' models and hooks; torchao's fp8 tensor
# subclasses (quantize); peft's LoRA layers (lora_hotswap's slots).
TRACED_PACKAGES = ("torch", "diffusers", "torchao", "peft")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def key(weights: str, speed_key: str, device: str, shape: dict[str, Any]) -> str:
    """The cache file's name for one compiled pipeline (a sha256 prefix of what it depends on)."""
    parts = {"weights": weights, "speed": speed_key, "device": device_name(device), "shape": shape,
             **{package: _version(package) for package in TRACED_PACKAGES}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def path(root: str | Path, cache_key: str) -> Path:
    return Path(root) / f"{cache_key}{SUFFIX}"


def load(file: Path) -> int:
    """Load the artifacts at `file` into this process's compile caches; their size in bytes (0: none saved yet)."""
    import torch

    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return 0
    torch.compiler.load_cache_artifacts(data)
    return len(data)


def save(file: Path) -> int:
    """Save what this process has compiled so far to `file`; its size in bytes (0: nothing was compiled)."""
    import torch

    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return 0
    data, _info = saved
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


def graph_counts() -> tuple[int, int]:
    """Inductor's FX graph cache (hits, misses) in this process so far: a miss is a graph compiled here."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["fxgraph_cache_hit"]), int(counters["inductor"]["fxgraph_cache_miss"])
