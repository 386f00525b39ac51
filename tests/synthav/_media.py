"""ffmpeg helpers for the SynthAV tests (decode and probe with the same binary the pipeline uses)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from avbench.media.ffmpeg_bin import ffmpeg_exe
from avbench.synthav import SynthSpec


def pick(spec: SynthSpec, **conds: object) -> int:
    """Index of the first clip matching all column == value conditions."""
    mask = np.ones(len(spec.clips), dtype=bool)
    for col, val in conds.items():
        mask &= (spec.clips[col] == val).to_numpy()
    return int(np.flatnonzero(mask)[0])


def run_ffmpeg(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True, check=False)


def probe(path: str | Path) -> dict:
    """Duration, size, fps and audio description parsed from `ffmpeg -i` (no ffprobe in imageio-ffmpeg)."""
    err = run_ffmpeg(["-i", str(path)]).stderr.decode(errors="replace")
    info: dict = {"text": err}
    m = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", err)
    if m:
        info["duration"] = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    m = re.search(r"Video: (\w+).*?, (\d+)x(\d+).*?, ([\d.]+) fps", err)
    if m:
        info["vcodec"], info["width"], info["height"], info["fps"] = m[1], int(m[2]), int(m[3]), float(m[4])
    m = re.search(r"Audio: (\w+).*?, (\d+) Hz, (\w+)", err)
    if m:
        info["acodec"], info["sample_rate"], info["channels"] = m[1], int(m[2]), m[3]
    return info


def decode_frames(path: str | Path, width: int, height: int) -> np.ndarray:
    proc = run_ffmpeg(["-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, height, width, 3)


def decode_audio(path: str | Path, sr: int) -> np.ndarray:
    args = ["-v", "error", "-i", str(path), "-vn", "-f", "s16le", "-ac", "1", "-ar", str(sr), "-"]
    proc = run_ffmpeg(args)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return np.frombuffer(proc.stdout, np.int16).astype(np.float64) / 32768.0
