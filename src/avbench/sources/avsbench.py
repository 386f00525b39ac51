"""AVSBench-object S4 / MS3 (PROTOCOLS 1.8, 3.5): third-party frame lists, SSLalignment box/seg json, the
layout checker for the manually placed official release, and mask reading.

The official release is **by request only** (CC BY-NC 4.0): it is never downloaded automatically. The
user places it under ``root`` (the ``avsbench_data`` folder); :func:`require_avsbench_tree` explains how.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from avbench.gt import mask_nearest
from avbench.sources._io import PathLike, read_rows, row_error

SUBSETS = ("s4", "ms3")
SUBSET_DIR = {"s4": "Single-source", "ms3": "Multi-sources"}
DATA_DIRS = ("visual_frames", "audio_wav", "audio_log_mel", "gt_masks")
FRAMES_PER_VIDEO = 5
ACCESS_HELP = (
    "AVSBench is released by request only (CC BY-NC 4.0): fill in the form "
    "(AVSBench-object: https://forms.gle/GKzkU2pEkh8aQVHN6, AVSBench-semantic: https://forms.gle/15GZeDbVMe2z6YUGA), "
    "download from http://www.avlbench.opennlplab.cn/download and unpack so that the layout is "
    "<root>/Single-source/s4_meta_data.csv + s4_data/{visual_frames,audio_wav,audio_log_mel,gt_masks} and "
    "<root>/Multi-sources/ms3_meta_data.csv + ms3_data/... (PROTOCOLS 1.8)."
)


def _check_subset(subset: str) -> None:
    if subset not in SUBSETS:
        raise ValueError(f"AVSBench subset must be one of {SUBSETS}, got {subset!r}")


def read_avsbench_frame_list(path: PathLike) -> pd.DataFrame:
    """``<name>_<k>,<category>`` frame lists: DeepAVFusion ``avsbench_{train.txt,val.csv,test.csv}``, ACL-SSL
    ``avs1_s4_test.csv`` and ``avs1_ms3_test.csv`` (MS3 names are ``<ytid>_<n>``; the category is the
    comma-joined object names, CSV-quoted). A row with only the frame id gets category ``None``.

    Columns: ``frame_uid, name, k`` (1-based frame index), ``category``.
    """
    rows = []
    for n, fields in read_rows(path):
        uid = fields[0].strip()
        name, _, k = uid.rpartition("_")
        if not name or not k.isdigit() or not 1 <= int(k) <= FRAMES_PER_VIDEO:
            raise row_error(path, n, f"expected '<name>_<k>' with k in 1..{FRAMES_PER_VIDEO}: {uid!r}")
        category = ",".join(fields[1:]) if len(fields) > 1 else None
        rows.append((uid, name, int(k), category))
    return pd.DataFrame(rows, columns=["frame_uid", "name", "k", "category"])


def read_ssl_alignment_json(path: PathLike) -> pd.DataFrame:
    """kaistmm/SSLalignment ``{s4,ms3}_{box,seg}.json``: ``[{image, audio, gt_box, (offset)}]``.

    ``gt_box`` is a pixel xyxy box on 224² (``[0,0,0,0]`` for an empty mask) in ``*_box.json`` and a mask path
    in ``*_seg.json``. Columns: ``name, k, image, audio, box`` (list or ``None``), ``mask_path`` (str or
    ``None``), ``empty_box`` (box is all zeros), ``split``, ``category`` (S4 only; from the image path).
    """
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        entries = json.load(handle)
    rows = []
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not {"image", "audio", "gt_box"} <= entry.keys():
            raise row_error(path, n, f"expected keys image, audio, gt_box: {entry!r}")
        image = Path(entry["image"])
        stem = image.stem.replace(".mp4_", "_")  # MS3 frames are '<name>.mp4_<k>.png'
        name, _, k = stem.rpartition("_")
        if not k.isdigit():
            raise row_error(path, n, f"cannot read the frame index from {entry['image']!r}")
        parts = image.parts
        split = category = None
        if "Single-source" in parts:  # .../s4_data/visual_frames/<split>/<category>/<name>/<name>_<k>.png
            split, category = parts[-4], parts[-3]
        else:  # MS3 frames have no split folder; the audio path does: .../audio_wav/<split>/<name>.wav
            split = Path(entry["audio"]).parts[-2]
        gt = entry["gt_box"]
        box = [float(v) for v in gt] if isinstance(gt, list) else None
        mask_path = gt if isinstance(gt, str) else None
        empty = box is not None and not any(box)
        rows.append((name, int(k), entry["image"], entry["audio"], box, mask_path, empty, split, category))
    cols = ["name", "k", "image", "audio", "box", "mask_path", "empty_box", "split", "category"]
    return pd.DataFrame(rows, columns=cols)


def read_label2idx(path: PathLike) -> pd.DataFrame:
    """AVSS ``label2idx.json`` ``{label: idx}``. Columns: ``label, idx`` (as stored; this copy is 1-based)."""
    with Path(path).open(encoding="utf-8") as handle:
        data = json.load(handle)
    return pd.DataFrame(sorted(data.items(), key=lambda kv: kv[1]), columns=["label", "idx"])


def meta_csv_path(root: PathLike, subset: str) -> Path:
    _check_subset(subset)
    return Path(root) / SUBSET_DIR[subset] / f"{subset}_meta_data.csv"


def read_avsbench_meta(root: PathLike, subset: str) -> pd.DataFrame:
    """Official ``s4_meta_data.csv`` (header; by position ``name, start, category, split``) or
    ``ms3_meta_data.csv`` (header; by position ``video_id, split``). Columns: ``name, split, category``
    (``None`` for MS3), ``start`` (S4's second column as written; ``None`` for MS3).
    """
    path = meta_csv_path(root, subset)
    rows = read_rows(path)[1:]  # header names differ between releases: read by position
    out = []
    for n, fields in rows:
        if subset == "s4":
            if len(fields) < 4:
                raise row_error(path, n, f"expected name,start,category,split: {fields}")
            out.append((fields[0], fields[3], fields[2], fields[1]))
        else:
            if len(fields) < 2:
                raise row_error(path, n, f"expected video_id,split: {fields}")
            out.append((fields[0], fields[-1], None, None))
    return pd.DataFrame(out, columns=["name", "split", "category", "start"])


def avsbench_paths(root: PathLike, subset: str, name: str, split: str, category: str | None = None) -> dict:
    """Expected files of one video: ``frames`` and ``masks`` (lists, k = 1..5; S4 train has a mask for
    frame 1 only) and ``audio``."""
    _check_subset(subset)
    base = Path(root) / SUBSET_DIR[subset] / f"{subset}_data"
    ks = range(1, FRAMES_PER_VIDEO + 1)
    if subset == "s4":
        if category is None:
            raise ValueError("S4 paths need the category")
        frames = [base / "visual_frames" / split / category / name / f"{name}_{k}.png" for k in ks]
        mask_ks = [1] if split == "train" else list(ks)
        masks = [base / "gt_masks" / split / category / name / f"{name}_{k}.png" for k in mask_ks]
        audio = base / "audio_wav" / split / category / f"{name}.wav"
    else:
        frames = [base / "visual_frames" / name / f"{name}.mp4_{k}.png" for k in ks]
        masks = [base / "gt_masks" / split / name / f"{name}_{k}.png" for k in ks]
        audio = base / "audio_wav" / split / f"{name}.wav"
    return {"frames": frames, "masks": masks, "audio": audio}


def check_avsbench_tree(root: PathLike, subset: str = "s4", deep: bool = False) -> list[str]:
    """Missing paths of the official layout under ``root`` (the ``avsbench_data`` folder); ``[]`` if complete.

    The shallow check looks for the meta csv and the four data folders; ``deep=True`` also checks every
    frame, mask and wav listed in the meta csv.
    """
    _check_subset(subset)
    root = Path(root)
    base = root / SUBSET_DIR[subset]
    expected = [meta_csv_path(root, subset)] + [base / f"{subset}_data" / d for d in DATA_DIRS]
    missing = [str(p) for p in expected if not p.exists()]
    if deep and not missing:
        meta = read_avsbench_meta(root, subset)
        for name, split, category in zip(meta["name"], meta["split"], meta["category"], strict=True):
            paths = avsbench_paths(root, subset, name, split, category)
            for p in [*paths["frames"], *paths["masks"], paths["audio"]]:
                if not p.exists():
                    missing.append(str(p))
    return missing


def require_avsbench_tree(root: PathLike, subset: str = "s4", deep: bool = False) -> Path:
    """Raise ``FileNotFoundError`` naming the first missing paths and how to obtain the data."""
    missing = check_avsbench_tree(root, subset, deep=deep)
    if missing:
        shown = "\n  ".join(missing[:10]) + (
            f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise FileNotFoundError(
            f"AVSBench {subset.upper()} is not (completely) placed under {Path(root)}; missing:\n  {shown}\n{ACCESS_HELP}"
        )
    return Path(root)


def read_avsbench_mask(path: PathLike, height: int = 224, width: int = 224) -> np.ndarray:
    """GT mask PNG (S4 mode '1', MS3 mode 'P') -> binary float32 ``[height, width]``, nearest resize only."""
    from PIL import Image  # local import: only needed when the official data are present

    with Image.open(path) as img:
        arr = np.asarray(img)
    if arr.ndim == 3:  # an RGB(A) export: any non-zero channel is foreground
        arr = arr.max(axis=2)
    return mask_nearest(arr, height, width)
