"""Ground-truth maps from annotations (PROTOCOLS 3). One decoder per annotation format.

Boxes are rasterised with numpy half-open slicing after scaling and integer truncation, exactly as the
reference evaluators do; never resize a rasterised box map with interpolation (PROTOCOLS 3.7).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def clip_box_xyxy(box: Sequence[float]) -> tuple[list[float], bool]:
    """Clip a normalised xyxy box to [0, 1]; report whether any coordinate was out of range (corrupt)."""
    arr = np.asarray(box, dtype=np.float64)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"box must be 4 finite numbers, got {box!r}")
    clipped = np.clip(arr, 0.0, 1.0)
    return clipped.tolist(), bool(np.any(clipped != arr))


def xywh_to_xyxy(box: Sequence[float]) -> list[float]:
    """MUSIC (AVGN/DSOL) boxes are normalised ``[x, y, w, h]`` (PROTOCOLS 1.7, 3.3)."""
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def union_map(boxes: Sequence[Sequence[float]], height: int = 224, width: int = 224) -> np.ndarray:
    """Binary union of normalised xyxy boxes (VGG-SS rule, PROTOCOLS 3.2): clip to [0,1], scale, truncate."""
    gt = np.zeros((height, width), dtype=np.float32)
    for box in boxes:
        (x1, y1, x2, y2), _ = clip_box_xyxy(box)
        c1, r1 = int(x1 * width), int(y1 * height)
        c2, r2 = int(x2 * width), int(y2 * height)
        gt[r1:r2, c1:c2] = 1.0
    return gt


def consensus_map(pixel_boxes: Sequence[Sequence[int]], src_size: int = 256, size: int = 224) -> np.ndarray:
    """Flickr-SoundNet multi-annotator consensus (PROTOCOLS 3.1): values in {0, 0.5, 1}.

    ``pixel_boxes`` are xyxy integer boxes in a ``src_size`` square frame; each is rescaled with
    ``int(size * v / src_size)``; the box count map is halved and capped at 1.
    """
    gt = np.zeros((size, size), dtype=np.float32)
    for box in pixel_boxes:
        x1, y1, x2, y2 = (int(size * int(v) / src_size) for v in box)
        gt[y1:y2, x1:x2] += 1.0
    return np.minimum(gt / 2.0, 1.0)


def shift_boxes_side_by_side(boxes: Sequence[Sequence[float]], side: str) -> list[list[float]]:
    """Map normalised xyxy boxes of one 224x224 frame into a side-by-side 448x224 canvas (PROTOCOLS 3.6).

    Left image: ``x' = x / 2``; right image: ``x' = (x + 1) / 2``; y is unchanged.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    offset = 0.0 if side == "left" else 1.0
    return [[(b[0] + offset) / 2, b[1], (b[2] + offset) / 2, b[3]] for b in boxes]


def mask_nearest(mask: np.ndarray, height: int = 224, width: int = 224) -> np.ndarray:
    """Binarise (> 0) and resize a mask with nearest-neighbour sampling only (PROTOCOLS 3.4/3.5)."""
    src = np.asarray(mask) > 0
    if src.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {src.shape}")
    rows = np.minimum((np.arange(height) * src.shape[0] / height).astype(int), src.shape[0] - 1)
    cols = np.minimum((np.arange(width) * src.shape[1] / width).astype(int), src.shape[1] - 1)
    return src[np.ix_(rows, cols)].astype(np.float32)


# --- mask files (VGGSound-Instruments pickles, AVSBench PNGs) ---------------------------------------------
MASK_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MASK_PICKLE_SUFFIXES = (".pkl", ".pickle")
# The globals a pickled numpy array (any numpy version) needs, and nothing else: a pickle is a program, and a
# placed annotation archive must not be able to run code here.
_PICKLE_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 rebuild the array's bytes with it
}


def _numpy_global(module: str, name: str) -> object:
    import importlib

    # numpy 2 moved numpy.core to numpy._core; pickles written by either name the one of their time
    for candidate in (module.replace("numpy.core", "numpy._core"), module, module.replace("numpy._core", "numpy.core")):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"{module}.{name}")


def load_pickled_mask(path: str | os.PathLike) -> np.ndarray:
    """The array of a VGGSound-Instruments GT pickle (PROTOCOLS 1.5, 3.4: one ``pickle.dump``-ed binary mask per
    ``sampleNNNN``), unpickled with only numpy's array globals allowed. A 2-D array or nested list of numbers
    is accepted; anything else raises naming the file."""
    import pickle

    class _MaskUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            if (module, name) not in _PICKLE_ALLOWED:
                raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a mask pickle")
            return _numpy_global(module, name)

    try:
        with open(path, "rb") as handle:
            obj = _MaskUnpickler(handle, encoding="latin1").load()  # latin1: Python-2 numpy pickles
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, ImportError) as exc:
        raise ValueError(f"mask pickle {path}: cannot read it as a pickled array ({exc})") from None
    try:
        arr = np.asarray(obj)
    except (ValueError, TypeError):
        arr = np.asarray([])
    if arr.ndim != 2 or arr.dtype.kind not in "biuf":
        raise ValueError(f"mask pickle {path}: expected a 2-D numeric mask, got {type(obj).__name__} "
                         f"with shape {arr.shape} and dtype {arr.dtype}")
    return arr


def read_mask_file(path: str | os.PathLike, height: int = 224, width: int = 224) -> np.ndarray:
    """A GT mask file -> binary float32 ``[height, width]`` (``> 0``, nearest-neighbour resize only).

    Pickles (``.pkl``, VGGSound-Instruments) via :func:`load_pickled_mask`; images (``.png``, AVSBench: S4 mode
    '1', MS3 mode 'P'; any non-zero channel of an RGB export is foreground) via PIL.
    """
    suffix = Path(path).suffix.lower()
    if suffix in MASK_PICKLE_SUFFIXES:
        arr = load_pickled_mask(path)
    elif suffix in MASK_IMAGE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                arr = np.asarray(img)
        except (OSError, UnidentifiedImageError) as exc:
            raise ValueError(f"mask image {path}: cannot read it ({exc})") from None
        if arr.ndim == 3:
            arr = arr.max(axis=2)
    else:
        raise ValueError(f"mask file {path}: unknown mask format {suffix!r} "
                         f"(expected one of {MASK_PICKLE_SUFFIXES + MASK_IMAGE_SUFFIXES})")
    return mask_nearest(arr, height, width)
