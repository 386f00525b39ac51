"""Spec: determinism, ids, roles, geometry and the centre prior."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avbench import ids
from avbench.synthav import MASK_TIMES_S, PRESETS, load_spec, make_spec, resolve_params, save_spec
from avbench.synthav.metadata import clip_masks
from avbench.synthav.scene import tight_box


def test_same_seed_same_spec(tiny_spec):
    again = make_spec("tiny", 0)
    assert again.clips.equals(tiny_spec.clips)
    assert again.classes.equals(tiny_spec.classes)


def test_different_seed_differs(tiny_spec):
    other = make_spec("tiny", 1)
    assert set(other.clips["ytid"]).isdisjoint(tiny_spec.clips["ytid"])
    assert not other.clips["boxes"].equals(tiny_spec.clips["boxes"])


def test_save_load_roundtrip(tiny_spec, tmp_path):
    path = tmp_path / "spec.parquet"
    save_spec(tiny_spec, path)
    loaded = load_spec(path)
    assert loaded.clips.equals(tiny_spec.clips)
    assert loaded.classes.equals(tiny_spec.classes)
    assert loaded.params == tiny_spec.params and loaded.seed == tiny_spec.seed
    assert json.loads(path.with_suffix(".json").read_text())["seed"] == 0
    assert not list(tmp_path.glob(".*"))  # no temporaries left behind


def test_preset_sizes_and_overrides():
    tiny = make_spec("tiny", 3)
    counts = tiny.clips.groupby(["kind", "split"]).size().to_dict()
    assert counts == {("single", "train"): 36, ("single", "test"): 18, ("duet", "test"): 6}
    assert tiny.clips["missing"].sum() == 1 and tiny.clips["corrupt"].sum() == 1
    assert len(tiny.classes) == 6
    assert PRESETS["demo"]["n_classes"] == 8 and PRESETS["demo"]["n_train"] == 640
    small = make_spec("tiny", 3, {"n_train": 6, "n_test": 3, "n_duet": 0})
    assert len(small.clips) == 9
    with pytest.raises(ValueError, match="unknown SynthAV parameter"):
        resolve_params("tiny", {"n_trian": 3})
    with pytest.raises(ValueError, match="unknown SynthAV preset"):
        resolve_params("huge")


def test_ids_are_youtube_like(tiny_spec):
    ytids = tiny_spec.clips["ytid"]
    assert ytids.is_unique
    assert all(ids.YTID_RE.match(y) for y in ytids)
    assert ytids.str.startswith("-").sum() >= 3
    assert ytids.str.startswith("--").sum() >= 1
    assert ytids.str.contains("_").sum() >= 3
    for cid, ytid, start in tiny_spec.clips[["clip_id", "ytid", "start_s"]].itertuples(index=False):
        assert ids.parse_clip_id(cid) == (ytid, start)
    singles = tiny_spec.clips[tiny_spec.clips["kind"] == "single"]
    assert singles["start_s"].between(0, PRESETS["tiny"]["max_start_s"]).all()
    assert singles["start_s"].nunique() > 1


def test_roles_and_labels(tiny_spec):
    clips = tiny_spec.clips
    flagged = clips[clips["missing"] | clips["corrupt"]]
    assert (flagged["split"] == "train").all() and (flagged["kind"] == "single").all()
    assert not (clips["missing"] & clips["corrupt"]).any()
    names = set(tiny_spec.classes["name"])
    assert any(", " in n for n in names)  # exercises CSV quoting downstream
    assert set(clips["label"]) == names
    duets = clips[clips["kind"] == "duet"]
    assert (duets["label"] != duets["label2"]).all() and (duets["label2"] != "").all()
    # balanced classes per split
    per_class = clips[clips["kind"] == "single"].groupby(["split", "label"]).size()
    assert per_class.loc["train"].nunique() == 1 and per_class.loc["test"].nunique() == 1


def test_class_appearance_and_pitch_are_distinct(tiny_spec):
    cls = tiny_spec.classes
    assert cls["hue"].round(3).is_unique
    assert len(set(zip(cls["shape"], cls["texture"], strict=True))) == len(cls)
    bands = cls.sort_values("f_lo")[["f_lo", "f_hi"]].to_numpy()
    assert (bands[:, 0] < bands[:, 1]).all() and (bands[1:, 0] > bands[:-1, 1]).all()  # disjoint


def test_boxes_valid_and_match_masks(tiny_spec):
    w, h = tiny_spec.params["width"], tiny_spec.params["height"]
    short = min(w, h)
    lo, hi = tiny_spec.params["size_frac"]
    for row in tiny_spec.clips.itertuples():
        boxes = json.loads(row.boxes)
        assert len(boxes) == (2 if row.kind == "duet" else 1)
        for x1, y1, x2, y2 in boxes:
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
            assert max((x2 - x1) * w, (y2 - y1) * h) <= hi * short + 1
            assert max((x2 - x1) * w, (y2 - y1) * h) >= 0.5 * lo * short
        if row.kind == "single":
            masks = clip_masks(tiny_spec, row.clip_index)
            assert len(masks) == len(MASK_TIMES_S)
            assert tight_box(masks[MASK_TIMES_S.index(5.0)]) == boxes[0]
            assert all(m.any() for m in masks)


def test_positions_defeat_a_centre_prior(tiny_spec):
    boxes = np.array([b for s in tiny_spec.clips["boxes"] for b in json.loads(s)])
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    assert np.hypot(centres[:, 0] - 0.5, centres[:, 1] - 0.5).mean() > 0.2
    assert (centres.std(axis=0) > 0.15).all()
    # a fixed centred box of typical size overlaps the ground truth poorly
    cb = np.array([0.35, 0.35, 0.65, 0.65])
    iw = np.clip(np.minimum(boxes[:, 2], cb[2]) - np.maximum(boxes[:, 0], cb[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], cb[3]) - np.maximum(boxes[:, 1], cb[1]), 0, None)
    inter = iw * ih
    union = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + 0.09 - inter
    assert (inter / union).mean() < 0.2
