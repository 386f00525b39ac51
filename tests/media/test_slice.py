"""avbench.media.slice: one ffmpeg pass per clip -> wav + centre frame + frames, and the chunk driver."""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from avbench.media import slice as slicer
from avbench.media.slice import STATUS_COLUMNS, run_slice, slice_chunk, slice_clip

from ._fixtures_slice import (
    FPS,
    HEIGHT,
    WIDTH,
    decode_rgb_frames,
    make_garbage,
    make_mp4,
    make_truncated,
    nearest_frame,
)

SR = 16000


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    good = make_mp4(d / "good.mp4", 12.0)
    return {
        "good": good,
        "short": make_mp4(d / "short.mp4", 6.0),
        "noaudio": make_mp4(d / "noaudio.mp4", 12.0, audio=False),
        "garbage": make_garbage(d / "garbage.mp4"),
        "truncated": make_truncated(good, d / "truncated.mp4"),
    }


@pytest.fixture(scope="module")
def ref_frames(media: dict[str, Path]) -> np.ndarray:
    return decode_rgb_frames(media["good"])


def _rgb(path: str | Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _no_temp_dirs(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if p.name.startswith(".")]


def test_outputs_have_contract_shapes(media, tmp_path):
    out = tmp_path / "aaaaaaaaaaa_000000"
    row = slice_clip(media["good"], 0.0, out, frame_fps=1)
    assert row["status"] == "ok", row
    assert set(row) == set(STATUS_COLUMNS)
    info = sf.info(out / "audio.wav")
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 1, 10 * SR, "PCM_16")
    assert row["duration_s"] == pytest.approx(10.0, abs=1e-3)
    assert Image.open(out / "center.jpg").size == (WIDTH, HEIGHT)
    assert (row["width"], row["height"]) == (WIDTH, HEIGHT)
    frames = sorted(p.name for p in (out / "frames").iterdir())
    assert frames == [f"{k:03d}.jpg" for k in range(10)] and row["n_frames"] == 10
    assert row["audio_path"] == str(out / "audio.wav") and row["frames_dir"] == str(out / "frames")
    assert _no_temp_dirs(tmp_path)


@pytest.mark.parametrize("offset_s", [0.0, 2.0, 2.3])
def test_center_frame_and_frames_are_at_their_timestamps(media, ref_frames, tmp_path, offset_s):
    row = slice_clip(media["good"], offset_s, tmp_path / "c", frame_fps=1)
    # The centre frame is the one on screen at offset + 5.0 s: frame 125 of the clip at 25 fps.
    k, dist = nearest_frame(_rgb(row["frame_path"]), ref_frames)
    assert k == round((offset_s + 5.0) * FPS) and dist < 8.0
    # Frame k of a 1 fps folder is the one at offset + k s (not half a period late).
    for j in (0, 3, 9):
        k, _ = nearest_frame(_rgb(Path(row["frames_dir"]) / f"{j:03d}.jpg"), ref_frames)
        assert k == round((offset_s + j) * FPS)


@pytest.mark.parametrize("offset_s", [2.0, 0.3])  # on a keyframe (2.0) and inside the preroll (0.3)
def test_offset_shifts_audio(media, tmp_path, offset_s):
    shift = round(offset_s * SR)
    w0, _ = sf.read(slice_clip(media["good"], 0.0, tmp_path / "a0")["audio_path"], dtype="float32")
    w2, _ = sf.read(slice_clip(media["good"], offset_s, tmp_path / "a2")["audio_path"], dtype="float32")
    assert len(w0) == len(w2) == 10 * SR
    # w2 starts where w0 is offset_s in; the chirp has no period, so only the right shift matches.
    # (The last samples differ: the resampler's filter sees the end of w0's window.)
    n = 10 * SR - shift - 16
    np.testing.assert_allclose(w2[:n], w0[shift : shift + n], atol=2e-3)
    assert np.abs(w2[:n] - w0[:n]).max() > 0.05


def test_short_source_is_padded_and_flagged(media, tmp_path):
    row = slice_clip(media["short"], 0.0, tmp_path / "s", min_duration_s=9.0, frame_fps=1)
    assert row["status"] == "too_short" and "zero padded" in row["reason"]
    assert row["duration_s"] == pytest.approx(6.0, abs=0.05)
    wave, sr = sf.read(row["audio_path"], dtype="int16")
    assert sr == SR and len(wave) == 10 * SR
    assert np.abs(wave[: 5 * SR]).max() > 0 and not wave[int(6.1 * SR) :].any()
    assert Path(row["frame_path"]).is_file() and row["n_frames"] == 6
    # Under a lower threshold the same clip is ok.
    assert slice_clip(media["short"], 0.0, tmp_path / "s2", min_duration_s=5.0)["status"] == "ok"


