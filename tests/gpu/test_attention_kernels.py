"""The attention kernels behind `attention: flash | sage` (gpu/attention_kernels.py, gpu/speed.py).

- Which diffusers backend each setting tries on each GPU, and that those names are diffusers' own (its registry
  of Hub kernels included), so a diffusers upgrade that renames one fails here.
- The image-build step: every Hub kernel the settings may load, fetched for this torch, trusted by name only; a
  kernel the Hub cannot give leaves the build going, and the script runs alone, as the image runs it.
- The serving side, offline as the containers are: a kernel in the kernels cache, laid out as `kernels` leaves it,
  is what diffusers' dispatcher calls, and the image stays that of SDPA. The kernel here is a stand-in written in
  torch with a CPU build variant (the real ones are CUDA builds), and the GPU's compute capability is the test's
  (Hopper): the selection, the offline load through `kernels` and diffusers' dispatch are the real ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from functions.core.catalog import SpeedSettings
from gpu import attention_kernels, pipelines, speed
from gpu.attention_kernels import AMPERE, HOPPER
from gpu.quality import LOSSLESS_DB, psnr
from gpu.tiny import ensure_tiny_pipeline

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- which backend, on which GPU

def _names(setting: str, capability: tuple[int, int]) -> list[str]:
    return [b.name for b in attention_kernels.candidates(setting, capability)]


def test_each_gpu_tries_the_best_kernel_it_has_first():
    assert _names("flash", HOPPER) == ["_flash_3_hub", "flash", "flash_hub"]  # H100, H200
    assert _names("flash", (8, 9)) == ["flash", "flash_hub"]  # L40S: no FlashAttention 3 before Hopper
    assert _names("flash", AMPERE) == ["flash", "flash_hub"]  # A100
    assert _names("flash", (10, 0)) == ["flash", "flash_hub"]  # Blackwell: FlashAttention 3 is Hopper's only
    assert _names("sage", HOPPER) == ["sage", "sage_hub"]
    assert _names("flash", (7, 5)) == [] and _names("sage", (7, 5)) == []  # T4: neither kernel runs before Ampere


def test_every_backend_is_one_diffusers_has():
    from diffusers.models.attention_dispatch import _HUB_KERNELS_REGISTRY, AttentionBackendName

    for backends in attention_kernels.BACKENDS.values():
        for backend in backends:
            name = AttentionBackendName(backend.name)  # a ValueError if diffusers has no such backend
            assert (name in _HUB_KERNELS_REGISTRY) == backend.from_hub, backend
    assert attention_kernels.hub_kernels() == {
        ("kernels-community/flash-attn3", 1): ["_flash_3_hub"],
        ("kernels-community/flash-attn2", 3): ["flash_hub"],
        ("SageAttention/sage-attention", 3): ["sage_hub"],
    }


# ---------------------------------------------------------------- the image build

def test_prefetch_fetches_each_kernel_trusting_it_by_name_and_goes_on_past_one_it_cannot(monkeypatch, offline_kernels):
    """install_kernel stands in for the Hub: it leaves each kernel in the cache as `kernels` does online (the version
    branch resolved to a commit, that commit downloaded, no ref). What the build fetched must then load offline, by
    version, as the serving containers load it."""
    import kernels

    calls = []

    def install_kernel(repo_id, *, version=None, trust_remote_code=False, **_):
        calls.append((repo_id, version, trust_remote_code))
        if repo_id == "kernels-community/flash-attn3":
            raise FileNotFoundError("Cannot find a build variant for this system in kernels-community/flash-attn3")
        return _put_in_cache(offline_kernels, repo_id, version, ref=False)

    monkeypatch.setattr(kernels, "install_kernel", install_kernel)
    lines = attention_kernels.prefetch()
    assert calls == [(repo, version, [repo]) for repo, version in attention_kernels.hub_kernels()]
    assert lines == [
        ("kernels-community/flash-attn3 v1 (_flash_3_hub): not fetched, FileNotFoundError: Cannot find a build "
         "variant for this system in kernels-community/flash-attn3"),
        "kernels-community/flash-attn2 v3 (flash_hub): torch-cpu",
        "SageAttention/sage-attention v3 (sage_hub): torch-cpu",
    ]
    # offline (HF_HUB_OFFLINE=1 here, as in the serving image), by version: found through the ref prefetch wrote
    assert kernels.get_kernel("kernels-community/flash-attn2", version=3).flash_attn_func
    assert kernels.get_kernel("SageAttention/sage-attention", version=3).flash_attn_func


def test_the_build_step_runs_alone_under_the_image_env_and_survives_an_unreachable_hub(tmp_path):
    """As the image build runs it: the file alone (not the gpu package), the image's environment, online. The Hub is
    a closed port on loopback, so every fetch fails: the step says so for each kernel and the build goes on."""
    from gpu import modal_app
    from tests.gpu.test_modal_definition import function_image, image_env

    env = image_env(function_image(modal_app.download))
    assert env["KERNELS_CACHE"] == modal_app.KERNELS_CACHE
    assert "HF_HUB_OFFLINE" not in env  # the build fetches; only the serving image is offline
    script = tmp_path / "attention_kernels.py"
    script.write_text(modal_app.ATTENTION_KERNELS_SCRIPT.read_text())
    keep = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env=keep | env | {"KERNELS_CACHE": str(tmp_path / "kernels"), "HF_ENDPOINT": "http://127.0.0.1:9",
                          "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    failed = [line for line in result.stderr.splitlines() if ": not fetched, " in line]
    assert [line.split(" (")[0] for line in failed] == [f"{repo} v{version}" for repo, version in
                                                         attention_kernels.hub_kernels()]


def test_the_image_fetches_the_kernels_where_the_serving_containers_look():
    from gpu import modal_app
    from tests.gpu.test_modal_definition import _dockerfile_commands, _raw, class_definition, image_env

    commands = _dockerfile_commands(_raw(modal_app.image))
    assert f"RUN python {modal_app.ATTENTION_KERNELS_IN_IMAGE}" in commands
    serving = image_env(class_definition(modal_app.FluxGenerator)["image"])
    assert serving["KERNELS_CACHE"] == modal_app.KERNELS_CACHE and serving["HF_HUB_OFFLINE"] == "1"


# ---------------------------------------------------------------- serving, offline

@pytest.fixture(scope="module")
def flux_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_tiny_pipeline("flux", tmp_path_factory.mktemp("tiny-attention"))


def _fresh_flux(source: Path):
    """A pipeline of its own (load_pipeline's are shared per process), on which a test may set a backend."""
    from diffusers import FluxPipeline

    return FluxPipeline.from_pretrained(source)


def _image(pipe) -> np.ndarray:
    req = pipelines.GenerationRequest(prompt="a red fox in the snow", width=64, height=64, steps=3, seed=5)
    return np.asarray(pipelines.generate(pipe, "flux", req).images[0], dtype=np.float64)


@pytest.fixture
def offline_kernels(tmp_path, monkeypatch):
    """An empty kernels cache, as a container's would be had the build fetched nothing, on a Hopper GPU; diffusers'
    process-wide record of loaded Hub kernels is put back after the test."""
    import kernels.resolver
    from diffusers.models.attention_dispatch import _HUB_KERNELS_REGISTRY, _AttentionBackendRegistry

    cache = tmp_path / "kernels"
    cache.mkdir()
    monkeypatch.setenv("KERNELS_CACHE", str(cache))
    monkeypatch.setattr(kernels.resolver, "CACHE_DIR", str(cache))  # read once, at import, in a container
    for config in _HUB_KERNELS_REGISTRY.values():
        for field in ("kernel_fn", "wrapped_forward_fn", "wrapped_backward_fn"):
            monkeypatch.setattr(config, field, getattr(config, field))
    monkeypatch.setattr(_AttentionBackendRegistry, "_active_backend", _AttentionBackendRegistry._active_backend)
    monkeypatch.setattr(speed, "_cuda_capability", lambda device: HOPPER)
    return cache


# FlashAttention 3's Python interface as diffusers calls it ((batch, tokens, heads, head dim) tensors), computed with
# SDPA, counting its calls in a file the test reads.
_STAND_IN = '''
import types
from pathlib import Path

import torch

CALLS = Path(__file__).with_name("calls")


def flash_attn_func(q, k, v, softmax_scale=None, causal=False, return_attn_probs=False, **_):
    CALLS.write_text(str(int(CALLS.read_text() or 0) + 1) if CALLS.exists() else "1")
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=softmax_scale, is_causal=causal)
    return out.transpose(1, 2)


def _unused(*args, **kwargs):
    raise AssertionError("only context-parallel attention calls this")


flash_attn_interface = types.SimpleNamespace(_flash_attn_forward=_unused, _flash_attn_backward=_unused)
'''


def _put_in_cache(cache: Path, repo_id: str, version: int, *, ref: bool = True) -> Path:
    """A kernel laid out in the cache as `kernels` downloads one: the Hub's snapshot layout, a build variant with
    its metadata, and (`ref`) its version branch's ref, as the image build leaves it (attention_kernels.prefetch)."""
    from huggingface_hub.file_download import repo_folder_name

    folder = cache / repo_folder_name(repo_id=repo_id, repo_type="kernel")
    commit = "0" * 40
    if ref:
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / f"v{version}").write_text(commit)
    variant = folder / "snapshots" / commit / "build" / "torch-cpu"
    variant.mkdir(parents=True)
    name = repo_id.split("/")[1]
    (variant / "metadata.json").write_text(json.dumps({
        "id": f"_{name.replace('-', '_')}_stand_in", "name": name, "version": version, "license": "BSD-3-Clause",
        "python-depends": [], "backend": {"type": "cpu"}}))
    (variant / "__init__.py").write_text(_STAND_IN)
    return variant


