"""Inpainting with a mask, variations and transparent backgrounds, through the official `openai` SDK (and
the AI Media Studio route) against the real local stack. Nothing here imports the product."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SIDE = 256
BOX = (64, 64, 192, 192)  # the region the mask opens for editing


@pytest.fixture
def sdk(stack) -> OpenAI:
    with OpenAI(api_key=stack.api_key, base_url=stack.url + "/v1", max_retries=0, timeout=120) as client:
        yield client


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def photo() -> Image.Image:
    """A smooth picture with detail everywhere, so a changed pixel shows."""
    x = np.linspace(0, 255, SIDE, dtype=np.uint8)[None, :].repeat(SIDE, 0)
    return Image.fromarray(np.stack([x, x.T, 255 - x], -1), "RGB")


def mask(size: tuple[int, int] = (SIDE, SIDE), mode: str = "RGBA") -> Image.Image:
    """OpenAI's convention: opaque is kept, fully transparent (alpha 0) is edited."""
    image = Image.new(mode, size, (0, 0, 0, 255) if mode == "RGBA" else (0, 0, 0))
    image.paste((0, 0, 0, 0) if mode == "RGBA" else (255, 255, 255), BOX)
    return image


def decoded(item) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
    image.load()
    return image


def test_an_edit_with_a_mask_repaints_the_transparent_region_and_keeps_the_rest(sdk):
    source = photo()
    response = sdk.images.edit(image=("photo.png", encode(source), "image/png"),
                               mask=("mask.png", encode(mask()), "image/png"),
                               prompt="a red balloon", size="256x256", n=2, response_format="b64_json")
    inside = np.zeros((SIDE, SIDE), bool)
    inside[BOX[1]:BOX[3], BOX[0]:BOX[2]] = True
    original = np.asarray(source, dtype=np.int16)
    assert len(response.data) == 2
    for item in response.data:
        edited = np.asarray(decoded(item).convert("RGB"), dtype=np.int16)
        diff = np.abs(edited - original).mean(axis=-1)
        assert diff[~inside].mean() < 1.0  # the rest is kept (PNG is lossless: it is exact)
        assert diff[inside].mean() > 10  # the masked region was repainted


@pytest.mark.parametrize("bad_mask, message", [
    (encode(mask((128, 128))), "same dimensions"),
    (encode(mask(mode="RGB")), "alpha channel"),
    (encode(mask().convert("RGB"), "JPEG"), "PNG"),
    # Passes the API's header checks; only the worker, decoding the pixels, finds nothing to edit.
    (encode(Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 255))), "no transparent pixels"),
])
def test_a_mask_that_breaks_the_rules_is_a_400_naming_mask(sdk, bad_mask, message):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.images.edit(image=("photo.png", encode(photo()), "image/png"),
                        mask=("mask.png", bad_mask, "image/png"), prompt="x", size="256x256")
    error = info.value.body
    assert error["param"] == "mask" and message in error["message"], error


def test_variations_are_image_to_image_of_the_upload(sdk):
    source = photo()
    response = sdk.images.create_variation(image=("photo.png", encode(source), "image/png"), n=2, size="256x256",
                                           response_format="b64_json")
    assert len(response.data) == 2
    first, second = (np.asarray(decoded(item).convert("RGB"), dtype=np.int16) for item in response.data)
    assert first.shape == (SIDE, SIDE, 3)
    assert np.abs(first - np.asarray(source, dtype=np.int16)).mean() > 1  # a variation, not a copy
    assert np.abs(first - second).mean() > 0  # two different variations


def test_variations_refuse_what_they_do_not_take(sdk):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.images.create_variation(image=("photo.png", encode(photo()), "image/png"), size="256x256",
                                    extra_body={"prompt": "no prompts here"})
    assert info.value.body["param"] == "prompt"


def test_transparent_background_is_a_png_with_real_alpha(sdk):
    response = sdk.images.generate(model="flux-schnell", prompt="a product shot of a mug", size="256x256",
                                   background="transparent", output_format="png", response_format="b64_json")
    assert response.background == "transparent"
    image = decoded(response.data[0])
    assert image.format == "PNG" and image.mode == "RGBA"
    alpha = np.asarray(image.getchannel("A"))
    assert alpha.min() < 255 and alpha.max() > alpha.min()  # not all opaque, not one constant


def test_transparent_background_with_jpeg_is_a_400(sdk):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.images.generate(model="flux-schnell", prompt="a mug", size="256x256", background="transparent",
                            output_format="jpeg")
    assert info.value.body["param"] == "background" and "png or webp" in info.value.body["message"]


def test_opaque_is_what_it_says(sdk):
    response = sdk.images.generate(model="flux-schnell", prompt="a mug", size="256x256", background="opaque",
                                   response_format="b64_json")
    assert response.background == "opaque" and decoded(response.data[0]).mode == "RGB"


def test_ai_media_studio_background_transparent_as_webp(stack):
    # Seed 004's own example, with a format that keeps alpha.
    resp = httpx.post(stack.url + "/api/v1/images/generate", timeout=120,
                      headers={"Authorization": f"Bearer {stack.api_key}"},
                      json={"prompt": "a lighthouse", "model": "sdxl-turbo", "size": "256x256",
                            "background": "transparent", "output_format": "webp"})
    assert resp.status_code == 200, resp.text
    image = Image.open(io.BytesIO(httpx.get(resp.json()["images"][0]["url"], timeout=30).content))
    assert image.format == "WEBP" and image.mode == "RGBA"
    assert np.asarray(image.getchannel("A")).min() < 255
