"""VGGSound subsets, Instruments, Music, Single/Duet (PROTOCOLS 1.3-1.6) on the real files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avbench.sources.labels import avgn_label, instrument_label, reverse_map, vggmusic_eval_label
from avbench.sources.subsets import (
    read_acl_ssl_list,
    read_clip_ids,
    read_instruments_multi_test,
    read_instruments_test,
    read_instruments_train,
    read_vggmusic_eval_ss,
    read_vggmusic_train,
    read_vggsound_duet_test,
    read_vggsound_single_test,
)


def test_training_subsets(metadata_dir: Path) -> None:
    sub = metadata_dir / "vggsound_subsets"
    k10 = read_clip_ids(sub / "vggss_10k.txt")
    k144 = read_clip_ids(sub / "vggss_144k.txt")
    heard = read_clip_ids(sub / "vggss_heard.txt")
    assert (len(k10), len(k144), len(heard)) == (10000, 144000, 59468)
    assert k10.iloc[0]["clip_id"] == "00H4-cKmeNg_000153"
    assert k144.iloc[0]["clip_id"] == "---g-f_I2yQ_000001" and k144.iloc[0]["ytid"] == "---g-f_I2yQ"
    assert k144["clip_id"].is_monotonic_increasing
    assert heard.iloc[0]["clip_id"] == "--8puiAGLhs_000030"
    acl10 = read_acl_ssl_list(sub / "acl-ssl/vggss_10k.csv")
    acl_heard = read_acl_ssl_list(sub / "acl-ssl/vggss_heard.csv")
    assert (len(acl10), len(acl_heard)) == (10000, 70000)
    assert acl10.iloc[0][["clip_id", "label"]].tolist() == ["fkP1Yqn0N_0_000000", "shot football"]
    assert acl10["label"].nunique() == 309
    assert len(set(acl10["clip_id"]) & set(k10["clip_id"])) == 7222
    assert set(heard["clip_id"]) <= set(acl_heard["clip_id"])
    assert acl_heard["label"].nunique() == 110
    # Contradicts PROTOCOLS 1.2/1.3 ("110 heard classes"): EZ-VSL's vggss_heard.txt covers only 101 classes;
    # the 9 heard classes whose label contains a comma are missing entirely.
    heard_labels = set(acl_heard.loc[acl_heard["clip_id"].isin(set(heard["clip_id"])), "label"])
    missing = set(acl_heard["label"]) - heard_labels
    assert len(heard_labels) == 101 and len(missing) == 9 and all("," in lab for lab in missing)


def test_instruments(metadata_dir: Path, vggsound_test: pd.DataFrame) -> None:
    d = metadata_dir / "vggsound_instruments"
    avgn = read_instruments_train(d / "vgginstruments_train.txt")
    assert len(avgn) == 33934 and avgn["label"].nunique() == 37
    assert (avgn["n_fields"] == 2).all()
    dav = read_instruments_train(d / "deepavfusion/vgginstruments_train.txt")
    assert len(dav) == 33934 and int((dav["n_fields"] == 3).sum()) == 1979
    assert set(dav.loc[dav["n_fields"] == 3, "label"]) == {"violin,_fiddle", "steel_guitar,_slide_guitar"}
    assert set(dav["label"]) - set(avgn["label"]) == {
        "bassoon",
        "violin,_fiddle",
        "steel_guitar,_slide_guitar",
    }
    assert set(avgn["label"]) - set(dav["label"]) == {"xylophone", "violin", "steel_guitar"}
    merged = avgn.merge(dav, on="clip_id", how="outer", suffixes=("_a", "_d"), indicator=True)
    differ = (merged["_merge"] != "both") | (merged["label_a"] != merged["label_d"])
    assert int((merged["_merge"] == "left_only").sum()) == 1050  # xylophone rows replaced by bassoon
    assert int(differ[merged["_merge"] != "right_only"].sum()) == 3029  # PROTOCOLS "3,029 rows differ"
    # 37 AVGN classes = VGGSound 'playing <x>' classes under the instrument rule
    canon = set(vggsound_test["label"])
    lookup = reverse_map([c for c in canon if c.startswith("playing ")], instrument_label)
    assert set(avgn["label"]) <= set(lookup)
    assert lookup["xylophone"] == "playing marimba, xylophone"
    assert lookup["steel_guitar"] == "playing steel guitar, slide guitar"
    test = read_instruments_test(d / "vgginstruments_test.csv")
    assert len(test) == 446 and test["label"].nunique() == 36
    assert set(avgn["label"]) - set(test["label"]) == {"erhu"}
    ids_only = read_instruments_test(d / "deepavfusion/vgginstruments_test.csv")
    assert ids_only["sample_id"].tolist() == test["sample_id"].tolist() and ids_only["label"].isna().all()
    multi = read_instruments_multi_test(d / "vgginstruments_multi_test.csv")
    assert len(multi) == 446 and int(multi["same_class"].sum()) == 0


def test_vggmusic(metadata_dir: Path, vggss: pd.DataFrame) -> None:
    d = metadata_dir / "vggsound_music"
    train = read_vggmusic_train(d / "vggmusic_train.txt")
    assert len(train) == 38704 and train["label"].nunique() == 49
    counts = train["label"].value_counts()
    assert (counts.min(), counts.max()) == (27, 1039)
    ev = read_vggmusic_eval_ss(d / "vggmusic_eval_ss.csv")
    assert len(ev) == 1201
    assert ev["sep_type"].value_counts().to_dict() == {"Easy": 910, "Hard": 291}
    assert int(ev["same_class"].sum()) == 291
    assert ev["source_1"].is_unique and ev["source_2"].nunique() == 754
    assert int(ev["source_2"].value_counts().max()) == 6
    ss = vggss.set_index("clip_id")["label"]
    assert ev["source_1"].isin(ss.index).all() and ev["source_2"].isin(ss.index).all()
    # eval classes are the canonical labels under the vggmusic_eval rule ('violin,_fiddle')
    assert (ss.loc[ev["source_1"]].map(vggmusic_eval_label).to_numpy() == ev["class_1"].to_numpy()).all()
    assert {"violin,_fiddle", "steel_guitar,_slide_guitar", "table_tennis"} <= set(ev["class_1"])
    assert ev["class_1"].nunique() == 49


def test_single_duet(metadata_dir: Path, vggss: pd.DataFrame) -> None:
    d = metadata_dir / "vggsound_single"
    single = read_vggsound_single_test(d / "vggsound_single_test.csv")
    assert len(single) == 5158 and single["label"].nunique() == 221
    assert set(single["clip_id"]) == set(vggss["clip_id"])
    labels = vggss.set_index("clip_id")["label"]
    # the AVGN label rule is exact for every row
    assert (labels.loc[single["clip_id"]].map(avgn_label).to_numpy() == single["label"].to_numpy()).all()
    assert {"police_car_(siren)", "horse_clip-clop"} <= set(single["label"])
    duet = read_vggsound_duet_test(d / "vggsound_duet_test.csv")
    assert len(duet) == 5158 and int(duet["same_class"].sum()) == 22
    assert duet["id_a"].isin(labels.index).all() and duet["id_b"].isin(labels.index).all()
    assert duet["id_b"].nunique() == 3255
    assert duet.iloc[0].tolist()[:4] == [
        "zpWuikVorYg_000032",
        "elk_bugling",
        "Rtg1SUrxOPY_000130",
        "people_coughing",
    ]


def test_single_train_reconstruction(metadata_dir: Path, vggss: pd.DataFrame) -> None:
    from avbench.sources.subsets import vggsound_single_train
    from avbench.sources.vggsound import read_vggsound_csv

    vs = read_vggsound_csv(metadata_dir / "vggsound/vggsound.excerpt.csv")
    classes = set(vggss["label"])
    both = vggsound_single_train(vs, classes, "all221")
    train_only = vggsound_single_train(vs, classes)
    assert both["label"].isin(classes).all() and len(train_only) <= len(both)
    assert set(train_only["split"]) <= {"train"}
    assert len(both) - len(train_only) == int(((vs["split"] == "test") & vs["label"].isin(classes)).sum())
