"""One ffmpeg pass per clip: 16 kHz mono wav + centre frame + optional frame folder (PROTOCOLS 2.1).

Outputs per clip (ARCHITECTURE "Slice status"): ``{clips_dir}/{clip_id}/audio.wav``, ``center.jpg`` and
``frames/{k:03d}.jpg``, plus ``slice.json`` (the status row and the options that produced it) so that a
rerun can skip a finished clip and still report its status (e.g. ``too_short``) without decoding again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
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

from avbench.io import write_parquet
from avbench.media.ffmpeg_bin import ffmpeg_exe

log = logging.getLogger(__name__)

STATUS_COLUMNS = [
    "clip_id",
    "status",
    "reason",
    "audio_path",
    "frame_path",
    "frames_dir",
    "n_frames",
    "duration_s",
    "width",
    "height",
]
STATUSES = ("ok", "missing_source", "decode_error", "too_short", "no_audio")
SIDECAR = "slice.json"
# The protocol defines the centre frame as frame 125 of a 25 fps decode (t = 5.0 s), so the centre frame is
# taken from a 25 fps resampling of the video whatever the source rate (identical for 25 fps sources).
CENTER_DECODE_FPS = 25.0
PREROLL_S = 0.5  # decoded before offset_s and trimmed, so the clip's first audio packet is complete


def _empty_status(status: str, reason: str = "") -> dict[str, Any]:
    return {
        "clip_id": "",
        "status": status,
        "reason": reason,
        "audio_path": "",
        "frame_path": "",
        "frames_dir": "",
        "n_frames": 0,
        "duration_s": 0.0,
        "width": 0,
        "height": 0,
    }


# Options that determine a clip's outputs or status; a finished clip made with other values is redone.
OUTPUT_OPTIONS: dict[str, Any] = {
    "sample_rate": 16000,
    "duration_s": 10.0,
    "center_s": 5.0,
    "frame_fps": 0.0,
    "frame_format": "jpg",
    "min_duration_s": 9.0,
    "jpeg_quality": 2,
}


def _slice_options(opts: dict[str, Any]) -> dict[str, Any]:
    out = {k: opts.get(k, default) for k, default in OUTPUT_OPTIONS.items()}
    for k in ("duration_s", "center_s", "frame_fps", "min_duration_s"):
        out[k] = float(out[k])
    return out


def _build_command(
    src: Path,
    tmp: Path,
    *,
    offset_s: float,
    sample_rate: int,
    duration_s: float,
    center_s: float,
    frame_fps: float,
    frame_format: str,
    jpeg_quality: int,
    threads: int,
) -> list[str]:
    # Input seeking (-ss before -i) decodes accurately and re-bases timestamps to 0 at the seek point; -t on
    # the input bounds every output to the window. We seek PREROLL_S early and trim in the filters: seeking
    # exactly onto a video keyframe can make the demuxer start audio at the next AAC packet, and the
    # ~20 ms gap would become silence at the start of the clip.
    preroll = min(float(offset_s), PREROLL_S)
    inp = ffmpeg.input(
        str(src), ss=f"{offset_s - preroll:.6f}", t=f"{duration_s + preroll:.6f}", threads=threads
    )
    # first_pts=0 pads a late-starting audio stream with silence, keeping audio aligned to the window start.
    audio = inp["a:0"].filter("aresample", sample_rate, first_pts=0)
    video = inp["v:0"]
    if preroll > 0:
        audio = audio.filter("atrim", start_sample=round(preroll * sample_rate)).filter("asetpts", "N/SR/TB")
        # Shift so that offset_s is t=0; the fps filters below then anchor their ticks at the clip start.
        video = video.filter("setpts", f"PTS-{preroll:.6f}/TB")
    outputs = [
        ffmpeg.output(audio, str(tmp / "audio.wav"), acodec="pcm_s16le", ac=1, ar=sample_rate, f="wav")
    ]

    branches = video.filter_multi_output("split", 2) if frame_fps > 0 else None
    center_in = branches[0] if branches is not None else video
    # fps keeps, for each output tick, the LAST input frame rounded onto it; round=up makes that the frame on
    # screen at the tick (pts in (t - 1/fps, t]); the default round=near would be up to half a period late
    # (0.48 s for fps=1). start_time=0 anchors the ticks to the clip start rather than to the first decoded
    # frame and drops the preroll frames. After fps=25 timestamps are multiples of 40 ms, so trimming half
    # a period before center_s keeps exactly the frame at center_s (frame 125), immune to float rounding.
    center = (
        center_in.filter("fps", CENTER_DECODE_FPS, start_time=0, round="up")
        .filter("trim", start=f"{max(center_s - 0.5 / CENTER_DECODE_FPS, 0.0):.6f}")
        # Full frame, aspect kept: anamorphic sources (SAR != 1) are stretched to square pixels.
        .filter("scale", w="iw*sar", h="ih")
        .filter("setsar", 1)
    )
    jpeg_opts = {"q:v": jpeg_quality}
    if frame_format == "jpg":
        # yuvj420p is full-range 4:2:0, what every JPEG decoder expects.
        center = center.filter("format", "yuvj420p")
    outputs.append(
        ffmpeg.output(center, str(tmp / f"center.{frame_format}"), update=1, **{"frames:v": 1}, **jpeg_opts)
    )

    if branches is not None:
        frames = (
            branches[1]
            .filter("fps", frame_fps, start_time=0, round="up")
            .filter("scale", w="iw*sar", h="ih")
            .filter("setsar", 1)
        )
        if frame_format == "jpg":
            frames = frames.filter("format", "yuvj420p")
        # image2 treats '%' as a pattern character, so escape it in the directory part.
        pattern = str(tmp / "frames").replace("%", "%%") + f"/%03d.{frame_format}"
        max_frames = math.ceil(duration_s * frame_fps - 1e-6)  # fps may emit one extra frame at EOF
        outputs.append(
            ffmpeg.output(frames, pattern, start_number=0, **{"frames:v": max_frames}, **jpeg_opts)
        )

    return (
        ffmpeg.merge_outputs(*outputs)
        .global_args(
            "-hide_banner", "-nostdin", "-loglevel", "error", "-filter_complex_threads", str(threads)
        )
        .overwrite_output()
        .compile(cmd=ffmpeg_exe())
    )


def _stderr_lines(stderr: str) -> list[str]:
    """Non-empty stderr lines without the '[in#0 @ 0x55...]' context prefixes (addresses differ per run)."""
    lines = (re.sub(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", ln.strip()) for ln in stderr.splitlines())
    return [ln for ln in lines if ln]


def _classify_failure(stderr: str) -> tuple[str, str]:
    """Map ffmpeg's error output to (status, reason)."""
    lines = _stderr_lines(stderr)
    # The first line names the cause (e.g. 'moov atom not found'), the last the failing step.
    tail = "; ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else "ffmpeg failed without a message"
    for ln in lines:
        if "matches no streams" in ln:
            if "':a" in ln or "'a:" in ln:
                return "no_audio", "no audio stream"
            if "':v" in ln or "'v:" in ln:
                return "decode_error", "no video stream"
    if "No such file or directory" in stderr:
        return "missing_source", tail
    return "decode_error", tail[:500]


