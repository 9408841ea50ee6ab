"""LTX-2 on its tiny pipeline (the classes LTX-2 ships with): a video and its soundtrack from one pass, the
soundtrack muxed into the mp4 as AAC, and image-to-video on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_helpers import gradient, pixels
from media_probe import streams

from gpu import encode
from gpu.pipelines import GenerationRequest, generate, load_pipeline, size_multiple


@pytest.fixture(scope="module")
def t2v(tiny_root):
    return load_pipeline("ltx2", tiny_root / "tiny-ltx2-v1")


@pytest.fixture(scope="module")
def i2v(tiny_root):
    return load_pipeline("ltx2-i2v", tiny_root / "tiny-ltx2-v1")


def _request(**overrides) -> GenerationRequest:
    fields = {"prompt": "waves breaking on rocks", "width": 96, "height": 64, "steps": 2, "seed": 3,
              "frames": 17, "fps": 24.0}
    return GenerationRequest(**{**fields, **overrides})


def test_a_video_comes_with_its_soundtrack_when_asked(t2v):
    assert size_multiple(t2v, "ltx2") == 32
    silent = generate(t2v, "ltx2", _request())
    assert silent.audio == [] and len(silent.videos[0]) == 17
    result = generate(t2v, "ltx2", _request(audio=True))
    (track,) = result.audio
    assert result.audio_rate == t2v.vocoder.config.output_sampling_rate
    channels, samples = track.shape
    assert channels == 2 and abs(samples / result.audio_rate - 17 / 24) < 0.1  # as long as the video
    other = generate(t2v, "ltx2", _request(audio=True, seed=4)).audio[0]
    assert not np.allclose(track.numpy(), other.numpy())  # generated, not a fixed sound


def test_the_soundtrack_is_muxed_as_aac(t2v):
    result = generate(t2v, "ltx2", _request(audio=True))
    with_sound = encode.encode_video(result.videos[0], 24.0, result.audio[0].numpy(), result.audio_rate)
    described = streams(with_sound)
    assert "Video: h264" in described and "Audio: aac" in described and f"{result.audio_rate} Hz" in described
    assert "Audio:" not in streams(encode.encode_video(result.videos[0], 24.0))


def test_image_to_video_starts_from_the_image(i2v, t2v):
    assert i2v.transformer is t2v.transformer and i2v.vocoder is t2v.vocoder
    red, blue = gradient((96, 64)), gradient((96, 64)).transpose(0)
    from_red = generate(i2v, "ltx2-i2v", _request(images=[red], audio=True))
    from_blue = generate(i2v, "ltx2-i2v", _request(images=[blue]))
    assert len(from_red.videos[0]) == 17 and len(from_red.audio) == 1
    assert not np.array_equal(pixels(from_red.videos[0][0]), pixels(from_blue.videos[0][0]))


def test_audio_is_refused_by_a_family_that_makes_none(tiny_root):
    pipe = load_pipeline("wan", tiny_root / "tiny-wan-v1")
    with pytest.raises(ValueError, match="makes no audio"):
        generate(pipe, "wan", GenerationRequest(prompt="p", width=64, height=64, steps=1, frames=5, fps=24.0,
                                                audio=True))


def test_an_extension_is_the_clip_then_what_follows_it(tiny_root, t2v):
    extend = load_pipeline("ltx2-extend", tiny_root / "tiny-ltx2-v1")
    assert type(extend).__name__ == "LTX2ConditionPipeline" and extend.transformer is t2v.transformer
    clip = generate(t2v, "ltx2", _request(frames=17)).videos[0]
    result = generate(extend, "ltx2-extend", _request(clip=clip, frames=17))
    (video,) = result.videos
    assert len(video) == 17 + 16  # the whole clip, then 16 new frames
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(video[:17], clip))
    again = generate(extend, "ltx2-extend", _request(clip=clip, frames=17, seed=9)).videos[0]
    assert not np.array_equal(pixels(video[-1]), pixels(again[-1]))
    with pytest.raises(ValueError, match="needs a clip"):
        generate(extend, "ltx2-extend", _request())


def test_an_extension_s_conditioning_frames_fit_within_the_model_s_most_frames(tiny_root, t2v, monkeypatch):
    """The clip's last frames are generated again (the conditioning): with `frames` at the model's most, they shrink
    (to one) so one pipeline call never makes more than max_frames."""
    extend = load_pipeline("ltx2-extend", tiny_root / "tiny-ltx2-v1")
    clip = generate(t2v, "ltx2", _request(frames=25)).videos[0]
    made, call = [], type(extend).__call__

    def counting(self, *args, **kwargs):
        made.append(kwargs["num_frames"])
        return call(self, *args, **kwargs)

    monkeypatch.setattr(type(extend), "__call__", counting)
    unbounded = generate(extend, "ltx2-extend", _request(clip=clip, frames=17)).videos[0]
    bounded = generate(extend, "ltx2-extend", _request(clip=clip, frames=17, max_frames=25)).videos[0]
    at_most = generate(extend, "ltx2-extend", _request(clip=clip, frames=25, max_frames=25)).videos[0]
    assert made == [25 + 17 - 1, 25, 25]  # the clip's last 25 frames, then 9, then 1
    assert len(unbounded) == len(bounded) == 25 + 16 and len(at_most) == 25 + 24
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(at_most[:25], clip))
    with pytest.raises(ValueError, match="takes no clip"):
        generate(t2v, "ltx2", _request(clip=clip))
