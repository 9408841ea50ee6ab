"""Reference images for image-to-image and image-to-video, and clips to extend: the workspace's own uploads, or
http(s) URLs.

A job's `params["references"]` is a list of `{"url": "https://..."}` or `{"upload_key": "<ws>/uploads/..."}`.
Uploads are read from S3 directly (never over HTTP) and only from the job's own workspace. URLs are
fetched with an SSRF guard on every hop: each redirect is followed by hand and checked again, and the
connection goes to the very address that was checked (no second DNS lookup that could answer otherwise).
Every failure is an `InvalidReference` naming the reference; the worker fails the job with its code.
"""

from __future__ import annotations

import asyncio
import io
import math
import posixpath
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx
from PIL import Image, ImageOps

from functions.core import aws
from functions.core.errors import describe
from functions.core.urls import UnsafeUrl, pin

MAX_REFERENCES = 10
# Decoders for the formats people upload; nothing exotic (EPS, for one, would run Ghostscript).
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
_REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    timeout: float = 10.0  # seconds for the whole fetch of one URL, redirects included
    max_redirects: int = 3
    max_pixels: int = 50_000_000  # a 48 MP phone photo fits; a decompression bomb does not
    # All of a job's references together: two such photos. Decoding is what costs (CPU, and memory while
    # one is decoded), so it is bounded per job as well as per image.
    max_job_pixels: int = 100_000_000


DEFAULT_LIMITS = Limits()
# Pillow's own bomb guard at the same bound, for any decode in the worker (it warns past it and refuses past
# twice it); decode_image refuses past it from the header alone, before Pillow decodes anything.
Image.MAX_IMAGE_PIXELS = DEFAULT_LIMITS.max_pixels


class InvalidReference(ValueError):
    code = "invalid_reference"


def load_references(
    refs: Sequence[Any], *, workspace_id: str, bucket: str, allow_loopback: bool = False,
    limits: Limits = DEFAULT_LIMITS, cover: tuple[int, int] | None = None,
) -> list[Image.Image]:
    """Every reference as an RGB image, in order. Raises InvalidReference for the first bad one.

    Fetched side by side (they wait on the network), then checked from their headers alone (each, and all
    together, within the pixel limits), then decoded one at a time, each shrunk at once to what covers
    `cover` (the job's width and height), so a job holds at most one full-size decode in memory: five
    references to a 7000x7000 PNG took 2.5 GB before."""
    if not isinstance(refs, Sequence) or isinstance(refs, str):
        raise InvalidReference("references must be a list")
    if len(refs) > MAX_REFERENCES:
        raise InvalidReference(f"at most {MAX_REFERENCES} references, got {len(refs)}")

    def fetch(index: int) -> tuple[str, bytes]:
        return fetch_reference(refs[index], f"references[{index}]", workspace_id=workspace_id, bucket=bucket,
                               allow_loopback=allow_loopback, limits=limits)

    if len(refs) <= 1:
        fetched = [fetch(i) for i in range(len(refs))]
    else:
        with ThreadPoolExecutor(max_workers=min(4, len(refs)), thread_name_prefix="reference") as pool:
            fetched = list(pool.map(fetch, range(len(refs))))
    total = sum(w * h for w, h in (image_size(data, label, max_pixels=limits.max_pixels) for label, data in fetched))
    if total > limits.max_job_pixels:
        raise InvalidReference(f"references: {total} pixels together, more than the {limits.max_job_pixels} a job "
                               "may bring; send fewer or smaller images")
    images = []
    for index, (label, data) in enumerate(fetched):
        images.append(decode_image(data, label, max_pixels=limits.max_pixels, cover=cover))
        fetched[index] = (label, b"")  # its bytes are not needed any more
    return images


def load_reference(
    ref: Any, label: str, *, workspace_id: str, bucket: str, allow_loopback: bool = False,
    limits: Limits = DEFAULT_LIMITS, cover: tuple[int, int] | None = None,
) -> Image.Image:
    """One reference, fetched and decoded (see load_references)."""
    label, data = fetch_reference(ref, label, workspace_id=workspace_id, bucket=bucket,
                                  allow_loopback=allow_loopback, limits=limits)
    return decode_image(data, label, max_pixels=limits.max_pixels, cover=cover)


