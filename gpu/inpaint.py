"""Masks for inpainting: OpenAI's convention in, diffusers' convention to the pipeline, and the original pixels
kept exactly outside the mask.

OpenAI's mask is a PNG with an alpha channel, the size of the image: transparent pixels (alpha 0) are where
the image is edited. diffusers' inpainting pipelines take a greyscale mask where white is repainted. A pixel
is repainted when its alpha is below half (an anti-aliased brush edge counts as painted).

Pillow and numpy only: importing this module is cheap.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from functions.core.errors import describe
from gpu import references

# alpha below this (of 255) marks a pixel to repaint.
ALPHA_THRESHOLD = 128


class InvalidMask(references.InvalidReference):
    """The caller's mask is unusable; the job fails with this message, which names `mask`."""

    code = "invalid_mask"


def decode_mask(data: bytes, *, max_pixels: int = references.Limits.max_pixels) -> Image.Image:
    """The mask's alpha channel as an "L" image. Raises InvalidMask unless it is a PNG with alpha."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as probe:
            if probe.width * probe.height > max_pixels:
                raise InvalidMask(f"mask: {probe.width}x{probe.height} has more than {max_pixels} pixels")
            probe.verify()
        image = Image.open(io.BytesIO(data), formats=["PNG"])
        image.load()
    except InvalidMask:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder error means the same thing
        raise InvalidMask(f"mask: not a valid PNG image ({describe(exc)})") from None
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        raise InvalidMask("mask: must be a PNG with an alpha channel (transparent where the image is edited)")
    return image.convert("RGBA").getchannel("A")


def load_mask(ref: Any, *, workspace_id: str, bucket: str, allow_loopback: bool = False) -> Image.Image:
    """The job's mask reference (an upload of its workspace, or a URL) as its alpha channel."""
    if not isinstance(ref, dict) or len(ref) != 1:
        raise InvalidMask('mask: must be {"url": "..."} or {"upload_key": "..."}')
    if "upload_key" in ref:
        data = references._read_upload(ref["upload_key"], "mask", workspace_id=workspace_id, bucket=bucket,
                                       limits=references.DEFAULT_LIMITS)
    elif "url" in ref:
        data = references.fetch_url(ref["url"], "mask", allow_loopback=allow_loopback)
    else:
        raise InvalidMask('mask: must be {"url": "..."} or {"upload_key": "..."}')
    return decode_mask(data)


def repaint_mask(alpha: Image.Image, image: Image.Image) -> Image.Image:
    """diffusers' mask ("L", 255 = repaint) from the mask's alpha, at `image`'s size. The mask must have the
    size the image was sent at (a reference shrunk on decode keeps it: references.ORIGINAL_SIZE)."""
    sent = image.info.get(references.ORIGINAL_SIZE, image.size)
    if alpha.size != sent:
        raise InvalidMask(f"mask: is {alpha.width}x{alpha.height} but the image is {sent[0]}x{sent[1]}; "
                          "they must have the same dimensions")
    repaint = np.asarray(alpha) < ALPHA_THRESHOLD
    if not repaint.any():
        raise InvalidMask("mask: has no transparent pixels, so there is nothing to edit")
    mask = Image.fromarray(np.where(repaint, 255, 0).astype(np.uint8), "L")
    return mask if mask.size == image.size else mask.resize(image.size, Image.Resampling.NEAREST)


def fit_mask(mask: Image.Image, width: int, height: int) -> Image.Image:
    """The mask cropped and resized as `gpu.pipelines.fit` does the image, still strictly 0 or 255."""
    fitted = ImageOps.fit(mask.convert("L"), (width, height), method=Image.Resampling.NEAREST)
    return fitted.point(lambda v: 255 if v >= 128 else 0)


def keep_unmasked(original: Image.Image, generated: Image.Image, mask: Image.Image) -> Image.Image:
    """`generated` inside the mask, `original`'s exact pixels outside it: the VAE's round trip shifts every
    pixel a little, and an edit must leave the rest of the picture as it was."""
    return Image.composite(generated.convert("RGB"), original.convert("RGB"), mask.convert("L"))
