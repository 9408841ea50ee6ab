"""How much memory each catalog model's weights take, counted from the models' real configs.

Every weights pool in the catalog names its GPU and its container RAM (functions/core/catalog.yaml:
`gpu`, `memory_gib`). This module says whether they fit. It builds each component of a pipeline (the
transformer or UNet, the text encoders, the VAEs, an image encoder, LTX-2's audio VAE, vocoder and text
connectors) with its real class on PyTorch's meta device, from the config.json the published weights come
with (copied, each with where it was read, under gpu/model_configs/<owner>--<repo>/<component>/config.json).
Meta tensors have shapes but no storage: a 19B-parameter transformer is counted in seconds, nothing is
downloaded.

Sizes are in bfloat16 (2 bytes a parameter), the dtype gpu/pipelines.py loads. `fits` adds a working-memory
margin (WORKING_MEMORY_MARGIN of the weights: activations, attention, VAE decode, CUDA context) and compares
with the GPU's published memory. The margin is a floor, not a guarantee: long high-resolution videos may
need more.

Importing this module is cheap: torch, diffusers and transformers load in the functions that need them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu.model_io import MODEL_IO_LOCK

if TYPE_CHECKING:
    from torch import nn

CONFIG_ROOT = Path(__file__).with_name("model_configs")
BF16_BYTES = 2
GB = 10**9
GIB = 2**30

# Published memory of each GPU Modal offers, in GB as NVIDIA and Modal publish it: Modal's GPU guide
# (https://modal.com/docs/guide/gpu) and GPU list
# (https://mintlify.com/modal-labs/modal-client/configuration/gpu), NVIDIA's table in
# https://docs.nvidia.com/nim/large-language-models/1.7.0/supported-models.html (H200 141 GB, H100 80 GB,
# A100 80 GB, L40S 48 GB, A10G 24 GB). `fits` counts a GB as 10**9 bytes, at or below what each
# card exposes to CUDA (an 80 GB H100 reports about 79.6 GiB = 85.5e9 bytes, an L40S about 45 GiB = 48.3e9).
GPU_MEMORY_GIB: dict[str, int] = {
    "T4": 16,
    "L4": 24,
    "A10": 24,
    "A10G": 24,
    "L40S": 48,
    "A100": 40,  # Modal's "A100" is the 40 GB card
    "A100-40GB": 40,
    "A100-80GB": 80,
    "RTX-PRO-6000": 96,
    "H100": 80,
    "H100!": 80,
    "H200": 141,
    "B200": 180,
}

# Working memory on top of the weights, as a fraction of them: 20% covers the CUDA context and allocator
# slack, attention and activations at the catalog's default sizes and the VAE decode (tiled for video). A
# model whose activations grow past that (longer videos, larger batches) needs its own margin.
WORKING_MEMORY_MARGIN = 0.20

# Container RAM on top of the weights, as a fraction of them: the pipeline is held in RAM in bfloat16 before
# the memory snapshot (catalog.yaml, memory_gib), beside the Python process, torch and CUDA libraries and
# loading buffers (files stored in float32 are cast while they load).
RAM_MARGIN = 0.10

# Keys of a config.json that are provenance notes, not architecture (diffusers drops keys starting with "_").
_NOTE_KEYS = ("_source",)


def config_dir(repo: str) -> Path:
    return CONFIG_ROOT / repo.replace("/", "--")


def known_repos() -> list[str]:
    """The repos with configs here, as "owner/name"."""
    return sorted(d.name.replace("--", "/", 1) for d in CONFIG_ROOT.iterdir() if d.is_dir())


def component_configs(repo: str) -> dict[str, dict[str, Any]]:
    """Each weight-holding component's config.json, by component (subfolder) name."""
    root = config_dir(repo)
    if not root.is_dir():
        raise KeyError(f"no model configs for {repo!r} under {CONFIG_ROOT} (known: {known_repos()})")
    configs = {}
    for path in sorted(root.glob("*/config.json")):
        config = json.loads(path.read_text())
        configs[path.parent.name] = {k: v for k, v in config.items() if k not in _NOTE_KEYS}
    return configs


def _diffusers_class(name: str) -> type:
    import diffusers

    cls = getattr(diffusers, name, None)
    if cls is None:  # classes diffusers keeps in a pipeline package (LTX-2's vocoder and text connectors)
        from diffusers.pipelines import ltx2

        cls = getattr(ltx2, name, None)
    if cls is None:
        raise LookupError(f"diffusers has no class {name!r}")
    return cls


