"""MUSIC / MUSIC-21 (PROTOCOLS 1.7, 3.3): official video lists, AVGN frame lists and boxes, DSOL raw boxes.

Clip policy [ours]: the official lists carry no timing (whole YouTube videos, no split), while the pipeline
works on 10 s clips with canonical ids ``<ytid>_<start:06d>``. :func:`music_clips` therefore cuts ``n_clips``
10 s clips per video: clip ``k`` is centred at ``centre_s + k * stride_s`` (default one clip centred at
30 s, i.e. ``[25, 35)``, which lies inside every MUSIC video that is at least 35 s long). When the video
durations are known (after a metadata probe/download) pass ``durations`` and the first clip is centred on the
middle of each video instead, ``floor(duration / 2) - 5``. Clips that run past the end are the downloader's
business (status ``too_short``), never silently shifted.

Boxes: AVGN ``music_{solo,duet}.json`` boxes are normalised ``[x, y, w, h]`` (``music_box_format='xywh'``,
correct). ``music_box_format='xyxy_avgn_bug'`` reproduces AVGN's evaluator, which reads them as ``xyxy`` and so
yields an empty GT for most boxes (parity only).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from avbench.gt import clip_box_xyxy, xywh_to_xyxy
from avbench.ids import YTID_RE, clip_id
from avbench.sources._io import PathLike, read_rows, row_error

FRAME_ID_RE = re.compile(r"^(?P<ytid>[A-Za-z0-9_-]{11})_(?P<sec>\d{3})_(?P<frame>\d{5})$")
BOX_FORMATS = ("xywh", "xyxy_avgn_bug")
GT_SIZE = 224


def read_music_videos_json(path: PathLike) -> pd.DataFrame:
    """Official ``MUSIC_solo_videos.json`` / ``MUSIC21_solo_videos.json`` / ``MUSIC_duet_videos.json``.

    Format ``{"version": v, "videos": {"<class>" | "<classA> <classB>": [ytid, ...]}}`` (duet keys are two
    instrument names joined by one space; names themselves use ``_``). Columns: ``ytid, label`` (the key),
    ``instruments`` (list of 1 or 2 names), ``n_sources``.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict) or not isinstance(data.get("videos"), dict):
        raise row_error(path, None, "expected an object with a 'videos' mapping")
    rows = []
    for n, (label, ytids) in enumerate(data["videos"].items(), start=1):
        instruments = label.split(" ")
        for ytid in ytids:
            if not isinstance(ytid, str) or not YTID_RE.match(ytid):
                raise row_error(path, n, f"class {label!r}: not a YouTube id: {ytid!r}")
            rows.append((ytid, label, instruments, len(instruments)))
    return pd.DataFrame(rows, columns=["ytid", "label", "instruments", "n_sources"])


