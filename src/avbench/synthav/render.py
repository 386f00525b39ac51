"""Render SynthAV source videos: numpy frames + synthesized audio -> H.264/AAC mp4 through ffmpeg.

A source video is ``start_s + 10`` s long. The clip lives in ``[start_s, start_s + 10)``; before it the
video shows the clip's background only and the audio is silent (cheap, and a cut at the wrong offset
is then visible in both streams).
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

from avbench.io import atomic_path
from avbench.media.ffmpeg_bin import ffmpeg_exe

from . import scene, sound
from .presets import CLIP_SECONDS, FPS
from .spec import SynthSpec

# render-time random streams (the spec owns stream [seed, clip_index]); tags keep them independent
_BG_STREAM, _AUDIO_STREAM = 1, 2


def source_url(video_dir: str | os.PathLike, ytid: str) -> str:
    """file:// URL of a rendered source video (what the download stage fetches)."""
    return (Path(video_dir).resolve() / f"{ytid}.mp4").as_uri()


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    # background colours are independent of the class hues and less saturated than objects on average
    return scene.hsv_rgb(rng.uniform(), rng.uniform(0.05, 0.7), rng.uniform(0.25, 0.95))


def background(kind: str, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """[H, W, 3] uint8 static background: smooth noise, a gradient, or soft patches, plus fine grain."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    if kind == "noise":
        gh, gw = int(rng.integers(2, 6)), int(rng.integers(3, 8))
        grid = np.stack([[_random_colour(rng) for _ in range(gw)] for _ in range(gh)])
        small = Image.fromarray((grid * 255).astype(np.uint8))
        img = np.asarray(small.resize((width, height), Image.BILINEAR), dtype=np.float64) / 255.0
    elif kind == "gradient":
        c1, c2 = _random_colour(rng), _random_colour(rng)
        theta = rng.uniform(0, 2 * np.pi)
        proj = xx * np.cos(theta) + yy * np.sin(theta)
        w = (proj - proj.min()) / (np.ptp(proj) + 1e-9)
        img = c1 * (1 - w[..., None]) + c2 * w[..., None]
    elif kind == "patches":
        img = np.broadcast_to(_random_colour(rng), (height, width, 3)).copy()
        for _ in range(int(rng.integers(5, 14))):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            rx, ry = rng.uniform(0.05, 0.3) * width, rng.uniform(0.05, 0.3) * height
            if rng.random() < 0.5:
                inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
            else:
                inside = (np.abs(xx - cx) <= rx) & (np.abs(yy - cy) <= ry)
            a = rng.uniform(0.3, 0.8)
            img[inside] = img[inside] * (1 - a) + _random_colour(rng) * a
    else:
        raise ValueError(f"unknown background {kind!r}")
    img = img + rng.normal(0, rng.uniform(0.01, 0.05), size=img.shape)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def render_frames(spec: SynthSpec, row: dict[str, Any]) -> np.ndarray:
    """[N, H, W, 3] uint8 frames of the whole source video (pre-roll + clip)."""
    w, h = int(spec.params["width"]), int(spec.params["height"])
    pre = int(row["start_s"]) * FPS
    n_clip = int(round(CLIP_SECONDS * FPS))
    rng = np.random.default_rng([spec.seed, int(row["clip_index"]), _BG_STREAM])
    bg = background(str(row["background"]), rng, w, h)
    frames = np.empty((pre + n_clip, h, w, 3), dtype=np.uint8)
    frames[:] = bg
    objects = spec.objects(int(row["clip_index"]))
    times = np.arange(n_clip) / FPS
    for obj in sorted(objects, key=lambda o: o["z"]):
        rgb, alpha = scene.sprite(obj, spec.class_row(obj["class_idx"]))
        s = alpha.shape[0]
        where = np.broadcast_to(alpha[..., None], rgb.shape)
        for j, (x, y) in enumerate(scene.positions(obj, times, w, h)):
            np.copyto(frames[pre + j, y : y + s, x : x + s], rgb, where=where)
    return frames


def render_audio(spec: SynthSpec, row: dict[str, Any]) -> np.ndarray:
    """float32 mono samples of the whole source video: silence, then the clip's mixture."""
    sr = int(spec.params["sample_rate"])
    pre = int(row["start_s"]) * sr
    n = int(round(CLIP_SECONDS * sr))
    rng = np.random.default_rng([spec.seed, int(row["clip_index"]), _AUDIO_STREAM])
    mix = np.zeros(n)
    for obj in spec.objects(int(row["clip_index"])):
        if obj["sounding"]:
            mix += sound.instrument(rng, obj["sound"], spec.class_row(obj["class_idx"]), n, sr)
    mix += 10.0 ** (float(row["noise_db"]) / 20.0) * sound.coloured_noise(
        rng, n, float(row["noise_colour"]), sr
    )
    out = np.zeros(pre + n, dtype=np.float32)
    out[pre:] = np.clip(mix, -0.99, 0.99)
    return out


def encode(frames: np.ndarray, audio: np.ndarray, sr: int, path: Path, crf: int = 23) -> None:
    """Pipe raw RGB frames + a temporary wav through ffmpeg (libx264 ultrafast, yuv420p, AAC, 1 thread)."""
    n, h, w, _ = frames.shape
    fd, wav_name = tempfile.mkstemp(prefix=".synthav-", suffix=".wav", dir=path.parent)
    os.close(fd)
    try:
        sf.write(wav_name, audio, sr, subtype="PCM_16")
        video_in = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", r=FPS)
        audio_in = ffmpeg.input(wav_name)
        # no +faststart: the moov atom stays at the end, so a truncated file cannot be decoded at all
        out = ffmpeg.output(
            video_in,
            audio_in,
            str(path),
            f="mp4",
            vcodec="libx264",
            preset="ultrafast",
            crf=crf,
            g=FPS,  # 1 s GOP: cheap accurate seeks for the slicer
            pix_fmt="yuv420p",
            acodec="aac",
            aac_coder="fast",  # the default two-loop coder costs ~3x the CPU for no benefit here
            audio_bitrate="64k",
            ac=1,
            threads=1,
            map_metadata=-1,
            fflags="+bitexact",
        )
        out = out.global_args("-hide_banner", "-loglevel", "error").overwrite_output()
        try:
            out.run(cmd=ffmpeg_exe(), input=frames.tobytes(), capture_stdout=True, capture_stderr=True)
        except ffmpeg.Error as err:
            raise RuntimeError(f"ffmpeg failed for {path}: {err.stderr.decode(errors='replace')}") from err
    finally:
        Path(wav_name).unlink(missing_ok=True)


def render_clip(spec: SynthSpec, clip_index: int, video_dir: str | os.PathLike) -> dict[str, Any]:
    """Render one source video to ``{video_dir}/{ytid}.mp4``; returns a status record."""
    t0 = time.perf_counter()
    row = spec.clips.iloc[int(clip_index)].to_dict()
    target = Path(video_dir) / f"{row['ytid']}.mp4"
    if row["missing"]:
        # listed in the metadata, never rendered: the download stage must report it unavailable
        return {"clip_id": row["clip_id"], "path": "", "status": "skipped_missing", "seconds": 0.0}
    frames = render_frames(spec, row)
    audio = render_audio(spec, row)
    with atomic_path(target) as tmp:
        encode(frames, audio, int(spec.params["sample_rate"]), tmp, crf=int(spec.params["crf"]))
        status = "ok"
        if row["corrupt"]:
            # an interrupted download: the first third of the bytes (no moov atom) -> undecodable
            data = tmp.read_bytes()
            tmp.write_bytes(data[: len(data) // 3])
            status = "corrupt"
    return {
        "clip_id": row["clip_id"],
        "path": str(target),
        "status": status,
        "seconds": round(time.perf_counter() - t0, 4),
    }


def render_chunk(
    spec: SynthSpec, chunk: int, n_chunks: int, video_dir: str | os.PathLike, workers: int = 1
) -> pd.DataFrame:
    """Render the clips with ``clip_index % n_chunks == chunk``; at most `workers` threads (1 ffmpeg each)."""
    if not 0 <= chunk < n_chunks:
        raise ValueError(f"chunk {chunk} not in 0..{n_chunks - 1}")
    Path(video_dir).mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(len(spec.clips)) if i % n_chunks == chunk]
    if workers <= 1:
        records = [render_clip(spec, i, video_dir) for i in todo]
    else:
        # threads suffice: ffmpeg runs in a subprocess and numpy releases the GIL in the heavy parts
        with ThreadPoolExecutor(max_workers=workers) as pool:
            records = list(pool.map(lambda i: render_clip(spec, i, video_dir), todo))
    return pd.DataFrame(records, columns=["clip_id", "path", "status", "seconds"])
