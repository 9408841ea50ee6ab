"""Transparent backgrounds: a semantic-segmentation model run on each generated image, its foreground
probability kept as the alpha channel.

Any transformers semantic-segmentation checkpoint whose labels include a background class works: the
catalog's `background_remover` names it and which labels are background. Alpha is 1 − P(background), the
soft mask (as background-removal models deliver theirs), so edges fade instead of stair-stepping. The same
`from_pretrained` code loads the real checkpoint and the tiny random one (gpu/tiny.py).

Importing this module is cheap: torch and transformers are imported when a model is loaded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu.loaded_once import LoadedOnce, pretrained_options

if TYPE_CHECKING:
    from PIL.Image import Image

    from functions.core.catalog import BackgroundRemoverSpec


@dataclass
class Segmenter:
    model: Any  # a transformers *ForSemanticSegmentation model, in eval mode
    processor: Any  # its image processor (normalisation, channel order)
    side: int  # the square input size it was trained at
    device: str
    lock: threading.Lock = field(default_factory=threading.Lock)


_loaded: LoadedOnce[Segmenter] = LoadedOnce()


def load_segmenter(source: str | Path, *, device: str = "cpu") -> Segmenter:
    """Load (once per process) the segmentation model and its processor from a local dir or a Hub repo id."""

    def build() -> Segmenter:
        from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

        local = pretrained_options(source)
        # float32 whatever the pipelines run in: the model is small and the soft mask wants the precision.
        model = AutoModelForSemanticSegmentation.from_pretrained(source, **local).to(device).eval()
        processor = AutoImageProcessor.from_pretrained(source, **local)
        size = getattr(processor, "crop_size", None) or processor.size
        side = int(size.get("height") or size.get("shortest_edge"))
        return Segmenter(model=model, processor=processor, side=side, device=device)

    return _loaded.get((str(source), device), build)


def background_ids(segmenter: Segmenter, labels: list[str]) -> list[int]:
    """The class indices of `labels` (case-insensitive) in the model's id2label; ValueError if one is absent."""
    id2label = {int(i): str(name).lower() for i, name in segmenter.model.config.id2label.items()}
    ids = [i for i, name in id2label.items() if name in {label.lower() for label in labels}]
    if len(ids) != len({label.lower() for label in labels}):
        raise ValueError(f"background labels {labels} are not all among the model's labels {sorted(id2label.values())}")
    return ids


def foreground_alpha(segmenter: Segmenter, images: list[Image], labels: list[str]) -> list[Image]:
    """Per image, an "L" mask at its own size: 255 for certain foreground, 0 for certain background."""
    import numpy as np
    import torch
    from PIL import Image as PILImage

    ids = background_ids(segmenter, labels)
    # The whole picture, squeezed to the model's square input (no centre crop: every pixel needs an alpha).
    squared = [image.convert("RGB").resize((segmenter.side, segmenter.side), PILImage.Resampling.BILINEAR)
               for image in images]
    inputs = segmenter.processor(images=squared, do_resize=False, do_center_crop=False, return_tensors="pt")
    with segmenter.lock, torch.inference_mode():
        logits = segmenter.model(pixel_values=inputs["pixel_values"].to(segmenter.device)).logits.float()
        masks = []
        for index, image in enumerate(images):
            scaled = torch.nn.functional.interpolate(logits[index:index + 1], size=(image.height, image.width),
                                                     mode="bilinear", align_corners=False)
            background = scaled.softmax(dim=1)[0, ids].sum(dim=0)
            alpha = ((1 - background).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
            masks.append(PILImage.fromarray(np.ascontiguousarray(alpha), "L"))
    return masks


def remove_background(images: list[Image], spec: BackgroundRemoverSpec, source: str | Path, *,
                      device: str = "cpu") -> list[Image]:
    """Each image as RGBA, its background transparent."""
    segmenter = load_segmenter(source, device=device)
    out = []
    for image, alpha in zip(images, foreground_alpha(segmenter, images, spec.background_labels)):
        rgba = image.convert("RGBA")
        rgba.putalpha(alpha)
        out.append(rgba)
    return out


def clear_cache() -> None:
    _loaded.clear()
