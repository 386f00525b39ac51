"""Train/test leakage report (PROTOCOLS 1.11).

Overlap is counted by clip (identical ids) and by video (same YouTube id / Flickr item), because several
VGGSound clips come from one video: a train clip cut from a test video leaks scene and speaker even when the
clip ids differ. Original lists stay available for paper parity (``train_list_mode=original``);
:func:`clean_train_list` gives the ``clean`` variant.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from avbench.ids import CLIP_ID_RE, MS_ID_RE
from avbench.io import write_csv, write_text
from avbench.sources import flickr, vggsound, vggss
from avbench.sources._io import read_clip_id_column

REPORT_COLUMNS = [
    "train",
    "test",
    "n_train",
    "n_test",
    "clip_overlap",
    "video_overlap",
    "train_clips_on_test_videos",
    "test_frac_in_train",
]


def video_of(item: str) -> str:
    """Video key of an id: the YouTube id of a canonical or millisecond clip id, else the id itself (Flickr)."""
    match = CLIP_ID_RE.match(item) or MS_ID_RE.match(item)
    return match["ytid"] if match else item


def leakage_report(
    train_lists: Mapping[str, Iterable[str]], test_sets: Mapping[str, Iterable[str]]
) -> pd.DataFrame:
    """One row per (train list, test set) pair; columns :data:`REPORT_COLUMNS`.

    ``n_train``/``n_test`` count distinct ids; ``clip_overlap`` = shared ids; ``video_overlap`` = shared
    videos; ``train_clips_on_test_videos`` = train ids whose video occurs in the test set (>= clip_overlap);
    ``test_frac_in_train`` = clip_overlap / n_test.
    """
    tests = {name: set(ids) for name, ids in test_sets.items()}
    test_videos = {name: {video_of(i) for i in ids} for name, ids in tests.items()}
    rows = []
    for train_name, ids in train_lists.items():
        train = set(ids)
        per_id_video = [video_of(i) for i in train]  # computed once per list, reused for every test set
        train_videos = set(per_id_video)
        for test_name, test in tests.items():
            tv = test_videos[test_name]
            clip = len(train & test)
            rows.append(
                (
                    train_name,
                    test_name,
                    len(train),
                    len(test),
                    clip,
                    len(train_videos & tv),
                    sum(v in tv for v in per_id_video),
                    clip / len(test) if test else 0.0,
                )
            )
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def clean_train_list(ids: Iterable[str], test_ids: Iterable[str], by: str = "clip") -> list[str]:
    """``ids`` (order kept) minus every test id (``by='clip'``) or every id from a test video (``'video'``)."""
    if by == "clip":
        drop = set(test_ids)
        return [i for i in ids if i not in drop]
    if by == "video":
        drop_v = {video_of(i) for i in test_ids}
        return [i for i in ids if video_of(i) not in drop_v]
    raise ValueError(f"by must be 'clip' or 'video', got {by!r}")


def report_markdown(df: pd.DataFrame) -> str:
    """Markdown table of a :func:`leakage_report` frame (no tabulate dependency)."""
    lines = [
        "# Train/test leakage",
        "",
        "Counts of distinct ids. `video_overlap`: shared videos (YouTube id or Flickr id); "
        "`train_clips_on_test_videos`: train ids cut from a test video.",
        "",
        "| " + " | ".join(df.columns) + " |",
        "|" + "|".join("---" if c in ("train", "test") else "---:" for c in df.columns) + "|",
    ]
    for row in df.itertuples(index=False):
        cells = [
            f"{v:.4f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v) for v in row
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_leakage_report(df: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike) -> None:
    """Write the report as CSV and Markdown, each atomically."""
    write_csv(csv_path, df)
    write_text(md_path, report_markdown(df))


# Standard layout of shared/metadata (paths relative to ``metadata_dir``), grouped by id domain so that only
# meaningful pairs are reported (a Flickr list never overlaps a VGGSound test set).
VGGSOUND_TRAIN = {
    "vggss_10k": "vggsound_subsets/vggss_10k.txt",
    "vggss_144k": "vggsound_subsets/vggss_144k.txt",
    "vggss_heard": "vggsound_subsets/vggss_heard.txt",
    "acl-ssl/vggss_10k": "vggsound_subsets/acl-ssl/vggss_10k.csv",
    "acl-ssl/vggss_heard": "vggsound_subsets/acl-ssl/vggss_heard.csv",
    "vgginstruments_train": "vggsound_instruments/vgginstruments_train.txt",
    "deepavfusion/vgginstruments_train": "vggsound_instruments/deepavfusion/vgginstruments_train.txt",
    "vggmusic_train": "vggsound_music/vggmusic_train.txt",
}
FLICKR_TRAIN = {
    "flickr_10k": "flickr/slavc/flickr_10k.txt",
    "flickr_144k": "flickr/slavc/flickr_144k.txt",
    "senocak/Flickr_train_144k": "flickr/senocak/Flickr_train_144k.txt",
    "flickr_sup_train": "flickr/slavc/flickr_sup_train.txt",
    "acl-ssl/flickr_10k": "flickr/acl-ssl/flickr_10k.csv",
}
FLICKR_TEST_FILES = (
    "flickr/senocak/test_list.txt",
    "flickr/flickr_test.csv",
    "flickr/slavc/flickr_test.csv",
    "flickr/ssl-alignment/flickr_test.csv",
    "flickr/acl-ssl/flickr_test.csv",
)


def build_leakage_report(metadata_dir: str | os.PathLike) -> pd.DataFrame:
    """Leakage of every standard training list against its domain's test sets, read from ``metadata_dir``
    (config key ``metadata_dir``; layout of ``shared/metadata``).

    Test sets: ``vggsound_test`` (hche11 ``test.csv``), ``vggss_test`` (``vggss_test.csv``), ``flickr_test``
    (union of all Flickr test lists under ``flickr_test=250_fixed``: 250 ids). Missing files raise
    ``FileNotFoundError`` naming the path.
    """
    root = Path(metadata_dir)
    # every VGGSound train list starts with the clip id; extra columns (labels) are irrelevant here
    vgg_train = {name: read_clip_id_column(root / rel)["clip_id"] for name, rel in VGGSOUND_TRAIN.items()}
    vgg_test = {
        "vggsound_test": vggsound.read_vggsound_test(root / "vggsound/test.csv")["clip_id"],
        "vggss_test": vggss.read_vggss_test_list(root / "vggss/vggss_test.csv")["clip_id"],
    }
    fl_train = {name: flickr.read_flickr_list(root / rel)["flickr_id"] for name, rel in FLICKR_TRAIN.items()}
    fl_ids: list[str] = []
    for rel in FLICKR_TEST_FILES:
        fl_ids.extend(flickr.read_flickr_list(root / rel)["flickr_id"])
    fl_test = {"flickr_test": flickr.flickr_test_ids(fl_ids, "250_fixed")}
    return pd.concat(
        [leakage_report(vgg_train, vgg_test), leakage_report(fl_train, fl_test)], ignore_index=True
    )
