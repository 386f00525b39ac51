"""Rendering: container/streams, determinism, boxes on decoded pixels, sound classes, roles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from avbench.synthav import CENTER_FRAME, FPS, make_spec, render_chunk, render_clip, source_url
from avbench.synthav.render import render_audio, render_frames
from avbench.synthav.scene import hsv_rgb

from ._media import decode_audio, decode_frames, probe, run_ffmpeg


def _coarse(frame: np.ndarray) -> np.ndarray:
    """4x4 block means: compares pictures while ignoring the codec's loss on the fine background grain."""
    h, w, _ = frame.shape
    return frame.astype(np.float64).reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))


def test_streams_duration_size(tiny_spec, rendered):
    for name in ("train", "test", "duet"):
        rec = rendered[name]
        assert rec["status"] == "ok"
        row = tiny_spec.clips.iloc[rec["index"]]
        info = probe(rec["path"])
        expected = row["start_s"] + 10.0
        assert abs(info["duration"] - expected) < 0.1, info["text"]
        assert (info["vcodec"], info["width"], info["height"], info["fps"]) == ("h264", 160, 120, 25.0)
        assert (info["acodec"], info["sample_rate"], info["channels"]) == ("aac", 22050, "mono")
        assert "yuv420p" in info["text"]
        assert len(decode_frames(rec["path"], 160, 120)) == round(expected * FPS)
    assert rendered["train"]["path"].endswith(
        f"{tiny_spec.clips.iloc[rendered['train']['index']]['ytid']}.mp4"
    )


def test_preroll_is_silent_and_clip_is_not(tiny_spec, rendered):
    rec = rendered["train"]
    start = int(tiny_spec.clips.iloc[rec["index"]]["start_s"])
    assert start > 0
    audio = decode_audio(rec["path"], 22050)
    pre, clip = audio[: int((start - 0.1) * 22050)], audio[int((start + 0.1) * 22050) :]
    assert np.sqrt(np.mean(pre**2)) < 1e-3 < np.sqrt(np.mean(clip**2))
    frames = decode_frames(rec["path"], 160, 120)
    # before start_s the scene is static (background only); the objects appear exactly at start_s
    assert np.abs(_coarse(frames[start * FPS - 1]) - _coarse(frames[0])).mean() < 2.0
    assert np.abs(_coarse(frames[start * FPS]) - _coarse(frames[start * FPS - 1])).mean() > 3.0


def test_render_is_deterministic(tmp_path):
    spec_a, spec_b, spec_c = make_spec("tiny", 5), make_spec("tiny", 5), make_spec("tiny", 6)
    i = int(np.flatnonzero(~(spec_a.clips["missing"] | spec_a.clips["corrupt"]))[0])
    a = render_clip(spec_a, i, tmp_path / "a")
    b = render_clip(spec_b, i, tmp_path / "b")
    c = render_clip(spec_c, i, tmp_path / "c")
    fa, fb, fc = (decode_frames(r["path"], 160, 120) for r in (a, b, c))
    assert np.array_equal(fa[0], fb[0]) and np.array_equal(fa[-1], fb[-1])
    assert np.array_equal(decode_audio(a["path"], 22050), decode_audio(b["path"], 22050))
    assert Path(a["path"]).read_bytes() == Path(b["path"]).read_bytes()
    assert not np.array_equal(fa[-1], fc[-1])


