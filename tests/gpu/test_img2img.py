"""Image-to-image on tiny pipelines: the img2img classes on the text-to-image weights, sharing modules."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_helpers import gradient, pixels

from gpu.pipelines import GenerationRequest, effective_steps, fit, generate, load_pipeline

EDIT_FAMILIES = {"sdxl-img2img": "sdxl", "flux-img2img": "flux", "zimage-img2img": "zimage"}


@pytest.fixture(scope="module", params=sorted(EDIT_FAMILIES))
def family(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def pipe(family: str, tiny_root):
    return load_pipeline(family, tiny_root / f"tiny-{EDIT_FAMILIES[family]}-v1")


def _request(**overrides) -> GenerationRequest:
    fields = {"prompt": "the same fox, at night", "width": 256, "height": 256, "steps": 4, "seed": 7,
              "images": [gradient((300, 200))], "strength": 0.75}
    return GenerationRequest(**{**fields, **overrides})


def test_loads_the_img2img_class_on_the_text_to_image_weights(pipe, family, tiny_root):
    base = load_pipeline(EDIT_FAMILIES[family], tiny_root / f"tiny-{EDIT_FAMILIES[family]}-v1")
    assert type(pipe).__name__ == {"sdxl-img2img": "StableDiffusionXLImg2ImgPipeline",
                                   "flux-img2img": "FluxImg2ImgPipeline",
                                   "zimage-img2img": "ZImageImg2ImgPipeline"}[family]
    # from_pipe: the very same modules, not a second copy of the weights.
    assert pipe.vae is base.vae and pipe.text_encoder is base.text_encoder
    assert (pipe.unet if family == "sdxl-img2img" else pipe.transformer) is \
        (base.unet if family == "sdxl-img2img" else base.transformer)


@pytest.mark.parametrize("size", [(256, 256), (320, 192)])
def test_output_has_the_requested_size_whatever_the_reference_size(pipe, family, size):
    result = generate(pipe, family, _request(width=size[0], height=size[1]))
    assert [im.size for im in result.images] == [size]
    assert result.videos == []


def test_same_seed_same_pixels_and_seed_matters(pipe, family):
    first = generate(pipe, family, _request(seed=11)).images[0]
    again = generate(pipe, family, _request(seed=11)).images[0]
    other = generate(pipe, family, _request(seed=12)).images[0]
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(other))


def test_strength_changes_the_output(pipe, family):
    # (Random weights: the VAE does not reconstruct the reference, so closeness to it proves nothing.)
    low = generate(pipe, family, _request(strength=0.25, steps=8)).images[0]
    high = generate(pipe, family, _request(strength=1.0, steps=8)).images[0]
    assert np.abs(pixels(low) - pixels(high)).mean() > 1


def test_the_reference_image_matters(pipe, family):
    a = generate(pipe, family, _request(images=[gradient((256, 256))])).images[0]
    b = generate(pipe, family, _request(images=[gradient((256, 256)).rotate(90)])).images[0]
    assert not np.array_equal(pixels(a), pixels(b))


def test_n_outputs_use_the_references_in_turn(pipe, family):
    refs = [gradient((256, 256)), gradient((256, 256)).transpose(0)]
    result = generate(pipe, family, _request(n=3, images=refs))
    assert len(result.images) == 3 and all(im.size == (256, 256) for im in result.images)


def test_progress_counts_the_steps_that_run(pipe, family):
    calls: list[tuple[int, int]] = []
    generate(pipe, family, _request(steps=4, strength=0.5), on_step=lambda i, total: calls.append((i, total)))
    assert calls == [(1, 2), (2, 2)]  # int(4 * 0.5) steps


def test_too_few_steps_for_the_strength_still_run_one():
    assert effective_steps(1, 0.5) == 2
    assert effective_steps(4, 0.6) == 4
    assert int(effective_steps(1, 0.3) * 0.3) == 1


def test_img2img_needs_an_image_and_a_sane_strength(pipe, family):
    with pytest.raises(ValueError, match="needs at least one input image"):
        generate(pipe, family, _request(images=None))
    with pytest.raises(ValueError, match="strength"):
        generate(pipe, family, _request(strength=0.0))
    with pytest.raises(ValueError, match="strength"):
        generate(pipe, family, _request(strength=1.5))


def test_text_to_image_refuses_images(tiny_root):
    pipe = load_pipeline("sdxl", tiny_root / "tiny-sdxl-v1")
    with pytest.raises(ValueError, match="takes no input image"):
        generate(pipe, "sdxl", _request(strength=None))


def test_fit_crops_to_the_aspect_ratio_then_resizes():
    wide = gradient((400, 100))
    fitted = fit(wide, 64, 64)
    assert fitted.size == (64, 64) and fitted.mode == "RGB"
    # Centre crop: the red channel (x) spans the middle of the picture, not its whole width.
    red = np.asarray(fitted)[:, :, 0]
    assert red.min() > 80 and red.max() < 175
