"""Kinetics-400 CSVs (PROTOCOLS 1.10) and the label-spelling rules (PROTOCOLS 1.0)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from avbench.sources.kinetics import read_kinetics_csv
from avbench.sources.labels import (
    avgn_label,
    instrument_label,
    rejoin_fields,
    reverse_map,
    to_canonical,
    underscore_label,
    vggmusic_eval_label,
)


def test_kinetics(metadata_dir: Path, vggsound_test: pd.DataFrame) -> None:
    val = read_kinetics_csv(metadata_dir / "kinetics400/validate.csv")
    test = read_kinetics_csv(metadata_dir / "kinetics400/test.csv")
    assert (len(val), len(test)) == (17778, 34826)
    assert val.iloc[0].tolist() == [
        "--07WQ2iBlw_000001",
        "--07WQ2iBlw",
        1.0,
        11.0,
        "javelin throw",
        "validate",
    ]
    assert set(val["split"]) == {"validate"} and set(test["split"]) == {"test"}
    assert ((val["end_s"] - val["start_s"]) == 10).all() and ((test["end_s"] - test["start_s"]) == 10).all()
    assert val["label"].nunique() == 400
    assert len(set(val["ytid"]) & set(vggsound_test["ytid"])) == 10


def test_kinetics_new_layout(tmp_path: Path) -> None:
    f = tmp_path / "val.csv"
    f.write_text("label,youtube_id,time_start,time_end,split,is_cc\nabseiling,--07WQ2iBlw,1,11,val,0\n")
    assert read_kinetics_csv(f)["clip_id"].tolist() == ["--07WQ2iBlw_000001"]
    f.write_text("label,youtube_id,time_start,time_end,split\nabseiling,--07WQ2iBlw,11,1,val\n")
    with pytest.raises(ValueError, match=r"val\.csv row 2: bad time range"):
        read_kinetics_csv(f)


def test_label_rules(vggsound_test: pd.DataFrame) -> None:
    v = "playing violin, fiddle"
    assert avgn_label(v) == "playing_violin_fiddle"
    assert avgn_label("police car (siren)") == "police_car_(siren)"
    assert instrument_label(v) == "violin"
    assert instrument_label("playing marimba, xylophone") == "xylophone"
    assert vggmusic_eval_label(v) == "violin,_fiddle"
    assert underscore_label("playing violin") == "playing_violin"
    assert rejoin_fields(["id", "violin", "_fiddle"]) == "violin,_fiddle"
    canon = set(vggsound_test["label"])
    # every rule is injective on the 309 VGGSound labels (so the reverse lookups are well defined)
    for rule in ("avgn", "underscore", "vggmusic_eval"):
        assert len(reverse_map(canon, rule)) == 309
    assert to_canonical(["playing_violin_fiddle"], canon, "avgn") == [v]
    with pytest.raises(KeyError, match="no canonical"):
        to_canonical(["no_such_class"], canon, "avgn")
    with pytest.raises(ValueError, match="maps both"):
        reverse_map(["a b", "a_b"], "underscore")