def build_component(config: dict[str, Any], *, buffers: bool = False, dtype: Any = None) -> nn.Module:
    """A component built from its config with its parameters on the meta device (shapes only, no memory): with the
    diffusers class its `_class_name` names, else the transformers class of its `architectures[0]`.

    By default everything is on the meta device, buffers too (counting is all it is for). With `buffers=True`
    the buffers are real CPU tensors, computed as the class computes them (rotary frequencies, position ids: a
    few KB), and only the parameters are on the meta device (accelerate's init_empty_weights without buffers, as
    diffusers' own loader builds a model): gpu/full_size.py then gives the parameters storage on the GPU. `dtype`
    is torch's default dtype while a transformers model is built, as transformers' from_pretrained(dtype=...)
    builds it (its buffers made in the default dtype take it). Tied weights (an LM head on its input
    embedding) are tied, so they are one parameter, as they are stored once."""
    import contextlib

    import torch


    if buffers:
        from accelerate import init_empty_weights

        empty: Any = init_empty_weights(include_buffers=False)
    else:
        empty = torch.device("meta")
    with MODEL_IO_LOCK:  # lazy diffusers/transformers imports are not thread-safe
        with empty:
            if "_class_name" in config:
                return _diffusers_class(config["_class_name"]).from_config(config)
            import transformers

            cls = getattr(transformers, config["architectures"][0])
            ignored = ("architectures", "transformers_version")
            with _default_dtype(dtype) if dtype is not None else contextlib.nullcontext():
                model = cls(transformers.AutoConfig.for_model(**{k: v for k, v in config.items() if k not in ignored}))
        # transformers 5 ties them in from_pretrained, not in the constructor; outside init_empty_weights, whose
        # register_parameter would make the tied one a parameter of its own again.
        if getattr(model.config, "tie_word_embeddings", False) and hasattr(model, "tie_weights"):
            model.tie_weights()
        return model


@contextmanager
def _default_dtype(dtype: Any) -> Iterator[None]:
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def count_parameters(module: nn.Module, exclude: tuple[str, ...] = ()) -> int:
    """Distinct parameters (a tied embedding and LM head count once, as they are stored once), leaving out
    those whose name contains any of `exclude`."""
    named = module.named_parameters()
    return sum(p.numel() for name, p in named if not any(part in name for part in exclude))


@cache
def component_parameters(repo: str, component: str, exclude: tuple[str, ...] = ()) -> int:
    """One component's parameter count, leaving out parameters whose name contains any of `exclude`."""
    return count_parameters(build_component(component_configs(repo)[component]), exclude)


def component_bytes(repo: str) -> dict[str, tuple[int, int]]:
    """{component: (parameters, bytes in bfloat16)} for each weight-holding component of the repo's pipeline
    (each built once per process: component_parameters caches the counts)."""
    sizes = {}
    for name in component_configs(repo):
        params = component_parameters(repo, name)
        sizes[name] = (params, params * BF16_BYTES)
    return sizes


def pipeline_bytes(repo: str) -> int:
    """The whole pipeline's weights in bfloat16."""
    return sum(nbytes for _, nbytes in component_bytes(repo).values())


def gpu_memory_bytes(gpu: str) -> int:
    """A GPU's published memory in bytes (a Modal GPU string; a count suffix such as ":2" multiplies it)."""
    name, _, count = gpu.partition(":")
    if name not in GPU_MEMORY_GIB:
        raise KeyError(f"unknown GPU {name!r}; known: {sorted(GPU_MEMORY_GIB)}")
    return GPU_MEMORY_GIB[name] * GB * (int(count) if count else 1)


def required_gpu_bytes(repo: str, margin: float = WORKING_MEMORY_MARGIN) -> int:
    """The weights in bfloat16 plus `margin` of them for working memory."""
    return int(pipeline_bytes(repo) * (1 + margin))


def fits(repo: str, gpu: str, margin: float = WORKING_MEMORY_MARGIN) -> bool:
    """Whether the repo's pipeline, in bfloat16 plus `margin` working memory, fits the GPU's memory."""
    return required_gpu_bytes(repo, margin) <= gpu_memory_bytes(gpu)


def required_ram_bytes(repo: str, margin: float = RAM_MARGIN) -> int:
    """The weights in bfloat16 plus `margin` of them for the process and loading."""
    return int(pipeline_bytes(repo) * (1 + margin))


def ram_holds(repo: str, memory_gib: float, margin: float = RAM_MARGIN) -> bool:
    """Whether a container RAM request (Modal's memory, in GiB) holds the pipeline in bfloat16 plus
    `margin`."""
    return required_ram_bytes(repo, margin) <= memory_gib * GIB
