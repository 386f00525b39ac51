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


def _manifest(rows: list[tuple[str, list[str]]]) -> pd.DataFrame:
    """Tiny manifest: (clip id, splits) per clip; ytid from the id."""
    import json

    return pd.DataFrame({"clip_id": [c for c, _ in rows], "ytid": [c[:11] for c, _ in rows],
                         "split": [s[0] for _, s in rows], "splits": [json.dumps(s) for _, s in rows]})


def test_configured_scope_counts_membership_and_cross_dataset_sources(tmp_path: Path) -> None:
    from avbench.leakage import FULL_COLUMNS, configured_leakage, full_report

    own = _manifest([("aaaaaaaaaaa_000000", ["test", "train"]), ("aaaaaaaaaaa_000020", ["train"]),
                     ("bbbbbbbbbbb_000000", ["test"]), ("ccccccccccc_000000", ["train"])])
    # evaluated with `own`'s models: one of its test clips is in own's train split, one more shares a video
    cross = _manifest([("aaaaaaaaaaa_000000", ["test"]), ("ccccccccccc_000030", ["test"]),
                       ("ddddddddddd_000000", ["test"])])
    settings = {"own": {"train_list": "list_a", "test_list": "t", "train_list_mode": "original"},
                "cross": {"test_list": "u", "train_from": "own"}}
    df = configured_leakage({"own": own, "cross": cross}, settings).set_index("dataset")
    assert (df.loc["own", ["n_train", "n_test", "clip_overlap", "video_overlap"]].tolist() == [3, 2, 1, 1])
    assert df.loc["own", "train_clips_on_test_videos"] == 2 and df.loc["own", "test_frac_in_train"] == 0.5
    assert df.loc["cross", "train"] == "own:train [list_a]" and df.loc["cross", "test"] == "cross:test [u]"
    assert df.loc["cross", ["clip_overlap", "video_overlap", "train_clips_on_test_videos"]].tolist() == [1, 2, 3]
    assert df.loc["cross", "train_list_mode"] == "original"  # the mode of the list the models saw
    with pytest.raises(KeyError, match="'cross' is evaluated with models of 'own'"):
        configured_leakage({"cross": cross}, settings)

    published = leakage_report({"tr": ["aaaaaaaaaaa_000000"]}, {"te": ["aaaaaaaaaaa_000000"]})
    full = full_report(published, df.reset_index())
    assert full.columns.tolist() == FULL_COLUMNS and full["scope"].tolist() == ["published", "configured",
                                                                                 "configured"]
    write_leakage_report(full, tmp_path / "leakage.csv", tmp_path / "leakage.md")
    md = (tmp_path / "leakage.md").read_text()
    assert "## Published training lists" in md and "## Configured datasets" in md
    assert "| cross | own:train [list_a] | cross:test [u] | 3 | 3 | 1 | 2 | 3 | 0.3333 | original |" in md
