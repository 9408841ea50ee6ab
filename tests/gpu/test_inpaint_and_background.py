"""Inpainting (OpenAI alpha masks on the flux and sdxl inpaint pipelines) and background removal (the tiny
segmentation model), on the tiny random-weight models built offline."""

from __future__ import annotations

import io

import numpy as np
import pytest
from gpu_helpers import gradient, pixels
from PIL import Image

from functions.core.catalog import get_catalog
from gpu import background, inpaint
from gpu.pipelines import FAMILIES, GenerationRequest, generate, inpaint_family, load_pipeline
from gpu.tiny import ensure_tiny_segmenter

SIDE = 64


def openai_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    """An OpenAI mask: opaque everywhere, fully transparent (edit here) inside `box`."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), box)
    return mask


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("family", ["flux-inpaint", "sdxl-inpaint", "zimage-inpaint"])
def test_inpainting_repaints_the_mask_and_keeps_every_other_pixel(tiny_root, family):
    base = FAMILIES[family].base
    pipe = load_pipeline(family, tiny_root / f"tiny-{base}-v1")
    # Derived from the loaded base pipeline: the same modules, no second copy of the weights.
    denoiser = "unet" if base == "sdxl" else "transformer"
    assert getattr(pipe, denoiser) is getattr(load_pipeline(base, tiny_root / f"tiny-{base}-v1"), denoiser)
    image = gradient((SIDE, SIDE))
    alpha = inpaint.decode_mask(png_bytes(openai_mask(image.size, (16, 16, 48, 48))))
    req = GenerationRequest(prompt="a red square", n=2, width=SIDE, height=SIDE, steps=2, seed=3, images=[image],
                            mask=inpaint.repaint_mask(alpha, image), strength=1.0)
    result = generate(pipe, family, req)
    inside = np.zeros((SIDE, SIDE), bool)
    inside[16:48, 16:48] = True
    for out in result.images:
        diff = np.abs(pixels(out) - pixels(image))
        assert out.size == (SIDE, SIDE)
        assert diff[~inside].max() == 0  # outside the mask: the input's own pixels
        assert diff[inside].mean() > 10  # inside: repainted


def test_img2img_families_name_their_inpainting_family():
    assert inpaint_family("flux-img2img") == "flux-inpaint" and inpaint_family("sdxl-img2img") == "sdxl-inpaint"
    assert inpaint_family("zimage-img2img") == "zimage-inpaint"
    assert inpaint_family("flux-inpaint") == "flux-inpaint"
    with pytest.raises(ValueError, match="cannot inpaint"):
        inpaint_family("ltx-i2v")


def test_a_mask_is_refused_by_families_without_one_and_required_by_inpainting(tiny_root):
    image = gradient((SIDE, SIDE))
    mask = Image.new("L", image.size, 255)
    with pytest.raises(ValueError, match="takes no mask"):
        generate(load_pipeline("flux-img2img", tiny_root / "tiny-flux-v1"), "flux-img2img",
                 GenerationRequest(prompt="x", width=SIDE, height=SIDE, steps=1, images=[image], mask=mask))
    with pytest.raises(ValueError, match="needs a mask"):
        generate(load_pipeline("flux-inpaint", tiny_root / "tiny-flux-v1"), "flux-inpaint",
                 GenerationRequest(prompt="x", width=SIDE, height=SIDE, steps=1, images=[image]))


def test_openai_masks_become_diffusers_masks():
    alpha = inpaint.decode_mask(png_bytes(openai_mask((8, 4), (0, 0, 4, 4))))
    repaint = np.asarray(inpaint.repaint_mask(alpha, Image.new("RGB", (8, 4))))
    assert (repaint[:, :4] == 255).all() and (repaint[:, 4:] == 0).all()  # transparent -> white (repaint)
    # A palette PNG with a transparent index counts as having alpha.
    palette = Image.new("P", (4, 4), 0)
    assert inpaint.decode_mask(png_bytes_with(palette, transparency=0)).getextrema() == (0, 0)


def test_a_reference_shrunk_on_decode_takes_the_mask_made_for_its_sent_size():
    from gpu import references

    sent = gradient((400, 200))
    shrunk = references.decode_image(png_bytes(sent), "references[0]", cover=(64, 64))
    assert shrunk.size == (128, 64) and shrunk.info[references.ORIGINAL_SIZE] == (400, 200)
    alpha = inpaint.decode_mask(png_bytes(openai_mask((400, 200), (0, 0, 200, 200))))  # the left half
    repaint = np.asarray(inpaint.repaint_mask(alpha, shrunk))
    assert repaint.shape == (64, 128) and (repaint[:, :64] == 255).all() and (repaint[:, 64:] == 0).all()
    with pytest.raises(inpaint.InvalidMask, match="400x200"):
        inpaint.repaint_mask(inpaint.decode_mask(png_bytes(openai_mask((128, 64), (0, 0, 8, 8)))), shrunk)


def png_bytes_with(image: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **options)
    return buf.getvalue()


@pytest.mark.parametrize("data, size, match", [
    (png_bytes(Image.new("RGB", (8, 8))), (8, 8), "alpha channel"),
    (b"GIF89a not a png", (8, 8), "not a valid PNG"),
    (png_bytes(openai_mask((8, 8), (0, 0, 2, 2))), (16, 8), "same dimensions"),
    (png_bytes(Image.new("RGBA", (8, 8), (0, 0, 0, 255))), (8, 8), "nothing to edit"),
])
def test_bad_masks_are_refused_naming_the_mask(data, size, match):
    with pytest.raises(inpaint.InvalidMask, match=match) as info:
        inpaint.repaint_mask(inpaint.decode_mask(data), Image.new("RGB", size))
    assert str(info.value).startswith("mask: ") and info.value.code == "invalid_mask"


# ---------------------------------------------------------------- background removal


@pytest.fixture(scope="module")
def segmenter_dir(tiny_root):
    return ensure_tiny_segmenter(tiny_root)


def test_the_tiny_segmenter_has_the_real_checkpoints_architecture_and_background_label(segmenter_dir):
    import json

    config = json.loads((segmenter_dir / "config.json").read_text())
    assert config["architectures"] == ["MobileViTForSemanticSegmentation"] and config["id2label"]["0"] == "background"
    assert get_catalog().background_remover.repo == "apple/deeplabv3-mobilevit-small"
    segmenter = background.load_segmenter(segmenter_dir)
    assert background.background_ids(segmenter, ["Background"]) == [0]
    with pytest.raises(ValueError, match="not all among"):
        background.background_ids(segmenter, ["sky"])


def test_removing_the_background_gives_an_alpha_channel_from_the_model(segmenter_dir):
    spec = get_catalog().background_remover
    pictures = [gradient((96, 64)), Image.new("RGB", (64, 64), (20, 160, 30))]
    out = background.remove_background(pictures, spec, segmenter_dir)
    alphas = []
    for picture, image in zip(pictures, out):
        assert image.mode == "RGBA" and image.size == picture.size
        assert pixels(image.convert("RGB")).tolist() == pixels(picture).tolist()  # colour untouched
        alpha = pixels(image.getchannel("A"))
        # Not degenerate: some pixels kept, some cleared, not one constant.
        assert (alpha < 64).any() and (alpha > 191).any()
        alphas.append(alpha)
    # The mask follows the picture (a model output, not a fixed pattern).
    assert np.abs(alphas[0][:, :64] - alphas[1]).mean() > 5
