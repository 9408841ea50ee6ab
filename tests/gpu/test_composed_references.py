"""A multi-reference editor (FLUX.2 [klein]) on its tiny pipeline: every output composes all the references,
the same pipeline makes images from text alone, and its inpainting family repaints the first image with the
others as references."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_helpers import gradient, pixels
from PIL import Image

from gpu.pipelines import GenerationRequest, generate, inpaint_family, load_pipeline

REFS = [Image.new("RGB", (128, 96), (230, 20, 20)), Image.new("RGB", (200, 200), (20, 200, 40)),
        Image.new("RGB", (96, 160), (30, 40, 220))]


@pytest.fixture(scope="module")
def pipe(tiny_root):
    return load_pipeline("flux2-klein", tiny_root / "tiny-flux2-klein-v1")


def _run(pipe, family="flux2-klein", **overrides):
    fields = {"prompt": "the three of them together", "n": 2, "width": 256, "height": 192, "steps": 2, "seed": 11}
    return generate(pipe, family, GenerationRequest(**{**fields, **overrides}))


def test_every_output_composes_all_the_references(pipe):
    none, two, three = _run(pipe), _run(pipe, images=REFS[:2]), _run(pipe, images=REFS)
    assert [i.size for i in three.images] == [(256, 192)] * 2
    # Each reference reaches the model: adding one changes every output.
    for a, b in zip(two.images, three.images, strict=True):
        assert not np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(none.images[0]), pixels(two.images[0]))


def test_more_references_than_the_family_composes_are_refused(pipe):
    with pytest.raises(ValueError, match="at most 4 reference images"):
        _run(pipe, images=REFS * 2)


def test_inpainting_repaints_the_first_image_with_the_others_as_references(pipe, tiny_root):
    family = inpaint_family("flux2-klein")
    inpainter = load_pipeline(family, tiny_root / "tiny-flux2-klein-v1")
    assert inpainter.transformer is pipe.transformer  # derived: the same modules
    source = gradient((128, 128))
    mask = Image.new("L", (128, 128), 0)
    mask.paste(255, (32, 32, 96, 96))
    common = {"width": 128, "height": 128, "mask": mask, "strength": 1.0}
    alone = _run(inpainter, family, images=[source], **common)
    referenced = _run(inpainter, family, images=[source, *REFS[:2]], **common)
    inside = np.zeros((128, 128), bool)
    inside[32:96, 32:96] = True
    for out in referenced.images:
        assert np.abs(pixels(out) - pixels(source))[~inside].max() == 0
    assert not np.array_equal(pixels(alone.images[0]), pixels(referenced.images[0]))
