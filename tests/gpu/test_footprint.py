"""Every weights pool in the catalog fits the GPU and the container RAM it names.

gpu/footprint.py builds each pipeline component with its real class on the meta device, from the config.json
the published weights come with (gpu/model_configs/, each with the `_source` it was read from), and counts
parameters and bfloat16 bytes. Here, for every pool of functions/core/catalog.yaml:

- the main denoiser's parameter count is within 5% of its published size (/work/shared/MODELS.md and the
  model cards), which checks that the configs are the real ones;
- the whole pipeline in bfloat16, plus footprint.WORKING_MEMORY_MARGIN (20%) of it as working memory, fits
  the GPU the catalog names (footprint.GPU_MEMORY_GIB: published memory, counted as 10**9 bytes a GB);
- the container RAM request (`memory_gib`) holds the pipeline in bfloat16 plus footprint.RAM_MARGIN (10%).

A failure here means the catalog's choice is wrong (or the model grew): fix `gpu` / `memory_gib` in the
catalog, not the margins. Meta-device builds are cheap and cached per process (about 15 s for the whole
catalog, most of it LTX-2's 19B transformer and Gemma 3 12B).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from functions.core.catalog import get_catalog
from gpu import footprint

# Wan 2.1's image-to-video transformers (FLF2V included) add an image cross-attention to every block of the
# 14B text-to-video backbone: these parameters are what its "14B" leaves out.
WAN_IMAGE_CONDITIONING = ("add_k_proj", "add_v_proj", "norm_added_k", "image_embedder")


@dataclass(frozen=True)
class Published:
    params: float  # the published parameter count of the denoiser
    source: str
    exclude: tuple[str, ...] = ()  # parameter-name fragments the published count leaves out


PUBLISHED_DENOISER: dict[str, Published] = {
    "black-forest-labs/FLUX.1-schnell": Published(11.9e9, "MODELS.md: FLUX.1 11.9 B (BFL: 12B)"),
    "black-forest-labs/FLUX.1-dev": Published(11.9e9, "MODELS.md: FLUX.1 11.9 B (BFL: 12B)"),
    "stabilityai/sdxl-turbo": Published(2.6e9, "MODELS.md: SDXL 2.6 B UNet"),
    "playgroundai/playground-v2-1024px-aesthetic": Published(2.6e9, "MODELS.md: SDXL's 2.6 B UNet"),
    "black-forest-labs/FLUX.2-klein-4B": Published(3.9e9, "MODELS.md: FLUX.2 [klein] 3.9 B (BFL: 4B)"),
    "Tongyi-MAI/Z-Image-Turbo": Published(6.15e9, "MODELS.md: Z-Image 6.15 B"),
    "Qwen/Qwen-Image": Published(20.4e9, "MODELS.md: Qwen-Image 20.4 B"),
    "Qwen/Qwen-Image-Edit-2509": Published(20.4e9, "MODELS.md: Qwen-Image-Edit(-Plus) as Qwen-Image, 20.4 B"),
    "black-forest-labs/FLUX.2-dev": Published(32.2e9, "MODELS.md: FLUX.2 [dev] 32.2 B"),
    "Lightricks/LTX-Video": Published(2e9, "MODELS.md: LTX-Video 0.9.x 2 B"),
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers": Published(5e9, "MODELS.md: Wan 2.2 TI2V-5B 5 B"),
    "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers": Published(
        14e9, "MODELS.md: Wan 2.1 FLF2V 14 B (the text-to-video backbone)", exclude=WAN_IMAGE_CONDITIONING),
    "Lightricks/LTX-2": Published(18.9e9, "MODELS.md: LTX-2 18.9 B (Lightricks: 19B)"),
    "Wan-AI/Wan2.2-T2V-A14B-Diffusers": Published(14.3e9, "MODELS.md: Wan 2.2 A14B 2 x 14.3 B (per expert)"),
    "Wan-AI/Wan2.2-I2V-A14B-Diffusers": Published(14.3e9, "MODELS.md: Wan 2.2 A14B 2 x 14.3 B (per expert)"),
}
TOLERANCE = 0.05

POOLS = get_catalog().weights_pools()


def _denoiser(repo: str) -> str:
    names = [name for name in footprint.component_configs(repo) if name in ("transformer", "unet")]
    assert len(names) == 1, f"{repo}: expected one transformer or unet config, found {names}"
    return names[0]


def _breakdown(repo: str) -> str:
    sizes = footprint.component_bytes(repo).items()
    return ", ".join(f"{name} {params / 1e9:.2f}B = {size / 1e9:.1f} GB" for name, (params, size) in sizes)


@pytest.mark.parametrize("key", sorted(POOLS))
def test_every_pool_has_sourced_configs(key):
    repo = POOLS[key].repo
    assert footprint.config_dir(repo).is_dir(), (
        f"{repo} (pool {key}) has no configs: add the real config.json of each weight-holding component "
        f"under {footprint.config_dir(repo)}/<component>/, with a `_source`")
    for path in sorted(footprint.config_dir(repo).glob("*/config.json")):
        text = path.read_text()
        assert '"_source"' in text, f"{path}: say where this config was read (`_source`)"
    _denoiser(repo)
    assert repo in PUBLISHED_DENOISER, f"{repo}: add its denoiser's published size to PUBLISHED_DENOISER"


@pytest.mark.parametrize("key", sorted(POOLS))
def test_denoiser_matches_its_published_size(key):
    repo = POOLS[key].repo
    published = PUBLISHED_DENOISER[repo]
    params = footprint.component_parameters(repo, _denoiser(repo), published.exclude)
    assert abs(params - published.params) <= TOLERANCE * published.params, (
        f"{repo}: the {_denoiser(repo)} built from gpu/model_configs has {params / 1e9:.3f}B parameters, not "
        f"within {TOLERANCE:.0%} of {published.params / 1e9:g}B ({published.source}): is its config real?")


def test_wan_flf2v_transformer_matches_its_checkpoint():
    # With its image cross-attention the FLF2V/I2V-14B transformer is 16.4B: Wan 2.1's I2V-14B bf16
    # checkpoint is 32.8 GB against 28.6 GB for T2V-14B (wan2.1_i2v_480p_14B_bf16.safetensors and
    # wan2.1_t2v_14B_bf16.safetensors in
    # https://huggingface.co/navyfighter12/wan2.1/tree/main/models/diffusion_models/Wan2.1).
    params = footprint.component_parameters("Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers", "transformer")
    assert abs(params * footprint.BF16_BYTES - 32.8e9) <= TOLERANCE * 32.8e9, params


@pytest.mark.parametrize("key", sorted(POOLS))
def test_pipeline_fits_its_gpu(key):
    pool = POOLS[key]
    need = footprint.required_gpu_bytes(pool.repo)
    have = footprint.gpu_memory_bytes(pool.gpu)
    assert footprint.fits(pool.repo, pool.gpu), (
        f"catalog pool {key} ({', '.join(pool.models)}) does not fit its GPU {pool.gpu}: its weights take "
        f"{footprint.pipeline_bytes(pool.repo) / 1e9:.1f} GB in bfloat16 ({_breakdown(pool.repo)}), "
        f"{need / 1e9:.1f} GB with {footprint.WORKING_MEMORY_MARGIN:.0%} working memory, and a {pool.gpu} "
        f"has {have / 1e9:.0f} GB: choose a larger GPU in functions/core/catalog.yaml")


@pytest.mark.parametrize("key", sorted(POOLS))
def test_memory_gib_holds_the_pipeline(key):
    pool = POOLS[key]
    need = footprint.required_ram_bytes(pool.repo)
    assert footprint.ram_holds(pool.repo, pool.memory_gib), (
        f"catalog pool {key} ({', '.join(pool.models)}) asks for {pool.memory_gib} GiB of RAM, but its "
        f"pipeline takes {footprint.pipeline_bytes(pool.repo) / footprint.GIB:.1f} GiB in bfloat16 "
        f"({need / footprint.GIB:.1f} GiB with {footprint.RAM_MARGIN:.0%} for the process): raise "
        f"memory_gib to at least {-(-need // footprint.GIB)} in functions/core/catalog.yaml")


def test_gpu_table_and_fit_arithmetic():
    assert footprint.gpu_memory_bytes("H100") == 80 * 10**9
    assert footprint.gpu_memory_bytes("A100-80GB:2") == 160 * 10**9
    with pytest.raises(KeyError, match="unknown GPU"):
        footprint.gpu_memory_bytes("H1000")
    with pytest.raises(KeyError, match="no model configs"):
        footprint.component_configs("nobody/nothing")
    repo = "stabilityai/sdxl-turbo"
    weights = footprint.pipeline_bytes(repo)
    assert weights == sum(nbytes for _, nbytes in footprint.component_bytes(repo).values())
    assert footprint.required_gpu_bytes(repo, margin=0.5) == int(weights * 1.5)
    assert footprint.fits(repo, "T4") and not footprint.fits(repo, "T4", margin=2.0)


def test_importing_footprint_is_light():
    heavy = "{'torch', 'diffusers', 'transformers'}"
    code = f"import sys, gpu.footprint; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
