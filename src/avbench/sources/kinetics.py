"""Kinetics-400 annotation CSVs (PROTOCOLS 1.10): tarball layout ``label,youtube_id,time_start,time_end,split``
(split ``validate``) and the newer CVDF layout with an extra ``is_cc`` column (split ``val``).
"""

from __future__ import annotations

import pandas as pd

from avbench.ids import YTID_RE, clip_id
from avbench.sources._io import PathLike, read_rows, row_error

REQUIRED = ("label", "youtube_id", "time_start", "time_end", "split")


# The split column's spellings of each official list (tarball: ``validate``; CVDF: ``val``).
SPLIT_NAMES = {"train": ("train",), "validate": ("validate", "val"), "test": ("test",)}


def read_kinetics_csv(path: PathLike, expect_split: str | None = None) -> pd.DataFrame:
    """Columns: ``clip_id`` (``<ytid>_<time_start:06d>``), ``ytid, start_s, end_s, label, split``.

    Columns are located by header name, so both official layouts read the same. ``end_s`` is taken from the
    file (not assumed to be ``start + 10``). ``expect_split`` (``train | validate | test``): every row's split
    column must name that list (:data:`SPLIT_NAMES`), so a validation file placed as ``train.csv`` fails here
    instead of being downloaded as training data.
    """
    if expect_split is not None and expect_split not in SPLIT_NAMES:
        raise ValueError(f"expect_split must be one of {sorted(SPLIT_NAMES)}, got {expect_split!r}")
    rows = read_rows(path)
    if not rows:
        raise row_error(path, None, "empty file")
    header = [h.strip() for h in rows[0][1]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise row_error(path, rows[0][0], f"header lacks {missing}: {header}")
    col = {c: header.index(c) for c in REQUIRED}
    out = []
    for n, fields in rows[1:]:
        if len(fields) != len(header):
            raise row_error(path, n, f"expected {len(header)} fields, got {len(fields)}: {fields}")
        if expect_split is not None and fields[col["split"]] not in SPLIT_NAMES[expect_split]:
            raise row_error(path, n, f"split {fields[col['split']]!r} in a {expect_split} list "
                                     f"(expected {' or '.join(SPLIT_NAMES[expect_split])})")
        ytid = fields[col["youtube_id"]]
        if not YTID_RE.match(ytid):
            raise row_error(path, n, f"not a YouTube id: {ytid!r}")
        try:
            start, end = int(fields[col["time_start"]]), int(fields[col["time_end"]])
        except ValueError:
            raise row_error(path, n, "time_start/time_end must be integers") from None
        if end <= start or start < 0:
            raise row_error(path, n, f"bad time range [{start}, {end})")
        out.append(
            (clip_id(ytid, start), ytid, float(start), float(end), fields[col["label"]], fields[col["split"]])
        )
    return pd.DataFrame(out, columns=["clip_id", "ytid", "start_s", "end_s", "label", "split"])
