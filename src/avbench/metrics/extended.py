"""Extended-set localization metrics with SLAVC ``EvaluatorFull`` semantics (PROTOCOLS 4.5).

Each sample has a box count ``bb`` (0 for non-sounding negatives), a cIoU and a confidence (mean of the top
25 % pixel scores of the continuous map). A confidence threshold c and an IoU threshold t give
TP: bb>0, conf>=c, ciou>=t; FP: bb>0, conf>=c, ciou<t, or bb=0, conf>=c; FN: bb>0, conf<c.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from avbench.metrics.localization import (
    ArrayLike,
    LocProtocol,
    _Accumulator,
    _gts_numpy,
    _key,
    auc,
    get_protocol,
    prepare_maps,
    score_maps,
)

AP_IMPLS = ("slavc", "voc_exact")
SUBSETS = ("all", "visible", "small", "medium", "large", "huge")


def size_bucket(area: ArrayLike, hw: int = 224 * 224) -> np.ndarray:
    """small < 32^2, medium < 96^2, large < 144^2, huge >= 144^2 (GT pixels rescaled to a 224^2 frame)."""
    a = np.asarray(area, dtype=np.float64) * (224 * 224 / hw)
    return np.select([a < 32**2, a < 96**2, a < 144**2], ["small", "medium", "large"], "huge")


def pr_at(conf: ArrayLike, ciou: ArrayLike, n_boxes: ArrayLike, c: ArrayLike,
          t: float) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall for every confidence threshold in ``c`` at IoU threshold ``t`` (vectorised)."""
    conf = np.asarray(conf, dtype=np.float64)
    visible = np.asarray(n_boxes) > 0
    hit = visible & (np.asarray(ciou, dtype=np.float64) >= t)
    c = np.atleast_1d(np.asarray(c, dtype=np.float64))

    def count_ge(values: np.ndarray) -> np.ndarray:
        s = np.sort(values)
        return s.size - np.searchsorted(s, c, side="left")

    tp = count_ge(conf[hit])
    fp = count_ge(conf[visible & ~hit]) + count_ge(conf[~visible])
    fn = visible.sum() - count_ge(conf[visible])
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 1.0)
    return precision, recall


def ap_slavc(conf: ArrayLike, ciou: ArrayLike, n_boxes: ArrayLike, t: float) -> float:
    """SLAVC ``calc_ap``: thresholds ``sort(conf)[:-1][::-s]``, s = max(1, N // 200), running-max precision,
    AP = sum_j Phat_j (R_{j+1} - R_j)."""
    conf = np.asarray(conf, dtype=np.float64)
    step = max(1, conf.size // 200)
    c = np.sort(conf)[:-1][::-step]
    if c.size < 2:
        return 0.0
    precision, recall = pr_at(conf, ciou, n_boxes, c, t)
    p_hat = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(p_hat[:-1] * np.diff(recall)))


def ap_voc_exact(conf: ArrayLike, ciou: ArrayLike, n_boxes: ArrayLike, t: float) -> float:
    """All-points interpolated AP over every distinct confidence (descending), starting from R = 0."""
    conf = np.asarray(conf, dtype=np.float64)
    if conf.size == 0:
        return math.nan
    c = np.unique(conf)[::-1]
    precision, recall = pr_at(conf, ciou, n_boxes, c, t)
    p_hat = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * p_hat))


