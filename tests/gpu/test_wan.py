"""Wan on its tiny pipelines (the classes Wan 2.2 TI2V-5B and Wan 2.1 FLF2V-14B ship with): text-to-video and
image-to-video on one set of weights, a video from a first and a last frame, and derived pipelines that keep the
base's modules and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_helpers import gradient, pixels
from PIL import Image

from gpu.pipelines import (
    GenerationRequest,
    clear_cache,
    frame_multiple,
    generate,
    load_pipeline,
    size_multiple,
)


@pytest.fixture(scope="module")
def t2v(tiny_root):
    return load_pipeline("wan", tiny_root / "tiny-wan-v1")


@pytest.fixture(scope="module")
def i2v(tiny_root):
    return load_pipeline("wan-i2v", tiny_root / "tiny-wan-v1")


@pytest.fixture(scope="module")
def flf2v(tiny_root):
    return load_pipeline("wan-flf2v", tiny_root / "tiny-wan-flf2v-v1")


def _request(**overrides) -> GenerationRequest:
    fields = {"prompt": "a red fox runs through snow", "width": 64, "height": 64, "steps": 2, "seed": 3,
              "frames": 9, "fps": 24.0, "guidance": 5.0, "negative_prompt": "blurry"}
    return GenerationRequest(**{**fields, **overrides})


def test_tiny_ti2v_compresses_like_the_real_vae(t2v, i2v):
    assert size_multiple(t2v, "wan") == 32 and frame_multiple(t2v) == 4  # 16x VAE, 2x2 patches; 4x in time
    assert type(i2v).__name__ == "WanImageToVideoPipeline" and i2v.transformer is t2v.transformer
    assert i2v.image_encoder is None  # TI2V conditions on the first frame's latents, not on CLIP


def test_text_to_video_has_the_requested_frames_and_size(t2v):
    result = generate(t2v, "wan", _request(width=96, height=64, frames=13))
    assert len(result.videos) == 1 and len(result.videos[0]) == 13
    assert {frame.size for frame in result.videos[0]} == {(96, 64)}
    # The frames' post-processing is timed (the benchmark keeps it out of s/step), and the timer comes off again.
    assert result.postprocess > 0 and "postprocess_video" not in vars(t2v.video_processor)


def test_image_to_video_starts_from_the_image(i2v):
    red, blue = gradient((64, 64)), gradient((64, 64)).transpose(0)
    from_red = generate(i2v, "wan-i2v", _request(images=[red])).videos[0]
    from_blue = generate(i2v, "wan-i2v", _request(images=[blue])).videos[0]
    assert len(from_red) == 9
    assert not np.array_equal(pixels(from_red[0]), pixels(from_blue[0]))


def test_first_and_last_frame_both_shape_the_video(flf2v):
    first, last = gradient((64, 64)), Image.new("RGB", (64, 64), (20, 40, 220))
    base = generate(flf2v, "wan-flf2v", _request(images=[first], last_frame=last)).videos[0]
    other_last = generate(flf2v, "wan-flf2v", _request(images=[first], last_frame=first)).videos[0]
    assert len(base) == 9 and base[0].size == (64, 64)
    assert not np.array_equal(pixels(base[-1]), pixels(other_last[-1]))


def test_a_last_frame_is_required_by_flf2v_and_refused_elsewhere(flf2v, i2v):
    with pytest.raises(ValueError, match="needs a last frame"):
        generate(flf2v, "wan-flf2v", _request(images=[gradient((64, 64))]))
    with pytest.raises(ValueError, match="takes no last frame"):
        generate(i2v, "wan-i2v", _request(images=[gradient((64, 64))], last_frame=gradient((64, 64))))


def test_a_derived_pipeline_keeps_the_base_dtype(tiny_root):
    """diffusers' from_pipe casts to float32 unless told (huggingface/diffusers#12754): a bfloat16 base, shared
    modules and all, would double in memory the first time an image-to-video job came."""
    import torch

    clear_cache()
    try:
        base = load_pipeline("wan", tiny_root / "tiny-wan-v1", dtype="bfloat16")
        derived = load_pipeline("wan-i2v", tiny_root / "tiny-wan-v1", dtype="bfloat16")
        assert derived.transformer is base.transformer
        assert base.transformer.proj_out.weight.dtype == torch.bfloat16
        assert base.text_encoder.dtype == torch.bfloat16
    finally:
        clear_cache()


@pytest.mark.parametrize("family, base, images", [("wan-a14b", "tiny-wan-a14b-v1", False),
                                                  ("wan-a14b-i2v", "tiny-wan-a14b-i2v-v1", True)])
def test_a14b_runs_its_high_noise_expert_then_its_low_noise_one(tiny_root, family, base, images):
    """Wan 2.2 A14B: `transformer` takes the steps above the boundary, `transformer_2` the rest."""
    pipe = load_pipeline(family, tiny_root / base)
    assert pipe.transformer is not pipe.transformer_2 and pipe.config.boundary_ratio
    calls = {"high": 0, "low": 0}
    hooks = [pipe.transformer.register_forward_hook(lambda *_: calls.__setitem__("high", calls["high"] + 1)),
             pipe.transformer_2.register_forward_hook(lambda *_: calls.__setitem__("low", calls["low"] + 1))]
    try:
        result = generate(pipe, family, _request(images=[gradient((64, 64))] if images else None, steps=2))
    finally:
        for hook in hooks:
            hook.remove()
    assert len(result.videos[0]) == 9
    assert calls == {"high": 2, "low": 2}  # one step each, two passes a step (guidance)
