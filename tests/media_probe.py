"""What ffmpeg finds in a media file: the imageio-ffmpeg wheel ships ffmpeg, not ffprobe, so its description of
the input's streams (what `ffmpeg -i` prints before it says there is no output) is read instead."""

from __future__ import annotations

import subprocess
import tempfile


def streams(data: bytes, suffix: str = ".mp4") -> str:
    """ffmpeg's description of the file's streams, e.g. "Stream #0:1: Audio: aac (LC), 24000 Hz, stereo"."""
    import imageio_ffmpeg

    with tempfile.NamedTemporaryFile(suffix=suffix) as f:
        f.write(data)
        f.flush()
        return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", f.name],
                              capture_output=True, text=True, check=False).stderr
