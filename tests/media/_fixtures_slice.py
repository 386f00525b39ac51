"""Tiny deterministic media fixtures for the slicing tests, rendered with the project's ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from avbench.media.ffmpeg_bin import ffmpeg_exe

WIDTH, HEIGHT, FPS = 160, 120, 25
# A chirp with a rising envelope: unlike a pure sine it has no period, so a wrong offset cannot line up.
CHIRP = "aevalsrc=0.1*(1+t/6)*sin(2*PI*(200+40*t)*t):s=44100:d={d}"


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True)


def make_mp4(path: Path, duration_s: float = 12.0, *, audio: bool = True) -> Path:
    """H.264/AAC 160x120 at 25 fps; testsrc draws the frame number, so every frame is distinct."""
    args = ["-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={duration_s}"]
    if audio:
        args += ["-f", "lavfi", "-i", CHIRP.format(d=duration_s), "-c:a", "aac", "-shortest"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS), "-pix_fmt", "yuv420p"]
    _ffmpeg(*args, str(path))
    return path


def make_garbage(path: Path, n_bytes: int = 40_000) -> Path:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, n_bytes, dtype=np.uint8).tobytes())
    return path


def make_truncated(src: Path, path: Path) -> Path:
    """The first third of an mp4 whose moov atom is at the end: undecodable, like an interrupted download."""
    data = src.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def decode_rgb_frames(path: Path) -> np.ndarray:
    """Every frame of ``path`` as uint8 [N, H, W, 3], decoded independently of the slicer."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, HEIGHT, WIDTH, 3)


def nearest_frame(image: np.ndarray, frames: np.ndarray) -> tuple[int, float]:
    """Index of the reference frame closest to ``image`` (mean abs diff) and that distance."""
    diffs = np.abs(frames.astype(np.int16) - image.astype(np.int16)[None]).mean(axis=(1, 2, 3))
    k = int(np.argmin(diffs))
    return k, float(diffs[k])
