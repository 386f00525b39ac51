"""Manifest: chunks balanced and stable, label indices, duplicate/unknown-label errors name the dataset."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from avbench.manifest import (
    MANIFEST_COLUMNS,
    UNKNOWN_LABEL,
    UNKNOWN_LABEL_IDX,
    duet_clips,
    finalize_manifest,
    youtube_manifest,
)


def _clips(ids: list[str], labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "clip_id": ids, "ytid": [i[:11] for i in ids], "start_s": [int(i[12:]) for i in ids],
        "end_s": [int(i[12:]) + 10 for i in ids], "label": labels, "split": "train",
    })


def test_youtube_manifest_urls_chunks_and_labels() -> None:
    ids = [f"-abc_def{n:03d}_{n:06d}" for n in range(10)]
    frame = youtube_manifest(_clips(ids, ["b", "a"] * 5), dataset="toy", n_chunks=3, labels=["a", "b"])
    assert list(frame.columns) == MANIFEST_COLUMNS
    assert frame["url"].iloc[0].startswith("https://www.youtube.com/watch?v=-abc_def")
    assert frame["chunk"].value_counts().sort_index().tolist() == [4, 3, 3]
    assert frame.set_index("clip_id").loc[ids[0], "label_idx"] == 1
    assert json.loads(frame["sources"].iloc[0])[0]["label"] in ("a", "b")


def test_duplicate_ids_and_unknown_labels_are_errors() -> None:
    ids = ["abcdefghijk_000001", "abcdefghijk_000001"]
    with pytest.raises(ValueError, match="toy.*duplicated"):
        finalize_manifest(_clips(ids, ["a", "a"]), dataset="toy", n_chunks=1, labels=["a"])
    with pytest.raises(ValueError, match="toy.*labels missing"):
        finalize_manifest(_clips(ids[:1], ["zzz"]), dataset="toy", n_chunks=1, labels=["a"])


def test_unknown_label_is_minus_one_and_shifts_no_index() -> None:
    ids = [f"-abc_def{n:03d}_{n:06d}" for n in range(4)]
    labelled = youtube_manifest(_clips(ids[:2], ["b", "a"]), dataset="toy", n_chunks=2, labels=["a", "b"])
    clips = _clips(ids, ["b", "a", UNKNOWN_LABEL, UNKNOWN_LABEL])
    frame = youtube_manifest(clips, dataset="toy", n_chunks=2, labels=["a", "b"]).set_index("clip_id")
    assert frame.loc[ids[2:], "label_idx"].tolist() == [UNKNOWN_LABEL_IDX] * 2
    assert json.loads(frame.loc[ids[2], "sources"]) == [{"label": UNKNOWN_LABEL, "label_idx": -1, "boxes": []}]
    assert frame.loc[ids[:2], "label_idx"].tolist() == labelled.set_index("clip_id").loc[ids[:2], "label_idx"].tolist()


def test_duet_clips_from_frame_ids() -> None:
    boxes = pd.DataFrame({
        "frame_id": ["abcdefghijk_007_00210"] * 2, "ytid": ["abcdefghijk"] * 2, "sec": [7, 7],
        "frame": [210, 210], "source": [2, 1], "label": ["b", "a"],
        "box": [[0.5, 0.5, 0.9, 0.9], [0.1, 0.1, 0.4, 0.4]],
    })
    rows = duet_clips(boxes, {"a": 0, "b": 1})
    assert rows.loc[0, "clip_id"] == "abcdefghijk_000002"
    assert [s["label"] for s in rows.loc[0, "sources"]] == ["a", "b"]
    assert rows.loc[0, "split"] == "duet"
