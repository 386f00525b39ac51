"""Benchmark of the metrics package: vectorised paths vs straightforward per-sample loops.

Usage: ``.venv/bin/python bench/metrics.py [--quick] [--protocol ezvsl_test]``

1. Localization on a VGG-SS-sized set (5,158 samples, 7x7 random maps upsampled to 224x224, random box GTs):
   :class:`avbench.metrics.localization.LocalizationMetric` vs a per-sample numpy/sklearn loop written below.
2. Separation (50 samples x 2 sources x 4 s at 11,025 Hz): the default batched exact BSS-Eval v3 path
   (``backend="native"``, block Levinson solves) vs ``mir_eval.separation.bss_eval_sources`` per sample.
Both comparisons assert equal values before printing timings and speed ratios. Every implementation (ours and
the reference) runs once on a small batch before it is timed: our paths are compiled with numba (``cache=True``,
so the warm-up only loads the cached machine code after the first run) and the warm-up also settles imports
and first-call allocations on both sides.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score

from avbench.metrics.localization import PRESETS, LocalizationMetric
from avbench.metrics.separation import SeparationMetric


def make_localization_data(n: int, size: int = 224, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    maps = torch.from_numpy(rng.standard_normal((n, 7, 7)).astype(np.float32))
    gts = np.zeros((n, size, size), dtype=np.float32)
    for i in range(n):
        for _ in range(rng.integers(1, 3)):
            x1, y1 = rng.integers(0, size - 16, 2)
            w, h = rng.integers(16, size // 2, 2)
            gts[i, y1:y1 + h, x1:x1 + w] = 1.0
    return maps, gts


def localization_loop(maps: torch.Tensor, gts: np.ndarray, mode: str, align: bool) -> tuple[np.ndarray, ...]:
    """The straightforward version: one sample at a time, numpy + sklearn (ezvsl_test-style protocol)."""
    cious, aps = [], []
    for m, g in zip(maps, gts, strict=True):
        up = F.interpolate(m[None, None], size=g.shape, mode=mode, align_corners=align)[0, 0].numpy()
        lo, hi = up.min(), up.max()
        p = (up - lo) / (hi - lo) if hi > lo else up
        thr = np.sort(p.ravel())[int(0.5 * p.size)]
        pred = p >= thr
        den = g.sum() + (pred & (g == 0)).sum()
        cious.append((pred * g).sum() / den if den > 0 else 0.0)
        aps.append(average_precision_score(g.ravel() > 0, p.ravel()) if g.any() else np.nan)
    return np.array(cious), np.array(aps)


def bench_localization(n: int, protocol: str, batch: int) -> dict[str, float]:
    maps, gts = make_localization_data(n)
    pr = PRESETS[protocol]
    if pr.norm != "minmax" or pr.thr_rule != "median" or pr.bin_cmp != "ge":
        raise SystemExit("the loop reference implements minmax + median + ge protocols (e.g. ezvsl_test)")
    mode, align = pr.upsample.split("_")[0], pr.upsample.endswith("ac1")
    LocalizationMetric(pr).update(maps[:32], gts[:32])  # warm-up (numba JIT / cache load), not timed
    localization_loop(maps[:32], gts[:32], mode, align)  # warm-up of the reference, not timed
    t0 = time.perf_counter()
    metric = LocalizationMetric(pr)
    for s in range(0, n, batch):
        metric.update(maps[s:s + batch], gts[s:s + batch])
    summary = metric.compute()
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_ciou, ref_ap = localization_loop(maps, gts, mode, align)
    t_loop = time.perf_counter() - t0
    df = metric.per_sample()
    np.testing.assert_allclose(df["ciou"].to_numpy(), ref_ciou, atol=1e-12)
    np.testing.assert_allclose(df["pixel_ap"].to_numpy(), ref_ap, atol=1e-9)
    assert abs(summary["ciou_sr@0.5"] - np.mean(ref_ciou >= 0.5)) < 1e-12
    return {"n": n, "fast_s": t_fast, "loop_s": t_loop, "ratio": t_loop / t_fast,
            "ciou_sr@0.5": summary["ciou_sr@0.5"], "pixel_ap": summary["pixel_ap"],
            "oracle_sr@0.5": summary["oracle_sr@0.5"]}


def bench_separation(n: int, seconds: float = 4.0, rate: int = 11025) -> dict[str, float]:
    rng = np.random.default_rng(0)
    length = int(seconds * rate)
    refs = rng.standard_normal((n, 2, length))
    ests = 0.8 * refs + 0.2 * refs[:, ::-1] + 0.3 * rng.standard_normal(refs.shape)
    with warnings.catch_warnings():  # warm-up of both implementations on 2 samples (numba JIT / cache load)
        warnings.simplefilter("ignore")
        SeparationMetric(backend="native", compute_mix=False).update(refs[:2], ests[:2])
        SeparationMetric(backend="mir_eval", compute_mix=False).update(refs[:2], ests[:2])
    t0 = time.perf_counter()
    fast = SeparationMetric(backend="native", compute_mix=False)
    fast.update(refs, ests)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = SeparationMetric(backend="mir_eval", compute_mix=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slow.update(refs, ests)
    t_mir = time.perf_counter() - t0
    a, b = fast.per_sample(), slow.per_sample()
    worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in ("sdr", "sir", "sar"))
    assert worst < 1e-3, f"the native backend differs from mir_eval by {worst} dB"
    return {"n": n, "fast_s": t_fast, "loop_s": t_mir, "ratio": t_mir / t_fast, "max_abs_diff_db": worst,
            "sdr": fast.compute()["sdr"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about 10 s in all)")
    parser.add_argument("--protocol", default="ezvsl_test")
    parser.add_argument("--batch", type=int, default=256, help="update() batch size for the accumulator")
    args = parser.parse_args()
    n_loc, n_sep = (500, 8) if args.quick else (5158, 50)
    print(f"torch threads: {torch.get_num_threads()}; timings after one untimed warm-up run of every "
          "implementation (ours: numba JIT compile / cache load; references: imports, first calls)")
    loc = bench_localization(n_loc, args.protocol, args.batch)
    sep = bench_separation(n_sep)
    print(f"\n{'benchmark':<40} {'n':>6} {'fast s':>9} {'reference s':>12} {'ratio':>8}")
    print(f"{'localization (' + args.protocol + ') vs loop':<40} {loc['n']:>6} {loc['fast_s']:>9.2f} "
          f"{loc['loop_s']:>12.2f} {loc['ratio']:>7.1f}x")
    print(f"{'separation native vs mir_eval':<40} {sep['n']:>6} {sep['fast_s']:>9.2f} "
          f"{sep['loop_s']:>12.2f} {sep['ratio']:>7.1f}x")
    print(f"\nlocalization values equal (cIoU atol 1e-12, AP atol 1e-9): cIoU@0.5 {loc['ciou_sr@0.5']:.4f}, "
          f"pixel AP {loc['pixel_ap']:.4f}, oracle cIoU@0.5 {loc['oracle_sr@0.5']:.4f}")
    print(f"separation max |diff| vs mir_eval: {sep['max_abs_diff_db']:.2e} dB (SDR {sep['sdr']:.2f} dB)")


if __name__ == "__main__":
    main()