def music_clips(
    videos: pd.DataFrame,
    *,
    centre_s: float = 30.0,
    n_clips: int = 1,
    stride_s: float = 10.0,
    clip_len_s: float = 10.0,
    durations: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Apply the clip policy of the module docstring to a :func:`read_music_videos_json` frame.

    Columns: ``clip_id, ytid, start_s, end_s, label, clip_index``. Starts are whole seconds (clip ids hold
    integer seconds), so ``centre_s - clip_len_s / 2`` and ``stride_s`` must be whole numbers.
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be >= 1, got {n_clips}")
    half = clip_len_s / 2
    for name, value in (("centre_s - clip_len_s/2", centre_s - half), ("stride_s", stride_s)):
        if value != int(value):
            raise ValueError(f"{name} must be a whole number of seconds, got {value}")
    rows = []
    for ytid, label in zip(videos["ytid"], videos["label"], strict=True):
        if durations is not None and ytid in durations:
            first = max(math.floor(durations[ytid] / 2 - half), 0)
        else:
            first = max(int(centre_s - half), 0)
        for k in range(n_clips):
            start = first + int(k * stride_s)
            rows.append((clip_id(ytid, start), ytid, float(start), float(start + clip_len_s), label, k))
    return pd.DataFrame(rows, columns=["clip_id", "ytid", "start_s", "end_s", "label", "clip_index"])


def parse_frame_id(fid: str) -> tuple[str, int, int]:
    """AVGN MUSIC frame id ``<ytid>_<sec:03d>_<frame:05d>`` -> (ytid, second, frame index at 30 fps)."""
    match = FRAME_ID_RE.match(fid)
    if not match:
        raise ValueError(f"not a MUSIC frame id '<ytid>_<sec:03d>_<frame:05d>': {fid!r}")
    return match["ytid"], int(match["sec"]), int(match["frame"])


def read_music_frame_list(path: PathLike) -> pd.DataFrame:
    """AVGN ``music_solo_{train.txt,test.csv}`` (``<frame_id>,<class>``), ``music_duet_train.txt``
    (``<frame_id>,<cls1>,<cls2>``), ``music_duet_test.csv`` (ids only).

    Columns: ``frame_id, ytid, sec, frame, classes`` (list of 0-2 names, as in the file).
    """
    rows = []
    for n, fields in read_rows(path):
        fid = fields[0].strip()
        try:
            ytid, sec, frame = parse_frame_id(fid)
        except ValueError as exc:
            raise row_error(path, n, str(exc)) from None
        rows.append((fid, ytid, sec, frame, [f for f in fields[1:] if f]))
    return pd.DataFrame(rows, columns=["frame_id", "ytid", "sec", "frame", "classes"])


def _decode_box(raw: list[float], fmt: str, size: int) -> tuple[list[float], bool]:
    box = xywh_to_xyxy(raw) if fmt == "xywh" else list(raw)
    clipped, _ = clip_box_xyxy(box)
    x1, y1, x2, y2 = (int(v * size) for v in clipped)
    return clipped, (x2 <= x1 or y2 <= y1)


def read_music_boxes(path: PathLike, music_box_format: str = "xywh", size: int = GT_SIZE) -> pd.DataFrame:
    """AVGN ``music_solo.json`` (``{file, class, bbox}``) or ``music_duet.json``
    (``{file, class_src1, bbox_src1, class_src2, bbox_src2}``), one row per (frame, source).

    Columns: ``frame_id, ytid, sec, frame, source`` (1 or 2), ``label, raw_box`` (as in the file, xywh),
    ``box`` (normalised xyxy clipped to [0, 1] under ``music_box_format``), ``empty_gt`` (zero area after
    ``x size`` truncation).
    """
    if music_box_format not in BOX_FORMATS:
        raise ValueError(f"music_box_format must be one of {BOX_FORMATS}, got {music_box_format!r}")
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        entries = json.load(handle)
    rows: list[tuple[Any, ...]] = []
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or "file" not in entry:
            raise row_error(path, n, f"expected an object with 'file': {entry!r}")
        if "bbox" in entry:
            sources = [(1, entry.get("class"), entry["bbox"])]
        elif "bbox_src1" in entry and "bbox_src2" in entry:
            sources = [
                (1, entry.get("class_src1"), entry["bbox_src1"]),
                (2, entry.get("class_src2"), entry["bbox_src2"]),
            ]
        else:
            raise row_error(path, n, f"no bbox / bbox_src1+bbox_src2 keys: {sorted(entry)}")
        try:
            ytid, sec, frame = parse_frame_id(entry["file"])
        except ValueError as exc:
            raise row_error(path, n, str(exc)) from None
        for src, label, raw in sources:
            if not isinstance(raw, list) or len(raw) != 4:
                raise row_error(path, n, f"source {src} box is not 4 numbers: {raw!r}")
            try:
                raw_f = [float(v) for v in raw]
                box, empty = _decode_box(raw_f, music_box_format, size)
            except (TypeError, ValueError) as exc:
                raise row_error(path, n, f"source {src}: {exc}") from None
            rows.append((entry["file"], ytid, sec, frame, src, label, raw_f, box, empty))
    cols = ["frame_id", "ytid", "sec", "frame", "source", "label", "raw_box", "box", "empty_gt"]
    return pd.DataFrame(rows, columns=cols)


def music_box_summary(frame: pd.DataFrame) -> dict[str, int]:
    """``{n_frames, n_boxes, n_empty}`` of a :func:`read_music_boxes` frame."""
    return {
        "n_frames": int(frame["frame_id"].nunique()),
        "n_boxes": int(len(frame)),
        "n_empty": int(frame["empty_gt"].sum()),
    }


def read_dsol_annotations(path: PathLike) -> pd.DataFrame:
    """T-VSL/DSOL raw ``music_solo_real_ann.json`` keyed ``<ytid>_0_1000/frame_NNN/NNNNN.jpg``.

    Image width is stored under the misspelled key ``wdith``. Columns: ``key, ytid, frame_dir, frame,
    width, height, n_boxes, boxes_px`` (pixel xywh), ``normboxes`` (normalised xywh), ``category_ids``.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    rows = []
    for n, (key, value) in enumerate(data.items(), start=1):
        parts = key.split("/")
        if len(parts) != 3 or not YTID_RE.match(parts[0][:11]):
            raise row_error(path, n, f"unexpected key {key!r}")
        width = value.get("wdith", value.get("width"))
        boxes = value.get("bbox", [])
        rows.append(
            (
                key,
                parts[0][:11],
                parts[1],
                int(Path(parts[2]).stem),
                width,
                value.get("height"),
                len(boxes),
                [b["box"] for b in boxes],
                [b["normbox"] for b in boxes],
                [b.get("category_id") for b in boxes],
            )
        )
    cols = [
        "key",
        "ytid",
        "frame_dir",
        "frame",
        "width",
        "height",
        "n_boxes",
        "boxes_px",
        "normboxes",
        "category_ids",
    ]
    return pd.DataFrame(rows, columns=cols)


def read_mix_localize_split(path: PathLike) -> pd.DataFrame:
    """Mix-and-Localize ``solo/{train,val,test}.csv``: ``MUSIC_raw/solo/<class>/<ytid>`` per line.

    Columns: ``ytid, label, path``.
    """
    rows = []
    for n, fields in read_rows(path):
        raw = fields[0].strip()
        parts = raw.rstrip("/").split("/")
        if len(parts) < 2 or not YTID_RE.match(parts[-1]):
            raise row_error(path, n, f"expected '.../<class>/<ytid>': {raw!r}")
        rows.append((parts[-1], parts[-2], raw))
    return pd.DataFrame(rows, columns=["ytid", "label", "path"])
