"""Shared low-level parsing for the metadata readers.

Every reader goes through :func:`read_rows` so CRLF files, files without a trailing newline and quoted
labels with commas are handled identically (PROTOCOLS 1.0), and every error names the file and the row.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pandas as pd

from avbench.ids import CLIP_ID_RE

T = TypeVar("T")
PathLike = str | os.PathLike


class MetadataError(ValueError):
    """A malformed metadata row; the message starts with ``<file> row <n>:`` (1-based, header counts)."""


def row_error(path: PathLike, row: int | None, msg: str) -> MetadataError:
    where = f"{Path(path).name} row {row}" if row is not None else Path(path).name
    return MetadataError(f"{where}: {msg}")


def read_rows(path: PathLike, *, header: list[str] | None = None) -> list[tuple[int, list[str]]]:
    """Read a CSV file into ``(row_number, fields)`` pairs, skipping blank lines.

    ``newline=''`` lets the csv module treat CRLF and a missing final newline correctly; a stray ``\\r`` at a
    field end is stripped anyway in case a file mixes endings. With ``header`` the first row must equal it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metadata file not found: {path}")
    out: list[tuple[int, list[str]]] = []
    # utf-8-sig: tolerate a BOM, which would otherwise stick to the first id
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for lineno, fields in enumerate(csv.reader(handle), start=1):
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if fields[-1].endswith("\r"):  # a lone CR inside a LF file; cheap check keeps 144k-row lists fast
                fields = [f.strip("\r") for f in fields]
            out.append((lineno, fields))
    if header is not None:
        if not out or [f.strip() for f in out[0][1]] != header:
            got = out[0][1] if out else "<empty file>"
            raise row_error(path, 1, f"expected header {header}, got {got}")
        out = out[1:]
    return out


def expect_fields(path: PathLike, lineno: int, fields: list[str], n: int) -> list[str]:
    if len(fields) != n:
        raise row_error(path, lineno, f"expected {n} fields, got {len(fields)}: {fields}")
    return fields


def checked(path: PathLike, lineno: int, func: Callable[[str], T], value: str) -> T:
    """Apply a parser (e.g. ``parse_clip_id``) and re-raise its error with file and row."""
    try:
        return func(value)
    except ValueError as exc:
        raise row_error(path, lineno, str(exc)) from None


def strip_clip_id(path: PathLike, lineno: int, raw: str) -> str:
    """Accept ``<ytid>_<start:06d>`` with an optional media extension (``.mp4`` in hche11 lists)."""
    cid = raw.strip()
    for ext in (".mp4", ".wav", ".jpg", ".png"):
        if cid.endswith(ext):
            cid = cid[: -len(ext)]
    if not CLIP_ID_RE.match(cid):
        raise row_error(path, lineno, f"not a canonical clip id '<ytid>_<start:06d>': {raw!r}")
    return cid


def clip_frame(clip_ids: Iterable[str], **extra: Iterable[object]) -> pd.DataFrame:
    """DataFrame with ``clip_id, ytid, start_s, end_s`` (10 s VGGSound clips) plus extra columns."""
    ids = list(clip_ids)
    ytids = [c[:11] for c in ids]  # canonical ids were validated: ytid is always the first 11 chars
    starts = [float(int(c[12:])) for c in ids]
    data: dict[str, object] = {
        "clip_id": ids,
        "ytid": ytids,
        "start_s": starts,
        "end_s": [s + 10.0 for s in starts],
    }
    for key, values in extra.items():
        data[key] = list(values)
    return pd.DataFrame(data)


def read_clip_id_column(path: PathLike) -> pd.DataFrame:
    """One canonical clip id per line (optionally followed by more columns, ignored)."""
    ids = [strip_clip_id(path, n, f[0]) for n, f in read_rows(path)]
    return clip_frame(ids)
