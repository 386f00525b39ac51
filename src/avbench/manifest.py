"""Metadata -> clip manifest: one row per clip with split, label index, boxes, source URL and chunk.

Split membership: ``split`` is the clip's primary split (its evaluation role: ``test`` wins), ``splits`` the JSON
list of every split the clip belongs to (primary first). A clip that is in a published training list and in the
test set (``train_list_mode: original``) has ``split == "test"`` and ``splits == ["test", "train"]``: it is
downloaded and sliced once (one row, one chunk) and written into the shards of both splits. Select the clips of a
split with :func:`in_split`, never with ``split == ...``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from avbench.ids import clip_id, youtube_url

# A clip whose class is not known (Extended VGG-SS's off-screen clips: no list names their class without
# vggsound.csv). It is never part of a label list, so its index is -1 and the indices of labelled clips do not
# depend on whether such clips are in the manifest.
UNKNOWN_LABEL = "unknown"
UNKNOWN_LABEL_IDX = -1

MANIFEST_COLUMNS = [
    "clip_id", "ytid", "start_s", "end_s", "label", "label_idx", "split", "splits", "dataset", "url", "boxes",
    "sources", "chunk",
]


def split_lists(frame: pd.DataFrame) -> pd.Series:
    """Every split of each clip as a list (``splits`` column; manifests without it: ``[split]``)."""
    if "splits" not in frame.columns:
        return frame["split"].map(lambda s: [s])
    return pd.Series([_members(v, s) for v, s in zip(frame["splits"], frame["split"], strict=True)],
                     index=frame.index, dtype=object)


def in_split(frame: pd.DataFrame, split: str) -> pd.Series:
    """Boolean mask of the clips that belong to ``split`` (primary or not)."""
    if "splits" not in frame.columns:
        return frame["split"] == split
    return split_lists(frame).map(lambda members: split in members).astype(bool)


def split_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Clips per split by membership (a clip in train and test counts in both) plus ``train&test``."""
    lists = split_lists(frame)
    counts: dict[str, int] = {}
    for members in lists:
        for split in members:
            counts[split] = counts.get(split, 0) + 1
    counts["train&test"] = int(sum("train" in m and "test" in m for m in lists))
    return counts


def _members(value: object, split: str) -> list[str]:
    """One clip's ``splits`` entry as a list; missing (None/NaN) means ``[split]``."""
    if isinstance(value, str):
        return list(json.loads(value))
    if hasattr(value, "tolist"):
        value = value.tolist()  # type: ignore[union-attr]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [split]


def _check_splits(out: pd.DataFrame, dataset: str) -> None:
    for cid, split, members in zip(out["clip_id"], out["split"], out["splits"], strict=True):
        if not members or members[0] != split or len(set(members)) != len(members):
            raise ValueError(f"dataset {dataset!r}: clip {cid!r} has split {split!r} but splits {members!r} "
                             "(splits must start with the primary split and hold no duplicates)")


def assign_chunks(frame: pd.DataFrame, n_chunks: int) -> pd.Series:
    """Chunk of each clip: position in clip-id order modulo ``n_chunks`` (stable, balanced)."""
    order = frame["clip_id"].rank(method="first").astype(int) - 1
    return (order % n_chunks).astype("int64")