def test_a_kernel_the_build_fetched_is_what_the_denoiser_runs(flux_source, offline_kernels):
    from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry

    variant = _put_in_cache(offline_kernels, "kernels-community/flash-attn3", 1)
    pipe = _fresh_flux(flux_source)
    report = speed.apply(pipe, "flux", SpeedSettings(attention="flash"), "cpu")
    assert report == {"attention": "flash: FlashAttention 3 (_flash_3_hub, kernels-community/flash-attn3/1 from the "
                                   "Hub) on transformer"}
    # the setting is this model's: another pipeline in the process (here the plain one) still runs SDPA
    assert _AttentionBackendRegistry.get_active_backend()[0] == AttentionBackendName.NATIVE
    eager = _image(pipelines.load_pipeline("flux", flux_source))
    assert not (variant / "calls").exists()
    tuned = _image(pipe)
    calls = int((variant / "calls").read_text())
    blocks = len(pipe.transformer.transformer_blocks) + len(pipe.transformer.single_transformer_blocks)
    assert calls == 3 * blocks  # every attention of every step went through the kernel
    assert psnr(tuned, eager) >= LOSSLESS_DB


def test_without_a_fetched_kernel_each_backend_says_why_and_sdpa_runs(flux_source, offline_kernels):
    eager = _image(pipelines.load_pipeline("flux", flux_source))
    pipe = _fresh_flux(flux_source)
    report = speed.apply(pipe, "flux", SpeedSettings(attention="flash"), "cpu")["attention"]
    assert report.startswith("flash unavailable: _flash_3_hub: Version 1 of 'kernels-community/flash-attn3' is not "
                             "available in the local cache")
    assert "; flash: flash_attn not installed; flash_hub: Version 3 of 'kernels-community/flash-attn2' is not " \
           "available in the local cache" in report
    assert report.endswith(": native")
    assert {getattr(m.processor, "_attention_backend", None) for m in pipe.transformer.modules()
            if hasattr(getattr(m, "processor", None), "_attention_backend")} == {None}
    assert psnr(_image(pipe), eager) >= LOSSLESS_DB


