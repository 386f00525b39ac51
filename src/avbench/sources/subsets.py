"""VGGSound-derived lists (PROTOCOLS 1.3-1.6): training subsets, VGGSound-Instruments, VGGSound-Music,
VGGSound-Single / Duet.

All labels are returned exactly as written in the file (``label``); where a list uses a non-canonical
spelling, map it with :mod:`avbench.sources.labels` against the canonical label set.
"""

from __future__ import annotations

import re

import pandas as pd

from avbench.sources._io import (
    PathLike,
    clip_frame,
    expect_fields,
    read_clip_id_column,
    read_rows,
    row_error,
    strip_clip_id,
)
from avbench.sources.labels import rejoin_fields
from avbench.sources.vggss import read_labeled_clip_list

SAMPLE_RE = re.compile(r"^sample\d{4}$")
SEP_TYPES = ("Easy", "Hard")


def read_clip_ids(path: PathLike) -> pd.DataFrame:
    """``vggss_10k.txt`` / ``vggss_144k.txt`` / ``vggss_heard.txt``: one clip id per line.

    Columns: ``clip_id, ytid, start_s, end_s``. Labels: join with ``vggsound.csv`` on ``clip_id``.
    """
    return read_clip_id_column(path)


read_vggss_10k = read_vggss_144k = read_vggss_heard = read_clip_ids
read_acl_ssl_list = read_labeled_clip_list  # ACL-SSL ``id,label`` variants (clip_id ... label)


def read_labeled_train(path: PathLike, rejoin: bool = True) -> pd.DataFrame:
    """``<ytid>_<start:06d>,<label>`` train lists (AVGN/DeepAVFusion instruments, VGGSound-Music).

    DeepAVFusion writes two labels unquoted with a comma (``violin,_fiddle``): with ``rejoin`` fields 2..n are
    re-joined with ``,`` (PROTOCOLS 1.0). Columns: ``clip_id, ytid, start_s, end_s, label, n_fields`` (the
    raw CSV field count, so the re-joined rows stay identifiable).
    """
    ids: list[str] = []
    labels: list[str] = []
    nfields: list[int] = []
    for n, fields in read_rows(path):
        if len(fields) < 2 or (len(fields) > 2 and not rejoin):
            raise row_error(path, n, f"expected 2 fields, got {len(fields)}: {fields}")
        ids.append(strip_clip_id(path, n, fields[0]))
        labels.append(rejoin_fields(fields))
        nfields.append(len(fields))
    return clip_frame(ids, label=labels, n_fields=nfields)


def read_instruments_train(path: PathLike) -> pd.DataFrame:
    """VGGSound-Instruments train (AVGN or DeepAVFusion variant); see :func:`read_labeled_train`."""
    return read_labeled_train(path, rejoin=True)


def read_vggmusic_train(path: PathLike) -> pd.DataFrame:
    """VGGSound-Music ``vggmusic_train.txt``; see :func:`read_labeled_train`."""
    return read_labeled_train(path, rejoin=True)


def _sample_id(path: PathLike, n: int, raw: str) -> str:
    if not SAMPLE_RE.match(raw):
        raise row_error(path, n, f"not a Mix-and-Localize sample id 'sampleNNNN': {raw!r}")
    return raw


def read_instruments_test(path: PathLike) -> pd.DataFrame:
    """``vgginstruments_test.csv``: ``sampleNNNN,<instrument>`` (AVGN) or ids only (DeepAVFusion).

    Columns: ``sample_id, label`` (``None`` for the id-only variant).
    """
    rows = []
    for n, fields in read_rows(path):
        if len(fields) not in (1, 2):
            raise row_error(path, n, f"expected 1 or 2 fields, got {len(fields)}: {fields}")
        rows.append((_sample_id(path, n, fields[0]), fields[1] if len(fields) == 2 else None))
    return pd.DataFrame(rows, columns=["sample_id", "label"])


def read_instruments_multi_test(path: PathLike) -> pd.DataFrame:
    """``vgginstruments_multi_test.csv``: ``sampleA,clsA,sampleB,clsB``.

    Columns: ``sample_a, cls_a, sample_b, cls_b, same_class``.
    """
    rows = []
    for n, fields in read_rows(path):
        a, ca, b, cb = expect_fields(path, n, fields, 4)
        rows.append((_sample_id(path, n, a), ca, _sample_id(path, n, b), cb, ca == cb))
    return pd.DataFrame(rows, columns=["sample_a", "cls_a", "sample_b", "cls_b", "same_class"])


def read_vggmusic_eval_ss(path: PathLike) -> pd.DataFrame:
    """``vggmusic_eval_ss.csv`` (header ``source_1,source_2,class_1,class_2,sep_type``; quoted labels).

    Columns: ``source_1, source_2, class_1, class_2, sep_type, same_class``. ``Hard`` must equal same class
    (verified on the file); a row breaking that rule raises.
    """
    rows = []
    header = ["source_1", "source_2", "class_1", "class_2", "sep_type"]
    for n, fields in read_rows(path, header=header):
        s1, s2, c1, c2, sep = expect_fields(path, n, fields, 5)
        if sep not in SEP_TYPES:
            raise row_error(path, n, f"sep_type must be one of {SEP_TYPES}, got {sep!r}")
        if (sep == "Hard") != (c1 == c2):
            raise row_error(path, n, f"sep_type {sep} disagrees with classes {c1!r}/{c2!r}")
        rows.append((strip_clip_id(path, n, s1), strip_clip_id(path, n, s2), c1, c2, sep, c1 == c2))
    return pd.DataFrame(rows, columns=[*header, "same_class"])


def read_vggsound_single_test(path: PathLike) -> pd.DataFrame:
    """AVGN ``vggsound_single_test.csv``: ``<clip_id>,<label_>`` (AVGN label rule, see ``labels.avgn_label``).

    Columns: ``clip_id, ytid, start_s, end_s, label``.
    """
    return read_labeled_clip_list(path)


def read_vggsound_duet_test(path: PathLike) -> pd.DataFrame:
    """AVGN ``vggsound_duet_test.csv``: ``fileA,clsA,fileB,clsB``.

    Columns: ``id_a, cls_a, id_b, cls_b, same_class``.
    """
    rows = []
    for n, fields in read_rows(path):
        a, ca, b, cb = expect_fields(path, n, fields, 4)
        rows.append((strip_clip_id(path, n, a), ca, strip_clip_id(path, n, b), cb, ca == cb))
    return pd.DataFrame(rows, columns=["id_a", "cls_a", "id_b", "cls_b", "same_class"])


SINGLE_TRAIN_MODES = ("all221", "all221_trainsplit")


def vggsound_single_train(
    vggsound: pd.DataFrame, vggss_labels: set[str] | list[str], mode: str = "all221_trainsplit"
) -> pd.DataFrame:
    """[ours] Reconstruct AVGN's VGGSound-Single train list (not in shared/): ``vggsound.csv`` rows whose label
    is one of the VGG-SS classes; ``all221_trainsplit`` keeps only ``split == 'train'`` (no test leakage).
    """
    if mode not in SINGLE_TRAIN_MODES:
        raise ValueError(f"vggsound_single_train must be one of {SINGLE_TRAIN_MODES}, got {mode!r}")
    keep = vggsound["label"].isin(set(vggss_labels))
    if mode == "all221_trainsplit":
        keep &= vggsound["split"] == "train"
    return vggsound.loc[keep].reset_index(drop=True)
