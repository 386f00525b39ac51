"""Kinetics-400 annotation CSVs (PROTOCOLS 1.10): tarball layout ``label,youtube_id,time_start,time_end,split``
(split ``validate``) and the newer CVDF layout with an extra ``is_cc`` column (split ``val``).
"""

from __future__ import annotations

import pandas as pd

from avbench.ids import YTID_RE, clip_id
from avbench.sources._io import PathLike, read_rows, row_error

REQUIRED = ("label", "youtube_id", "time_start", "time_end", "split")


def read_kinetics_csv(path: PathLike) -> pd.DataFrame:
    """Columns: ``clip_id`` (``<ytid>_<time_start:06d>``), ``ytid, start_s, end_s, label, split``.

    Columns are located by header name, so both official layouts read the same. ``end_s`` is taken from the
    file (not assumed to be ``start + 10``).
    """
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
