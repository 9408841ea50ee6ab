"""Encoding generated images for storage and delivery (Pillow only)."""

from __future__ import annotations

import io

from PIL import Image

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_ALIASES = {"jpg": "jpeg"}
_DEFAULT_QUALITY = {"jpeg": 90, "webp": 90}
_THUMBNAIL_QUALITY = 85


def encode_image(image: Image.Image, fmt: str = "png", quality: int | None = None) -> bytes:
    """Encode as png, jpeg (or jpg) or webp. PNG and WebP keep alpha; JPEG flattens it onto white.

    `quality` (1-100) applies to jpeg and webp; png is lossless and ignores it.
    """
    fmt = _ALIASES.get(fmt.lower(), fmt.lower())
    if fmt not in _PIL_FORMATS:
        raise ValueError(f"unsupported image format {fmt!r}; use one of {sorted(_PIL_FORMATS)}")
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")

    options: dict[str, object] = {}
    if fmt == "jpeg":
        image = _flatten(image)
        options = {"quality": quality or _DEFAULT_QUALITY["jpeg"], "optimize": True}
    elif fmt == "webp":
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if _has_alpha(image) else "RGB")
        options = {"quality": quality or _DEFAULT_QUALITY["webp"]}
    else:
        options = {"optimize": True}
    buf = io.BytesIO()
    image.save(buf, format=_PIL_FORMATS[fmt], **options)
    return buf.getvalue()


def make_thumbnail(image: Image.Image, max_side: int = 512) -> bytes:
    """A JPEG whose longer side is at most `max_side`, same aspect ratio; never upscales."""
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    thumb = image.copy()
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return encode_image(thumb, "jpeg", _THUMBNAIL_QUALITY)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _flatten(image: Image.Image) -> Image.Image:
    """RGB (or L) for JPEG: transparent pixels become white rather than whatever colour they hid."""
    if not _has_alpha(image):
        return image if image.mode in ("RGB", "L") else image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background
