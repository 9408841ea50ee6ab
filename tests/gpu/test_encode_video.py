"""mp4 encoding: decoded back with the same ffmpeg (imageio-ffmpeg), never trusted on its own word."""

from __future__ import annotations

import io
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from gpu_helpers import gradient
from PIL import Image

from gpu.encode import encode_video, make_poster


def _frames(count: int, size: tuple[int, int] = (96, 64)) -> list[Image.Image]:
    base = np.asarray(gradient(size))
    # A moving picture: each frame shifted further, so frames differ.
    return [Image.fromarray(np.roll(base, 4 * i, axis=1)) for i in range(count)]


def _decode(data: bytes, tmp_path: Path) -> tuple[dict, list[np.ndarray]]:
    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(h, w, 3) for buf in reader]
    return meta, frames


@pytest.mark.parametrize("count, fps", [(9, 24.0), (25, 8.0)])
def test_round_trip_keeps_frames_fps_duration_and_size(tmp_path, count, fps):
    data = encode_video(_frames(count), fps)
    meta, frames = _decode(data, tmp_path)
    assert meta["codec"] == "h264"
    assert meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (96, 64)
    assert meta["fps"] == pytest.approx(fps)
    assert len(frames) == count
    assert meta["duration"] == pytest.approx(count / fps, abs=0.05)
    nframes, secs = imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "video.mp4"))
    assert nframes == count and secs == pytest.approx(count / fps, abs=0.05)


def test_content_survives_encoding(tmp_path):
    source = _frames(9)
    _, frames = _decode(encode_video(source, 24), tmp_path)
    for original, decoded in zip(source, frames):
        assert np.abs(np.asarray(original, np.int16) - decoded.astype(np.int16)).mean() < 6


def test_moov_atom_comes_first_for_streaming():
    data = encode_video(_frames(9), 24)
    assert data[4:8] == b"ftyp"
    assert 0 < data.find(b"moov") < data.find(b"mdat")


def test_odd_sizes_are_cropped_to_even_for_yuv420p(tmp_path):
    meta, frames = _decode(encode_video(_frames(5, (97, 63)), 10), tmp_path)
    assert meta["size"] == (96, 62) and len(frames) == 5


def test_float_arrays_are_accepted(tmp_path):
    frames = [np.full((32, 32, 3), 0.5, np.float32) for _ in range(3)]
    _, decoded = _decode(encode_video(frames, 12), tmp_path)
    assert len(decoded) == 3 and abs(decoded[0].mean() - 128) < 4


@pytest.mark.parametrize("frames, fps, match", [
    ([], 24, "at least one frame"),
    (None, 0, "fps must be positive"),
    ("mixed", 24, "size of the first"),
])
def test_bad_input_is_rejected(frames, fps, match):
    if frames is None:
        frames = _frames(2)
    elif frames == "mixed":
        frames = _frames(1) + _frames(1, (64, 64))
    with pytest.raises(ValueError, match=match):
        encode_video(frames, fps)


def test_poster_is_a_full_size_jpeg_of_the_first_frame():
    frame = _frames(1)[0]
    poster = Image.open(io.BytesIO(make_poster(frame)))
    assert poster.format == "JPEG" and poster.size == frame.size
    assert np.abs(np.asarray(poster, np.int16) - np.asarray(frame, np.int16)).mean() < 4
