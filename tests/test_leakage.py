"""Train/test leakage report (PROTOCOLS 1.11) on the real metadata files."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from avbench.leakage import (
    REPORT_COLUMNS,
    build_leakage_report,
    clean_train_list,
    leakage_report,
    video_of,
    write_leakage_report,
)

DEFAULT_METADATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "metadata"


@pytest.fixture(scope="module")
def metadata_dir() -> Path:
    path = Path(os.environ.get("AVBENCH_METADATA_DIR", DEFAULT_METADATA_DIR))
    if not path.is_dir():
        pytest.fail(f"real metadata directory not found: {path} (set AVBENCH_METADATA_DIR)")
    return path


@pytest.fixture(scope="module")
def report(metadata_dir: Path) -> pd.DataFrame:
    return build_leakage_report(metadata_dir)


def _get(report: pd.DataFrame, train: str, test: str, col: str = "clip_overlap") -> int:
    row = report[(report["train"] == train) & (report["test"] == test)]
    assert len(row) == 1, (train, test)
    return int(row.iloc[0][col])


@pytest.mark.parametrize(
    ("train", "vggsound_test", "vggss_test"),
    [
        ("vggss_144k", 11163, 3709),
        ("vggss_10k", 787, 238),
        ("vgginstruments_train", 1850, 868),
        ("vggmusic_train", 1221, 0),
        ("vggss_heard", 0, 0),
        # not in PROTOCOLS 1.11: ACL-SSL's labeled heard list contains VGGSound-test clips
        ("acl-ssl/vggss_heard", 2665, 0),
    ],
)
def test_vggsound_leakage(report: pd.DataFrame, train: str, vggsound_test: int, vggss_test: int) -> None:
    assert _get(report, train, "vggsound_test") == vggsound_test
    assert _get(report, train, "vggss_test") == vggss_test


@pytest.mark.parametrize(
    ("train", "n"),
    [("flickr_144k", 20), ("flickr_10k", 1), ("senocak/Flickr_train_144k", 0), ("flickr_sup_train", 0)],
)
def test_flickr_leakage(report: pd.DataFrame, train: str, n: int) -> None:
    assert _get(report, train, "flickr_test") == n
    assert _get(report, train, "flickr_test", "n_test") == 250


def test_report_shape(report: pd.DataFrame) -> None:
    assert report.columns.tolist() == REPORT_COLUMNS
    assert (report["video_overlap"] >= 0).all()
    assert (report["train_clips_on_test_videos"] >= report["clip_overlap"]).all()
    assert _get(report, "vggss_144k", "vggss_test", "n_train") == 144000
    assert _get(report, "vggss_144k", "vggss_test", "n_test") == 5158


def test_clip_and_video_overlap() -> None:
    train = ["aaaaaaaaaaa_000000", "aaaaaaaaaaa_000010", "bbbbbbbbbbb_000000", "-cccccccccc_000005"]
    test = ["aaaaaaaaaaa_000000", "-cccccccccc_000030", "ddddddddddd_000000"]
    df = leakage_report({"tr": train}, {"te": test})
    row = df.iloc[0]
    assert (row["clip_overlap"], row["video_overlap"], row["train_clips_on_test_videos"]) == (1, 2, 3)
    assert row["test_frac_in_train"] == pytest.approx(1 / 3)
    assert clean_train_list(train, test) == train[1:]
    assert clean_train_list(train, test, by="video") == ["bbbbbbbbbbb_000000"]
    assert video_of("gklbB7TYoK4_30000_40000") == "gklbB7TYoK4" and video_of("3908875357") == "3908875357"
    with pytest.raises(ValueError, match="by"):
        clean_train_list(train, test, by="ytid")


def test_clean_lists_on_real_files(metadata_dir: Path) -> None:
    from avbench.sources.subsets import read_clip_ids
    from avbench.sources.vggsound import read_vggsound_test

    k144 = read_clip_ids(metadata_dir / "vggsound_subsets/vggss_144k.txt")["clip_id"]
    test = read_vggsound_test(metadata_dir / "vggsound/test.csv")["clip_id"]
    clean = clean_train_list(k144, test)
    assert len(clean) == 144000 - 11163 and not set(clean) & set(test)


def test_write_report(tmp_path: Path) -> None:
    df = leakage_report({"tr": ["aaaaaaaaaaa_000000"]}, {"te": ["aaaaaaaaaaa_000000"]})
    write_leakage_report(df, tmp_path / "out/leakage.csv", tmp_path / "out/leakage.md")
    back = pd.read_csv(tmp_path / "out/leakage.csv")
    assert back.columns.tolist() == REPORT_COLUMNS and int(back.iloc[0]["clip_overlap"]) == 1
    md = (tmp_path / "out/leakage.md").read_text()
    assert "| tr | te | 1 | 1 | 1 | 1 | 1 | 1.0000 |" in md
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["leakage.csv", "leakage.md"]
