"""VGGSound metadata (PROTOCOLS 1.1): vggsound.csv, test.csv, AStest.csv, stat.csv, Common.txt."""

from __future__ import annotations

import math

import pandas as pd

from avbench.ids import YTID_RE, clip_id
from avbench.sources._io import PathLike, clip_frame, expect_fields, read_rows, row_error, strip_clip_id

SPLITS = ("train", "test")


def read_vggsound_csv(path: PathLike) -> pd.DataFrame:
    """Official ``vggsound.csv`` (no header; ``ytid,start_s,label,split``; labels with commas CSV-quoted).

    Columns: ``clip_id, ytid, start_s, end_s (= start_s + 10), label, split``. The row count is not fixed
    (copies differ between years); callers record it rather than assert it.
    """
    ids: list[str] = []
    labels: list[str] = []
    splits: list[str] = []
    for n, fields in read_rows(path):
        ytid, start, label, split = expect_fields(path, n, fields, 4)
        if not YTID_RE.match(ytid):
            raise row_error(path, n, f"not a YouTube id: {ytid!r}")
        try:
            start_f = float(start)
        except ValueError:
            raise row_error(path, n, f"start is not a number: {start!r}") from None
        if not math.isfinite(start_f) or start_f < 0 or start_f != int(start_f):
            raise row_error(path, n, f"start must be a non-negative whole number of seconds: {start!r}")
        if split not in SPLITS:
            raise row_error(path, n, f"split must be one of {SPLITS}, got {split!r}")
        if not label:
            raise row_error(path, n, "empty label")
        ids.append(clip_id(ytid, int(start_f)))
        labels.append(label)
        splits.append(split)
    return clip_frame(ids, label=labels, split=splits)


def read_vggsound_test(path: PathLike) -> pd.DataFrame:
    """hche11 ``test.csv`` / ``AStest.csv``: ``<ytid>_<start:06d>.mp4,<label>`` (CRLF, no header).

    Columns: ``clip_id, ytid, start_s, end_s, label, split`` (split is always ``test``).
    """
    ids: list[str] = []
    labels: list[str] = []
    for n, fields in read_rows(path):
        raw, label = expect_fields(path, n, fields, 2)
        ids.append(strip_clip_id(path, n, raw))
        labels.append(label)
    return clip_frame(ids, label=labels, split=["test"] * len(ids))


read_astest = read_vggsound_test


def read_vggsound_stat(path: PathLike) -> pd.DataFrame:
    """``stat.csv``: ``label,count,category`` per class. Columns: ``label, count (int), category``."""
    rows = []
    for n, fields in read_rows(path):
        label, count, category = expect_fields(path, n, fields, 3)
        try:
            rows.append((label, int(count), category))
        except ValueError:
            raise row_error(path, n, f"count is not an integer: {count!r}") from None
    return pd.DataFrame(rows, columns=["label", "count", "category"])


def read_label_list(path: PathLike) -> pd.DataFrame:
    """One label per line (``Common.txt``; labels may contain commas, the whole line is the label).

    Columns: ``label``.
    """
    labels = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for line in handle.read().splitlines():
            if line.strip():
                labels.append(line.strip())
    return pd.DataFrame({"label": labels})


read_common = read_label_list