def fetch_reference(
    ref: Any, label: str, *, workspace_id: str, bucket: str, allow_loopback: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[str, bytes]:
    """(a label naming the reference for errors, its bytes), not decoded."""
    if not isinstance(ref, dict) or len(ref) != 1 or not isinstance(next(iter(ref.values())), str):
        raise InvalidReference(f'{label}: must be {{"url": "..."}} or {{"upload_key": "..."}}')
    if "upload_key" in ref:
        return label, _read_upload(ref["upload_key"], label, workspace_id=workspace_id, bucket=bucket, limits=limits)
    if "url" in ref:
        label = f"{label} ({_shorten(ref['url'])})"
        return label, fetch_url(ref["url"], label, allow_loopback=allow_loopback, limits=limits)
    raise InvalidReference(f'{label}: must be {{"url": "..."}} or {{"upload_key": "..."}}')


# --- uploads ---------------------------------------------------------------------------------------


def _read_upload(key: str, label: str, *, workspace_id: str, bucket: str, limits: Limits) -> bytes:
    return read_workspace_object(key, label, prefix=f"{workspace_id}/uploads/", bucket=bucket,
                                 max_bytes=limits.max_bytes, what=f"upload {key!r}",
                                 missing="was not found (was it uploaded?)", outside="an upload")


def read_workspace_object(key: str, label: str, *, prefix: str, bucket: str, max_bytes: int, what: str,
                          missing: str, outside: str = "a file", error: type[InvalidReference] = InvalidReference,
                          ) -> bytes:
    """An S3 object of the job's own workspace (under `prefix`), read directly, at most `max_bytes`; `error` naming
    `label` otherwise (a key outside the prefix, a missing object, a larger one)."""
    # normpath catches "..", "//" and "./" tricks: the key must be a plain path under the prefix.
    if not key.startswith(prefix) or posixpath.normpath(key) != key:
        raise error(f"{label}: {key!r} is not {outside} of this workspace")
    s3 = aws.client("s3")
    try:
        resp = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        raise error(f"{label}: {what} {missing}") from None
    with resp["Body"] as body:
        if resp.get("ContentLength", 0) > max_bytes:
            raise error(f"{label}: {what} is larger than {_size(max_bytes)}")
        return body.read()


# --- URLs ------------------------------------------------------------------------------------------


def fetch_url(url: str, label: str, *, allow_loopback: bool = False, limits: Limits = DEFAULT_LIMITS,
              accept: str = "image/*") -> bytes:
    """GET `url` with the SSRF guard on every hop, at most `limits.max_bytes`, within `limits.timeout` for all of it.

    httpx's timeouts bound each read, so a server that answers a byte at a time, its headers included, would hold the
    GPU container for as long as it liked (and a hostile key would bill the operator for it). The fetch runs on its
    own event loop under one deadline, which closes the connection when it fires."""
    try:
        return asyncio.run(_fetch_within(url, label, allow_loopback, limits, accept))
    except TimeoutError:
        raise InvalidReference(f"{label}: timed out after {limits.timeout:g} s") from None


async def _fetch_within(url: str, label: str, allow_loopback: bool, limits: Limits, accept: str) -> bytes:
    # trust_env=False: a proxy from the environment would make the connection, and the check, moot.
    async with asyncio.timeout(limits.timeout), httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        for _hop in range(limits.max_redirects + 1):
            target, headers, extensions = _pinned(url, label, allow_loopback)
            headers["Accept"] = accept
            try:
                async with client.stream("GET", target, headers=headers, extensions=extensions,
                                         timeout=limits.timeout) as resp:
                    if resp.status_code in _REDIRECTS:
                        location = resp.headers.get("location")
                        if not location:
                            raise InvalidReference(f"{label}: HTTP {resp.status_code} without a Location")
                        url = urljoin(url, location)
                        continue
                    if resp.status_code != 200:
                        raise InvalidReference(f"{label}: the server answered HTTP {resp.status_code}")
                    return await _read_capped(resp, label, limits)
            except httpx.TimeoutException:
                raise InvalidReference(f"{label}: timed out after {limits.timeout:g} s") from None
            except httpx.HTTPError as exc:
                raise InvalidReference(f"{label}: could not be fetched ({describe(exc)})") from None
    raise InvalidReference(f"{label}: more than {limits.max_redirects} redirects")


def _pinned(url: str, label: str, allow_loopback: bool) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """The request for one hop, aimed at the address the guard checked (functions/core/urls.py: pin)."""
    try:
        pinned = pin(url, allow_loopback=allow_loopback, schemes=("http", "https"))
    except UnsafeUrl as exc:
        raise InvalidReference(f"{label}: not allowed: {exc}") from None
    return httpx.URL(pinned.url), {"Host": pinned.host_header}, pinned.extensions


async def _read_capped(resp: httpx.Response, label: str, limits: Limits) -> bytes:
    too_big = InvalidReference(f"{label}: larger than {_size(limits.max_bytes)}")
    length = resp.headers.get("content-length")
    if length and length.isdigit() and int(length) > limits.max_bytes:
        raise too_big  # refused before reading a byte
    buf = bytearray()
    async for chunk in resp.aiter_bytes():
        buf += chunk
        if len(buf) > limits.max_bytes:
            raise too_big
    return bytes(buf)


# --- decoding --------------------------------------------------------------------------------------


# Where a shrunk reference keeps the size it was sent at (after its EXIF rotation): a mask must match that.
ORIGINAL_SIZE = "darkroom_original_size"


def image_size(data: bytes, label: str, *, max_pixels: int = Limits.max_pixels) -> tuple[int, int]:
    """Width and height from the header alone (nothing decoded), within `max_pixels`."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as probe:
            width, height = probe.size
    except Image.DecompressionBombError:
        raise InvalidReference(f"{label}: the image has too many pixels") from None
    except Exception as exc:  # noqa: BLE001 - any decoder error means the same thing: not a usable image
        raise InvalidReference(f"{label}: not a valid PNG, JPEG, WebP, GIF or BMP image "
                               f"({describe(exc)})") from None
    if width * height > max_pixels:
        raise InvalidReference(f"{label}: {width}x{height} has more than {max_pixels} pixels")
    return width, height


def decode_image(data: bytes, label: str, *, max_pixels: int = Limits.max_pixels,
                 cover: tuple[int, int] | None = None) -> Image.Image:
    """Validate and decode with Pillow: a known format, a sane pixel count, an intact file. RGB out.

    With `cover` (width, height), an image larger than needed to cover that size is shrunk as it is decoded
    (JPEG's decoder skips the detail: `draft`) and right after: the pipeline crops and resizes it to that
    size anyway (`gpu.pipelines.fit`). Its size as sent stays in `info[ORIGINAL_SIZE]`."""
    image_size(data, label, max_pixels=max_pixels)
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as probe:
            probe.verify()
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        if cover is not None:
            raw = image.size  # before any EXIF turn: cover the needed size whichever way the image turns
            side = math.ceil(max(raw) * max(_scale(raw, cover), _scale(raw[::-1], cover)))
            image.draft("RGB", (side, side))  # JPEG decodes at 1/2, 1/4 or 1/8 while both sides stay >= side
        image.load()
        image = ImageOps.exif_transpose(image)  # phone photos store their rotation in EXIF
    except Image.DecompressionBombError:
        raise InvalidReference(f"{label}: the image has too many pixels") from None
    except Exception as exc:  # noqa: BLE001 - any decoder error means the same thing: not a usable image
        raise InvalidReference(f"{label}: not a valid PNG, JPEG, WebP, GIF or BMP image "
                               f"({describe(exc)})") from None
    original = _sent_size(data, image)
    if cover is not None:
        scale = _scale(original, cover)
        if scale < 1:
            target = (max(1, math.ceil(original[0] * scale)), max(1, math.ceil(original[1] * scale)))
            if image.size != target:
                image = image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    rgb = _to_rgb(image)
    rgb.info[ORIGINAL_SIZE] = original
    return rgb


# A clip to continue (extend_video_url): a larger file than an image, fetched with more time.
CLIP_LIMITS = Limits(max_bytes=100 * 1024 * 1024, timeout=30.0)


def load_clip(ref: Any, label: str, *, workspace_id: str, bucket: str, cover: tuple[int, int], max_frames: int,
              allow_loopback: bool = False, limits: Limits = CLIP_LIMITS) -> tuple[list[Image.Image], float]:
    """A video reference's frames, RGB, each shrunk as it is decoded to what covers `cover`, and its frame rate.
    InvalidReference for a file ffmpeg cannot read, frames over the pixel limit, or more than `max_frames` of them
    (decoded frames are held in memory: the bound is what keeps a long clip from filling it)."""
    import tempfile

    import imageio_ffmpeg

    label, data = fetch_reference(ref, label, workspace_id=workspace_id, bucket=bucket, allow_loopback=allow_loopback,
                                  limits=limits)
    frames: list[Image.Image] = []
    with tempfile.NamedTemporaryFile(suffix=".video") as file:
        file.write(data)
        file.flush()
        del data
        reader = imageio_ffmpeg.read_frames(file.name, pix_fmt="rgb24")
        try:
            meta = next(reader)
            width, height = meta["size"]
            if width * height > limits.max_pixels:
                raise InvalidReference(f"{label}: {width}x{height} frames have more than {limits.max_pixels} pixels")
            scale = _scale((width, height), cover)
            target = (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
            for raw in reader:
                if len(frames) == max_frames:
                    raise InvalidReference(f"{label}: longer than the {max_frames} frames a clip to extend may have")
                frame = Image.frombytes("RGB", (width, height), raw)
                frames.append(frame if frame.size == target else frame.resize(target, Image.Resampling.BILINEAR))
        except InvalidReference:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder error means the same thing: not a usable video
            raise InvalidReference(f"{label}: not a video ffmpeg can read ({describe(exc)})") from None
        finally:
            reader.close()
    if len(frames) < 2:  # ffmpeg reads a still image as a one-frame video
        raise InvalidReference(f"{label}: not a video (a still image, or no frames): send an mp4 to continue; "
                               "a first frame goes in image_url")
    return frames, float(meta.get("fps") or 0)


def _scale(size: tuple[int, int], cover: tuple[int, int]) -> float:
    """The factor that makes `size` just cover `cover` (a centre crop of it then fits exactly); at most 1."""
    return min(1.0, max(cover[0] / size[0], cover[1] / size[1]))


def _sent_size(data: bytes, image: Image.Image) -> tuple[int, int]:
    """The size the image was sent at, as seen upright (its EXIF rotation applied), whatever draft did."""
    with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as probe:
        width, height = probe.size
        turned = probe.getexif().get(0x0112) in (5, 6, 7, 8)  # Orientation: a quarter turn swaps the sides
    return (height, width) if turned else (width, height)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, transparent pixels on white (not on whatever colour they hid)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _shorten(url: str, limit: int = 120) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MiB" if n >= 1024 * 1024 else f"{n} bytes"