def test_box_matches_decoded_centre_frame(tiny_spec, rendered):
    for name in ("train", "test", "duet"):
        rec = rendered[name]
        row = tiny_spec.clips.iloc[rec["index"]]
        frames = decode_frames(rec["path"], 160, 120)
        at = int(row["start_s"]) * FPS + CENTER_FRAME  # t = start_s + 5.0 s
        frame = frames[at].astype(np.float64)
        # the decoded frame is the numpy frame up to compression noise, and not the clip's first frame
        ref = render_frames(tiny_spec, row.to_dict())
        err = np.abs(_coarse(frame) - _coarse(ref[at])).mean()
        assert err < 3.0 and err < np.abs(_coarse(frame) - _coarse(ref[at - CENTER_FRAME])).mean()
        sounding = [o for o in tiny_spec.objects(rec["index"]) if o["sounding"]]
        for obj, (x1, y1, x2, y2) in zip(sounding, json.loads(row["boxes"]), strict=True):
            colour = hsv_rgb(obj["hue"], obj["sat"], obj["val"]) * 255
            close = np.linalg.norm(frame - colour, axis=2) < 40
            inside = np.zeros_like(close)
            inside[round(y1 * 120) : round(y2 * 120), round(x1 * 160) : round(x2 * 160)] = True
            assert close[inside].mean() > 0.1  # texture + shape cover part of the box only
            assert close[inside].mean() > 5 * close[~inside].mean()


def _dominant_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    f = np.fft.rfftfreq(len(x), 1 / sr)
    spec[f < 60] = 0
    return float(f[np.argmax(spec)])


def test_sound_classes_are_distinguishable(tiny_spec, rendered):
    cls = tiny_spec.classes
    singles = tiny_spec.clips[tiny_spec.clips["kind"] == "single"]
    for k, c in cls.iterrows():
        for row in singles[singles["label"] == c["name"]].head(2).itertuples():
            audio = render_audio(tiny_spec, tiny_spec.clips.iloc[row.clip_index].to_dict())
            f = _dominant_hz(audio[row.start_s * 22050 :], 22050)
            assert c["f_lo"] * 0.98 <= f <= c["f_hi"] * 1.02, (k, f, c["f_lo"], c["f_hi"])
    # also through the AAC round trip of a rendered file
    rec = rendered["test"]
    row = tiny_spec.clips.iloc[rec["index"]]
    c = cls[cls["name"] == row["label"]].iloc[0]
    f = _dominant_hz(decode_audio(rec["path"], 22050)[int(row["start_s"]) * 22050 :], 22050)
    assert c["f_lo"] * 0.98 <= f <= c["f_hi"] * 1.02


def test_missing_and_corrupt(rendered, tiny_spec):
    assert rendered["missing"]["status"] == "skipped_missing" and rendered["missing"]["path"] == ""
    ytid = tiny_spec.clips.iloc[rendered["missing"]["index"]]["ytid"]
    assert not (Path(rendered["corrupt"]["path"]).parent / f"{ytid}.mp4").exists()
    rec = rendered["corrupt"]
    assert rec["status"] == "corrupt" and Path(rec["path"]).stat().st_size > 0
    proc = run_ffmpeg(["-v", "error", "-i", rec["path"], "-f", "null", "-"])
    assert proc.returncode != 0


def test_render_chunk_partitions_and_url(tmp_path):
    spec = make_spec("tiny", 2, {"n_train": 4, "n_test": 2, "n_duet": 1, "n_missing": 1, "n_corrupt": 1})
    parts = [render_chunk(spec, c, 2, tmp_path, workers=2) for c in range(2)]
    assert list(parts[0].columns) == ["clip_id", "path", "status", "seconds"]
    allrec = pd.concat(parts)
    assert sorted(allrec["clip_id"]) == sorted(spec.clips["clip_id"])
    assert set(parts[0]["clip_id"]) == set(spec.clips["clip_id"].iloc[0::2])
    status = dict(zip(allrec["clip_id"], allrec["status"], strict=True))
    for row in spec.clips.itertuples():
        want = "skipped_missing" if row.missing else "corrupt" if row.corrupt else "ok"
        assert status[row.clip_id] == want
        assert (tmp_path / f"{row.ytid}.mp4").exists() != row.missing
    ytid = spec.clips["ytid"].iloc[0]
    url = source_url(tmp_path, ytid)
    assert url.startswith("file:///") and url.endswith(f"/{ytid}.mp4")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temporaries cleaned up
