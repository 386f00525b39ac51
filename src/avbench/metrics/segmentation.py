"""AVSBench mIoU and F-score (PROTOCOLS 4.9; OpenNLPLab/AVSBench conventions).

mIoU: P = p > 0.5; IoU = inter / (union + 1e-7), with an empty GT scored by the true-negative area over HW;
mean over the frames of a batch, batches averaged. F-score: 255 thresholds ``linspace(0, 1 - 1e-10, 255)``
(float32, like the reference, so the last one is 1.0), beta^2 = 0.3, frames with an empty GT skipped, mean
F_t over the frames of a batch, max over t per batch, batches averaged. A batch whose frames all have an
empty GT contributes 0 to the F-score average, as in the reference loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from avbench.metrics.localization import ArrayLike, _Accumulator

INPUTS = ("prob", "logit")
FSCORE_BATCH = ("video", "all")
N_THRESHOLDS = 255
# torch.linspace in float32 as the reference evaluator builds it; 1 - 1e-10 rounds to 1.0 in float32.
FSCORE_THRESHOLDS = torch.linspace(0, 1 - 1e-10, N_THRESHOLDS).numpy()


def to_prob(pred: ArrayLike, input: str = "prob") -> np.ndarray:
    """``[B, H, W]`` probabilities (``prob``) or logits (``logit``, sigmoid applied in float32)."""
    if input not in INPUTS:
        raise ValueError(f"input must be one of {INPUTS}, got {input!r}")
    t = torch.as_tensor(pred).detach().cpu().float()
    if t.ndim == 2:
        t = t[None]
    if input == "logit":
        t = torch.sigmoid(t)
    return t.numpy()


def miou_frames(pred: ArrayLike, gts: ArrayLike, input: str = "prob") -> np.ndarray:
    """Per-frame IoU with the AVSBench empty-GT convention."""
    p = to_prob(pred, input).reshape(-1, np.prod(np.shape(pred)[-2:]))
    g = np.asarray(torch.as_tensor(gts).cpu().numpy()).reshape(p.shape) > 0
    binary = p > 0.5
    inter = (binary & g).sum(1).astype(np.float64)
    union = (binary | g).sum(1).astype(np.float64)
    empty = ~g.any(1)
    inter = np.where(empty, (~binary & ~g).sum(1), inter)
    union = np.where(empty, p.shape[1], union)
    return inter / (union + 1e-7)


def fscore_curves(pred: ArrayLike, gts: ArrayLike, input: str = "prob",
                  beta2: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """F_t ``[N, 255]`` per frame (NaN -> 0) and a ``[N]`` mask of frames with a non-empty GT.

    Vectorised: the number of thresholds each pixel passes (p >= t_k) is a searchsorted index; per-frame
    histograms of that index give the predicted and true-positive counts at every threshold.
    """
    p = to_prob(pred, input)
    n = p.shape[0]
    p = p.reshape(n, -1)
    g = np.asarray(torch.as_tensor(gts).cpu().numpy()).reshape(p.shape) > 0
    passed = np.searchsorted(FSCORE_THRESHOLDS, p, side="right")  # pixel passes thresholds 0..passed-1
    bins = N_THRESHOLDS + 1
    offset = (np.arange(n)[:, None] * bins + passed).ravel()
    hist_all = np.bincount(offset, minlength=n * bins).reshape(n, bins)
    hist_tp = np.bincount(offset, weights=g.ravel().astype(np.float64), minlength=n * bins).reshape(n, bins)
    # count at threshold k = pixels with passed > k = reverse cumulative sum from bin k+1
    n_pred = np.cumsum(hist_all[:, ::-1], axis=1)[:, ::-1][:, 1:].astype(np.float64)
    tp = np.cumsum(hist_tp[:, ::-1], axis=1)[:, ::-1][:, 1:]
    g_sum = g.sum(1, keepdims=True).astype(np.float64)
    prec = tp / (n_pred + 1e-20)
    rec = tp / (g_sum + 1e-20)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = (1 + beta2) * prec * rec / (beta2 * prec + rec)
    return np.nan_to_num(f, nan=0.0), g_sum[:, 0] > 0


class SegmentationMetric(_Accumulator):
    """Accumulator: ``update(pred [B, H, W], gts [B, H, W], videos=None)``.

    ``fscore_batch="video"`` (parity): frames are grouped by ``videos`` (default: each ``update`` call is one
    batch) and averaged per batch, as the reference evaluates one video per batch; ``"all"``: max over t of
    the mean F_t over all frames with a GT. Both are always reported (``fscore_video``, ``fscore_all``), and
    ``fscore`` is the selected one; ``miou`` is the batch-averaged mIoU, ``miou_frame`` the frame mean.
    """

    def __init__(self, input: str = "prob", fscore_batch: str = "video", beta2: float = 0.3) -> None:
        if input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {input!r}")
        if fscore_batch not in FSCORE_BATCH:
            raise ValueError(f"fscore_batch must be one of {FSCORE_BATCH}, got {fscore_batch!r}")
        self.input = input
        self.fscore_batch = fscore_batch
        self.beta2 = beta2
        self._n_updates = 0
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self._curves: list[np.ndarray] = []
        self._n_updates = 0

    def update(self, pred: ArrayLike, gts: ArrayLike, videos: Sequence[Any] | None = None,
               groups: Sequence[Any] | None = None, ids: Sequence[Any] | None = None) -> None:
        iou = miou_frames(pred, gts, self.input)
        curves, has_gt = fscore_curves(pred, gts, self.input, self.beta2)
        n = len(iou)
        batch = np.array([f"__update{self._n_updates}"] * n, dtype=object) if videos is None \
            else np.asarray(list(videos), dtype=object)
        self._n_updates += 1
        self._curves.append(curves)
        self._append({"iou": iou, "has_gt": has_gt, "batch": batch}, n, groups, ids)

    def compute(self, group: Any = None) -> dict[str, Any]:
        mask = self._mask(group)
        iou = self._column("iou")[mask]
        has_gt = self._column("has_gt")[mask].astype(bool)
        batch = self._column("batch")[mask]
        curves = np.concatenate(self._curves)[mask] if self._curves else np.zeros((0, N_THRESHOLDS))
        out: dict[str, Any] = {"n": int(iou.size)}
        out["miou_frame"] = float(iou.mean()) if iou.size else math.nan
        batch_iou, batch_f = [], []
        for key in dict.fromkeys(batch):
            sel = batch == key
            batch_iou.append(iou[sel].mean())
            use = sel & has_gt
            batch_f.append(curves[use].mean(0).max() if use.any() else 0.0)  # reference: empty batch -> 0
        out["miou"] = float(np.mean(batch_iou)) if batch_iou else math.nan
        out["fscore_video"] = float(np.mean(batch_f)) if batch_f else math.nan
        out["fscore_all"] = float(curves[has_gt].mean(0).max()) if has_gt.any() else math.nan
        out["fscore"] = out[f"fscore_{self.fscore_batch}"]
        out["n_batches"] = len(batch_iou)
        out["n_fscore_frames"] = int(has_gt.sum())
        return out

    def per_sample(self) -> pd.DataFrame:
        frame = self._frame(("iou", "has_gt", "batch"))
        curves = np.concatenate(self._curves) if self._curves else np.zeros((0, N_THRESHOLDS))
        frame["fscore_max"] = curves.max(1) if len(curves) else []
        return frame


__all__ = ["FSCORE_BATCH", "FSCORE_THRESHOLDS", "INPUTS", "SegmentationMetric", "fscore_curves", "miou_frames",
           "to_prob"]