def test_a_gpu_older_than_the_kernels_keeps_sdpa(flux_source, monkeypatch):
    monkeypatch.setattr(speed, "_cuda_capability", lambda device: (7, 5))
    report = speed.apply(_fresh_flux(flux_source), "flux", SpeedSettings(attention="sage"), "cpu")
    assert report == {"attention": "sage unavailable: no sage kernel for compute capability 7.5: native"}


def test_a_denoiser_without_dispatchable_attention_says_so(offline_kernels, tmp_path):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(ensure_tiny_pipeline("sdxl", tmp_path))
    report = speed.apply(pipe, "sdxl", SpeedSettings(attention="flash"), "cpu")
    assert report == {"attention": "flash unavailable: unet (UNet2DConditionModel) has no dispatchable attention "
                                   "processors: native"}


def test_a_kernel_that_fails_at_warm_up_comes_off_and_sdpa_serves(flux_source, offline_kernels):
    """FlashAttention 3 takes no attention mask (diffusers raises a ValueError at the call): a model whose attention
    has one fails its warm-up with the kernel. The backend comes off, the report says why, and the model then runs
    SDPA: not the kernel that failed, which diffusers would otherwise keep as the process's default."""
    from functions.core.catalog import get_catalog
    from gpu import worker

    variant = _put_in_cache(offline_kernels, "kernels-community/flash-attn3", 1)
    stand_in = variant / "__init__.py"
    stand_in.write_text(stand_in.read_text().replace(
        "    CALLS.write_text(", "    raise ValueError('`attn_mask` is not supported for flash-attn 3.')\n    CALLS.write_text(", 1))
    settings = SpeedSettings(attention="flash")
    pipe = _fresh_flux(flux_source)
    pipelines.note_speed(pipe, "attention", speed.apply(pipe, "flux", settings, "cpu")["attention"])
    base = next(m for m in get_catalog().models if m.family == "flux")
    model = base.model_copy(update={"speed": settings,
                                    "defaults": base.defaults.model_copy(update={"width": 64, "height": 64})})
    assert worker.warm_up(model, pipe, "flux", "cpu", None) is False
    report = pipelines.speed_report(pipe)["attention"]
    assert report.startswith("flash: FlashAttention 3 (_flash_3_hub, kernels-community/flash-attn3/1 from the Hub) on "
                             "transformer; failed at warm-up (ValueError: `attn_mask` is not supported")
    assert report.endswith(": off")
    eager = _image(pipelines.load_pipeline("flux", flux_source))
    assert psnr(_image(pipe), eager) >= LOSSLESS_DB
