"""SoundNet-Flickr lists, the id typo flag and the XML consensus GT (PROTOCOLS 1.9, 3.1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avbench.sources.flickr import (
    FIXED_ID,
    TYPO_ID,
    flickr_gt_map,
    flickr_test_ids,
    parse_flickr_xml,
    read_flickr_list,
    read_flickr_plus_silent,
)

TEST_LISTS = {
    "senocak/test_list.txt": (250, FIXED_ID),
    "flickr_test.csv": (249, None),
    "slavc/flickr_test.csv": (250, TYPO_ID),
    "ssl-alignment/flickr_test.csv": (250, TYPO_ID),
    "acl-ssl/flickr_test.csv": (250, TYPO_ID),
    # not stated in PROTOCOLS: Senocak's supervised list also carries the typo
    "senocak/supervised_test_list.txt": (250, TYPO_ID),
}


def test_test_lists_and_typo_flag(metadata_dir: Path) -> None:
    f = metadata_dir / "flickr"
    original = read_flickr_list(f / "senocak/test_list.txt")["flickr_id"].tolist()
    assert original[0] == "2432219254"
    for rel, (n_unique, odd) in TEST_LISTS.items():
        ids = read_flickr_list(f / rel)["flickr_id"]
        assert ids.nunique() == n_unique, rel
        assert (TYPO_ID in set(ids), FIXED_ID in set(ids)) == (odd == TYPO_ID, odd == FIXED_ID), rel
        common = flickr_test_ids(ids, "249")
        assert len(common) == 249 and set(common) == set(original) - {FIXED_ID}, rel
        fixed = flickr_test_ids(ids, "250_fixed")
        assert len(fixed) == 250 and set(fixed) == set(original), rel
    assert len(read_flickr_list(f / "senocak/supervised_test_list.txt")) == 280  # 30 duplicated lines kept
    lvs = read_flickr_list(f / "flickr_test.csv")
    assert lvs.iloc[0].tolist() == ["10000130166", "202"]
    acl = read_flickr_list(f / "acl-ssl/flickr_test.csv")
    assert acl["extra"].nunique() == 98
    with pytest.raises(ValueError, match="flickr_test"):
        flickr_test_ids(original, "250")


def test_train_lists(metadata_dir: Path) -> None:
    f = metadata_dir / "flickr"
    k10 = set(read_flickr_list(f / "slavc/flickr_10k.txt")["flickr_id"])
    k144 = set(read_flickr_list(f / "slavc/flickr_144k.txt")["flickr_id"])
    sen = read_flickr_list(f / "senocak/Flickr_train_144k.txt")["flickr_id"]
    sup = read_flickr_list(f / "slavc/flickr_sup_train.txt")["flickr_id"]
    assert (len(k10), len(k144), len(sen), len(sup)) == (10000, 144000, 144000, 4750)
    assert k10 <= k144 and len(set(sen) & k144) == 10188
    assert sen.iloc[0] == "5692223126"
    acl10 = read_flickr_list(f / "acl-ssl/flickr_10k.csv")
    assert len(acl10) == 10000 and acl10.iloc[1]["extra"] == "race car, auto racing"


def test_extended_flickr(metadata_dir: Path) -> None:
    df = read_flickr_plus_silent(metadata_dir / "flickr_extended/flickr_test_plus_silent.csv")
    assert len(df) == 250 and df["audio"].nunique() == 160 and not df["same_clip"].any()
    assert df.iloc[0][["video", "audio", "label"]].tolist() == ["10000130166", "10437048305", "non-sounding"]
    assert TYPO_ID in set(df["video"])  # uses the SLAVC spelling of the typo


XML = """<?xml version="1.0"?>
<annotation>
  <filename>123.jpg</filename>
  <object><name>a</name>
    <bbox><label>x</label><xmin>0</xmin><ymin>0</ymin><xmax>128</xmax><ymax>128</ymax></bbox></object>
  <object><name>b</name>
    <bbox><label>x</label><xmin>64</xmin><ymin>64</ymin><xmax>192</xmax><ymax>192</ymax></bbox></object>
  <object><name>c</name>
    <bbox><label>x</label><xmin>0</xmin><ymin>0</ymin><xmax>32</xmax><ymax>32</ymax></bbox></object>
</annotation>
"""


def test_flickr_xml_consensus(tmp_path: Path) -> None:
    path = tmp_path / "123.xml"
    path.write_text(XML)
    boxes = parse_flickr_xml(path)
    assert boxes == [(0, 0, 128, 128), (64, 64, 192, 192), (0, 0, 32, 32)]
    assert parse_flickr_xml(XML) == boxes
    gt = flickr_gt_map(path)
    assert gt.shape == (224, 224) and set(np.unique(gt)) == {0.0, 0.5, 1.0}
    # int(224*v/256): 128 -> 112, 64 -> 56, 192 -> 168, 32 -> 28
    assert gt[0, 0] == 1.0  # boxes 1 and 3
    assert gt[50, 50] == 0.5  # box 1 only
    assert gt[100, 100] == 1.0  # boxes 1 and 2
    assert gt[150, 150] == 0.5 and gt[200, 200] == 0.0
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotation><bbox><a/><b>1</b></bbox></annotation>")
    with pytest.raises(ValueError, match=r"bad\.xml: bbox 0"):
        parse_flickr_xml(bad)
