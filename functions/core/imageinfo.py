"""What an image file's header says (format, size, whether it has alpha), read without decoding it.

The api function has no Pillow (its artifact carries only what it imports, and Pillow is ~12 MB), yet an
edit's mask must be checked before a job is paid for: a PNG with alpha, the size of the image. The headers
of the upload formats (PNG, JPEG, GIF, WebP) hold all of that in their first bytes. The worker decodes the
files for real and checks again (gpu/inpaint.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageHeader:
    format: str  # png, jpeg, gif, webp
    width: int
    height: int
    has_alpha: bool


# PNG colour types with an alpha channel: greyscale+alpha (4), RGBA (6).
_PNG_ALPHA_TYPES = {4, 6}
# JPEG start-of-frame markers (baseline, progressive, lossless...), which carry the size.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def read_header(data: bytes) -> ImageHeader | None:
    """The header of a PNG, JPEG, GIF or WebP file; None if the bytes are none of those (or truncated)."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return ImageHeader("gif", width, height, has_alpha=False)  # GIF transparency is a palette trick
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
    except (struct.error, IndexError):
        return None
    return None


def _png(data: bytes) -> ImageHeader | None:
    if data[12:16] != b"IHDR":
        return None
    width, height, _depth, colour = struct.unpack(">IIBB", data[16:26])
    alpha = colour in _PNG_ALPHA_TYPES
    # A tRNS chunk gives palette and RGB images transparency; it comes before the first IDAT.
    pos = 8
    while not alpha and pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind in (b"IDAT", b"IEND"):
            break
        alpha = kind == b"tRNS"
        pos += 12 + length
    return ImageHeader("png", width, height, alpha)


def _jpeg(data: bytes) -> ImageHeader | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return ImageHeader("jpeg", width, height, has_alpha=False)
        pos += 2 + length
    return None


def _webp(data: bytes) -> ImageHeader | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        flags = data[20]
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return ImageHeader("webp", width, height, has_alpha=bool(flags & 0x10))
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return ImageHeader("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, has_alpha=bool(bits >> 28 & 1))
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return ImageHeader("webp", width & 0x3FFF, height & 0x3FFF, has_alpha=False)
    return None


def mask_problem(mask: ImageHeader | None, image: ImageHeader | None) -> str | None:
    """What is wrong with an edit's mask by OpenAI's rules (a PNG with an alpha channel, the size of the first
    image), or None. `image` None: its size is unknown here, and the worker checks it."""
    if mask is None or mask.format != "png":
        return "must be a PNG image with an alpha channel"
    if not mask.has_alpha:
        return "must have an alpha channel: its fully transparent pixels mark where the image is edited"
    if image is not None and (image.width, image.height) != (mask.width, mask.height):
        return (f"is {mask.width}x{mask.height} but the image is {image.width}x{image.height}; they must have the "
                "same dimensions")
    return None