def f1_list(conf: ArrayLike, ciou: ArrayLike, n_boxes: ArrayLike, t: float) -> np.ndarray:
    """F1 at thresholds ``sorted(conf)[::max(1, N // 10)]`` (ascending, about 11 points)."""
    conf = np.asarray(conf, dtype=np.float64)
    c = np.sort(conf)[:: max(1, conf.size // 10)]
    return _f1(*pr_at(conf, ciou, n_boxes, c, t))


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    s = precision + recall
    return np.divide(2 * precision * recall, s, out=np.zeros_like(s, dtype=np.float64), where=s > 0)


def extended_metrics(conf: ArrayLike, ciou: ArrayLike, n_boxes: ArrayLike, gt_area: ArrayLike, *,
                     ious: Sequence[float] = (0.5, 0.75), ap_impl: str = "slavc", default_conf_thr: float = 0.5,
                     hw: int = 224 * 224) -> dict[str, Any]:
    """All EvaluatorFull numbers. Keys per subset s in (all, visible, small, medium, large, huge) and IoU t:
    ``ap_{s}@t``, ``maxf1_{s}@t``, ``f1_{s}@t`` (at ``default_conf_thr``), ``precision_{s}@t``
    (= P(c=-1000)); ``n_{s}``; plus ``locacc@t`` (= precision_visible), ``auc_visible``,
    ``avg_ciou_visible``. Empty subsets give NaN (never a crash)."""
    if ap_impl not in AP_IMPLS:
        raise ValueError(f"ap_impl must be one of {AP_IMPLS}, got {ap_impl!r}")
    conf = np.asarray(conf, dtype=np.float64)
    ciou = np.asarray(ciou, dtype=np.float64)
    bb = np.asarray(n_boxes)
    visible = bb > 0
    bucket = size_bucket(gt_area, hw)
    masks = {"all": np.ones(conf.size, dtype=bool), "visible": visible}
    for name in ("small", "medium", "large", "huge"):
        masks[name] = visible & (bucket == name)
    ap_fn = ap_slavc if ap_impl == "slavc" else ap_voc_exact
    out: dict[str, Any] = {"ap_impl": ap_impl}
    for subset, mask in masks.items():
        n = int(mask.sum())
        out[f"n_{subset}"] = n
        for t in ious:
            key = f"{subset}@{_key(t)}"
            if n == 0:
                for metric in ("ap", "maxf1", "f1", "precision"):
                    out[f"{metric}_{key}"] = math.nan
                continue
            args = (conf[mask], ciou[mask], bb[mask])
            out[f"ap_{key}"] = ap_fn(*args, t)
            out[f"maxf1_{key}"] = float(f1_list(*args, t).max())
            out[f"f1_{key}"] = float(_f1(*pr_at(*args, default_conf_thr, t))[0])
            out[f"precision_{key}"] = float(pr_at(*args, -1000.0, t)[0][0])
    for t in ious:
        out[f"locacc@{_key(t)}"] = out[f"precision_visible@{_key(t)}"]
    out["auc_visible"] = auc(ciou[visible])
    out["avg_ciou_visible"] = float(ciou[visible].mean()) if visible.any() else math.nan
    return out


def confidence_norm(protocol: LocProtocol) -> str:
    """The normalisation SLAVC's ``test.py`` reads the confidence from: the protocol's, minus its per-map min-max.

    SLAVC takes ``conf`` from the absolute score map (``abs_cos``) and min-max normalises only the map it
    binarises (``--relative_prediction``). A min-max normalised map spans [0, 1] whatever the audio, so its
    top quarter says little about whether the object sounds.
    """
    return {"abs_cos_minmax": "abs_cos", "minmax": "none", "lvs_invneg": "none"}.get(protocol.norm, protocol.norm)


def top_quarter_mean(p: np.ndarray) -> np.ndarray:
    """SLAVC's confidence per row of ``p`` ``[B, ...]``: ``sort(p)[-HW // 4:].mean()``, i.e. the mean of the
    ``ceil(HW / 4)`` largest values (Python's ``-HW // 4`` rounds towards minus infinity)."""
    flat = np.asarray(p, dtype=np.float32).reshape(len(p), -1)
    m = flat.shape[1]
    if m == 0:
        return np.full(len(flat), math.nan)
    k = -(-m // 4)
    top = np.partition(flat, m - k, axis=1)[:, m - k:]  # the k largest, in any order: the mean is the same
    return top.mean(axis=1, dtype=np.float64)


class ExtendedMetric(_Accumulator):
    """Accumulator for extended (positives + negatives) sets.

    ``update(maps [B, h, w], gts [B, H, W], n_boxes=None)``: negatives have an all-zero GT and ``n_boxes = 0``
    (default ``n_boxes``: 1 for a non-empty GT, else 0). ``update_scores`` takes precomputed per-sample
    confidence / cIoU / box count / GT area instead of maps.

    ``protocol`` binarises the maps (cIoU); ``conf_norm`` is the normalisation of the (upsampled) map the
    confidence is read from, default :func:`confidence_norm` of the protocol (SLAVC's choice).
    """

    def __init__(self, protocol: LocProtocol | str = "slavc_test_relative", ious: Sequence[float] = (0.5, 0.75),
                 ap_impl: str = "slavc", default_conf_thr: float = 0.5, conf_norm: str | None = None) -> None:
        if ap_impl not in AP_IMPLS:
            raise ValueError(f"ap_impl must be one of {AP_IMPLS}, got {ap_impl!r}")
        self.protocol = get_protocol(protocol)
        self.conf_norm = confidence_norm(self.protocol) if conf_norm is None else conf_norm
        self._conf_protocol = self.protocol.replace(norm=self.conf_norm)  # validates conf_norm
        self.ious = tuple(ious)
        self.ap_impl = ap_impl
        self.default_conf_thr = default_conf_thr
        self.hw = 224 * 224
        super().__init__()

    def update(self, maps: ArrayLike, gts: ArrayLike, n_boxes: ArrayLike | None = None,
               groups: Sequence[Any] | None = None, ids: Sequence[Any] | None = None) -> None:
        g = _gts_numpy(gts)
        p = prepare_maps(maps, g.shape[-2:], self.protocol)
        same = self.conf_norm == self.protocol.norm
        rows = score_maps(p, g, self.protocol, compute_ap=False, want_conf=same)
        conf = rows["conf"] if same else top_quarter_mean(prepare_maps(maps, g.shape[-2:], self._conf_protocol))
        self.hw = int(g.shape[-2] * g.shape[-1])
        bb = (rows["gt_area"] > 0).astype(np.int64) if n_boxes is None else _vec(n_boxes)
        self.update_scores(conf, rows["ciou"], bb, rows["gt_area"], groups, ids)

    def update_scores(self, conf: ArrayLike, ciou: ArrayLike, n_boxes: ArrayLike, gt_area: ArrayLike,
                      groups: Sequence[Any] | None = None, ids: Sequence[Any] | None = None) -> None:
        values = {"conf": _vec(conf, np.float64), "ciou": _vec(ciou, np.float64), "n_boxes": _vec(n_boxes),
                  "gt_area": _vec(gt_area)}
        n = len(values["conf"])
        if any(len(v) != n for v in values.values()):
            raise ValueError("conf, ciou, n_boxes and gt_area must have the same length")
        self._append(values, n, groups, ids)

    def compute(self, group: Any = None) -> dict[str, Any]:
        mask = self._mask(group)
        out = extended_metrics(self._column("conf")[mask], self._column("ciou")[mask],
                               self._column("n_boxes")[mask], self._column("gt_area")[mask], ious=self.ious,
                               ap_impl=self.ap_impl, default_conf_thr=self.default_conf_thr, hw=self.hw)
        out["n"] = int(mask.sum())
        out["protocol"] = self.protocol.name
        out["conf_norm"] = self.conf_norm
        return out

    def per_sample(self) -> pd.DataFrame:
        frame = self._frame(("conf", "ciou", "n_boxes", "gt_area"))
        frame["size"] = size_bucket(frame["gt_area"].to_numpy(), self.hw)
        return frame


def _vec(x: ArrayLike, dtype: Any = np.int64) -> np.ndarray:
    return np.asarray(torch.as_tensor(x).detach().cpu().numpy(), dtype=dtype).reshape(-1)


__all__ = ["AP_IMPLS", "SUBSETS", "ExtendedMetric", "ap_slavc", "ap_voc_exact", "confidence_norm",
           "extended_metrics", "f1_list", "pr_at", "size_bucket", "top_quarter_mean"]
