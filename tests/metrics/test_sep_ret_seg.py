"""Separation, retrieval and AVSBench segmentation metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avbench.metrics import retrieval as R
from avbench.metrics import segmentation as S
from avbench.metrics import separation as SEP


# ------------------------------------------------------------------------------------------- separation
def _signals(seed: int = 0, b: int = 2, n_src: int = 2, length: int = 8000):
    rng = np.random.default_rng(seed)
    refs = rng.standard_normal((b, n_src, length))
    ests = refs + 0.5 * rng.standard_normal((b, n_src, length)) + 0.3 * refs[:, ::-1]
    return refs, ests


def test_fast_bss_eval_matches_mir_eval():
    refs, ests = _signals()
    fast = SEP.bss_eval(refs, ests, backend="fast_bss_eval")
    ref = SEP.bss_eval(refs, ests, backend="mir_eval")
    for key in ("sdr", "sir", "sar"):
        np.testing.assert_allclose(fast[key], ref[key], atol=1e-3)
    assert fast["valid"].all()


@pytest.mark.parametrize("n_src", [1, 2, 3])
def test_native_matches_mir_eval(n_src):
    rng = np.random.default_rng(n_src)
    refs = rng.standard_normal((2, n_src, 6000))
    refs[1] = np.cumsum(refs[1], -1) * 0.05  # strongly low-pass (ill-conditioned Gram) sample
    ests = refs + 0.3 * rng.standard_normal(refs.shape) + 0.2 * refs[:, ::-1]
    native = SEP.bss_eval(refs, ests, backend="native")
    ref = SEP.bss_eval(refs, ests, backend="mir_eval")
    for key in ("sdr", "sir", "sar"):
        np.testing.assert_allclose(native[key], ref[key], atol=1e-3)
    assert native["valid"].all()


def test_native_dense_fallback_matches_mir_eval(monkeypatch):
    refs, ests = _signals(seed=3)
    monkeypatch.setattr(SEP, "_LEVINSON_MAX_DB_ERR", -1.0)  # force the dense mir_eval-style solve
    native = SEP.bss_eval(refs, ests, backend="native")
    ref = SEP.bss_eval(refs, ests, backend="mir_eval")
    for key in ("sdr", "sir", "sar"):
        np.testing.assert_allclose(native[key], ref[key], atol=1e-3)


def test_block_levinson_equals_dense_solve():
    rng = np.random.default_rng(0)
    sig = rng.standard_normal((2, 2, 500))
    n = 16
    xc = np.stack([[[np.correlate(sig[b, j], sig[b, i], "full")[499:499 + n] for j in range(2)] for i in range(2)]
                   for b in range(2)])  # xc[b, i, j, k] = sum_t s_i[t] s_j[t + k]
    r = xc.transpose(0, 3, 1, 2)
    dense = np.zeros((2, 2 * n, 2 * n))
    for a in range(n):
        for c in range(n):
            blk = r[:, a - c] if a >= c else r[:, c - a].transpose(0, 2, 1)
            dense[:, 2 * a:2 * a + 2, 2 * c:2 * c + 2] = blk
    y = rng.standard_normal((2, n, 2, 3))
    x = SEP._block_levinson(r, y)
    np.testing.assert_allclose(x.reshape(2, 2 * n, 3), np.linalg.solve(dense, y.reshape(2, 2 * n, 3)), rtol=1e-9,
                               atol=1e-12)


def test_block_levinson_is_compiled_and_singular_safe():
    refs, ests = _signals()
    SEP.bss_eval(refs, ests, backend="native")
    assert SEP._levinson_batch.signatures  # the numba-compiled solver ran (not a Python fallback)
    x = SEP._block_levinson(np.zeros((2, 4, 2, 2)), np.ones((2, 4, 2, 3)))  # singular: NaN/inf, no exception
    assert not np.isfinite(x).all()


@pytest.mark.parametrize("n_src", [1, 3])
def test_correlations_match_direct(n_src):
    rng = np.random.default_rng(n_src)
    r = rng.standard_normal((2, n_src, 300))
    e = rng.standard_normal((2, n_src, 300))
    flen = 16
    xc = np.empty((2, n_src, n_src, 2 * flen - 1))
    d = np.empty((2, n_src, n_src, flen))
    SEP._correlations(r, e, flen, xc, d)
    for b in range(2):
        for i in range(n_src):
            for j in range(n_src):
                full = np.correlate(r[b, j], r[b, i], "full")  # full[299 + k] = sum_t r_i[t] r_j[t + k]
                np.testing.assert_allclose(xc[b, i, j], full[299 - (flen - 1):299 + flen], atol=1e-9)
                dd = np.correlate(e[b, j], r[b, i], "full")[299:299 + flen]  # sum_t r_i[t - a] e_j[t]
                np.testing.assert_allclose(d[b, i, j], dd, atol=1e-9)


def test_silent_signals_are_skipped_and_counted():
    refs, ests = _signals(b=3)
    refs[1, 0] = 0.0  # silent reference
    ests[2, 1] = 1e-9  # (near-)silent estimate: sum |x| = 8e-6 <= 1e-5
    for backend in SEP.BACKENDS:
        metric = SEP.SeparationMetric(backend=backend, compute_mix=True)
        metric.update(refs, ests)
        out = metric.compute()
        assert out["n"] == 1 and out["n_skipped"] == 2
        assert out["n_skipped_mix"] == 1  # the mixture is audible; only the silent reference fails
        df = metric.per_sample()
        assert list(df["valid"]) == [True, False, False] and np.isnan(df["sdr"][1])


def test_mixture_baseline_and_means():
    refs, ests = _signals(seed=2)
    metric = SEP.SeparationMetric(compute_si_sdr=True)
    metric.update(refs[:1], ests[:1], groups=["a"])
    metric.update(refs[1:], ests[1:], groups=["b"])
    out = metric.compute()
    direct = SEP.bss_eval(refs, ests)
    assert out["sdr"] == pytest.approx(direct["sdr"].mean(1).mean())  # mean over sources, then samples
    mix = refs.sum(1, keepdims=True).repeat(2, axis=1)
    assert out["sdr_mix"] == pytest.approx(SEP.bss_eval(refs, mix)["sdr"].mean())
    assert out["sdr"] > out["sdr_mix"]
    assert metric.compute(group="a")["sdr"] == pytest.approx(direct["sdr"][0].mean())


def test_si_sdr_hand():
    t = np.linspace(0, 1, 1000)
    ref = np.sin(2 * np.pi * 5 * t)[None, None]
    noise = np.cos(2 * np.pi * 7 * t)[None, None]  # orthogonal to ref over whole periods
    ref = ref - ref.mean()
    noise = noise - noise.mean()
    noise = noise - (noise * ref).sum() / (ref * ref).sum() * ref
    est = 3 * ref + noise  # scaling is ignored: target 3 ref, error = noise
    expected = 10 * np.log10((9 * (ref**2).sum()) / (noise**2).sum())
    assert SEP.si_sdr(ref, est)[0, 0] == pytest.approx(expected, abs=1e-6)


# -------------------------------------------------------------------------------------------- retrieval
def test_retrieval_hand():
    v = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float64)
    a = np.array([[1, 0.1], [1, 0.2], [0.9, 1]], dtype=np.float64)
    labels = np.array([0, 1, 0])
    # cos(v_i, a_j): v0 -> a0 best (pair, hit); v1 -> a2 best (miss); v2 -> a2 best (hit)
    ir = R.ir_acc(v, a)
    assert ir["ir_acc_v2a"] == pytest.approx(2 / 3)
    # audio queries: a0 -> v0 (hit); a1 -> v0 (miss); a2 -> v2 (hit)
    assert ir["ir_acc_a2v"] == pytest.approx(2 / 3)
    rk = R.recall_at_k(v, a, ks=(1, 2, 3))
    # a1 = (1, 0.2): cos to v0 0.981, v2 0.832, v1 0.196 -> its pair is at rank 2; a->i ranks (0, 2, 0)
    # v1 = (0, 1): cos to a2 0.743, a1 0.196, a0 0.0995 -> rank 1; i->a ranks (0, 1, 0)
    assert rk["a2i_r@1"] == pytest.approx(2 / 3) and rk["a2i_r@2"] == pytest.approx(2 / 3)
    assert rk["a2i_r@3"] == 1.0 and rk["i2a_r@2"] == 1.0
    nn = R.nn_acc(v, a, labels)
    # xNN, self excluded: v0 -> a1 (0.981 > a2 0.669; label 1, miss); v1 -> a2 (0.743; label 0, miss);
    # v2 -> a1 (0.832 > a0 0.774; label 1, miss)
    assert nn["xnn_acc_v"] == 0.0
    # audio queries: a0 -> v2 (0.774; hit); a1 -> v0 (0.981; miss); a2 -> v1 (0.743 > v0 0.669; miss)
    assert nn["xnn_acc_a"] == pytest.approx(1 / 3)
    # wNN visual: v0 -> v2 (0, hit); v1 -> v2 (0 vs 1, miss); v2 -> v0 (tie with v1 -> first index, hit)
    assert nn["wnn_acc_v"] == pytest.approx(2 / 3)
    summary = R.retrieval_summary(v, a, labels)
    assert {"ir_acc", "xnn_acc", "wnn_acc", "a2i_r@10", "i2a_r@1", "n"} <= set(summary)


def test_retrieval_perfect_and_train_reference():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((20, 8))
    labels = np.arange(20) % 4
    assert R.ir_acc(e, e)["ir_acc"] == 1.0
    assert R.recall_at_k(e, e)["a2i_r@1"] == 1.0
    out = R.nn_acc(e, e, labels, nn_reference="train", ref_visual=e, ref_audio=e, ref_labels=labels)
    assert out["xnn_acc"] == 1.0  # self not excluded with an external reference set
    with pytest.raises(ValueError):
        R.nn_acc(e, e, labels, nn_reference="train")


# ------------------------------------------------------------------------------------------ segmentation
def test_miou_empty_gt_convention():
    pred = np.zeros((2, 4, 4), dtype=np.float32)
    pred[0, 0, :2] = 0.9  # 2 false positives on an empty GT
    gt = np.zeros((2, 4, 4), dtype=bool)
    # empty GT: IoU = true-negative area / HW = 14/16; empty prediction too: 16/16
    np.testing.assert_allclose(S.miou_frames(pred, gt), [14 / 16, 1.0], atol=1e-6)
    gt2 = np.zeros((1, 4, 4), dtype=bool)
    gt2[0, 0, :3] = True
    p2 = np.zeros((1, 4, 4), dtype=np.float32)
    p2[0, 0, 1:4] = 0.6
    # non-empty GT: inter 2, union 4
    np.testing.assert_allclose(S.miou_frames(p2, gt2), [0.5], atol=1e-6)
    # logits give the same result as probabilities
    logit = np.log(p2 / (1 - p2 + 1e-12) + 1e-12)
    np.testing.assert_allclose(S.miou_frames(logit, gt2, input="logit"), [0.5], atol=1e-6)


def _fscore_loop(p, g, beta2=0.3):
    th = torch.linspace(0, 1 - 1e-10, 255)
    pt, gt = torch.from_numpy(p), torch.from_numpy(g.astype(np.float32))
    f = torch.zeros(255)
    n = 0
    for i in range(len(pt)):
        if gt[i].sum() == 0:
            continue
        for k in range(255):
            y = (pt[i] >= th[k]).float()
            tp = (y * gt[i]).sum()
            prec, rec = tp / (y.sum() + 1e-20), tp / (gt[i].sum() + 1e-20)
            val = (1 + beta2) * prec * rec / (beta2 * prec + rec)
            f[k] += 0 if torch.isnan(val) else val
        n += 1
    return float((f / max(n, 1)).max())


def test_fscore_hand_and_loop():
    # one frame, GT = the pixels with p = 1.0 and p = 0.3:
    # 0 < t <= 0.3: 3 px predicted, TP 2 -> P 2/3, R 1 -> F = 1.3 * 2/3 / (0.2 + 1) = 0.7222
    # 0.3 < t <= 0.6: 2 px, TP 1 -> P 1/2, R 1/2 -> F = 0.65 * 0.5 / (0.15 + 0.5) = 0.5
    # t > 0.6 (incl. the last threshold, 1.0 in float32): only p = 1 -> P 1, R 1/2 -> 0.65 / 0.8 = 0.8125
    p = np.array([[[1.0, 0.6], [0.3, 0.0]]], dtype=np.float32)
    g = np.array([[[1, 0], [1, 0]]], dtype=bool)
    f, has = S.fscore_curves(p, g)
    # at t = 0 everything is predicted: P 1/2, R 1 -> 1.3 * 0.5 / (0.15 + 1) = 0.5652
    assert f[0, 0] == pytest.approx(1.3 * 0.5 / 1.15)
    assert f[0, 1] == pytest.approx(1.3 * (2 / 3) / 1.2)
    assert f[0, 100] == pytest.approx(0.5)  # t = 100/254 ~ 0.39
    assert f[0, -1] == pytest.approx(0.8125) == f.max()
    rng = np.random.default_rng(0)
    pr = rng.random((4, 6, 6)).astype(np.float32)
    gr = rng.random((4, 6, 6)) > 0.6
    gr[2] = False
    metric = S.SegmentationMetric()
    metric.update(pr, gr)
    assert metric.compute()["fscore"] == pytest.approx(_fscore_loop(pr, gr), abs=1e-6)
    assert has.all()


def test_fscore_batches_video_vs_all():
    rng = np.random.default_rng(1)
    p = rng.random((10, 8, 8)).astype(np.float32)
    g = rng.random((10, 8, 8)) > 0.5
    g[5:] = False  # the second video has no GT at all -> contributes 0 in parity mode
    m = S.SegmentationMetric(fscore_batch="video")
    m.update(p, g, videos=["v1"] * 5 + ["v2"] * 5)
    out = m.compute()
    assert out["n_batches"] == 2
    assert out["fscore_video"] == pytest.approx(_fscore_loop(p[:5], g[:5]) / 2, abs=1e-6)
    assert out["fscore_all"] == pytest.approx(_fscore_loop(p[:5], g[:5]), abs=1e-6)
    assert out["miou"] == pytest.approx(np.mean([S.miou_frames(p[:5], g[:5]).mean(),
                                                 S.miou_frames(p[5:], g[5:]).mean()]))
    assert S.SegmentationMetric(fscore_batch="all").__class__ is S.SegmentationMetric
    with pytest.raises(ValueError):
        S.SegmentationMetric(fscore_batch="batch")
