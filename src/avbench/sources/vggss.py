"""VGG-SS (PROTOCOLS 1.2, 3.2): boxes with defect accounting, test lists, heard/unheard, extended set.

Defects of ``vggss.json`` (sha256 ``ae300b4a…b15e``) are decoded, never silently fixed: corrupt coordinates
(``-2.88e16``) are counted and clipped to [0, 1] exactly like the reference evaluators do, and every box that
rasterises to zero area at 224 px is counted, so the two empty-GT clips are visible in the manifest.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avbench.gt import clip_box_xyxy, union_map
from avbench.ids import CLIP_ID_RE, ms_id_to_clip_id
from avbench.sources._io import (
    PathLike,
    checked,
    clip_frame,
    expect_fields,
    read_clip_id_column,
    read_rows,
    row_error,
    strip_clip_id,
)

GT_SIZE = 224
BAD_GT_POLICIES = ("keep", "drop_clip")


def _box_is_degenerate(box: list[float], size: int = GT_SIZE) -> bool:
    """Zero area after the clip + ``x size`` + int truncation of PROTOCOLS 3.2."""
    x1, y1, x2, y2 = (int(v * size) for v in box)
    return x2 <= x1 or y2 <= y1


def read_vggss_json(path: PathLike, size: int = GT_SIZE) -> pd.DataFrame:
    """``vggss.json``: ``[{"file", "class", "bbox": [[x1, y1, x2, y2], ...]}]`` normalised to the full frame.

    Columns: ``clip_id, ytid, start_s, end_s, label, boxes`` (list of normalised xyxy float lists clipped to
    [0, 1]), ``raw_boxes`` (as in the file, floats), ``n_boxes``, ``n_corrupt_coords`` (coordinates outside
    [0, 1]), ``corrupt`` (any corrupt coordinate), ``n_int_coords`` (JSON ints such as ``0``/``1``),
    ``n_degenerate`` (boxes of zero area after clip + ``x size`` truncation), ``empty_gt`` (the union map at
    ``size`` is all zero: cIoU is 0 for any prediction). Row order = file order. ``row`` in errors is the
    1-based index of the JSON entry.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        entries = json.load(handle)
    if not isinstance(entries, list):
        raise row_error(path, None, "expected a JSON list of clips")
    records: list[dict[str, Any]] = []
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not {"file", "class", "bbox"} <= entry.keys():
            raise row_error(path, n, f"expected keys file, class, bbox; got {entry!r}")
        cid = entry["file"]
        if not isinstance(cid, str) or not CLIP_ID_RE.match(cid):
            raise row_error(path, n, f"not a canonical clip id: {cid!r}")
        raw_boxes: list[list[float]] = []
        boxes: list[list[float]] = []
        n_corrupt = n_int = n_degenerate = 0
        for b, box in enumerate(entry["bbox"]):
            if not isinstance(box, list) or len(box) != 4:
                raise row_error(path, n, f"box {b} is not 4 numbers: {box!r}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
                raise row_error(path, n, f"box {b} has a non-numeric coordinate: {box!r}")
            n_int += sum(isinstance(v, int) for v in box)
            raw = [float(v) for v in box]
            if not all(math.isfinite(v) for v in raw):
                raise row_error(path, n, f"box {b} has a non-finite coordinate: {box!r}")
            clipped, _ = clip_box_xyxy(raw)
            n_corrupt += sum(v < 0.0 or v > 1.0 for v in raw)
            n_degenerate += _box_is_degenerate(clipped, size)
            raw_boxes.append(raw)
            boxes.append(clipped)
        empty = not bool(np.any(union_map(boxes, size, size))) if boxes else True
        records.append(
            {
                "clip_id": cid,
                "label": entry["class"],
                "boxes": boxes,
                "raw_boxes": raw_boxes,
                "n_boxes": len(boxes),
                "n_corrupt_coords": n_corrupt,
                "corrupt": n_corrupt > 0,
                "n_int_coords": n_int,
                "n_degenerate": n_degenerate,
                "empty_gt": empty,
            }
        )
    if not records:
        raise row_error(path, None, "no clips")
    frame = pd.DataFrame.from_records(records)
    dup = frame["clip_id"].duplicated()
    if dup.any():
        first = int(np.flatnonzero(dup.to_numpy())[0]) + 1
        raise row_error(path, first, f"duplicate clip id {frame['clip_id'].iloc[first - 1]!r}")
    base = clip_frame(frame["clip_id"])
    return pd.concat([base, frame.drop(columns=["clip_id"])], axis=1)


def vggss_defects(frame: pd.DataFrame, size: int = GT_SIZE) -> dict[str, Any]:
    """Defect summary of a :func:`read_vggss_json` frame (to log beside every VGG-SS metric).

    Keys: ``n_clips, n_classes, box_histogram {n_boxes: n_clips}, n_boxes, n_int_coords, n_corrupt_coords,
    corrupt_clips, n_degenerate_boxes, degenerate_boxes [(clip_id, box_index)], empty_gt_clips``.
    """
    degenerate = [
        (cid, i)
        for cid, boxes in zip(frame["clip_id"], frame["boxes"], strict=True)
        for i, box in enumerate(boxes)
        if _box_is_degenerate(box, size)
    ]
    hist = Counter(int(v) for v in frame["n_boxes"])
    return {
        "n_clips": int(len(frame)),
        "n_classes": int(frame["label"].nunique()),
        "box_histogram": {k: hist[k] for k in sorted(hist)},
        "n_boxes": int(frame["n_boxes"].sum()),
        "n_int_coords": int(frame["n_int_coords"].sum()),
        "n_corrupt_coords": int(frame["n_corrupt_coords"].sum()),
        "corrupt_clips": frame.loc[frame["corrupt"], "clip_id"].tolist(),
        "n_degenerate_boxes": len(degenerate),
        "degenerate_boxes": degenerate,
        "empty_gt_clips": frame.loc[frame["empty_gt"], "clip_id"].tolist(),
    }


def apply_bad_gt_policy(frame: pd.DataFrame, policy: str = "keep") -> pd.DataFrame:
    """Flag ``vggss_bad_gt``: ``keep`` (paper parity) or ``drop_clip`` (drop corrupt or empty-GT clips)."""
    if policy not in BAD_GT_POLICIES:
        raise ValueError(f"vggss_bad_gt must be one of {BAD_GT_POLICIES}, got {policy!r}")
    if policy == "keep":
        return frame
    return frame.loc[~(frame["corrupt"] | frame["empty_gt"])].reset_index(drop=True)


def read_vggss_test_list(path: PathLike) -> pd.DataFrame:
    """Id-only lists: ``vggss_test.csv`` (CRLF), ``vggss_{heard,unheard}_test.csv`` (LF, no final newline).

    Columns: ``clip_id, ytid, start_s, end_s``.
    """
    return read_clip_id_column(path)


def read_labeled_clip_list(path: PathLike) -> pd.DataFrame:
    """ACL-SSL ``id,label`` lists (CRLF, quoted labels). Columns: ``clip_id, ytid, start_s, end_s, label``."""
    ids: list[str] = []
    labels: list[str] = []
    for n, fields in read_rows(path):
        raw, label = expect_fields(path, n, fields, 2)
        ids.append(strip_clip_id(path, n, raw))
        labels.append(label)
    return clip_frame(ids, label=labels)


def read_ms_id_list(path: PathLike) -> pd.DataFrame:
    """kaistmm/SSLalignment ``ours_vggss.txt``: ``<ytid>_<start_ms>_<end_ms>`` per line.

    Columns: ``ms_id, clip_id, ytid, start_s, end_s`` (end from the ms id, not assumed).
    """
    ms_ids: list[str] = []
    cids: list[str] = []
    ends: list[float] = []
    for n, fields in read_rows(path):
        ms = fields[0].strip()
        cid = checked(path, n, ms_id_to_clip_id, ms)
        ms_ids.append(ms)
        cids.append(cid)
        ends.append(int(ms.rsplit("_", 2)[2]) / 1000.0)
    frame = clip_frame(cids)
    frame["end_s"] = ends
    frame.insert(0, "ms_id", ms_ids)
    return frame


def read_plus_silent(path: PathLike, id_kind: str = "clip") -> pd.DataFrame:
    """SLAVC ``*_plus_silent.csv`` (header ``video,audio,label``; Extended VGG-SS / Extended Flickr).

    ``id_kind='clip'`` validates canonical clip ids, ``'flickr'`` numeric Flickr ids.
    Columns: ``video, audio, label, same_clip`` (``video == audio``: an off-screen-sound clip), ``row`` (the
    file's row number, for errors that name the row).
    """
    rows = []
    for n, fields in read_rows(path, header=["video", "audio", "label"]):
        video, audio, label = expect_fields(path, n, fields, 3)
        if id_kind == "clip":
            video, audio = strip_clip_id(path, n, video), strip_clip_id(path, n, audio)
        elif id_kind == "flickr":
            if not (video.isdigit() and audio.isdigit()):
                raise row_error(path, n, f"not numeric Flickr ids: {video!r}, {audio!r}")
        else:
            raise ValueError(f"id_kind must be 'clip' or 'flickr', got {id_kind!r}")
        rows.append((video, audio, label, video == audio, n))
    return pd.DataFrame(rows, columns=["video", "audio", "label", "same_clip", "row"])


def read_vggss_plus_silent(path: PathLike) -> pd.DataFrame:
    """Extended VGG-SS negatives; see :func:`read_plus_silent`."""
    return read_plus_silent(path, id_kind="clip")


def read_extended_list(path: PathLike) -> pd.DataFrame:
    """An official SLAVC extended list of either dataset (PROTOCOLS 1.9, 4.5): Extended VGG-SS
    (``vggss_test_plus_silent.csv``, clip ids) or Extended Flickr (``flickr_test_plus_silent.csv``, numeric
    Flickr ids), told apart by the first row's video id. Columns as :func:`read_plus_silent`."""
    rows = read_rows(path, header=["video", "audio", "label"])
    if not rows:
        raise row_error(path, None, "no rows after the header")
    first = rows[0][1][0].strip() if rows[0][1] else ""
    return read_plus_silent(path, id_kind="flickr" if first.isdigit() else "clip")
