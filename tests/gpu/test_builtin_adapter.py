"""A model's built-in adapter (functions/core/catalog.py BuiltinAdapter), on Qwen-Image's tiny pipeline: a LoRA fused
into the weights at load, with the scheduler overrides its authors prescribe (qwen-image-lightning). The fused pipeline
is one of its own: the plain one loaded in the same process stays as it was, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gpu_helpers import gradient, pixels

from functions.core.catalog import get_catalog
from gpu import loras
from gpu.loras import Adapter
from gpu.pipelines import Builtin, GenerationRequest, derive, generate, load_pipeline
from gpu.tiny import ensure_tiny_lora

LIGHTNING = get_catalog().model("qwen-image-lightning")


@pytest.fixture(scope="module")
def source(tiny_root):
    return tiny_root / "tiny-qwenimage-v1"


@pytest.fixture(scope="module")
def builtin(tiny_root) -> Builtin:
    path = ensure_tiny_lora("qwenimage", tiny_root, name="builtin-test-lightning")
    return Builtin(path, 1.0, tuple(sorted(LIGHTNING.scheduler.items())))


@pytest.fixture(scope="module")
def plain(source):
    return load_pipeline("qwenimage", source)


def _request(**overrides) -> GenerationRequest:
    fields = {"prompt": "a shop sign that says OPEN", "width": 64, "height": 48, "steps": 2, "seed": 3,
              "guidance": 1.0}
    return GenerationRequest(**{**fields, **overrides})


def _image(pipe, family: str = "qwenimage", **overrides) -> np.ndarray:
    return pixels(generate(pipe, family, _request(**overrides)).images[0])


def _weights(pipe) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in pipe.transformer.state_dict().items()}


def test_the_fused_pipeline_is_its_own_and_the_plain_one_stays_as_it_was(plain, source, builtin):
    before, weights = _image(plain), _weights(plain)
    fused = load_pipeline("qwenimage", source, builtin=builtin)

    assert fused is not plain and fused.transformer is not plain.transformer
    assert load_pipeline("qwenimage", source, builtin=builtin) is fused  # cached on the source and the adapter
    assert load_pipeline("qwenimage", source) is plain
    assert not np.array_equal(_image(fused), before)  # the same seed, another model
    assert np.array_equal(_image(plain), before)  # bit for bit
    after = _weights(plain)
    assert all(torch.equal(after[k], weights[k]) for k in weights)
    assert plain.scheduler.config.shift_terminal == 0.02 and plain.scheduler.config.base_shift == 0.5


def test_the_lora_is_fused_into_the_base_layers_and_its_layers_are_gone(plain, source, builtin):
    """Each targeted weight is the base's plus B @ A (alpha = rank: scaling 1), and no PEFT layer is left: a step
    costs what the plain model's does."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from safetensors.torch import load_file

    fused = load_pipeline("qwenimage", source, builtin=builtin)
    assert not any(isinstance(m, BaseTunerLayer) for m in fused.transformer.modules())
    assert not hasattr(fused.transformer, "peft_config")
    assert type(fused.transformer.get_submodule("transformer_blocks.0.attn.to_q")) is torch.nn.Linear
    state = load_file(str(builtin.path))
    modules = {key[len("transformer."):-len(".lora_A.weight")] for key in state if key.endswith(".lora_A.weight")}
    assert modules
    for module in modules:
        a, b = state[f"transformer.{module}.lora_A.weight"], state[f"transformer.{module}.lora_B.weight"]
        base = plain.transformer.get_submodule(module).weight
        torch.testing.assert_close(fused.transformer.get_submodule(module).weight, base + b @ a)


def test_the_scale_weights_the_fused_lora(source, builtin):
    half = Builtin(builtin.path, 0.5, builtin.scheduler)
    fused, halved = (load_pipeline("qwenimage", source, builtin=b) for b in (builtin, half))
    assert halved is not fused
    assert not np.array_equal(_image(halved), _image(fused))


def test_the_scheduler_overrides_apply_and_derived_families_share_them(source, builtin):
    fused = load_pipeline("qwenimage", source, builtin=builtin)
    config = fused.scheduler.config
    assert config.base_shift == config.max_shift == pytest.approx(math.log(3))  # "shift=3 in distillation"
    assert config.shift_terminal is None
    assert config.time_shift_type == "exponential" and config.use_dynamic_shifting  # Qwen-Image's own, kept
    img2img = load_pipeline("qwenimage-img2img", source, builtin=builtin)
    inpaint = load_pipeline("qwenimage-inpaint", source, builtin=builtin)
    for derived in (img2img, inpaint):
        assert derived.transformer is fused.transformer and derived.scheduler is fused.scheduler
    edited = generate(img2img, "qwenimage-img2img", _request(images=[gradient((64, 48))], strength=0.6, steps=8))
    assert edited.images[0].size == (64, 48)


def test_an_override_the_scheduler_does_not_take_is_refused(source, builtin):
    from gpu import pipelines

    wrong = Builtin(builtin.path, 1.0, (("base_shfit", 1.0),))
    with pytest.raises(ValueError, match="base_shfit"):
        load_pipeline("qwenimage", source, builtin=wrong)
    assert not [key for key in pipelines._cache if "base_shfit" in key[1]]  # nothing half-made is cached


def test_one_transformer_pass_a_step_at_guidance_1(source, builtin):
    fused = load_pipeline("qwenimage", source, builtin=builtin)
    calls = []
    handle = fused.transformer.register_forward_hook(lambda *_: calls.append(1))
    try:
        generate(fused, "qwenimage", _request(steps=LIGHTNING.defaults.steps, guidance=LIGHTNING.defaults.guidance))
        assert len(calls) == 8  # 8 steps, no classifier-free guidance
        calls.clear()
        generate(fused, "qwenimage", _request(steps=8, guidance=4.0))  # guidance above cfg_above: two passes
        assert len(calls) == 16
    finally:
        handle.remove()


def test_a_request_lora_goes_on_top_of_the_fused_weights_and_comes_off_again(source, builtin, tiny_root):
    fused = load_pipeline("qwenimage", source, builtin=builtin)
    before, weights = _image(fused), _weights(fused)
    path = ensure_tiny_lora("qwenimage", tiny_root, name="request-on-lightning")
    styled = _image(fused, loras=[Adapter(path, "0" * 64, 1.0)])
    assert not np.array_equal(styled, before)
    assert np.array_equal(_image(fused), before)  # the fused model, as it was
    after = _weights(fused)
    assert all(torch.equal(after[k], weights[k]) for k in weights)


def test_a_builtin_lora_for_another_model_is_refused_and_nothing_is_fused(tiny_root, source):
    other = ensure_tiny_lora("sdxl", tiny_root, name="builtin-not-for-qwen")  # a unet LoRA
    pipe = derive(type(load_pipeline("qwenimage", source)), load_pipeline("qwenimage", source))
    weights = _weights(pipe)
    with pytest.raises(ValueError, match="does not fit qwenimage"):
        loras.fuse(pipe, "qwenimage", other, 1.0)
    after = _weights(pipe)
    assert all(torch.equal(after[k], weights[k]) for k in weights)