def finalize_manifest(frame: pd.DataFrame, *, dataset: str, n_chunks: int, labels: list[str]) -> pd.DataFrame:
    """Add label indices, JSON columns and chunks; check ids are unique; order columns.

    ``splits`` (optional, list per clip, primary split first) defaults to ``[split]``. A clip labelled
    :data:`UNKNOWN_LABEL` (not in ``labels``) gets ``label_idx`` :data:`UNKNOWN_LABEL_IDX`.
    """
    duplicated = frame["clip_id"][frame["clip_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"dataset {dataset!r}: duplicated clip ids in metadata: {sorted(duplicated)[:5]}")
    index = {label: i for i, label in enumerate(labels)}
    index.setdefault(UNKNOWN_LABEL, UNKNOWN_LABEL_IDX)
    unknown = sorted(set(frame["label"]) - set(index))
    if unknown:
        raise ValueError(f"dataset {dataset!r}: labels missing from the label list: {unknown[:5]}")
    out = frame.copy()
    out["dataset"] = dataset
    members = out["splits"] if "splits" in out else pd.Series([None] * len(out), index=out.index)
    out["splits"] = [_members(m, s) for m, s in zip(members, out["split"], strict=True)]
    _check_splits(out, dataset)
    out["label_idx"] = out["label"].map(index).astype("int64")
    if "boxes" not in out:
        out["boxes"] = [[] for _ in range(len(out))]
    if "sources" not in out:
        out["sources"] = [
            [{"label": lab, "label_idx": index[lab], "boxes": boxes}]
            for lab, boxes in zip(out["label"], out["boxes"], strict=True)
        ]
    out["boxes"] = out["boxes"].map(json.dumps)
    out["sources"] = out["sources"].map(json.dumps)
    out["splits"] = out["splits"].map(json.dumps)
    out["start_s"] = out["start_s"].astype("float64")
    out["end_s"] = out["end_s"].astype("float64")
    out = out.sort_values("clip_id", kind="stable").reset_index(drop=True)
    out["chunk"] = assign_chunks(out, n_chunks)
    return out[MANIFEST_COLUMNS]


def synthav_manifest(
    *, vggsound_csv: str | Path, vggss_json: str | Path, duet_json: str | Path, video_dir: str | Path,
    dataset: str, n_chunks: int,
) -> pd.DataFrame:
    """SynthAV manifest, read from its official-format metadata with the same readers as the real files.

    Single clips come from ``vggsound.csv`` (boxes of test clips from ``vggss.json``); duet clips from the
    AVGN-style ``music_duet.json`` (xywh boxes), in split ``duet`` with one source entry per sounding object.
    """
    from avbench.sources.labels import instrument_label, reverse_map
    from avbench.sources.music import read_music_boxes
    from avbench.sources.vggsound import read_vggsound_csv
    from avbench.sources.vggss import read_vggss_json

    clips = read_vggsound_csv(vggsound_csv)[["clip_id", "ytid", "start_s", "end_s", "label", "split"]]
    boxes = read_vggss_json(vggss_json).set_index("clip_id")["boxes"]
    clips["boxes"] = [list(boxes.get(cid, [])) for cid in clips["clip_id"]]
    labels = sorted(set(clips["label"]))
    index = {label: i for i, label in enumerate(labels)}

    # AVGN-style duet files name instruments ('marimba, xylophone' -> 'xylophone'): map back to the labels.
    to_label = reverse_map(labels, instrument_label)
    duet_boxes = read_music_boxes(duet_json, music_box_format="xywh")
    unknown = sorted(set(duet_boxes["label"]) - set(to_label))
    if unknown:
        raise ValueError(f"{duet_json}: duet classes with no matching label in {vggsound_csv}: {unknown[:5]}")
    duet_boxes["label"] = duet_boxes["label"].map(to_label)
    duet_rows = duet_clips(duet_boxes, index)
    if len(duet_rows):
        clips["sources"] = [
            [{"label": lab, "label_idx": index[lab], "boxes": b}]
            for lab, b in zip(clips["label"], clips["boxes"], strict=True)
        ]
        clips = pd.concat([clips, duet_rows], ignore_index=True)
    video_dir = Path(video_dir).resolve()
    clips["url"] = [(video_dir / f"{ytid}.mp4").as_uri() for ytid in clips["ytid"]]
    return finalize_manifest(clips, dataset=dataset, n_chunks=n_chunks, labels=labels)


def duet_clips(boxes: pd.DataFrame, label_index: dict[str, int], centre_s: float = 5.0) -> pd.DataFrame:
    """Two-source clips from an AVGN-style duet box table (one row per frame and source).

    The annotated frame ``<ytid>_<sec>_<frame>`` is the clip centre, so the clip is ``[sec - centre_s, +10 s)``.
    """
    rows = []
    for _, group in boxes.sort_values(["frame_id", "source"]).groupby("frame_id", sort=True):
        ytid, sec = group["ytid"].iloc[0], int(group["sec"].iloc[0])
        start = max(sec - centre_s, 0.0)
        sources = [
            {"label": lab, "label_idx": label_index[lab], "boxes": [list(map(float, box))]}
            for lab, box in zip(group["label"], group["box"], strict=True)
        ]
        rows.append({
            "clip_id": clip_id(ytid, start), "ytid": ytid, "start_s": start, "end_s": start + 10.0,
            "label": sources[0]["label"], "split": "duet",
            "boxes": [b for src in sources for b in src["boxes"]], "sources": sources,
        })
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows)


def youtube_manifest(clips: pd.DataFrame, *, dataset: str, n_chunks: int, labels: list[str]) -> pd.DataFrame:
    """Manifest of a YouTube-based dataset from a reader's clip frame (clip_id, ytid, start_s, end_s, label, split)."""
    out = clips.copy()
    out["url"] = out["ytid"].map(youtube_url)
    return finalize_manifest(out, dataset=dataset, n_chunks=n_chunks, labels=labels)


def read_manifest(path: str | Path) -> pd.DataFrame:
    return pd.read_parquet(path)
