"""The attention kernels behind a model's `attention` setting (catalog SpeedSettings): which of diffusers' backends
can run it on a GPU, best first, and the image-build step that fetches the prebuilt ones.

A setting names a family of kernels; which one runs depends on the GPU (diffusers 0.42.1, attention_dispatch.py):
- "flash": FlashAttention 3 on Hopper (compute capability 9.0: it is written for that architecture's tensor cores),
  else FlashAttention 2 (Ampere and later): from the flash-attn package where the image has it, else diffusers'
  `*_hub` backends, which load a prebuilt kernel from the Hugging Face Hub through `kernels`.
- "sage": SageAttention 2 (8-bit QK, Ampere and later): the sageattention package, else its Hub kernel.
flash-attn and SageAttention 2 build from source against one CUDA toolkit, so the image takes the Hub builds.

The serving containers are offline (HF_HUB_OFFLINE=1: no job reaches for the Hub), so the image build fetches those
kernels, for the image's torch and CUDA, into KERNELS_CACHE: gpu/modal_app.py runs this file on its own
(`python attention_kernels.py`, nothing but the standard library, diffusers and kernels imported). A kernel the Hub
has no build of for that torch is left out and the build goes on; a container then takes the next backend, or
PyTorch's SDPA, and its speed report says why (gpu/speed.py).

Trust: `kernels` loads only kernels from publishers the Hub marks trusted unless told otherwise. The build passes
the repositories diffusers' own registry names for these backends (SageAttention's publisher is not marked), and
no other: that registry, pinned with diffusers, is the one list of what runs.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Backend:
    """One diffusers attention backend that can serve a setting."""

    name: str  # diffusers' AttentionBackendName value
    kernel: str  # what it is, for the speed report
    minimum_capability: tuple[int, int]
    maximum_capability: tuple[int, int] = (99, 99)
    package: str | None = None  # the import a package backend needs; None: a Hub kernel, loaded through `kernels`

    @property
    def from_hub(self) -> bool:
        return self.package is None

    def runs_on(self, capability: tuple[int, int]) -> bool:
        return self.minimum_capability <= capability <= self.maximum_capability


HOPPER = (9, 0)
AMPERE = (8, 0)

# Best first: the faster kernel where the GPU has it, and a package the image installed before the same kernel's
# Hub build (nothing to load at start).
BACKENDS: dict[str, tuple[Backend, ...]] = {
    "flash": (
        Backend("_flash_3_hub", "FlashAttention 3", HOPPER, HOPPER),
        Backend("flash", "FlashAttention 2", AMPERE, package="flash_attn"),
        Backend("flash_hub", "FlashAttention 2", AMPERE),
    ),
    "sage": (
        Backend("sage", "SageAttention 2", AMPERE, package="sageattention"),
        Backend("sage_hub", "SageAttention 2", AMPERE),
    ),
}


def candidates(setting: str, capability: tuple[int, int]) -> list[Backend]:
    """The backends that could run `setting` on a GPU of `capability`, best first."""
    return [b for b in BACKENDS[setting] if b.runs_on(capability)]


def missing(backend: Backend) -> str | None:
    """What this process lacks to try `backend` (its package, or `kernels` for a Hub kernel), or None."""
    needed = backend.package or "kernels"
    return None if importlib.util.find_spec(needed) is not None else f"{needed} not installed"


def hub_kernel(backend: Backend) -> tuple[str, int | None]:
    """The Hub repository and kernel version diffusers loads for a Hub backend."""
    from diffusers.models.attention_dispatch import _HUB_KERNELS_REGISTRY, AttentionBackendName

    config = _HUB_KERNELS_REGISTRY[AttentionBackendName(backend.name)]
    return config.repo_id, config.version


def hub_kernels() -> dict[tuple[str, int | None], list[str]]:
    """Every Hub kernel a setting may load, with the backends that load it."""
    kernels: dict[tuple[str, int | None], list[str]] = {}
    for backends in BACKENDS.values():
        for backend in backends:
            if backend.from_hub:
                kernels.setdefault(hub_kernel(backend), []).append(backend.name)
    return kernels


def prefetch() -> list[str]:
    """Download each Hub kernel's build for this environment's torch into the kernels cache (KERNELS_CACHE). One
    line per kernel says what was fetched, or why not; a kernel that cannot be fetched is left out."""
    from kernels import install_kernel

    lines = []
    for (repo_id, version), names in hub_kernels().items():
        try:
            path = install_kernel(repo_id, version=version, trust_remote_code=[repo_id])
            name_version_ref(path, version)
        except Exception as exc:  # noqa: BLE001 - the Hub's errors vary (no build for this torch, network, auth)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            lines.append(f"{repo_id} v{version} ({', '.join(names)}): not fetched, {type(exc).__name__}: {reason}")
        else:
            lines.append(f"{repo_id} v{version} ({', '.join(names)}): {path.name}")
    return lines


def name_version_ref(variant_path: Path, version: int | None) -> None:
    """Record which commit the kernel's version branch named, as the Hub cache records a branch it downloaded.

    install_kernel resolves `version` to its branch's commit online and downloads that commit, and the Hub cache
    keeps refs only for downloads by branch name; offline, `kernels` finds a version through those refs alone
    (HubCacheResolver: refs/v<version>). Without this, every kernel fetched here would be "not available in the
    local cache" to the serving containers. variant_path: <cache>/<repo folder>/snapshots/<commit>/build/<variant>.
    """
    if version is None:
        return
    build, commit_dir, _snapshots, repo_folder = variant_path.parents[:4]
    if build.name != "build" or _snapshots.name != "snapshots":
        raise ValueError(f"not a Hub cache snapshot: {variant_path}")
    refs = repo_folder / "refs"
    refs.mkdir(exist_ok=True)
    (refs / f"v{version}").write_text(commit_dir.name)


if __name__ == "__main__":  # the image build step (gpu/modal_app.py)
    for line in prefetch():
        print(line, file=sys.stderr if "not fetched" in line else sys.stdout)
