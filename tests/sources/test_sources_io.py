"""Generic parsing rules (PROTOCOLS 1.0) on small files written by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from avbench.sources import MetadataError
from avbench.sources.subsets import read_clip_ids, read_labeled_train
from avbench.sources.vggsound import read_vggsound_csv, read_vggsound_test


def test_crlf_no_trailing_newline_quotes_and_dash_ids(tmp_path: Path) -> None:
    f = tmp_path / "vggsound.csv"
    f.write_bytes(b'--9O4XZOge4,30,"female speech, woman speaking",train\r\n-ANxUxvGASw,10,dog barking,test')
    df = read_vggsound_csv(f)
    assert df["clip_id"].tolist() == ["--9O4XZOge4_000030", "-ANxUxvGASw_000010"]
    assert df["label"].tolist() == ["female speech, woman speaking", "dog barking"]
    assert df["end_s"].tolist() == [40.0, 20.0]
    assert df.columns.tolist() == ["clip_id", "ytid", "start_s", "end_s", "label", "split"]


def test_errors_name_file_and_row(tmp_path: Path) -> None:
    f = tmp_path / "vggsound.csv"
    f.write_text("--9O4XZOge4,30,a,train\n--9O4XZOge4,xx,a,train\n")
    with pytest.raises(MetadataError, match=r"vggsound\.csv row 2: start is not a number"):
        read_vggsound_csv(f)
    f.write_text("--9O4XZOge4,30,a,val\n")
    with pytest.raises(ValueError, match=r"vggsound\.csv row 1: split"):
        read_vggsound_csv(f)
    g = tmp_path / "test.csv"
    g.write_text("abc_000030.mp4,dog\n")
    with pytest.raises(ValueError, match=r"test\.csv row 1: not a canonical clip id"):
        read_vggsound_test(g)
    h = tmp_path / "ids.txt"
    h.write_text("00H4-cKmeNg_000153\nshort_1\n")
    with pytest.raises(ValueError, match=r"ids\.txt row 2"):
        read_clip_ids(h)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_clip_ids(tmp_path / "nope.txt")


def test_unquoted_comma_rejoin(tmp_path: Path) -> None:
    f = tmp_path / "train.txt"
    f.write_text("--iY3Bf4hDg_000030,violin,_fiddle\n--G-wKyj6JQ_000030,harpsichord")
    df = read_labeled_train(f)
    assert df["label"].tolist() == ["violin,_fiddle", "harpsichord"]
    assert df["n_fields"].tolist() == [3, 2]
    with pytest.raises(ValueError, match=r"train\.txt row 1: expected 2 fields"):
        read_labeled_train(f, rejoin=False)
