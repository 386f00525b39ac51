"""SoundNet-Flickr (PROTOCOLS 1.9, 3.1): test/train id lists in all their forms, the id-typo flag, the
Extended-Flickr negatives and the XML box annotations (3 annotators, 256x256 frames).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from avbench.gt import consensus_map
from avbench.sources._io import PathLike, read_rows, row_error
from avbench.sources.vggss import read_plus_silent

TYPO_ID = "3908875350"  # SLAVC / SSLalignment spelling: no such Flickr item -> silently dropped by loaders
FIXED_ID = "3908875357"  # the original Senocak list
FLICKR_TEST_MODES = ("249", "250_fixed")
SRC_SIZE = 256


def _flickr_id(path: PathLike, n: int, raw: str) -> str:
    # forms: '<id>', '<id>.png', '<id>.wav', '/hdd/Annotations/dataset/<id>.mp4'
    stem = raw.strip().rsplit("/", 1)[-1].split(".", 1)[0]
    if not stem.isdigit():
        raise row_error(path, n, f"not a numeric Flickr id: {raw!r}")
    return stem


def read_flickr_list(path: PathLike) -> pd.DataFrame:
    """Any Flickr id list: ``<id>,<int>`` (LVS/SLAVC/SSLalignment test), ``<id>,<label>`` (ACL-SSL),
    ``<id>.png`` / ``<id>.wav`` / absolute ``.mp4`` paths (Senocak), bare ids (SLAVC train lists).

    Columns: ``flickr_id`` (str), ``extra`` (second column as written, e.g. the unused int or the ACL-SSL
    pseudo-label; ``None`` when absent). Duplicates are kept (``supervised_test_list.txt`` has 30).
    """
    rows = []
    for n, fields in read_rows(path):
        extra = ",".join(fields[1:]) if len(fields) > 1 else None
        rows.append((_flickr_id(path, n, fields[0]), extra))
    return pd.DataFrame(rows, columns=["flickr_id", "extra"])


def flickr_test_ids(ids: list[str] | pd.Series, flickr_test: str = "249") -> list[str]:
    """Apply flag ``flickr_test`` to a test id list (order kept, duplicates dropped).

    ``249``: the 249 ids common to every list, i.e. drop the non-existent ``3908875350`` (what the
    SLAVC/EZ-VSL loaders actually evaluate) and its correct spelling ``3908875357`` (absent from the LVS list;
    Qian also evaluates 249). ``250_fixed``: replace ``...350`` by ``...357``; a 249-id list that lacks both gets
    ``...357`` appended (it is in the original Senocak list).
    """
    if flickr_test not in FLICKR_TEST_MODES:
        raise ValueError(f"flickr_test must be one of {FLICKR_TEST_MODES}, got {flickr_test!r}")
    out = list(dict.fromkeys(str(i) for i in ids))
    if flickr_test == "249":
        return [i for i in out if i not in (TYPO_ID, FIXED_ID)]
    fixed = [FIXED_ID if i == TYPO_ID else i for i in out]
    fixed = list(dict.fromkeys(fixed))
    if FIXED_ID not in fixed:
        fixed.append(FIXED_ID)
    return fixed


def read_flickr_plus_silent(path: PathLike) -> pd.DataFrame:
    """Extended Flickr negatives (header ``video,audio,label``). Columns: ``video, audio, label, same_clip``."""
    return read_plus_silent(path, id_kind="flickr")


def parse_flickr_xml(source: PathLike | str) -> list[tuple[int, int, int, int]]:
    """Boxes of one Flickr annotation XML: for every ``<bbox>`` element skip the first child and read the
    next four as integers ``xmin, ymin, xmax, ymax`` in 256x256 pixels (reference evaluators' rule).

    ``source`` is a path or the XML text itself.
    """
    text_given = isinstance(source, str) and source.lstrip().startswith("<")
    name = "<xml text>" if text_given else Path(source).name
    try:
        root = ET.fromstring(source) if text_given else ET.parse(os.fspath(source)).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{name}: invalid XML: {exc}") from None
    boxes = []
    for i, bbox in enumerate(root.iter("bbox")):
        children = list(bbox)
        if len(children) < 5:
            raise ValueError(f"{name}: bbox {i} has {len(children)} children, need 5 (first is skipped)")
        try:
            coords = tuple(int(float((c.text or "").strip())) for c in children[1:5])
        except ValueError:
            raise ValueError(f"{name}: bbox {i} has a non-integer coordinate") from None
        boxes.append(coords)
    return boxes  # type: ignore[return-value]


def flickr_gt_map(source: PathLike | str, size: int = 224) -> np.ndarray:
    """Consensus GT map (values {0, 0.5, 1}) of one annotation XML via :func:`avbench.gt.consensus_map`."""
    return consensus_map(parse_flickr_xml(source), src_size=SRC_SIZE, size=size)
