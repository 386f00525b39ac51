"""VGG-SS boxes, defects and derived lists (PROTOCOLS 1.2, 3.2) on the real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from avbench.gt import union_map
from avbench.sources.vggss import (
    apply_bad_gt_policy,
    read_labeled_clip_list,
    read_ms_id_list,
    read_vggss_plus_silent,
    read_vggss_test_list,
    vggss_defects,
)

CORRUPT = {
    "Db6Hjt0x28k_000056", "5VCZHHd4UKI_000098", "Fot4v0DdGyE_000020", "sYIymaJi6tc_000090",
    "qLVjaU5V9f0_000150", "7Soo7mXCnq0_000063", "pbVP6Z1c4_k_000420", "-ANxUxvGASw_000010",
    "2xBIHi3oqy4_000030", "P-NCCepeHdI_000125", "MKC9LvRivTM_000030", "REDLY6m3Muw_000042",
}  # fmt: skip


def test_vggss_json_counts(vggss: pd.DataFrame, vggsound_test: pd.DataFrame) -> None:
    assert len(vggss) == 5158
    assert vggss["label"].nunique() == 221
    assert vggss.iloc[0]["clip_id"] == "zpWuikVorYg_000032"
    per_class = vggss["label"].value_counts()
    assert per_class.min() == 10 and per_class.max() == 45
    # all clips are VGGSound-test clips with identical labels
    test = vggsound_test.set_index("clip_id")["label"]
    assert vggss["clip_id"].isin(test.index).all()
    assert (test.loc[vggss["clip_id"]].to_numpy() == vggss["label"].to_numpy()).all()
    assert int((vggss["ytid"].value_counts() > 1).sum()) == 141


def test_vggss_defects(vggss: pd.DataFrame) -> None:
    d = vggss_defects(vggss)
    assert d["n_clips"] == 5158 and d["n_classes"] == 221
    assert d["box_histogram"] == {1: 4619, 2: 385, 3: 94, 4: 37, 5: 18, 6: 3, 7: 2}
    assert set(d["corrupt_clips"]) == CORRUPT
    assert d["n_corrupt_coords"] == 14  # two clips have both x2 and y2 corrupt
    assert d["n_int_coords"] == 126
    assert d["n_degenerate_boxes"] == 18
    assert ("UyCw7pCgYg8_000055", 2) in d["degenerate_boxes"]  # "box 3" (1-based) in PROTOCOLS
    assert set(d["empty_gt_clips"]) == {"MKC9LvRivTM_000030", "M1P1xla8rg0_000000"}
    # every box was clipped into [0, 1]
    assert all(0.0 <= v <= 1.0 for boxes in vggss["boxes"] for b in boxes for v in b)
    row = vggss.set_index("clip_id").loc["Db6Hjt0x28k_000056"]
    assert row["raw_boxes"][0][3] == -2.8823037615171176e16 and row["boxes"][0][3] == 0.0
    assert row["corrupt"] and row["n_corrupt_coords"] == 1


def test_empty_gt_agrees_with_union_map(vggss: pd.DataFrame) -> None:
    empty = [not np.any(union_map(b)) for b in vggss["boxes"]]
    assert empty == vggss["empty_gt"].tolist()


def test_bad_gt_policy(vggss: pd.DataFrame) -> None:
    assert len(apply_bad_gt_policy(vggss, "keep")) == 5158
    dropped = apply_bad_gt_policy(vggss, "drop_clip")
    assert len(dropped) == 5158 - 13  # 12 corrupt + M1P1xla8rg0 (MKC9 is both)
    assert not dropped["empty_gt"].any()


def test_test_lists(metadata_dir: Path, vggss: pd.DataFrame) -> None:
    test = read_vggss_test_list(metadata_dir / "vggss/vggss_test.csv")
    assert test["clip_id"].tolist() == vggss["clip_id"].tolist()  # same order as the json
    labels = vggss.set_index("clip_id")["label"]
    heard = read_vggss_test_list(metadata_dir / "vggss/vggss_heard_test.csv")
    unheard = read_vggss_test_list(metadata_dir / "vggss/vggss_unheard_test.csv")
    assert (len(heard), len(unheard)) == (2564, 2575)
    assert heard.iloc[0]["clip_id"] == "zpWuikVorYg_000032"
    assert unheard.iloc[0]["clip_id"] == "RgyqhpOJFM4_000030"
    h_cls, u_cls = set(labels.loc[heard["clip_id"]]), set(labels.loc[unheard["clip_id"]])
    assert len(h_cls) == len(u_cls) == 110 and not h_cls & u_cls
    rest = set(vggss["clip_id"]) - set(heard["clip_id"]) - set(unheard["clip_id"])
    assert len(rest) == 19 and set(labels.loc[list(rest)]) == {"singing choir"}


def test_acl_ssl_labeled_variants(metadata_dir: Path, vggss: pd.DataFrame) -> None:
    labels = vggss.set_index("clip_id")["label"]
    for name, n in (("vggss_test", 5158), ("vggss_heard_test", 2564), ("vggss_unheard_test", 2575)):
        df = read_labeled_clip_list(metadata_dir / f"vggss/acl-ssl/{name}.csv")
        assert len(df) == n
        assert (labels.loc[df["clip_id"]].to_numpy() == df["label"].to_numpy()).all()
    full = read_labeled_clip_list(metadata_dir / "vggss/acl-ssl/vggss_test.csv")
    assert "female speech, woman speaking" in set(full["label"])  # quoted comma label kept


def test_ssl_alignment_ms_ids(metadata_dir: Path, vggss: pd.DataFrame) -> None:
    df = read_ms_id_list(metadata_dir / "vggss/ssl-alignment/ours_vggss.txt")
    assert len(df) == 4655
    assert df.iloc[0][["ms_id", "clip_id"]].tolist() == ["gklbB7TYoK4_30000_40000", "gklbB7TYoK4_000030"]
    assert (df["end_s"] - df["start_s"] == 10).all()
    assert df["clip_id"].isin(set(vggss["clip_id"])).all()


def test_extended_vggss(metadata_dir: Path, vggss: pd.DataFrame, vggsound_test: pd.DataFrame) -> None:
    df = read_vggss_plus_silent(metadata_dir / "vggss_extended/vggss_test_plus_silent.csv")
    assert len(df) == 5158
    assert set(df["label"]) == {"non-sounding"}
    assert int(df["same_clip"].sum()) == 379
    ss = set(vggss["clip_id"])
    pairs = df[~df["same_clip"]]
    assert len(pairs) == 4779 and pairs["video"].isin(ss).all() and pairs["audio"].isin(ss).all()
    assert pairs["audio"].nunique() == 3092
    labels = vggss.set_index("clip_id")["label"]
    same_class = labels.loc[pairs["video"]].to_numpy() == labels.loc[pairs["audio"]].to_numpy()
    assert int(same_class.sum()) == 1185
    off = df[df["same_clip"]]["video"]
    assert not off.isin(ss).any() and not off.isin(set(vggsound_test["clip_id"])).any()
