"""FLUX.2 [dev] and Qwen-Image-Edit-2509 on their tiny pipelines (the classes their repos ship with).

FLUX.2 [dev] is guidance-distilled: guidance is an input of the transformer, one pass a step, and the same pipeline
composes up to 6 references. Qwen-Image-Edit-2509 edits 1 to 3 images together with real classifier-free guidance,
and makes nothing without an image.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from gpu_helpers import pixels
from PIL import Image

from gpu.pipelines import GenerationRequest, generate, load_pipeline

REFS = [Image.new("RGB", (96, 64), (230, 20, 20)), Image.new("RGB", (64, 64), (20, 200, 40)),
        Image.new("RGB", (64, 96), (30, 40, 220))]


@pytest.fixture(scope="module")
def flux2_dev(tiny_root):
    return load_pipeline("flux2-dev", tiny_root / "tiny-flux2-dev-v1")


@pytest.fixture(scope="module")
def edit_plus(tiny_root):
    return load_pipeline("qwenimage-edit-plus", tiny_root / "tiny-qwenimage-edit-plus-v1")


def _request(**overrides) -> GenerationRequest:
    fields = {"prompt": "the fox from the first picture in the second's room", "width": 64, "height": 48,
              "steps": 2, "seed": 5}
    return GenerationRequest(**{**fields, **overrides})


def _run(pipe, family: str, req: GenerationRequest) -> tuple[list[Image.Image], int]:
    """The images, and how many times the transformer ran (two a step when classifier-free guidance is on)."""
    calls = []
    handle = pipe.transformer.register_forward_hook(lambda *_: calls.append(1))
    try:
        return generate(pipe, family, req).images, len(calls)
    finally:
        handle.remove()


def test_flux2_dev_guidance_is_an_input_of_one_pass_a_step(flux2_dev):
    strong, passes = _run(flux2_dev, "flux2-dev", _request(guidance=4.0))
    weak, weak_passes = _run(flux2_dev, "flux2-dev", _request(guidance=1.0))
    assert passes == weak_passes == 2  # distilled: no second (unconditional) pass
    assert strong[0].size == (64, 48)
    assert not np.array_equal(pixels(strong[0]), pixels(weak[0]))  # the embedder takes it


def test_flux2_dev_composes_up_to_six_references(flux2_dev):
    two, _ = _run(flux2_dev, "flux2-dev", _request(images=REFS[:2], n=2))
    three, _ = _run(flux2_dev, "flux2-dev", _request(images=REFS, n=2))
    assert [image.size for image in three] == [(64, 48)] * 2
    for a, b in zip(two, three, strict=True):  # every output draws on every reference
        assert not np.array_equal(pixels(a), pixels(b))
    with pytest.raises(ValueError, match="at most 6 reference images"):
        generate(flux2_dev, "flux2-dev", _request(images=REFS * 3))


def test_qwen_edit_plus_needs_an_image(edit_plus):
    with pytest.raises(ValueError, match="needs at least one"):
        generate(edit_plus, "qwenimage-edit-plus", _request())


def test_qwen_edit_plus_edits_the_references_together_with_true_cfg(edit_plus):
    one, passes = _run(edit_plus, "qwenimage-edit-plus", _request(images=REFS[:1], guidance=4.0, n=2))
    assert passes == 4  # guidance 4: a conditional and an unconditional pass a step (" " as the negative prompt)
    assert [image.size for image in one] == [(64, 48)] * 2
    two, unguided = _run(edit_plus, "qwenimage-edit-plus", _request(images=REFS[:2], guidance=1.0))
    assert unguided == 2
    assert not np.array_equal(pixels(one[0]), pixels(two[0]))
    with pytest.raises(ValueError, match="at most 3 reference images"):
        generate(edit_plus, "qwenimage-edit-plus", _request(images=REFS + REFS[:1]))


def test_a_fresh_process_loads_the_saved_edit_pipeline(tiny_root):
    """Its tiny processor is this project's class (gpu/tiny_processors.py): load_pipeline imports its module, as
    diffusers resolves a component's library only among modules already imported."""
    probe = ("import sys; from gpu.pipelines import load_pipeline; "
             "assert 'gpu.tiny_processors' not in sys.modules; "
             f"pipe = load_pipeline('qwenimage-edit-plus', {str(tiny_root / 'tiny-qwenimage-edit-plus-v1')!r}); "
             "print(type(pipe.processor).__name__, type(pipe.processor.image_processor).__name__)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=240,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["ImageOnlyQwen2VLProcessor", "Qwen2VLImageProcessorPil"]
