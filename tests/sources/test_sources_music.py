"""MUSIC lists and AVGN boxes (PROTOCOLS 1.7, 3.3) on the real files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from avbench.sources.music import (
    music_box_summary,
    music_clips,
    parse_frame_id,
    read_dsol_annotations,
    read_mix_localize_split,
    read_music_boxes,
    read_music_frame_list,
    read_music_videos_json,
)


def test_official_video_lists(metadata_dir: Path) -> None:
    m = metadata_dir / "music"
    solo = read_music_videos_json(m / "MUSIC_solo_videos.json")
    assert len(solo) == 536 and solo["label"].nunique() == 11 and solo["ytid"].is_unique
    m21 = read_music_videos_json(m / "MUSIC21_solo_videos.json")
    assert len(m21) == 1164 and m21["label"].nunique() == 21
    assert set(solo["ytid"]) <= set(m21["ytid"])
    duet = read_music_videos_json(m / "MUSIC_duet_videos.json")
    assert len(duet) == 149 and duet["label"].nunique() == 9
    assert (duet["n_sources"] == 2).all()
    assert ["flute", "violin"] in duet["instruments"].tolist()


def test_clip_policy() -> None:
    videos = pd.DataFrame({"ytid": ["-_-TDDxoaAc", "jW_AuF6dQYY"], "label": ["cello", "flute"]})
    one = music_clips(videos)
    assert one["clip_id"].tolist() == ["-_-TDDxoaAc_000025", "jW_AuF6dQYY_000025"]
    assert (one["end_s"] - one["start_s"] == 10).all()
    three = music_clips(videos, n_clips=3, centre_s=15)
    assert three["clip_id"].tolist()[:3] == ["-_-TDDxoaAc_000010", "-_-TDDxoaAc_000020", "-_-TDDxoaAc_000030"]
    mid = music_clips(videos, durations={"jW_AuF6dQYY": 181.0})
    assert mid["clip_id"].tolist() == ["-_-TDDxoaAc_000025", "jW_AuF6dQYY_000085"]
    with pytest.raises(ValueError, match="whole number"):
        music_clips(videos, centre_s=30.5)


def test_avgn_frame_lists(metadata_dir: Path) -> None:
    a = metadata_dir / "music/avgn"
    assert parse_frame_id("HnUOaSfTA6c_053_01590") == ("HnUOaSfTA6c", 53, 1590)
    solo_train = read_music_frame_list(a / "music_solo_train.txt")
    solo_test = read_music_frame_list(a / "music_solo_test.csv")
    duet_train = read_music_frame_list(a / "music_duet_train.txt")
    duet_test = read_music_frame_list(a / "music_duet_test.csv")
    assert (len(solo_train), solo_train["ytid"].nunique()) == (44532, 217)
    assert (len(solo_test), solo_test["ytid"].nunique()) == (2124, 20)
    assert int(solo_test["ytid"].value_counts().head(7).sum()) == 2094
    assert (len(duet_train), duet_train["ytid"].nunique()) == (48348, 112)
    assert (duet_train["classes"].map(len) == 2).all()
    assert len(duet_test) == 1020 and (duet_test["classes"].map(len) == 0).all()
    assert int((duet_test["ytid"] == "HnUOaSfTA6c").sum()) == 1008
    assert not set(solo_train["ytid"]) & set(solo_test["ytid"])
    assert not set(duet_train["ytid"]) & set(duet_test["ytid"])


def test_avgn_boxes_and_bug(metadata_dir: Path) -> None:
    a = metadata_dir / "music/avgn"
    solo = read_music_boxes(a / "music_solo.json")
    assert music_box_summary(solo) == {"n_frames": 2124, "n_boxes": 2124, "n_empty": 0}
    first = solo.iloc[0]
    assert first["frame_id"] == "-_-TDDxoaAc_000_00000"
    assert first["box"] == pytest.approx([0.328125, 0.12222222222222222, 0.5625, 0.97222222222222222])
    solo_bug = read_music_boxes(a / "music_solo.json", music_box_format="xyxy_avgn_bug")
    assert music_box_summary(solo_bug)["n_empty"] == 1648
    duet = read_music_boxes(a / "music_duet.json")
    assert music_box_summary(duet) == {"n_frames": 1020, "n_boxes": 2040, "n_empty": 0}
    assert int(((duet["source"] == 1) & (duet["label"] == "cello")).sum()) == 1012
    duet_bug = read_music_boxes(a / "music_duet.json", music_box_format="xyxy_avgn_bug")
    assert music_box_summary(duet_bug)["n_empty"] == 1027
    # frame lists and box files describe the same frames with the same classes
    solo_test = read_music_frame_list(a / "music_solo_test.csv")
    assert set(solo_test["frame_id"]) == set(solo["frame_id"])
    assert solo.set_index("frame_id").loc[solo_test["frame_id"], "label"].tolist() == [
        c[0] for c in solo_test["classes"]
    ]
    with pytest.raises(ValueError, match="music_box_format"):
        read_music_boxes(a / "music_solo.json", music_box_format="xyxy")


def test_dsol_and_split_lists(metadata_dir: Path) -> None:
    ann = read_dsol_annotations(metadata_dir / "music/t-vsl/music_solo_real_ann.json")
    assert len(ann) == 13472 and int((ann["n_boxes"] == 0).sum()) == 1116
    assert ann.iloc[0]["width"] == 640 and ann.iloc[0]["height"] == 360
    ml = metadata_dir / "music/mix-and-localize/solo"
    sizes = [len(read_mix_localize_split(ml / f"{s}.csv")) for s in ("train", "val", "test")]
    assert sizes == [404, 18, 24]