@pytest.mark.parametrize(
    ("name", "status", "reason_part"),
    [
        ("noaudio", "no_audio", "no audio"),
        ("garbage", "decode_error", "Invalid data"),
        ("truncated", "decode_error", "moov atom not found"),
    ],
)
def test_failures_are_status_rows(media, tmp_path, name, status, reason_part):
    out = tmp_path / "x"
    row = slice_clip(media[name], 0.0, out, frame_fps=1)
    assert (row["status"], row["audio_path"], row["n_frames"]) == (status, "", 0)
    assert reason_part in row["reason"]
    assert not out.exists() and _no_temp_dirs(tmp_path)


def test_missing_source(tmp_path):
    row = slice_clip(tmp_path / "nope.mp4", 0.0, tmp_path / "x")
    assert row["status"] == "missing_source" and not (tmp_path / "x").exists()


def test_output_option_defaults_match_signature():
    params = inspect.signature(slice_clip).parameters
    for name, default in slicer.OUTPUT_OPTIONS.items():
        assert params[name].default == default, name


def _downloads(media: dict[str, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [
        # A clip id starting with '-' must never reach ffmpeg as an option.
        ("-aaaaaaaaaa_000002", "ok", "", str(media["good"]), 2.0),
        ("bbbbbbbbbbb_000000", "ok", "", str(media["noaudio"]), 0.0),
        ("ccccccccccc_000000", "ok", "", str(media["garbage"]), 0.0),
        ("ddddddddddd_000000", "private", "Private video", "", np.nan),
        ("eeeeeeeeeee_000000", "ok", "", str(media["short"]), 0.0),
    ]
    dl = pd.DataFrame(rows, columns=["clip_id", "status", "reason", "path", "offset_s"])
    manifest = pd.DataFrame({"clip_id": [*dl["clip_id"], "fffffffffff_000000"], "chunk": 0})
    return dl, manifest


def test_slice_chunk_rows_and_rerun_skip(media, tmp_path, monkeypatch):
    dl, manifest = _downloads(media)
    clips = tmp_path / "clips"
    first = slice_chunk(dl, manifest, clips, workers=3, frame_fps=1)
    assert list(first.columns) == STATUS_COLUMNS
    assert list(first["clip_id"]) == sorted(manifest["clip_id"])
    by_id = first.set_index("clip_id")
    assert by_id["status"].to_dict() == {
        "-aaaaaaaaaa_000002": "ok",
        "bbbbbbbbbbb_000000": "no_audio",
        "ccccccccccc_000000": "decode_error",
        "ddddddddddd_000000": "missing_source",
        "eeeeeeeeeee_000000": "too_short",
        "fffffffffff_000000": "missing_source",
    }
    assert "Private video" in by_id.loc["ddddddddddd_000000", "reason"]
    assert by_id.loc["fffffffffff_000000", "reason"] == "no download status row"
    assert sorted(p.name for p in clips.iterdir()) == ["-aaaaaaaaaa_000002", "eeeeeeeeeee_000000"]

    # Rerun: finished clips (ok and too_short) are not decoded again and keep their status.
    calls: list[list[str]] = []
    real_run = subprocess.run

    def spy(cmd, *args, **kwargs):
        calls.append(cmd)
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(slicer.subprocess, "run", spy)
    mtime = (clips / "-aaaaaaaaaa_000002" / "audio.wav").stat().st_mtime_ns
    second = slice_chunk(dl, manifest, clips, workers=2, frame_fps=1)
    pd.testing.assert_frame_equal(first, second)
    decoded = {arg for cmd in calls for arg in cmd}
    assert str(media["good"]) not in decoded and str(media["short"]) not in decoded
    assert (clips / "-aaaaaaaaaa_000002" / "audio.wav").stat().st_mtime_ns == mtime

    # Other output options redo the clip (and drop the stale frame folder).
    third = slice_chunk(dl, manifest, clips, workers=2, frame_fps=0).set_index("clip_id")
    assert third.loc["-aaaaaaaaaa_000002", "n_frames"] == 0
    assert not (clips / "-aaaaaaaaaa_000002" / "frames").exists()


def test_run_slice_writes_parquet(media, tmp_path):
    dl, manifest = _downloads(media)
    manifest.loc[manifest["clip_id"] != "-aaaaaaaaaa_000002", "chunk"] = 1
    dl.to_parquet(tmp_path / "dl.parquet")
    manifest.to_parquet(tmp_path / "clips.parquet")
    out = tmp_path / "status" / "chunk000.parquet"
    run_slice(tmp_path / "dl.parquet", tmp_path / "clips.parquet", 0, tmp_path / "clips", out, workers=1)
    status = pd.read_parquet(out)
    assert list(status.columns) == STATUS_COLUMNS
    assert status[["clip_id", "status"]].values.tolist() == [["-aaaaaaaaaa_000002", "ok"]]
