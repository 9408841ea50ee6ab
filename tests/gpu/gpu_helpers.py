"""Small helpers shared by the gpu tests (imported as a top-level module: tests/gpu is on sys.path)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def gradient(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """A smooth test picture: x in red, y in green, (and a half-transparent alpha for RGBA)."""
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    channels = [x, y, 255 - x] + ([np.where(x > 127, 255, 0).astype(np.uint8)] if mode == "RGBA" else [])
    return Image.fromarray(np.stack(channels, -1), mode)
