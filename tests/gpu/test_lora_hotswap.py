"""LoRA hot swap into a compiled denoiser (functions/core/catalog.py LoraHotswap, gpu/loras.py prepare_hotswap and
applied): adapters swap into fixed slots with no recompilation; a swapped adapter gives the image a plainly loaded one
gives; scale 0, a job after a LoRA job and a refused adapter all give the fresh container's image bit for bit; and
what the slots cannot take (too many adapters, too high a rank, a text-encoder LoRA, another base's LoRA) is refused
without touching them.

Most cases run on the eager tiny FLUX pipeline with slots (the slots need no compile to behave); one compiles it
(regional, 20-40 s on this CPU) and swaps two adapters under torch's "fail_on_recompile" stance.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from functions.core.catalog import LoraHotswap, SpeedSettings
from gpu import loras, pipelines
from gpu.loras import Adapter
from gpu.quality import psnr
from gpu.tiny import ensure_tiny_lora, ensure_tiny_pipeline

FAMILY = "flux"
RANK = 8


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-hotswap")
    ensure_tiny_pipeline(FAMILY, root)
    return root


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hotswap-loras")


def _load(root: Path, speed: SpeedSettings | None = None):
    """A newly loaded pipeline: load_pipeline keeps one per source, so each call loads a copy of its own."""
    copies = sorted(root.glob("copy-*"))
    source = root / f"copy-{len(copies)}"
    shutil.copytree(root / "tiny-flux-v1", source)
    return pipelines.load_pipeline(FAMILY, source, speed=speed)


def _fresh(root: Path, slots: int = 2):
    """A newly loaded eager pipeline with `slots` slots of rank RANK."""
    pipe = _load(root)
    loras.prepare_hotswap(pipe, FAMILY, RANK, slots)
    return pipe


def _adapter(lora_dir: Path, name: str, scale: float = 1.0, rank: int = 4) -> Adapter:
    return Adapter(path=ensure_tiny_lora(FAMILY, lora_dir, name, rank=rank), sha256="0" * 64, scale=scale)


def _image(pipe, adapters=()) -> np.ndarray:
    req = pipelines.GenerationRequest(prompt="a lighthouse at dusk", width=64, height=48, steps=2, seed=7,
                                      loras=list(adapters))
    return np.asarray(pipelines.generate(pipe, FAMILY, req).images[0])


def test_hotswap_settings_need_a_compiled_denoiser():
    with pytest.raises(ValueError, match="compiled denoiser"):
        SpeedSettings(lora_hotswap=LoraHotswap(rank=16))
    assert SpeedSettings(compile="regional", lora_hotswap={"rank": 16, "slots": 2}).lora_hotswap == LoraHotswap(
        rank=16, slots=2)
    with pytest.raises(ValueError):
        LoraHotswap(slots=5)  # more than a request may bring (MAX_LORAS)


def test_empty_slots_add_nothing_and_swapped_adapters_match_plain_loading(root, lora_dir):
    plain_pipe = _load(root)
    plain = _image(plain_pipe)
    one_plain = _image(plain_pipe, [_adapter(lora_dir, "a")])
    both_plain = _image(plain_pipe, [_adapter(lora_dir, "a"), _adapter(lora_dir, "b", scale=-0.7, rank=2)])

    pipe = _fresh(root)
    assert loras.hotswap_slots(pipe).names == ("slot_0", "slot_1")
    fresh = _image(pipe)
    np.testing.assert_array_equal(fresh, plain)  # empty slots: zero weights add exactly nothing

    one = _image(pipe, [_adapter(lora_dir, "a")])
    assert not np.array_equal(one, fresh)
    assert psnr(one, one_plain) >= 45  # the same adapter, rank 4 zero-padded to 8: float32 noise only
    both = _image(pipe, [_adapter(lora_dir, "a"), _adapter(lora_dir, "b", scale=-0.7, rank=2)])
    assert psnr(both, both_plain) >= 45 and not np.array_equal(both, one)

    np.testing.assert_array_equal(_image(pipe, [_adapter(lora_dir, "a", scale=0.0)]), fresh)  # scale 0: no LoRA
    np.testing.assert_array_equal(_image(pipe), fresh)  # no leak: as on a fresh container
    assert loras.hotswap_slots(pipe) is not None  # the slots stay: nothing was unloaded


def test_a_lora_with_per_module_alphas_swaps_in_as_it_loads(root, lora_dir, tmp_path):
    """PEFT 0.21.2's hot swap looks a module's alpha up by its parameter key, which no alpha pattern names, and so
    refuses differing alpha patterns outright; gpu/loras.py (_hotswap_fixes) sets each module's scaling from its
    own pattern. A kohya-style alpha per module must give the image a plain load gives."""
    source = ensure_tiny_lora(FAMILY, lora_dir, "a")
    weights = load_file(str(source))
    kohya_alpha = {}
    for i, key in enumerate(sorted(k for k in weights if k.endswith("lora_A.weight"))):
        kohya_alpha[key.removesuffix("lora_A.weight") + "alpha"] = torch.tensor(float(2 + i % 3))
    path = tmp_path / "alphas.safetensors"
    save_file({**weights, **kohya_alpha}, str(path))
    adapter = Adapter(path=path, sha256="0" * 64, scale=1.0)

    plain_pipe = _load(root)
    try:
        expected = _image(plain_pipe, [adapter])
    except ValueError:
        pytest.fail("diffusers no longer loads per-module alphas in diffusers' format: rewrite this file's LoRA")
    pipe = _fresh(root, slots=1)
    assert psnr(_image(pipe, [adapter]), expected) >= 45
    assert not np.array_equal(expected, _image(plain_pipe))  # the alphas took effect


def test_what_the_slots_cannot_take_is_refused_and_leaves_them_empty(root, lora_dir, tmp_path):
    pipe = _fresh(root, slots=1)
    fresh = _image(pipe)
    with pytest.raises(ValueError, match="at most 1 LoRA adapter at once"):
        _image(pipe, [_adapter(lora_dir, "a"), _adapter(lora_dir, "b")])
    with pytest.raises(ValueError, match="rank 16; flux hot-swaps adapters of rank 8 at most"):
        _image(pipe, [_adapter(lora_dir, "a", rank=16)])
    with pytest.raises(ValueError, match="does not fit"):
        _image(pipe, [Adapter(ensure_tiny_lora("sdxl", lora_dir, "a"), "0" * 64, 1.0)])
    # A text-encoder LoRA (CLIP's q projection): diffusers cannot hot-swap into a text encoder.
    path = tmp_path / "text-encoder.safetensors"
    width = pipe.text_encoder.config.hidden_size
    save_file({"text_encoder.encoder.layers.0.self_attn.q_proj.lora_A.weight": torch.ones(2, width),
               "text_encoder.encoder.layers.0.self_attn.q_proj.lora_B.weight": torch.ones(width, 2)},
              str(path))
    with pytest.raises(ValueError, match="does not hot-swap"):
        _image(pipe, [Adapter(path, "0" * 64, 1.0)])
    # A fitting adapter first, then a refused one: the first is zeroed again too.
    with pytest.raises(ValueError):
        _image(pipe, [_adapter(lora_dir, "a"), _adapter(lora_dir, "b", rank=16)])
    np.testing.assert_array_equal(_image(pipe), fresh)


def test_prepare_refuses_a_second_time_and_a_pipeline_without_loader():
    class NoLoader:
        pass

    with pytest.raises(ValueError, match="takes no LoRA"):
        loras.prepare_hotswap(NoLoader(), "x", 8, 1)


def test_a_compiled_denoiser_swaps_adapters_without_recompiling(root, lora_dir):
    speed = SpeedSettings(compile="regional", lora_hotswap=LoraHotswap(rank=RANK, slots=1))
    pipe = _load(root, speed)
    report = pipelines.speed_report(pipe)
    assert report["lora_hotswap"].startswith("1 slot of rank 8 on transformer's ")
    assert "regional" in report["compile"]
    fresh = _image(pipe)  # compiles (the container's warm-up)
    first = _image(pipe, [_adapter(lora_dir, "a")])
    with torch.compiler.set_stance("fail_on_recompile"):
        second = _image(pipe, [_adapter(lora_dir, "b", scale=0.5, rank=2)])
        again = _image(pipe)
    assert not np.array_equal(first, fresh) and not np.array_equal(second, first)
    np.testing.assert_array_equal(again, fresh)
    with pytest.raises(ValueError, match="already has hot-swap slots"):
        loras.prepare_hotswap(pipe, FAMILY, RANK, 1)
