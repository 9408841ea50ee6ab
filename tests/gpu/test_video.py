"""Text-to-video and image-to-video on the tiny LTX pipeline (same classes as LTX-Video)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from gpu_helpers import gradient, pixels

from gpu.pipelines import GenerationRequest, frame_multiple, generate, load_pipeline, size_multiple


@pytest.fixture(scope="module")
def t2v(tiny_root):
    return load_pipeline("ltx", tiny_root / "tiny-ltx-v1")


@pytest.fixture(scope="module")
def i2v(tiny_root):
    return load_pipeline("ltx-i2v", tiny_root / "tiny-ltx-v1")


def _request(**overrides) -> GenerationRequest:
    fields = {"prompt": "waves on a beach", "width": 256, "height": 256, "steps": 4, "seed": 3,
              "frames": 9, "fps": 24.0}
    return GenerationRequest(**{**fields, **overrides})


def test_tiny_ltx_compresses_like_the_real_vae(t2v, i2v):
    assert size_multiple(t2v, "ltx") == 32 and frame_multiple(t2v) == 8
    assert type(t2v).__name__ == "LTXPipeline" and type(i2v).__name__ == "LTXImageToVideoPipeline"
    assert i2v.transformer is t2v.transformer and i2v.vae is t2v.vae  # one set of weights


@pytest.mark.parametrize("size, frames", [((256, 256), 9), ((320, 192), 17)])
def test_text_to_video_has_the_requested_frames_and_size(t2v, size, frames):
    result = generate(t2v, "ltx", _request(width=size[0], height=size[1], frames=frames))
    assert result.images == [] and len(result.videos) == 1
    assert len(result.videos[0]) == frames
    assert {frame.size for frame in result.videos[0]} == {size}
    assert result.vae_decode > 0


def test_text_to_video_is_fast_on_this_cpu(t2v):
    generate(t2v, "ltx", _request())  # warm
    started = time.perf_counter()
    generate(t2v, "ltx", _request())
    # Well under a second on an idle 2-core CPU; the margin is for a shared, loaded one. A VAE that did
    # not compress like LTX's (32x, 8x in time) would blow it by far.
    assert time.perf_counter() - started < 10


def test_same_seed_same_video(t2v):
    first = generate(t2v, "ltx", _request(seed=5)).videos[0]
    again = generate(t2v, "ltx", _request(seed=5)).videos[0]
    other = generate(t2v, "ltx", _request(seed=6)).videos[0]
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(first, again))
    assert not np.array_equal(pixels(first[4]), pixels(other[4]))


def test_n_videos_come_from_one_call(t2v):
    calls: list[int] = []
    result = generate(t2v, "ltx", _request(n=2), on_step=lambda i, total: calls.append(i))
    assert [len(v) for v in result.videos] == [9, 9]
    assert calls == [1, 2, 3, 4]


def test_image_to_video_starts_from_the_image(i2v):
    red, blue = gradient((256, 256)), gradient((256, 256)).transpose(0)
    from_red = generate(i2v, "ltx-i2v", _request(images=[red])).videos[0]
    from_blue = generate(i2v, "ltx-i2v", _request(images=[blue])).videos[0]
    assert len(from_red) == 9 and from_red[0].size == (256, 256)
    assert not np.array_equal(pixels(from_red[0]), pixels(from_blue[0]))


def test_image_to_video_needs_the_first_frame(i2v):
    with pytest.raises(ValueError, match="needs at least one input image"):
        generate(i2v, "ltx-i2v", _request())


@pytest.mark.parametrize("frames", [8, 10, 0, None])
def test_frame_count_must_be_8k_plus_1(t2v, frames):
    with pytest.raises(ValueError, match="frames must be 8k\\+1"):
        generate(t2v, "ltx", _request(frames=frames))


def test_ltx_needs_two_steps(t2v):
    # One step would divide by zero in the scheduler's terminal stretch and fail deep inside diffusers.
    with pytest.raises(ValueError, match="steps must be at least 2"):
        generate(t2v, "ltx", _request(steps=1))


def test_size_must_be_a_multiple_of_32(t2v):
    with pytest.raises(ValueError, match="multiples of 32"):
        generate(t2v, "ltx", _request(width=272))


def test_image_families_refuse_video_settings(tiny_root):
    pipe = load_pipeline("flux", tiny_root / "tiny-flux-v1")
    with pytest.raises(ValueError, match="frames and fps do not apply"):
        generate(pipe, "flux", _request())
