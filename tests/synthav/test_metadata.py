"""Metadata files parse exactly like the real ones (PROTOCOLS 1) and agree with the spec."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from avbench import gt, ids
from avbench.synthav import CENTER_FRAME, MASK_TIMES_S, write_metadata
from avbench.synthav.scene import tight_box


@pytest.fixture(scope="module")
def meta(tiny_spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("synthav_meta")
    return write_metadata(tiny_spec, out)


def _test_singles(spec):
    c = spec.clips
    return c[(c["kind"] == "single") & (c["split"] == "test")]


def test_vggsound_csv(meta, tiny_spec):
    raw = meta["vggsound"].read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw
    with meta["vggsound"].open(newline="") as fh:
        rows = list(csv.reader(fh))
    singles = tiny_spec.clips[tiny_spec.clips["kind"] == "single"]
    assert len(rows) == len(singles)  # no header, missing/corrupt clips listed too
    assert all(len(r) == 4 for r in rows)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert any("," in r[2] for r in rows)
    assert b'"marimba, xylophone"' in raw and b'"glass harp"' not in raw  # minimal quoting, as the real file
    for ytid, start, _label, split in rows:
        assert ids.YTID_RE.match(ytid) and start.isdigit() and split in ("train", "test")
    expected = {(r.ytid, str(r.start_s), r.label, r.split) for r in singles.itertuples()}
    assert {tuple(r) for r in rows} == expected


def test_vggss_json_and_lists(meta, tiny_spec):
    raw = meta["vggss"].read_text()
    assert "\n" not in raw and raw.startswith('[{"file": ')
    items = json.loads(raw)
    test = _test_singles(tiny_spec)
    assert [i["file"] for i in items] == test["clip_id"].tolist()
    for item, row in zip(items, test.itertuples(), strict=True):
        assert set(item) == {"file", "class", "bbox"} and item["class"] == row.label
        assert ids.CLIP_ID_RE.match(item["file"])
        assert item["bbox"] == json.loads(row.boxes)
        assert gt.union_map(item["bbox"]).sum() > 0
    test_csv = meta["vggss_test"].read_bytes()
    assert test_csv.endswith(b"\r\n")
    assert test_csv.decode().split("\r\n")[:-1] == [i["file"] for i in items]

    heard = set(tiny_spec.classes.loc[tiny_spec.classes["heard"], "name"])
    assert 0 < len(heard) < len(tiny_spec.classes)
    lists = {}
    for key in ("vggss_heard_test", "vggss_unheard_test", "vggss_heard"):
        text = meta[key].read_text()
        assert "\r" not in text and not text.endswith("\n")
        lists[key] = text.split("\n")
    label = dict(zip(tiny_spec.clips["clip_id"], tiny_spec.clips["label"], strict=True))
    split = dict(zip(tiny_spec.clips["clip_id"], tiny_spec.clips["split"], strict=True))
    assert all(label[c] in heard for c in lists["vggss_heard_test"])
    assert all(label[c] not in heard for c in lists["vggss_unheard_test"])
    assert sorted(lists["vggss_heard_test"] + lists["vggss_unheard_test"]) == sorted(i["file"] for i in items)
    assert all(label[c] in heard and split[c] == "train" for c in lists["vggss_heard"])
    n_heard_train = sum(
        1
        for r in tiny_spec.clips.itertuples()
        if r.kind == "single" and r.split == "train" and r.label in heard
    )
    assert len(lists["vggss_heard"]) == n_heard_train


def test_music_duet_files(meta, tiny_spec):
    raw = meta["music_duet_videos"].read_text()
    assert raw.startswith('{\n    "version": 1.0, \n    "videos": {\n') and raw.endswith("\n}")
    videos = json.loads(raw)["videos"]
    duets = tiny_spec.clips[tiny_spec.clips["kind"] == "duet"]
    assert sorted(y for v in videos.values() for y in v) == sorted(duets["ytid"])
    music_names = set(tiny_spec.classes["music_name"])
    for key in videos:
        a, b = key.split(" ")
        assert a in music_names and b in music_names and a != b
        assert " " not in a and "," not in a

    items = json.loads(meta["music_duet"].read_text())
    assert len(items) == len(duets)
    for item, row in zip(items, duets.itertuples(), strict=True):
        assert list(item) == ["file", "class_src1", "bbox_src1", "class_src2", "bbox_src2"]
        assert item["file"] == f"{row.ytid}_005_00150" and row.start_s == 0  # AVGN frame id at t = 5 s
        expected = json.loads(row.boxes)
        for k in (1, 2):
            x, y, w, h = item[f"bbox_src{k}"]
            assert w > 0 and h > 0 and x + w <= 1 + 1e-9 and y + h <= 1 + 1e-9
            assert np.allclose(gt.xywh_to_xyxy(item[f"bbox_src{k}"]), expected[k - 1])


def test_avsbench_masks(meta, tiny_spec):
    with meta["s4_meta"].open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["name", "start", "category", "split"]
    test = _test_singles(tiny_spec)
    assert len(rows) - 1 == len(test)
    cat = dict(zip(tiny_spec.classes["name"], tiny_spec.classes["avs_category"], strict=True))
    for (name, start, category, split), row in zip(rows[1:], test.itertuples(), strict=True):
        assert (name, int(start), category, split) == (row.ytid, row.start_s, cat[row.label], "test")
        assert " " not in category and "," not in category
        masks = []
        for k in range(1, len(MASK_TIMES_S) + 1):
            img = Image.open(meta["s4_masks"] / "test" / category / name / f"{name}_{k}.png")
            assert img.mode == "1" and img.size == (160, 120)
            masks.append(np.asarray(img) > 0)
        assert all(m.any() for m in masks)
        centre = MASK_TIMES_S.index(CENTER_FRAME / 25)
        assert tight_box(masks[centre]) == json.loads(row.boxes)[0]


def test_summary(meta, tiny_spec):
    info = json.loads(meta["synthav"].read_text())
    assert info["seed"] == 0 and info["preset"] == "tiny"
    assert info["annotated_time_s"] == 5.0 and info["annotated_frame"] == 125
    assert info["counts"] == {"classes": 6, "train": 36, "test": 18, "duet": 6, "missing": 1, "corrupt": 1}
    assert len(info["heard_classes"]) + len(info["unheard_classes"]) == 6
    assert info["missing"] == tiny_spec.clips.loc[tiny_spec.clips["missing"], "clip_id"].tolist()


def test_project_readers_accept_synthav(meta):
    """The readers of the real formats (avbench.sources) parse every SynthAV file unchanged."""
    sources = pytest.importorskip("avbench.sources.vggss")
    from avbench.sources import avsbench, music, subsets, vggsound

    assert len(vggsound.read_vggsound_csv(meta["vggsound"])) == 54
    frame = sources.read_vggss_json(meta["vggss"])
    assert sources.vggss_defects(frame)["n_degenerate_boxes"] == 0 and not frame["corrupt"].any()
    assert len(sources.read_vggss_test_list(meta["vggss_test"])) == 18
    assert len(subsets.read_clip_ids(meta["vggss_heard"])) > 0
    assert len(music.read_music_videos_json(meta["music_duet_videos"])) == 6
    boxes = music.read_music_boxes(meta["music_duet"])
    assert len(boxes) == 12 and not boxes["empty_gt"].any()
    meta_s4 = avsbench.read_avsbench_meta(meta["avsbench_root"], "s4")
    assert len(meta_s4) == 18 and (meta_s4["split"] == "test").all()
