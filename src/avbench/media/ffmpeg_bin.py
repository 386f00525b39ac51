"""Locate the ffmpeg binary: $AVBENCH_FFMPEG, then the one shipped in the imageio-ffmpeg wheel, then PATH."""

from __future__ import annotations

import functools
import os
import shutil


@functools.cache
def ffmpeg_exe() -> str:
    env = os.environ.get("AVBENCH_FFMPEG")
    if env:
        return env
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        pass
    found = shutil.which("ffmpeg")
    if found:
        return found
    raise RuntimeError("no ffmpeg found: install imageio-ffmpeg (requirements.txt) or set AVBENCH_FFMPEG")
