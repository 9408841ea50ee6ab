"""Encoding generated media for storage and delivery: images with Pillow, videos with imageio-ffmpeg."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence

import numpy as np
from PIL import Image

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "mp4": "video/mp4"}

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_ALIASES = {"jpg": "jpeg"}
_DEFAULT_QUALITY = {"jpeg": 90, "webp": 90}
_THUMBNAIL_QUALITY = 85
# Encoding runs while the GPU waits. PNG at zlib level 2 is about twice as fast as Pillow's `optimize`
# (and its default level 6) for ~5-10 % more bytes; JPEG without `optimize` skips a second Huffman
# pass (~3-8 % larger, ~1.5x faster). WebP keeps Pillow's method 4: method 3 measured no faster here.
# Measured on a 1024x1024 image on CPU (docs/benchmarks.md, "Encoder settings").
_PNG_COMPRESS_LEVEL = 2


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
        options = {"quality": quality or _DEFAULT_QUALITY["jpeg"], "optimize": False}
    elif fmt == "webp":
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if _has_alpha(image) else "RGB")
        options = {"quality": quality or _DEFAULT_QUALITY["webp"]}
    else:
        options = {"compress_level": _PNG_COMPRESS_LEVEL}
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


def make_poster(frame: Image.Image) -> bytes:
    """The poster of a video: its first frame as a full-size JPEG."""
    return encode_image(frame, "jpeg", _THUMBNAIL_QUALITY)


# x264: crf 18 is visually lossless; "fast" costs ~10% in size over "medium" for about half the time,
# and encoding runs while a GPU waits.
_X264_CRF = "18"
_X264_PRESET = "fast"


# A soundtrack's AAC bitrate (stereo speech and effects; 128k is transparent for most listeners).
_AAC_BITRATE = "128k"


def encode_video(frames: Sequence[Image.Image | np.ndarray], fps: float, audio: np.ndarray | None = None,
                 sample_rate: int = 0) -> bytes:
    """H.264 mp4 (yuv420p, moov atom first so browsers start playing before the download ends), with `audio`
    ([channels, samples] floats in [-1, 1] at `sample_rate`) as an AAC track when given; the file ends with the
    shorter of the two streams.

    yuv420p halves chroma resolution, so odd widths or heights lose their last column or row.
    """
    if not frames:
        raise ValueError("a video needs at least one frame")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    arrays = [_rgb_array(frame) for frame in frames]
    height, width = arrays[0].shape[:2]
    width, height = width - width % 2, height - height % 2
    if width < 2 or height < 2:
        raise ValueError(f"frames of {width}x{height} are too small to encode")

    import imageio_ffmpeg

    # mp4 with +faststart needs a seekable output (ffmpeg moves the moov atom at the end): a temp file.
    fd, path = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    wav = _write_wav(audio, sample_rate) if audio is not None else None
    sound = ["-b:a", _AAC_BITRATE, "-shortest"] if wav else []
    try:
        writer = imageio_ffmpeg.write_frames(
            path, (width, height), fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            quality=None, macro_block_size=1, ffmpeg_log_level="error", audio_path=wav,
            audio_codec="aac" if wav else None,
            output_params=["-crf", _X264_CRF, "-preset", _X264_PRESET, *sound, "-movflags", "+faststart"],
        )
        writer.send(None)  # start ffmpeg
        for array in arrays:
            if array.shape != arrays[0].shape:
                raise ValueError("every frame must have the size of the first")
            writer.send(np.ascontiguousarray(array[:height, :width]))
        writer.close()
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)
        if wav:
            os.unlink(wav)


def _write_wav(audio: np.ndarray, sample_rate: int) -> str:
    """`audio` as a 16-bit PCM WAV temp file (ffmpeg's input for the AAC track); its path."""
    import wave

    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None]
    if samples.ndim != 2 or not 1 <= samples.shape[0] <= 8 or samples.shape[1] == 0:
        raise ValueError(f"audio must be [channels, samples], got shape {samples.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    pcm = (np.clip(np.nan_to_num(samples), -1.0, 1.0) * 32767).round().astype("<i2")
    fd, path = tempfile.mkstemp(suffix=".wav")
    with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as w:
        w.setnchannels(samples.shape[0])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.T.tobytes())  # interleaved
    return path


def _rgb_array(frame: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(frame, Image.Image):
        return np.asarray(_flatten(frame).convert("RGB"))
    array = np.asarray(frame)
    if array.dtype != np.uint8:  # float frames in [0, 1], as diffusers' "np" output gives them
        array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"frames must be RGB (height, width, 3), got shape {array.shape}")
    return array


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