def slice_clip(
    src: Path,
    offset_s: float,
    out_dir: Path,
    *,
    sample_rate: int = 16000,
    duration_s: float = 10.0,
    center_s: float = 5.0,
    frame_fps: float = 0,
    frame_format: str = "jpg",
    min_duration_s: float = 9.0,
    jpeg_quality: int = 2,
    threads: int = 1,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Slice one clip with a single ffmpeg process; return a slice status row (``clip_id`` left empty).

    ``out_dir`` is the clip's final directory; it is rendered into a temporary sibling and renamed into place,
    so it either holds every output or does not exist. ``jpeg_quality`` is ffmpeg's ``-q:v`` (2 = best,
    31 = worst). ``threads`` is per ffmpeg process (1 suits a pool of many clips). The wav is always exactly
    ``duration_s`` long (zero padded); ``duration_s`` in the row is the audio actually decoded.
    """
    src, out_dir = Path(src), Path(out_dir)
    if frame_format not in ("jpg", "png"):
        raise ValueError(f"frame_format must be jpg or png, got {frame_format!r}")
    if not src.is_file():
        return _empty_status("missing_source", f"media file not found: {src}")
    if center_s >= duration_s:
        raise ValueError(f"center_s ({center_s}) must lie inside the clip (duration_s={duration_s})")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        if frame_fps > 0:
            (tmp / "frames").mkdir()  # image2 does not create directories
        # Absolute paths: a relative path starting with '-' (YouTube ids may) would read as an option.
        cmd = _build_command(
            src.resolve(),
            tmp.resolve(),
            offset_s=float(offset_s),
            sample_rate=sample_rate,
            duration_s=duration_s,
            center_s=center_s,
            frame_fps=frame_fps,
            frame_format=frame_format,
            jpeg_quality=jpeg_quality,
            threads=threads,
        )
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return _empty_status("decode_error", f"ffmpeg timed out after {timeout_s:.0f} s")
        stderr = proc.stderr.decode("utf-8", errors="replace")
        if proc.returncode != 0:
            return _empty_status(*_classify_failure(stderr))

        row = _finish_outputs(
            tmp,
            sample_rate=sample_rate,
            duration_s=duration_s,
            center_s=center_s,
            min_duration_s=min_duration_s,
            frame_fps=frame_fps,
            frame_format=frame_format,
            stderr=stderr,
        )
        if row["status"] not in ("ok", "too_short"):
            return row
        sidecar = {
            "status": row,
            "options": _slice_options(
                {
                    "sample_rate": sample_rate,
                    "duration_s": duration_s,
                    "center_s": center_s,
                    "frame_fps": frame_fps,
                    "frame_format": frame_format,
                    "min_duration_s": min_duration_s,
                    "jpeg_quality": jpeg_quality,
                }
            ),
        }
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out_dir.exists():  # stale output from other options: replace it whole
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
        return _with_paths(row, out_dir, frame_fps, frame_format)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _finish_outputs(
    tmp: Path,
    *,
    sample_rate: int,
    duration_s: float,
    center_s: float,
    min_duration_s: float,
    frame_fps: float,
    frame_format: str,
    stderr: str,
) -> dict[str, Any]:
    """Check the rendered files, pad the wav to its exact length and build the status row (paths later)."""
    wav_path = tmp / "audio.wav"
    center_path = tmp / f"center.{frame_format}"
    if not wav_path.is_file():
        return _empty_status("decode_error", "ffmpeg produced no audio")
    wave, sr = sf.read(wav_path, dtype="int16", always_2d=False)
    if sr != sample_rate:  # cannot happen with -ar, but a silent mismatch would corrupt every spectrogram
        return _empty_status("decode_error", f"wav rate {sr} != {sample_rate}")
    n_target = round(duration_s * sample_rate)
    decoded_s = len(wave) / sample_rate
    if len(wave) != n_target:
        # The resampler can be a few samples off, and short sources are padded with silence.
        fixed = np.zeros(n_target, dtype=np.int16)
        fixed[: min(len(wave), n_target)] = wave[:n_target]
        sf.write(wav_path, fixed, sample_rate, subtype="PCM_16", format="WAV")
    if len(wave) == 0:
        return _empty_status("decode_error", "no audio decoded in the clip window")
    if not center_path.is_file():
        return _empty_status(
            "decode_error", f"no video frame at t={center_s:.2f} s (video ends early or is undecodable)"
        )
    with Image.open(center_path) as img:
        width, height = img.size

    n_frames = len(list((tmp / "frames").glob(f"*.{frame_format}"))) if frame_fps > 0 else 0
    status, reason = "ok", ""
    if decoded_s < min_duration_s:
        status, reason = "too_short", f"decoded audio {decoded_s:.3f} s < {min_duration_s} s (zero padded)"
    elif stderr.strip():
        # ffmpeg succeeded but complained (e.g. corrupt packets): keep the first line for the record.
        reason = _stderr_lines(stderr)[0][:300]
    row = _empty_status(status, reason)
    row.update(n_frames=n_frames, duration_s=round(min(decoded_s, duration_s), 6), width=width, height=height)
    return row


def _with_paths(row: dict[str, Any], out_dir: Path, frame_fps: float, frame_format: str) -> dict[str, Any]:
    row = dict(row)
    row["audio_path"] = str(out_dir / "audio.wav")
    row["frame_path"] = str(out_dir / f"center.{frame_format}")
    row["frames_dir"] = str(out_dir / "frames") if frame_fps > 0 else ""
    return row


def _finished(out_dir: Path, options: dict[str, Any]) -> dict[str, Any] | None:
    """The stored status of a clip already sliced with the same options and all outputs present, else None."""
    try:
        sidecar = json.loads((out_dir / SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if sidecar.get("options") != options:
        return None
    row = sidecar["status"]
    fmt = options["frame_format"]
    if not (out_dir / "audio.wav").is_file() or not (out_dir / f"center.{fmt}").is_file():
        return None
    if options["frame_fps"] > 0 and len(list((out_dir / "frames").glob(f"*.{fmt}"))) != row["n_frames"]:
        return None
    return _with_paths(row, out_dir, options["frame_fps"], fmt)


def _slice_row(cid: str, dl: dict[str, Any] | None, clips_dir: Path, opts: dict[str, Any]) -> dict[str, Any]:
    if dl is None:
        row = _empty_status("missing_source", "no download status row")
    elif dl.get("status") != "ok":
        reason = str(dl.get("reason") or "")
        row = _empty_status("missing_source", f"download {dl.get('status')}: {reason}".rstrip(": "))
    elif not dl.get("path"):
        row = _empty_status("missing_source", "download ok but no media path")
    else:
        out_dir = clips_dir / cid
        row = _finished(out_dir, _slice_options(opts))
        if row is None:
            offset = dl.get("offset_s")
            offset = 0.0 if offset is None or pd.isna(offset) else float(offset)
            try:
                row = slice_clip(Path(dl["path"]), offset, out_dir, **opts)
            except Exception as exc:  # one bad clip must not sink the chunk
                log.exception("slicing %s failed", cid)
                row = _empty_status("decode_error", f"{type(exc).__name__}: {exc}"[:500])
    row["clip_id"] = cid
    return row


def slice_chunk(
    download_status: pd.DataFrame,
    manifest: pd.DataFrame | None,
    clips_dir: Path,
    *,
    workers: int = 2,
    **opts: Any,
) -> pd.DataFrame:
    """Slice every clip of a chunk; return one slice status row per clip, sorted by clip_id.

    The clip set is ``manifest.clip_id`` (the caller passes the chunk's manifest rows) or, without a manifest,
    every download row. Failed downloads become ``missing_source`` rows carrying the download reason. Clips
    whose final directory is complete for the same options are not decoded again.
    """
    clips_dir = Path(clips_dir)
    downloads = {r["clip_id"]: r for r in download_status.to_dict("records")}
    ids = sorted(set(manifest["clip_id"]) if manifest is not None else downloads)
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        rows = list(pool.map(lambda cid: _slice_row(cid, downloads.get(cid), clips_dir, opts), ids))
    frame = pd.DataFrame(rows, columns=STATUS_COLUMNS)
    return frame.astype({"n_frames": "int64", "width": "int64", "height": "int64", "duration_s": "float64"})


def run_slice(
    download_status_path: str | os.PathLike,
    manifest_path: str | os.PathLike | None,
    chunk: int | None,
    clips_dir: str | os.PathLike,
    status_out: str | os.PathLike,
    **opts: Any,
) -> pd.DataFrame:
    """Snakemake entry point: slice one chunk and write its status parquet atomically."""
    t0 = time.perf_counter()
    downloads = pd.read_parquet(download_status_path)
    manifest = None
    if manifest_path is not None:
        manifest = pd.read_parquet(manifest_path, columns=["clip_id", "chunk"])
        if chunk is not None:
            manifest = manifest[manifest["chunk"] == int(chunk)]
    status = slice_chunk(downloads, manifest, Path(clips_dir), **opts)
    write_parquet(status_out, status)
    counts = status["status"].value_counts().to_dict()
    log.info("sliced chunk %s: %s in %.1f s", chunk, counts, time.perf_counter() - t0)
    return status
