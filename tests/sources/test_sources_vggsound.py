"""VGGSound official metadata (PROTOCOLS 1.1) on the real files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avbench.sources.vggsound import read_astest, read_common, read_vggsound_csv, read_vggsound_stat


def test_vggsound_excerpt(metadata_dir: Path, vggsound_test: pd.DataFrame) -> None:
    df = read_vggsound_csv(metadata_dir / "vggsound/vggsound.excerpt.csv")
    assert len(df) == 121
    assert df.iloc[0]["clip_id"] == "---g-f_I2yQ_000001"
    assert df.iloc[0]["ytid"] == "---g-f_I2yQ"
    assert (df["end_s"] - df["start_s"] == 10).all()
    assert set(df["split"]) <= {"train", "test"}
    # excerpt test rows agree with test.csv (same clip, same label)
    test = vggsound_test.set_index("clip_id")["label"]
    rows = df[df["split"] == "test"]
    assert len(rows) > 0
    assert all(test.get(c) == lab for c, lab in zip(rows["clip_id"], rows["label"], strict=True))


def test_vggsound_test_csv(vggsound_test: pd.DataFrame) -> None:
    assert len(vggsound_test) == 15446
    assert vggsound_test["clip_id"].is_unique
    assert vggsound_test["label"].nunique() == 309
    counts = vggsound_test["label"].value_counts()
    assert counts.min() >= 49 and counts.max() <= 50
    assert vggsound_test.iloc[0]["clip_id"] == "glLQrEijrKg_000300"
    # 595 YouTube ids contribute more than one test clip (download per ytid, trim per clip)
    assert int((vggsound_test["ytid"].value_counts() > 1).sum()) == 595


def test_stat_common_astest(metadata_dir: Path, vggsound_test: pd.DataFrame) -> None:
    stat = read_vggsound_stat(metadata_dir / "vggsound/stat.csv")
    assert len(stat) == 309
    assert int(stat["count"].sum()) == 199176
    assert stat["category"].value_counts().to_dict() == {
        "animals": 74, "music": 63, "people": 49, "others": 33, "vehicle": 30,
        "sports": 26, "tools": 12, "home": 11, "nature": 11,
    }  # fmt: skip
    assert "bird chirping, tweeting" in set(stat["label"])
    assert set(stat["label"]) == set(vggsound_test["label"])
    assert {"eletric blender running", "playing timpani", "playing tympani"} <= set(stat["label"])
    assert int(stat["label"].str.startswith("playing ").sum()) == 64
    common = read_common(metadata_dir / "vggsound/Common.txt")
    assert len(common) == 164
    assert set(common["label"]) <= set(stat["label"])
    astest = read_astest(metadata_dir / "vggsound/AStest.csv")
    assert len(astest) == 6927
    assert set(astest["clip_id"]) <= set(vggsound_test["clip_id"])
