"""AVSBench lists, layout checker and masks (PROTOCOLS 1.8, 3.5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avbench.sources.avsbench import (
    avsbench_paths,
    check_avsbench_tree,
    read_avsbench_frame_list,
    read_avsbench_mask,
    read_label2idx,
    read_ssl_alignment_json,
    require_avsbench_tree,
)


def test_frame_lists(metadata_dir: Path) -> None:
    a = metadata_dir / "avsbench"
    sizes = {}
    for name in ("avsbench_train.txt", "avsbench_val.csv", "avsbench_test.csv"):
        df = read_avsbench_frame_list(a / "deepavfusion" / name)
        sizes[name] = (len(df), df["name"].nunique(), df["category"].nunique())
        assert (df.groupby("name")["k"].apply(sorted).map(tuple) == (1, 2, 3, 4, 5)).all()
    assert sizes == {
        "avsbench_train.txt": (17260, 3452, 23),
        "avsbench_val.csv": (3700, 740, 23),
        "avsbench_test.csv": (3700, 740, 23),
    }
    s4 = read_avsbench_frame_list(a / "acl-ssl/avs1_s4_test.csv")
    assert len(s4) == 3700 and s4.iloc[0].tolist() == ["0d9u2CymIxc_1", "0d9u2CymIxc", 1, "helicopter"]
    ms3 = read_avsbench_frame_list(a / "acl-ssl/avs1_ms3_test.csv")
    assert len(ms3) == 320 and ms3["name"].nunique() == 64
    assert ms3.iloc[0].tolist() == ["0WxgIKuetYI_0_1", "0WxgIKuetYI_0", 1, "man"]


def test_ssl_alignment_json(metadata_dir: Path) -> None:
    a = metadata_dir / "avsbench/ssl-alignment"
    s4 = read_ssl_alignment_json(a / "s4_box.json")
    assert len(s4) == 3700 and int(s4["empty_box"].sum()) == 6
    assert s4.iloc[0][["name", "k", "split", "category"]].tolist() == ["0d9u2CymIxc", 1, "test", "helicopter"]
    ms3 = read_ssl_alignment_json(a / "ms3_box.json")
    assert len(ms3) == 320 and int(ms3["empty_box"].sum()) == 29 and ms3["name"].nunique() == 64
    assert set(ms3["split"]) == {"test"}
    seg = read_ssl_alignment_json(a / "s4_seg.json")
    assert seg["mask_path"].str.endswith(".png").all() and seg["box"].isna().all()
    labels = read_label2idx(metadata_dir / "avsbench/ddeseg/label2idx.json")
    assert len(labels) == 71 and labels.iloc[0].tolist() == ["background", 1]


def test_tree_checker(tmp_path: Path) -> None:
    missing = check_avsbench_tree(tmp_path, "s4")
    assert str(tmp_path / "Single-source/s4_meta_data.csv") in missing
    with pytest.raises(FileNotFoundError) as err:
        require_avsbench_tree(tmp_path, "ms3")
    msg = str(err.value)
    assert "Multi-sources/ms3_meta_data.csv" in msg and "avlbench.opennlplab.cn/download" in msg
    assert "forms.gle" in msg
    with pytest.raises(ValueError, match="subset"):
        check_avsbench_tree(tmp_path, "s5")
    # a complete (tiny) S4 tree passes the deep check
    base = tmp_path / "Single-source"
    (base).mkdir()
    (base / "s4_meta_data.csv").write_text("name,start,category,split\nabc,0,dog,train\n")
    for d in ("visual_frames", "audio_wav", "audio_log_mel", "gt_masks"):
        (base / "s4_data" / d).mkdir(parents=True)
    assert check_avsbench_tree(tmp_path, "s4") == []
    deep = check_avsbench_tree(tmp_path, "s4", deep=True)
    assert len(deep) == 5 + 1 + 1  # 5 frames, 1 train mask, 1 wav
    paths = avsbench_paths(tmp_path, "s4", "abc", "train", "dog")
    for p in [*paths["frames"], *paths["masks"], paths["audio"]]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    assert check_avsbench_tree(tmp_path, "s4", deep=True) == []
    assert require_avsbench_tree(tmp_path, "s4", deep=True) == tmp_path
    ms3 = avsbench_paths(tmp_path, "ms3", "0WxgIKuetYI_0", "test")
    assert ms3["frames"][0].name == "0WxgIKuetYI_0.mp4_1.png"


def test_mask_nearest(tmp_path: Path) -> None:
    arr = np.zeros((4, 4), dtype=np.uint8)
    arr[:2, :2] = 1
    Image.fromarray(arr).convert("P").save(tmp_path / "m.png")
    Image.fromarray(arr.astype(bool)).save(tmp_path / "b.png")  # mode '1' as in S4
    for name in ("m.png", "b.png"):
        mask = read_avsbench_mask(tmp_path / name, 8, 8)
        assert mask.shape == (8, 8) and set(np.unique(mask)) == {0.0, 1.0}
        assert mask[:4, :4].all() and not mask[4:, :].any() and not mask[:, 4:].any()
