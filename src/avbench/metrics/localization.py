"""Single-source sound-source localization metrics (PROTOCOLS 4.1-4.4, 4.12).

Pipeline per sample: raw map -> upsample to the GT size (``upsample``) -> normalise (``norm``) -> threshold
(``thr_rule``, ``bin_cmp``) -> consensus IoU against the GT (0/0 -> 0) -> success rate / AUC over samples
(``success_cmp``). Every quirk of the reference codebases is a named flag of :class:`LocProtocol`; the named
presets in :data:`PRESETS` reproduce each codebase.

Everything is vectorised over the batch. The costly part, per-sample pixel AP, needs every row sorted; one
row sort serves the rank-based threshold rules, the prediction counts (a prediction is a tail of the sorted
row) and the AP, and the GT label rides in the lowest bit of an integer sort key so no argsort/gather is
needed (see :func:`_sorted_keys`). The row sort (an LSD radix sort, :func:`_radix_sort_rows`) and the sweep
over the sorted rows (AP and tail counts, :func:`_sorted_row_stats`) are compiled with numba and release the
GIL, so row chunks run in parallel threads. Maps are evaluated in float32 like the reference code does, so ties
and the median pixel match the reference exactly.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

ArrayLike = np.ndarray | torch.Tensor

UPSAMPLE_MODES = ("bilinear_ac1", "bilinear_ac0", "bicubic_ac0", "bicubic_ac1", "nearest", "cv2_linear",
                  "area", "none")
NORM_MODES = ("minmax", "abs_cos", "abs_cos_minmax", "lvs_invneg", "none")
CMP_MODES = ("ge", "gt")
AUC_THRESHOLDS = np.array([0.05 * k for k in range(21)])  # PROTOCOLS 4.4: t_k = 0.05 k, k = 0..20


def parse_thr_rule(rule: str) -> tuple[str, float | None]:
    """``median`` | ``adaptive_gt`` | ``absolute@t`` | ``frac_max@r`` -> (kind, parameter)."""
    if rule in ("median", "adaptive_gt"):
        return rule, None
    kind, sep, value = rule.partition("@")
    if sep and kind in ("absolute", "frac_max"):
        try:
            return kind, float(value)
        except ValueError:
            pass
    raise ValueError(f"unknown thr_rule {rule!r} (median | adaptive_gt | absolute@t | frac_max@r)")


@dataclasses.dataclass(frozen=True)
class LocProtocol:
    """Flags that turn a raw similarity map into a binary prediction and a success decision (PROTOCOLS 4.1).

    ``tau``: ``abs_cos`` maps are ``S = cos / tau`` (``p = (S + 1/tau) / (2/tau)``); pass cosines with tau = 1.
    ``visible_only``: aggregate only over samples flagged visible (default: non-empty GT), as SLAVC/AVGN
    ``precision_at_k`` do.
    """

    name: str = "custom"
    upsample: str = "bilinear_ac1"
    norm: str = "minmax"
    thr_rule: str = "median"
    bin_cmp: str = "ge"
    success_cmp: str = "ge"
    tau: float = 1.0
    visible_only: bool = False

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if self.norm not in NORM_MODES:
            raise ValueError(f"norm must be one of {NORM_MODES}, got {self.norm!r}")
        parse_thr_rule(self.thr_rule)
        for field in ("bin_cmp", "success_cmp"):
            if getattr(self, field) not in CMP_MODES:
                raise ValueError(f"{field} must be 'ge' or 'gt', got {getattr(self, field)!r}")
        if not self.tau > 0:
            raise ValueError("tau must be > 0")

    def replace(self, **changes: Any) -> LocProtocol:
        return dataclasses.replace(self, **changes)

    def flags(self) -> dict[str, Any]:
        """The full flag set, to be recorded next to every result (PROTOCOLS 4.13)."""
        return dataclasses.asdict(self)


PRESETS: dict[str, LocProtocol] = {
    p.name: p
    for p in (
        LocProtocol("ezvsl_test", "bilinear_ac1", "minmax", "median", "ge", "ge"),
        LocProtocol("stonemo_validate", "bicubic_ac0", "abs_cos_minmax", "median", "ge", "ge"),
        LocProtocol("slavc_test_relative", "bicubic_ac1", "abs_cos_minmax", "median", "ge", "ge"),
        LocProtocol("slavc_test_absolute", "bicubic_ac1", "abs_cos", "absolute@0.5", "ge", "ge"),
        LocProtocol("lvs", "cv2_linear", "lvs_invneg", "median", "gt", "ge"),
        LocProtocol("sslalignment", "bilinear_ac1", "minmax", "median", "gt", "ge"),
        LocProtocol("sslalignment_adaptive", "bilinear_ac1", "minmax", "adaptive_gt", "gt", "ge"),
        # AVGN train.py validate = stoneMo validate with the strict precision_at_k success test.
        LocProtocol("avgn", "bicubic_ac0", "abs_cos_minmax", "median", "ge", "gt"),
        # Qian (class maps already at GT scale or nearest-resized) and DSOL (per-class maps, fraction of max).
        LocProtocol("qian_flickr", "nearest", "none", "absolute@0.5", "gt", "ge"),
        LocProtocol("qian_audioset", "nearest", "none", "frac_max@0.1", "gt", "ge"),
        LocProtocol("dsol_solo", "bilinear_ac0", "none", "frac_max@0.5", "gt", "ge"),
        LocProtocol("dsol_duet", "bilinear_ac0", "none", "frac_max@0.2", "gt", "ge"),
    )
}


def get_protocol(protocol: LocProtocol | str) -> LocProtocol:
    if isinstance(protocol, LocProtocol):
        return protocol
    try:
        return PRESETS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol preset {protocol!r}; known: {sorted(PRESETS)}") from None


# ----------------------------------------------------------------------------------------- map preparation
def to_numpy(x: ArrayLike) -> np.ndarray:
    """Tensor or array -> numpy without copying when possible (never through torch for numpy input)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_batch(x: ArrayLike, ndim: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().cpu()
    if t.ndim == ndim - 1:
        t = t.unsqueeze(0)
    if t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dims (batched), got shape {tuple(t.shape)}")
    return t


def upsample(maps: ArrayLike, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``[B, h, w]`` -> float32 ``[B, H, W]`` (PROTOCOLS 4.1 step A).

    ``cv2_linear`` is ``cv2.resize(INTER_LINEAR)``: for float maps and up-scaling it samples at half-pixel
    centres with edge clamping, i.e. bilinear with ``align_corners=False``. ``area`` is for down-scaling.
    """
    x = _as_batch(maps, 3, "maps").float()
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x  # every mode is the identity at scale 1
    if mode == "none":
        raise ValueError(f"upsample='none' but map size {tuple(x.shape[-2:])} != GT size {size}")
    x = x.unsqueeze(1)
    if mode in ("bilinear_ac1", "bicubic_ac1"):
        y = F.interpolate(x, size=size, mode=mode.split("_")[0], align_corners=True)
    elif mode in ("bilinear_ac0", "bicubic_ac0", "cv2_linear"):
        y = F.interpolate(x, size=size, mode="bicubic" if mode == "bicubic_ac0" else "bilinear",
                          align_corners=False)
    elif mode in ("nearest", "area"):
        y = F.interpolate(x, size=size, mode=mode)
    else:
        raise ValueError(f"unknown upsample mode {mode!r}")
    return y[:, 0]


def _minmax(p: np.ndarray, inplace: bool = False) -> np.ndarray:
    flat = p.reshape(p.shape[0], -1)
    lo = flat.min(axis=1).reshape(-1, *([1] * (p.ndim - 1)))
    hi = flat.max(axis=1).reshape(lo.shape)
    span = hi - lo
    flat_rows = (span == 0).reshape(-1)
    if inplace and not flat_rows.any():  # a flat row must keep its original values: copy then
        out = p
        out -= lo
    else:
        out = p - lo
    out /= np.where(span > 0, span, np.float32(1))  # in place: same float32 ops as (p - lo) / span
    if flat_rows.any():
        out[flat_rows] = p[flat_rows]  # a flat map is left unchanged
    return out


def normalize(maps: ArrayLike, mode: str, tau: float = 1.0) -> np.ndarray:
    """Per-sample normalisation in float32 (PROTOCOLS 4.1 step B); formulas kept literal for tie parity."""
    return _normalize(np.ascontiguousarray(to_numpy(maps), dtype=np.float32), mode, tau, inplace=False)


def _normalize(p: np.ndarray, mode: str, tau: float, inplace: bool) -> np.ndarray:
    """:func:`normalize` on a contiguous float32 array; ``inplace`` reuses its memory (the caller owns it).

    The in-place forms run the same float32 operations in the same order, so the values are identical.
    """
    if mode == "none":
        return p
    if mode == "minmax":
        return _minmax(p, inplace)
    if mode in ("abs_cos", "abs_cos_minmax"):
        if inplace:
            p += np.float32(1.0 / tau)
            p /= np.float32(2.0 / tau)
        else:
            p = (p + np.float32(1.0 / tau)) / np.float32(2.0 / tau)
        return _minmax(p, inplace=True) if mode == "abs_cos_minmax" else p  # p is ours by now
    if mode == "lvs_invneg":
        out = _minmax(np.negative(p, out=p if inplace else None), inplace=True)
        return np.subtract(np.float32(1), out, out=out)
    raise ValueError(f"unknown norm {mode!r}")


def prepare_maps(maps: ArrayLike, size: tuple[int, int], protocol: LocProtocol | str) -> np.ndarray:
    """Raw maps ``[B, h, w]`` -> continuous float32 maps ``[B, H, W]`` at the GT size (steps A and B)."""
    protocol = get_protocol(protocol)
    x = _as_batch(maps, 3, "maps")
    p = np.ascontiguousarray(upsample(x, size, protocol.upsample).numpy(), dtype=np.float32)
    # At scale 1 upsample() hands back the caller's memory; otherwise p is a fresh buffer that normalisation
    # may overwrite (saves a full-size temporary per step).
    return _normalize(p, protocol.norm, protocol.tau, inplace=not np.may_share_memory(p, x.numpy()))


def _gts_numpy(gts: ArrayLike) -> np.ndarray:
    return np.ascontiguousarray(_as_batch(gts, 3, "gts").numpy(), dtype=np.float32)


# ------------------------------------------------------------------------------------- sorting primitives
def _sorted_keys(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Row-wise ascending sort of the scores ``[N, M]`` with the binary label carried in the lowest key bit.

    float32 bits are mapped to an order-preserving integer; ``(key << 1) | label`` sorts by score first, and
    within a group of tied scores the order is irrelevant to AP and to order statistics. Maps in [0, 2) (every
    normalised map) have bit patterns < 2**30, so the packed key fits uint32 and is built and radix-sorted in
    compiled code (:func:`_pack_sort_rows`; ``-0.0`` has only the sign bit set, which the shift drops, so it
    ties with ``+0.0``); other ranges fall back to signed int64 keys and numpy's sort.
    """
    s = np.ascontiguousarray(scores, dtype=np.float32)
    lab = np.ascontiguousarray(np.broadcast_to(np.asarray(labels, dtype=bool), s.shape))
    if s.ndim == 2 and s.size:
        keys, ok = _pack_sort_rows(s.view(np.uint32), lab)
        if ok:
            return keys
    if not np.isfinite(s).all():
        raise ValueError("maps contain NaN or inf")
    i32 = (s + np.float32(0.0)).view(np.int32)  # -0.0 -> +0.0 so they tie
    ordered = i32 ^ ((i32 >> 31) & np.int32(0x7FFFFFFF))  # flip magnitude bits of negatives
    keys = (ordered.astype(np.int64) << 1) | lab
    keys.sort(axis=1)
    return keys


@numba.njit(cache=True, nogil=True)
def _radix_finish_row(row: np.ndarray, tmp: np.ndarray, hist: np.ndarray) -> None:
    """Sort one row of uint32 keys in place given its byte histograms ``hist`` ``[4, 256]``: LSD radix sort,
    one scatter pass per byte (256 buckets keep the scatter targets in L1); a byte that is the same over the
    whole row is skipped."""
    m = row.shape[0]
    n_exec = 0
    for p in range(4):  # counts -> exclusive prefix sums (bucket starts)
        acc = 0
        constant = False
        for d in range(256):
            c = hist[p, d]
            constant |= c == m
            hist[p, d] = acc
            acc += c
        if constant:
            hist[p, 0] = -1  # marks a skipped pass
        else:
            n_exec += 1
    src, dst = row, tmp
    if n_exec % 2 == 1:  # passes alternate buffers: start from tmp so the last one writes row
        tmp[:] = row
        src, dst = tmp, row
    for p in range(4):
        if hist[p, 0] < 0:
            continue
        shift = 8 * p
        for i in range(m):
            k = src[i]
            dgt = (k >> shift) & 255
            dst[hist[p, dgt]] = k
            hist[p, dgt] += 1
        src, dst = dst, src


@numba.njit(cache=True, nogil=True, inline="always")
def _count_bytes(hist: np.ndarray, k: np.uint32) -> None:
    """Add the four bytes of key ``k`` to the per-pass histograms ``hist [4, 256]`` of the LSD radix sort."""
    hist[0, k & 255] += 1
    hist[1, (k >> 8) & 255] += 1
    hist[2, (k >> 16) & 255] += 1
    hist[3, k >> 24] += 1


@numba.njit(cache=True, nogil=True)
def _radix_sort_rows(keys: np.ndarray) -> np.ndarray:
    """Row-wise ascending sort of uint32 keys ``[N, M]`` (see :func:`_radix_finish_row`)."""
    n, m = keys.shape
    out = keys.copy()
    tmp = np.empty(m, dtype=np.uint32)
    hist = np.zeros((4, 256), dtype=np.int64)
    for r in range(n):
        row = out[r]
        hist[:] = 0
        for i in range(m):
            k = row[i]
            _count_bytes(hist, k)
        _radix_finish_row(row, tmp, hist)
    return out


@numba.njit(cache=True, nogil=True)
def _pack_sort_rows(bits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, bool]:
    """Packed keys ``(bits << 1) | label`` of float32 scores in [+-0, 2) (``bits``: their uint32 view), sorted
    per row (:func:`_radix_finish_row`); building the keys and the byte histograms is one pass. -0.0 becomes
    +0.0 (they tie). Returns ``(keys, False)`` as soon as a score lies outside [+-0, 2) (negative, >= 2,
    NaN, inf): the caller then uses signed int64 keys."""
    n, m = bits.shape
    out = np.empty((n, m), dtype=np.uint32)
    tmp = np.empty(m, dtype=np.uint32)
    hist = np.zeros((4, 256), dtype=np.int64)
    for r in range(n):
        row = out[r]
        hist[:] = 0
        for i in range(m):
            b = np.int64(bits[r, i])
            if b >= 0x40000000:  # 2.0's bit pattern: every score in [+0, 2) is below it
                if b != 0x80000000:  # only -0.0 may pass
                    return out, False
                b = 0
            k = np.uint32((b << 1) | np.int64(labels[r, i]))
            row[i] = k
            _count_bytes(hist, k)
        _radix_finish_row(row, tmp, hist)
    return out, True


def _decode_keys(keys: np.ndarray) -> np.ndarray:
    """Scores (float32) back from packed sort keys."""
    if keys.dtype == np.uint32:
        return (keys >> np.uint32(1)).view(np.float32)
    k = (keys >> 1).astype(np.int32)
    return (k ^ ((k >> 31) & np.int32(0x7FFFFFFF))).view(np.float32)


def _row_counts(mask: np.ndarray) -> np.ndarray:
    """``count_nonzero`` per row of a 2-D boolean array.

    One call per row: ``count_nonzero(axis=1)`` goes through a generic summing reduction that is ~8x slower
    than the SIMD popcount numpy uses for a whole contiguous array.
    """
    return np.fromiter((np.count_nonzero(row) for row in mask), dtype=np.int64, count=len(mask))


@numba.njit(cache=True, nogil=True)
def _sorted_row_stats(keys: np.ndarray, n_pos: np.ndarray, thr_keys: np.ndarray, ge: bool,
                      want_ap: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ascending packed keys (:func:`_sorted_keys`): sklearn-equivalent average precision, and
    (when ``thr_keys`` has one key per row) the predicted-pixel and hit counts of the threshold's tail.

    AP = (1/n_pos) * sum over positives of the precision at the positive's score threshold, where the
    threshold admits every pixel with a score >= it (tied scores form one threshold, as in sklearn): a group
    of equal scores starting at column c holding q positives, with k positives before it, adds
    q (n_pos - k) / (M - c). ``p >= thr`` selects the sorted tail starting at the first key of the
    threshold's score, ``p > thr`` the tail after its last one; the hits are the label bits in that tail
    (equal to counting a binarised map). ``n_pos`` must be the number of set label bits per row.
    """
    n, m = keys.shape
    ap = np.full(n, np.nan)
    n_pred = np.zeros(n, dtype=np.int64)
    hits = np.zeros(n, dtype=np.int64)
    with_counts = thr_keys.shape[0] == n
    for r in range(n):
        row = keys[r]
        if with_counts:
            base = np.int64(thr_keys[r]) & ~np.int64(1)  # the threshold's score with the label bit cleared
            target = base if ge else base | 1
            lo, hi = 0, m  # first index with key >= base (ge) / key > base | 1 (gt)
            while lo < hi:
                mid = (lo + hi) // 2
                k = np.int64(row[mid])
                if k < target or (not ge and k == target):
                    lo = mid + 1
                else:
                    hi = mid
            h = 0
            for i in range(lo, m):
                h += np.int64(row[i]) & 1
            n_pred[r] = m - lo
            hits[r] = h
        if want_ap and n_pos[r] > 0:
            n_p = n_pos[r]
            total = 0.0
            seen = 0  # positives so far
            before = 0  # positives before the current group of equal scores
            start = 0  # column where that group starts
            prev = np.int64(-1)
            for i in range(m):
                k = np.int64(row[i])
                if (k | 1) != prev:
                    prev = k | 1
                    start = i
                    before = seen
                if k & 1:
                    total += (n_p - before) / (m - start)
                    seen += 1
            ap[r] = total / n_p
    return ap, n_pred, hits


def average_precision_rows(scores: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Per-row AP (== ``sklearn.metrics.average_precision_score``); NaN for rows without positives.

    ``scores`` and ``labels`` have shape ``[N, ...]``; everything after the first axis is flattened.
    """
    s = np.asarray(to_numpy(scores), dtype=np.float32)
    lab = to_numpy(labels) > 0
    s = s.reshape(s.shape[0], -1)
    lab = lab.reshape(lab.shape[0], -1)
    if s.shape != lab.shape:
        raise ValueError(f"scores {s.shape} and labels {lab.shape} differ")
    keys = _sorted_keys(s, lab)
    return _sorted_row_stats(keys, _row_counts(lab), np.zeros(0, keys.dtype), True, True)[0]


def pixel_ap(scores: ArrayLike, gts: ArrayLike) -> np.ndarray:
    """Pixel AP per sample of a continuous map against ``G > 0`` (NaN when the GT is empty)."""
    return average_precision_rows(scores, gts)


# ------------------------------------------------------------------------------------------ thresholding
def _rule_index(protocol: LocProtocol, n_gt: np.ndarray, m: int) -> np.ndarray | None:
    """Ascending-order index of the threshold pixel for rank rules; None for value rules."""
    kind, _ = parse_thr_rule(protocol.thr_rule)
    if kind == "median":
        return np.full(n_gt.shape, int(0.5 * m), dtype=np.int64)
    if kind == "adaptive_gt":
        k = np.where(n_gt > 0, n_gt, m // 2)  # empty GT: select half the pixels (SSLalignment *_adap)
        return (m - k).astype(np.int64)
    return None


def _value_thresholds(protocol: LocProtocol, row_max: np.ndarray) -> np.ndarray:
    kind, value = parse_thr_rule(protocol.thr_rule)
    if kind == "absolute":
        return np.full(row_max.shape, value, dtype=np.float32)
    return (np.float32(value) * row_max).astype(np.float32)  # frac_max, float32 like numpy reference code


def _binarize_rows(p: np.ndarray, thr: np.ndarray, cmp: str) -> np.ndarray:
    return p >= thr[:, None] if cmp == "ge" else p > thr[:, None]


def thresholds(p: np.ndarray, gts: np.ndarray, protocol: LocProtocol | str) -> np.ndarray:
    """Per-sample threshold value for continuous maps ``p`` ``[B, H, W]`` (PROTOCOLS 4.1 step C)."""
    protocol = get_protocol(protocol)
    rows = np.asarray(p, dtype=np.float32).reshape(len(p), -1)
    g = np.asarray(gts).reshape(len(gts), -1)
    idx = _rule_index(protocol, (g > 0).sum(axis=1), rows.shape[1])
    if idx is None:
        return _value_thresholds(protocol, rows.max(axis=1))
    if np.all(idx == idx[0]):  # one order statistic for the whole batch: partition is O(n)
        part = np.partition(rows, int(idx[0]), axis=1)
        return part[:, int(idx[0])].copy()
    return np.take_along_axis(np.sort(rows, axis=1), idx[:, None], axis=1)[:, 0]


def binarize(maps: ArrayLike, gts: ArrayLike, protocol: LocProtocol | str) -> np.ndarray:
    """Raw maps ``[B, h, w]`` + GTs ``[B, H, W]`` -> boolean predictions ``[B, H, W]`` (PROTOCOLS 4.1)."""
    protocol = get_protocol(protocol)
    g = _gts_numpy(gts)
    p = prepare_maps(maps, g.shape[-2:], protocol)
    thr = thresholds(p, g, protocol)
    return _binarize_rows(p.reshape(len(p), -1), thr, protocol.bin_cmp).reshape(p.shape)


# --------------------------------------------------------------------------------------- per-sample scores
def ciou(pred: ArrayLike, gts: ArrayLike) -> np.ndarray:
    """Consensus IoU per sample: sum(P G) / (sum G + sum P [G = 0]); 0 when the denominator is 0 (4.2)."""
    p = to_numpy(pred).reshape(len(pred), -1) > 0
    g = np.asarray(to_numpy(gts), dtype=np.float64).reshape(len(gts), -1)
    inter = np.where(p, g, 0.0).sum(axis=1)
    den = g.sum(axis=1) + (p & (g == 0)).sum(axis=1)
    return np.divide(inter, den, out=np.zeros_like(inter), where=den > 0)


def iou(pred: ArrayLike, gts: ArrayLike) -> np.ndarray:
    """Plain binary IoU of P against ``G > 0`` (equals cIoU for binary GT); 0 for an empty union."""
    p = to_numpy(pred).reshape(len(pred), -1) > 0
    g = to_numpy(gts).reshape(len(gts), -1) > 0
    inter = (p & g).sum(axis=1).astype(np.float64)
    union = (p | g).sum(axis=1).astype(np.float64)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def oracle_ciou(gts: ArrayLike, protocol: LocProtocol | str) -> np.ndarray:
    """Best cIoU any map can reach under the protocol's threshold rule (PROTOCOLS 4.12).

    Rank rules fix the number n of predicted pixels (median: HW - int(HW/2), adaptive: #(G>0); one fewer
    with ``bin_cmp=gt``); the best n pixels take the highest GT values first. Value rules (absolute,
    frac_max) can select exactly the GT support, so their ceiling is 1 (0 for an empty GT).
    """
    protocol = get_protocol(protocol)
    g = np.asarray(to_numpy(gts), dtype=np.float32)
    g = g.reshape(len(g), -1)
    return _oracle_rows(g, np.count_nonzero(g > 0, axis=1), g.sum(axis=1, dtype=np.float64), protocol)


def _oracle_rows(g: np.ndarray, n_gt: np.ndarray, g_sum: np.ndarray, protocol: LocProtocol) -> np.ndarray:
    """:func:`oracle_ciou` for flattened float32 GT rows with their counts already computed."""
    m = g.shape[1]
    idx = _rule_index(protocol, n_gt, m)
    if idx is None:
        return (g_sum > 0).astype(np.float64)
    n = (m - idx) - (1 if protocol.bin_cmp == "gt" else 0)
    n = np.clip(n, 0, m)
    if np.all(g_sum == n_gt):  # binary GT
        n_one, n_half = n_gt, np.zeros_like(n_gt)
    else:
        n_one = np.count_nonzero(g >= 1, axis=1)
        n_half = np.count_nonzero(g == 0.5, axis=1)
    if np.all(n_one + n_half == n_gt):  # {0, 0.5, 1} maps: closed form
        top = np.minimum(n, n_one) + 0.5 * np.clip(n - n_one, 0, n_half)
    else:  # arbitrary GT values: sum of the n largest
        desc = -np.sort(-g.astype(np.float64), axis=1)
        csum = np.concatenate([np.zeros((len(g), 1)), np.cumsum(desc, axis=1)], axis=1)
        top = np.take_along_axis(csum, n[:, None], axis=1)[:, 0]
    den = g_sum + np.maximum(n - n_gt, 0)
    return np.divide(top, den, out=np.zeros_like(top), where=g_sum > 0)


def success_rate(values: ArrayLike, t: float, cmp: str = "ge") -> float:
    """SR@t = mean of 1[v >= t] (``ge``) or 1[v > t] (``gt``) (PROTOCOLS 4.3); NaN for no samples."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return math.nan
    return float(np.mean(v >= t) if cmp == "ge" else np.mean(v > t))


def sr_curve(values: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(t_k, SR@t_k with ``ge``) over the 21 AUC thresholds."""
    v = np.asarray(values, dtype=np.float64)
    return AUC_THRESHOLDS.copy(), (v[None, :] >= AUC_THRESHOLDS[:, None]).mean(axis=1)


def auc(values: ArrayLike) -> float:
    """Trapezoid area under SR@t for t = 0, 0.05, ..., 1 (PROTOCOLS 4.4, == sklearn.metrics.auc)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return math.nan
    x, y = sr_curve(v)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


# ------------------------------------------------------------------------------------------- core scorer
def _score_chunk(p: np.ndarray, g: np.ndarray, protocol: LocProtocol, compute_ap: bool,
                 want_conf: bool) -> dict[str, np.ndarray]:
    """All per-sample quantities for flattened rows ``p`` ``[N, M]`` (float32) and ``g`` ``[N, M]``."""
    n, m = p.shape
    pos = g > 0
    n_gt = _row_counts(pos)
    idx = _rule_index(protocol, n_gt, m)
    out: dict[str, np.ndarray] = {}
    counts = None
    if compute_ap or want_conf or (idx is not None and not np.all(idx == idx[0])):
        keys = _sorted_keys(p, pos)
        if idx is None:
            thr = _value_thresholds(protocol, _decode_keys(keys[:, -1]))
            thr_keys = np.zeros(0, keys.dtype)  # no tail counts: value rules binarise below
        else:
            thr_keys = np.take_along_axis(keys, idx[:, None], axis=1)[:, 0]
            thr = _decode_keys(thr_keys)
        ap, n_pred_k, hit_k = _sorted_row_stats(keys, n_gt, thr_keys, protocol.bin_cmp == "ge", compute_ap)
        if idx is not None:  # rank rules: the prediction is a tail of the sorted row, so count it there
            counts = n_pred_k, hit_k
        if want_conf:  # SLAVC confidence: mean of sort(p)[-HW // 4:], the ceil(HW / 4) top scores (4.5)
            out["conf"] = _decode_keys(keys[:, m - -(-m // 4):]).mean(axis=1, dtype=np.float64)
        if compute_ap:
            out["pixel_ap"] = ap
    elif idx is None:
        thr = _value_thresholds(protocol, p.max(axis=1))
    else:
        thr = np.partition(p, int(idx[0]), axis=1)[:, int(idx[0])].copy()
    g_sum = g.sum(axis=1, dtype=np.float64)
    binary = g_sum == n_gt  # {0, 1} GT: the overlap is the hit count, no float pass needed
    if counts is None:
        pred = _binarize_rows(p, thr, protocol.bin_cmp)
        n_pred = _row_counts(pred)
        hit = _row_counts(pred & pos)
    else:
        n_pred, hit = counts
        pred = None if binary.all() else _binarize_rows(p, thr, protocol.bin_cmp)
    inter = hit.astype(np.float64)
    if pred is not None and not binary.all():
        inter[~binary] = (pred[~binary] * g[~binary]).sum(axis=1, dtype=np.float64)
    fp = n_pred - hit
    den = g_sum + fp
    union = (n_pred + n_gt - hit).astype(np.float64)
    out.update(
        ciou=np.divide(inter, den, out=np.zeros(n), where=den > 0),
        iou=np.divide(hit.astype(np.float64), union, out=np.zeros(n), where=union > 0),
        thr=thr.astype(np.float64),
        n_pred=n_pred,
        gt_area=n_gt,
        gt_sum=g_sum,
        oracle_ciou=_oracle_rows(g, n_gt, g_sum, protocol),
    )
    return out


def _default_workers() -> int:
    return max(1, min(8, torch.get_num_threads(), os.cpu_count() or 1))


def _run_chunks(score: Callable[[int, int], dict[str, np.ndarray]], b: int, chunk: int,
                workers: int | None) -> dict[str, np.ndarray]:
    """``score(start, stop)`` over row chunks in a thread pool (numpy sorts and torch ops release the GIL);
    small chunks keep every pass over a chunk in cache."""
    spans = [(s, min(b, s + chunk)) for s in range(0, b, max(1, chunk))] or [(0, 0)]
    workers = workers or _default_workers()
    if workers > 1 and len(spans) > 1:
        with ThreadPoolExecutor(min(workers, len(spans))) as pool:
            parts = list(pool.map(lambda span: score(*span), spans))
    else:
        parts = [score(*span) for span in spans]
    return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}


def score_maps(p: np.ndarray, gts: np.ndarray, protocol: LocProtocol | str, *, compute_ap: bool = True,
               want_conf: bool = False, chunk: int = 16, workers: int | None = None) -> dict[str, np.ndarray]:
    """Per-sample scores of prepared maps ``p`` ``[B, H, W]`` against ``gts`` (same shape).

    Returns arrays of length B: ``ciou``, ``iou``, ``thr``, ``n_pred``, ``gt_area``, ``gt_sum``,
    ``oracle_ciou``, plus ``pixel_ap`` (if ``compute_ap``) and ``conf`` (if ``want_conf``). Row chunks run in
    a thread pool (numpy sorts release the GIL).
    """
    protocol = get_protocol(protocol)
    p = np.asarray(p, dtype=np.float32)
    g = np.asarray(gts, dtype=np.float32)
    if p.shape != g.shape:
        raise ValueError(f"maps {p.shape} and GTs {g.shape} differ after upsampling")
    b = len(p)
    pr = p.reshape(b, -1)
    gr = g.reshape(b, -1)

    def score(start: int, stop: int) -> dict[str, np.ndarray]:
        return _score_chunk(pr[start:stop], gr[start:stop], protocol, compute_ap, want_conf)

    return _run_chunks(score, b, chunk, workers)


def evaluate_maps(maps: ArrayLike, gts: ArrayLike, protocol: LocProtocol | str, *, compute_ap: bool = True,
                  want_conf: bool = False, chunk: int = 16, workers: int | None = None) -> dict[str, np.ndarray]:
    """Raw maps ``[B, h, w]`` + GTs ``[B, H, W]`` -> per-sample score arrays (see :func:`score_maps`).

    Upsampling and normalisation run per row chunk inside the same thread pool as the scoring (every step is
    per sample, so chunking changes no value).
    """
    protocol = get_protocol(protocol)
    g = _gts_numpy(gts)
    x = _as_batch(maps, 3, "maps")
    if len(x) != len(g):
        raise ValueError(f"{len(x)} maps for {len(g)} GTs")
    size = g.shape[-2:]
    b = len(g)
    gr = g.reshape(b, -1)

    def score(start: int, stop: int) -> dict[str, np.ndarray]:
        p = prepare_maps(x[start:stop], size, protocol)
        if p.shape[1:] != size:
            raise ValueError(f"maps {p.shape} and GTs {g.shape} differ after upsampling")
        return _score_chunk(p.reshape(len(p), -1), gr[start:stop], protocol, compute_ap, want_conf)

    return _run_chunks(score, b, chunk, workers)


# ----------------------------------------------------------------------------------------------- summary
def _key(t: float) -> str:
    return f"{t:g}"


def aggregate(ciou_values: ArrayLike, *, thresholds: Sequence[float] = (0.3, 0.5), success_cmp: str = "ge",
              iou_values: ArrayLike | None = None, ap_values: ArrayLike | None = None,
              oracle_values: ArrayLike | None = None) -> dict[str, float]:
    """Dataset metrics from per-sample values. Keys: ``n``, ``avg_ciou``, ``auc``, ``ciou_sr@t`` and, when
    given, ``iou_sr@t``, ``pixel_ap`` (+ ``n_ap``, samples with a defined AP), ``oracle_sr@t``,
    ``oracle_auc``, ``oracle_avg_ciou``."""
    c = np.asarray(ciou_values, dtype=np.float64)
    out: dict[str, float] = {"n": int(c.size)}
    out["avg_ciou"] = float(c.mean()) if c.size else math.nan
    out["auc"] = auc(c)
    for t in thresholds:
        out[f"ciou_sr@{_key(t)}"] = success_rate(c, t, success_cmp)
    if iou_values is not None:
        for t in thresholds:
            out[f"iou_sr@{_key(t)}"] = success_rate(iou_values, t, success_cmp)
    if ap_values is not None:
        ap = np.asarray(ap_values, dtype=np.float64)
        finite = np.isfinite(ap)
        out["pixel_ap"] = float(ap[finite].mean()) if finite.any() else math.nan
        out["n_ap"] = int(finite.sum())
    if oracle_values is not None:
        o = np.asarray(oracle_values, dtype=np.float64)
        for t in thresholds:
            out[f"oracle_sr@{_key(t)}"] = success_rate(o, t, success_cmp)
        out["oracle_auc"] = auc(o)
        out["oracle_avg_ciou"] = float(o.mean()) if o.size else math.nan
    return out


def summarize(per_sample_df: pd.DataFrame, by: str | None = "group", *, thresholds: Sequence[float] = (0.3, 0.5),
              success_cmp: str = "ge", visible_only: bool = False) -> pd.DataFrame:
    """Re-aggregate a :meth:`LocalizationMetric.per_sample` frame, one row per value of ``by`` (e.g.
    heard / unheard); ``by=None`` gives one overall row."""
    df = per_sample_df
    if visible_only and "visible" in df:
        df = df[df["visible"].astype(bool)]
    groups = [("all", df)] if by is None else list(df.groupby(by, sort=True, dropna=False))
    rows = []
    for name, part in groups:
        row = aggregate(
            part["ciou"].to_numpy(), thresholds=thresholds, success_cmp=success_cmp,
            iou_values=part["iou"].to_numpy() if "iou" in part else None,
            ap_values=part["pixel_ap"].to_numpy() if "pixel_ap" in part else None,
            oracle_values=part["oracle_ciou"].to_numpy() if "oracle_ciou" in part else None,
        )
        rows.append({by or "subset": name, **row})
    return pd.DataFrame(rows).set_index(by or "subset")


class _Accumulator:
    """Shared bookkeeping: per-sample arrays, optional ids and groups."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._parts: list[dict[str, np.ndarray]] = []
        self._groups: list[Any] = []
        self._ids: list[Any] = []
        self._has_ids = False

    def _append(self, values: dict[str, np.ndarray], n: int, groups: Sequence[Any] | None,
                ids: Sequence[Any] | None) -> None:
        for name, seq in (("groups", groups), ("ids", ids)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{name} has {len(seq)} entries for {n} samples")
        self._parts.append(values)
        self._groups.extend(list(groups) if groups is not None else [None] * n)
        if ids is not None:
            self._has_ids = True
        self._ids.extend(list(ids) if ids is not None else [None] * n)

    def _column(self, name: str) -> np.ndarray:
        if not self._parts:
            return np.zeros(0)
        return np.concatenate([np.asarray(part[name]) for part in self._parts])

    def _frame(self, columns: Sequence[str]) -> pd.DataFrame:
        data: dict[str, Any] = {}
        if self._has_ids:
            data["sample_id"] = self._ids
        data["group"] = self._groups
        for col in columns:
            data[col] = self._column(col)
        return pd.DataFrame(data)

    def _mask(self, group: Any) -> np.ndarray:
        groups = np.array(self._groups, dtype=object)
        return np.ones(len(groups), dtype=bool) if group is None else groups == group

    @property
    def groups(self) -> list[Any]:
        return list(dict.fromkeys(self._groups))


class LocalizationMetric(_Accumulator):
    """torchmetrics-style accumulator for single-source localization.

    ``update(maps, gts)``: maps ``[B, h, w]`` raw (low-res or full-res), GTs ``[B, H, W]`` with values in
    {0, 0.5, 1} or {0, 1}; optional per-sample ``groups`` (e.g. ``heard``/``unheard``), ``ids`` and ``visible``
    (default: non-empty GT; used when ``protocol.visible_only``).
    ``compute(group=None)`` -> dict (see :func:`aggregate`) plus the protocol name.
    """

    COLUMNS = ("ciou", "iou", "pixel_ap", "oracle_ciou", "thr", "n_pred", "gt_area", "gt_sum", "visible")

    def __init__(self, protocol: LocProtocol | str = "ezvsl_test", thresholds: Sequence[float] = (0.3, 0.5),
                 compute_ap: bool = True) -> None:
        self.protocol = get_protocol(protocol)
        self.thresholds = tuple(thresholds)
        self.compute_ap = compute_ap
        super().__init__()

    def update(self, maps: ArrayLike, gts: ArrayLike, groups: Sequence[Any] | None = None,
               ids: Sequence[Any] | None = None, visible: ArrayLike | None = None) -> None:
        scores = evaluate_maps(maps, gts, self.protocol, compute_ap=self.compute_ap)
        n = len(scores["ciou"])
        if not self.compute_ap:
            scores["pixel_ap"] = np.full(n, np.nan)
        vis = scores["gt_area"] > 0 if visible is None else np.asarray(visible, dtype=bool).reshape(-1)
        if len(vis) != n:
            raise ValueError(f"visible has {len(vis)} entries for {n} samples")
        scores["visible"] = vis
        self._append(scores, n, groups, ids)

    def compute(self, group: Any = None) -> dict[str, Any]:
        mask = self._mask(group)
        if self.protocol.visible_only:
            mask &= self._column("visible").astype(bool)
        out: dict[str, Any] = aggregate(
            self._column("ciou")[mask], thresholds=self.thresholds, success_cmp=self.protocol.success_cmp,
            iou_values=self._column("iou")[mask],
            ap_values=self._column("pixel_ap")[mask] if self.compute_ap else None,
            oracle_values=self._column("oracle_ciou")[mask],
        )
        out["protocol"] = self.protocol.name
        return out

    def compute_by_group(self) -> dict[Any, dict[str, Any]]:
        return {g: self.compute(group=g) for g in self.groups}

    def per_sample(self) -> pd.DataFrame:
        return self._frame(self.COLUMNS)


__all__ = [
    "AUC_THRESHOLDS", "CMP_MODES", "NORM_MODES", "PRESETS", "UPSAMPLE_MODES", "LocProtocol",
    "LocalizationMetric", "aggregate", "auc", "average_precision_rows", "binarize", "ciou", "evaluate_maps",
    "get_protocol", "iou", "normalize", "oracle_ciou", "parse_thr_rule", "pixel_ap", "prepare_maps",
    "score_maps", "sr_curve", "success_rate", "summarize", "thresholds", "upsample",
]
