"""SynthAV presets and the class-name catalogue.

A preset is a flat dict; config keys override single entries (`resolve_params`). Fixed media constants
(25 fps, 10 s clips, annotated frame at 5.0 s) are not overridable because the slicer and the ground-truth
conventions (VGG-SS centre frame = frame 125 of a 25 fps decode) depend on them.
"""

from __future__ import annotations

from typing import Any

FPS = 25
CLIP_SECONDS = 10.0
CENTER_TIME_S = 5.0  # VGG-SS boxes are drawn on the 125th frame of a 25 fps decode
CENTER_FRAME = int(round(CENTER_TIME_S * FPS))
MASK_TIMES_S = (3.0, 4.0, 5.0, 6.0, 7.0)  # AVSBench-style: 5 annotated frames, one per second

# Instrument-like class names. Some contain ", " (CSV quoting, label-normalisation rules) and one starts
# with "playing " (the instrument-list rule strips it). The first 6 are the tiny preset's classes.
CLASS_CATALOGUE: tuple[str, ...] = (
    "marimba, xylophone",
    "glass harp",
    "synth flute",
    "violin, fiddle",
    "steel drum",
    "theremin",
    "playing bagpipes",
    "pipe organ",
    "harmonica, mouth organ",
    "kalimba",
    "tubular bells",
    "didgeridoo",
)

_DEFAULTS: dict[str, Any] = {
    "name": "demo",
    "n_classes": 8,
    "n_train": 640,
    "n_test": 160,
    "n_duet": 48,
    "n_missing": 3,
    "n_corrupt": 2,
    "width": 160,
    "height": 120,
    "sample_rate": 22050,
    # start_s of each clip inside its source video is drawn from 0..max_start_s; every source video is
    # start_s + 10 s long, so a small maximum keeps the render cost low while still exercising the cut.
    "max_start_s": 4,
    "max_distractors": 2,  # single clips: 0..max_distractors silent objects of other classes
    "max_duet_distractors": 1,
    "size_frac": (0.22, 0.40),  # object side as a fraction of the frame's shorter side
    "speed_frac": (0.03, 0.10),  # drift speed in frame widths (heights) per second
    "min_visible": 0.7,  # visible fraction of every sounding object at every annotated frame
    "pitch_hz": (150.0, 2400.0),  # class pitch bands are log-spaced inside this range
    "loudness_db": (-22.0, -14.0),  # RMS of a sounding object, dBFS
    "noise_db": (-50.0, -38.0),  # RMS of the background noise, dBFS
    "crf": 23,
}

PRESETS: dict[str, dict[str, Any]] = {
    "demo": dict(_DEFAULTS),
    "tiny": {
        **_DEFAULTS,
        "name": "tiny",
        "n_classes": 6,
        "n_train": 36,
        "n_test": 18,
        "n_duet": 6,
        "n_missing": 1,
        "n_corrupt": 1,
        "max_start_s": 3,
    },
}


def resolve_params(preset: str | dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Preset name or dict (merged over the demo defaults), then `overrides`; unknown keys are errors."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown SynthAV preset {preset!r}; known: {sorted(PRESETS)}")
        params = dict(PRESETS[preset])
    else:
        params = {**_DEFAULTS, "name": "custom", **preset}
    for key, value in (overrides or {}).items():
        params[key] = value
    unknown = set(params) - set(_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown SynthAV parameter(s): {sorted(unknown)}")
    for key in ("size_frac", "speed_frac", "pitch_hz", "loudness_db", "noise_db"):
        params[key] = tuple(float(v) for v in params[key])
    _validate(params)
    return params


def _validate(p: dict[str, Any]) -> None:
    if not 2 <= p["n_classes"] <= len(CLASS_CATALOGUE):
        raise ValueError(f"n_classes must be in 2..{len(CLASS_CATALOGUE)}")
    if p["width"] % 2 or p["height"] % 2:
        raise ValueError("width and height must be even (yuv420p)")
    if p["n_missing"] + p["n_corrupt"] > p["n_train"]:
        raise ValueError("n_missing + n_corrupt must not exceed n_train")
    if p["n_duet"] and p["n_classes"] < 3 and p["max_duet_distractors"] > 0:
        raise ValueError("duet distractors need at least 3 classes")
    if p["max_distractors"] > p["n_classes"] - 1:
        raise ValueError("max_distractors must be < n_classes (distractors are of other classes)")
    if not 0 <= int(p["max_start_s"]) <= 60:
        raise ValueError("max_start_s must be in 0..60")
