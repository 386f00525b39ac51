"""Train/test leakage report (PROTOCOLS 1.11).

Overlap is counted by clip (identical ids) and by video (same YouTube id / Flickr item), because several
VGGSound clips come from one video: a train clip cut from a test video leaks scene and speaker even when the
clip ids differ. Original lists stay available for paper parity (``train_list_mode=original``);
:func:`clean_train_list` gives the ``clean`` variant.

Two scopes in one report: ``published`` (every standard training list against its domain's test sets, from the
metadata alone) and ``configured`` (:func:`configured_leakage`: what the configured datasets actually use, from
their manifests' split membership: the training split of the dataset whose models are evaluated, i.e. the
``train_from`` dataset for a cross-dataset benchmark, against the evaluated dataset's test split).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from avbench.ids import CLIP_ID_RE, MS_ID_RE
from avbench.io import write_csv, write_text
from avbench.sources import flickr, vggsound, vggss
from avbench.sources._io import read_clip_id_column

SCOPES = ("published", "configured")
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


FULL_COLUMNS = ["scope", "dataset", *REPORT_COLUMNS, "train_list_mode"]
_TEXT_COLUMNS = ("scope", "dataset", "train", "test", "train_list_mode")


def configured_leakage(manifests: Mapping[str, pd.DataFrame], settings: Mapping[str, Mapping[str, Any]]
                       ) -> pd.DataFrame:
    """Overlap actually used by each configured dataset, from the manifests' split membership.

    ``manifests``: dataset key -> manifest; ``settings``: dataset key -> ``avbench.datasets.list_settings`` of it
    (``train_list``, ``test_list``, ``train_list_mode``, ``train_from``). One row per dataset with a test split:
    its test clips against the training split of the dataset whose models it is evaluated with (itself, or its
    ``train_from``). Videos are compared by the manifests' ``ytid``. Columns :data:`FULL_COLUMNS`, scope
    ``configured``. A dataset whose training dataset has no manifest here raises ``KeyError`` naming both.
    """
    from avbench.manifest import in_split

    rows = []
    for dataset in sorted(manifests):
        frame = manifests[dataset]
        info = settings.get(dataset) or {}
        test = frame[in_split(frame, "test")]
        if test.empty:
            continue
        source = info.get("train_from") or dataset
        if source not in manifests:
            raise KeyError(f"leakage report: dataset {dataset!r} is evaluated with models of {source!r}, whose "
                           f"manifest is not among the inputs ({sorted(manifests)})")
        train_frame = manifests[source]
        train = train_frame[in_split(train_frame, "train")]
        train_info = settings.get(source) or {}
        test_ids, train_ids = set(test["clip_id"]), set(train["clip_id"])
        test_videos = set(test["ytid"].astype(str))
        on_test_videos = int(train["ytid"].astype(str).isin(test_videos).sum())
        clip = len(train_ids & test_ids)
        rows.append({
            "scope": "configured", "dataset": dataset,
            "train": f"{source}:train [{train_info.get('train_list') or '-'}]",
            "test": f"{dataset}:test [{info.get('test_list') or '-'}]",
            "n_train": len(train_ids), "n_test": len(test_ids), "clip_overlap": clip,
            "video_overlap": len(set(train["ytid"].astype(str)) & test_videos),
            "train_clips_on_test_videos": on_test_videos,
            "test_frac_in_train": clip / len(test_ids),
            "train_list_mode": train_info.get("train_list_mode") or "",
        })
    return pd.DataFrame(rows, columns=FULL_COLUMNS)


def full_report(published: pd.DataFrame, configured: pd.DataFrame | None = None) -> pd.DataFrame:
    """Both scopes in one frame (:data:`FULL_COLUMNS`); ``published`` is a :func:`leakage_report` frame."""
    pub = published.assign(scope="published", dataset="", train_list_mode="")[FULL_COLUMNS]
    if configured is None or configured.empty:
        return pub.reset_index(drop=True)
    return pd.concat([pub, configured[FULL_COLUMNS]], ignore_index=True)


def _md_table(df: pd.DataFrame) -> list[str]:
    lines = [
        "| " + " | ".join(df.columns) + " |",
        "|" + "|".join("---" if c in _TEXT_COLUMNS else "---:" for c in df.columns) + "|",
    ]
    for row in df.itertuples(index=False):
        cells = [
            f"{v:.4f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v) for v in row
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report_markdown(df: pd.DataFrame) -> str:
    """Markdown of a :func:`leakage_report` frame, or of a :func:`full_report` frame (one section per scope)."""
    lines = [
        "# Train/test leakage",
        "",
        "Counts of distinct ids. `video_overlap`: shared videos (YouTube id or Flickr id); "
        "`train_clips_on_test_videos`: train ids cut from a test video.",
        "",
    ]
    if "scope" not in df.columns:
        return "\n".join(lines + _md_table(df)) + "\n"
    published = df[df["scope"] == "published"][REPORT_COLUMNS]
    lines += ["## Published training lists", "", *_md_table(published), ""]
    configured = df[df["scope"] == "configured"]
    lines += ["## Configured datasets (what this run trains and tests on)", ""]
    if configured.empty:
        lines.append("No real dataset is configured for evaluation.")
    else:
        lines += [
            "From the manifests' split membership: `train` is the training split of the dataset whose models are "
            "evaluated (its `train_from` for a cross-dataset benchmark), `test` the evaluated test split. Under "
            "`train_list_mode: original` the published list is kept, so its test clips are trained on "
            "(`clip_overlap`); `clean` removes them.",
            "",
            *_md_table(configured[["dataset", *REPORT_COLUMNS, "train_list_mode"]]),
        ]
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
