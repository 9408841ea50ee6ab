"""Qwen-Image on its tiny pipeline (the classes Qwen/Qwen-Image ships with): text-to-image with its classifier-free
guidance (true_cfg_scale, which runs only with a negative prompt), img2img and inpainting on the same modules."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_helpers import gradient, pixels
from PIL import Image

from gpu.pipelines import GenerationRequest, generate, load_pipeline, size_multiple


@pytest.fixture(scope="module")
def t2i(tiny_root):
    return load_pipeline("qwenimage", tiny_root / "tiny-qwenimage-v1")


def _request(**overrides) -> GenerationRequest:
    fields = {"prompt": "a shop sign that says OPEN", "width": 64, "height": 48, "steps": 2, "seed": 3}
    return GenerationRequest(**{**fields, **overrides})


def _passes(pipe, family: str, req: GenerationRequest) -> int:
    """How many times the transformer ran: two a step when classifier-free guidance is on."""
    calls = []
    handle = pipe.transformer.register_forward_hook(lambda *_: calls.append(1))
    try:
        generate(pipe, family, req)
    finally:
        handle.remove()
    return len(calls)


def test_guidance_is_its_true_cfg_and_runs_without_a_negative_prompt(t2i):
    assert size_multiple(t2i, "qwenimage") == 16
    assert _passes(t2i, "qwenimage", _request(guidance=4.0)) == 4  # " " stands in for the negative prompt
    assert _passes(t2i, "qwenimage", _request(guidance=1.0)) == 2  # no guidance: one pass a step
    with_negative = generate(t2i, "qwenimage", _request(guidance=4.0, negative_prompt="blurry")).images[0]
    without = generate(t2i, "qwenimage", _request(guidance=4.0)).images[0]
    assert with_negative.size == (64, 48)
    assert not np.array_equal(pixels(with_negative), pixels(without))


def test_img2img_and_inpainting_share_the_weights(t2i, tiny_root):
    img2img = load_pipeline("qwenimage-img2img", tiny_root / "tiny-qwenimage-v1")
    inpaint = load_pipeline("qwenimage-inpaint", tiny_root / "tiny-qwenimage-v1")
    assert img2img.transformer is t2i.transformer and inpaint.vae is t2i.vae
    source = gradient((64, 48))
    edited = generate(img2img, "qwenimage-img2img", _request(images=[source], strength=0.6, steps=4)).images[0]
    assert edited.size == (64, 48)
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (16, 8, 48, 40))
    painted = generate(inpaint, "qwenimage-inpaint",
                       _request(images=[source], mask=mask, strength=1.0, steps=2)).images[0]
    kept = np.asarray(mask) == 0
    assert np.array_equal(pixels(painted)[kept], pixels(source.convert("RGB"))[kept])  # outside the mask: kept


def test_one_step_is_refused(t2i):
    with pytest.raises(ValueError, match="at least 2"):
        generate(t2i, "qwenimage", _request(steps=1))
