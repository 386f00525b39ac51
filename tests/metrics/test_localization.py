"""Single-source localization metrics: hand-computed cases for every flag plus property tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import auc as sk_auc
from sklearn.metrics import average_precision_score

from avbench.metrics import localization as L
from avbench.metrics.localization import PRESETS, LocalizationMetric, LocProtocol

RAMP = np.arange(16, dtype=np.float32).reshape(1, 4, 4)  # values 0..15, no ties


def proto(**kw) -> LocProtocol:
    base = dict(upsample="none", norm="none", thr_rule="median", bin_cmp="ge", success_cmp="ge")
    base.update(kw)
    return LocProtocol(**base)


# ----------------------------------------------------------------------------------------------- flags
def test_presets_flags():
    assert set(PRESETS) >= {"ezvsl_test", "stonemo_validate", "slavc_test_relative", "slavc_test_absolute", "lvs",
                            "sslalignment", "sslalignment_adaptive", "avgn"}
    assert PRESETS["ezvsl_test"].upsample == "bilinear_ac1" and PRESETS["ezvsl_test"].norm == "minmax"
    assert PRESETS["stonemo_validate"].upsample == "bicubic_ac0"
    assert PRESETS["slavc_test_absolute"].thr_rule == "absolute@0.5" and PRESETS["slavc_test_absolute"].norm == "abs_cos"
    assert PRESETS["lvs"].bin_cmp == "gt" and PRESETS["lvs"].norm == "lvs_invneg"
    assert PRESETS["sslalignment_adaptive"].thr_rule == "adaptive_gt"
    avgn = PRESETS["avgn"]
    assert avgn.replace(name="stonemo_validate", success_cmp="ge") == PRESETS["stonemo_validate"]
    with pytest.raises(ValueError):
        LocProtocol(thr_rule="absolute@x")
    with pytest.raises(ValueError):
        LocProtocol(norm="zscore")


def test_norm_modes_hand():
    s = np.array([[[1, 3], [5, 9]]], dtype=np.float32)
    # minmax: (s - 1) / 8
    np.testing.assert_allclose(L.normalize(s, "minmax"), [[[0, 0.25], [0.5, 1]]])
    # lvs_invneg: 1 - minmax(-s) = 1 - (-s + 9) / 8 = minmax(s)
    np.testing.assert_allclose(L.normalize(s, "lvs_invneg"), [[[0, 0.25], [0.5, 1]]])
    cos = np.array([[[-1, 0], [0.5, 1]]], dtype=np.float32)
    # abs_cos: (cos + 1) / 2, no min-max
    np.testing.assert_allclose(L.normalize(cos, "abs_cos"), [[[0, 0.5], [0.75, 1]]])
    # with tau = 0.1 the model gives S = cos / tau = 10 cos; (S + 10) / 20 is again (cos + 1) / 2
    np.testing.assert_allclose(L.normalize(cos * 10, "abs_cos", tau=0.1), [[[0, 0.5], [0.75, 1]]])
    half = np.array([[[0, 0], [0.5, 0.5]]], dtype=np.float32)
    # abs_cos_minmax: (0.5, 0.5, 0.75, 0.75) -> minmax -> (0, 0, 1, 1)
    np.testing.assert_allclose(L.normalize(half, "abs_cos_minmax"), [[[0, 0], [1, 1]]])
    np.testing.assert_array_equal(L.normalize(s, "none"), s)
    flat = np.full((1, 2, 2), 0.3, dtype=np.float32)
    np.testing.assert_array_equal(L.normalize(flat, "minmax"), flat)  # max = min: unchanged


def test_upsample_modes_hand():
    m = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    # align_corners=True 2->3: the middle sample is the average of its neighbours
    out = L.upsample(m, (3, 3), "bilinear_ac1")[0]
    np.testing.assert_allclose(out[0], [0, 0.5, 1])
    np.testing.assert_allclose(out[1, 1], 1.5)
    np.testing.assert_allclose(L.upsample(m, (3, 3), "bicubic_ac1")[0][[0, 0, 2, 2], [0, 2, 0, 2]], [0, 1, 2, 3])
    # nearest 2->4 repeats every pixel twice
    np.testing.assert_array_equal(L.upsample(m, (4, 4), "nearest")[0][0], [0, 0, 1, 1])
    # cv2_linear 2->4: half-pixel centres at x = -0.25, 0.25, 0.75, 1.25 -> clamp, 0.25, 0.75, clamp
    np.testing.assert_allclose(L.upsample(m, (4, 4), "cv2_linear")[0][0], [0, 0.25, 0.75, 1])
    # area 4->2 averages 2x2 blocks
    big = torch.arange(16.0).reshape(1, 4, 4)
    np.testing.assert_allclose(L.upsample(big, (2, 2), "area")[0], [[2.5, 4.5], [10.5, 12.5]])
    # bicubic align_corners=False overshoots at the border unlike bilinear
    assert not torch.allclose(L.upsample(m, (4, 4), "bicubic_ac0"), L.upsample(m, (4, 4), "cv2_linear"))
    with pytest.raises(ValueError):
        L.upsample(m, (4, 4), "none")


def test_threshold_rules_hand():
    gt = np.zeros((1, 4, 4), dtype=np.float32)
    gt[0, 0, :3] = 1  # 3 GT pixels
    # median: thr = sorted[int(0.5 * 16)] = 8 -> ge keeps 8..15 (8 pixels), gt keeps 9..15 (7)
    assert L.binarize(RAMP, gt, proto()).sum() == 8
    assert L.binarize(RAMP, gt, proto(bin_cmp="gt")).sum() == 7
    # adaptive_gt: k = 3, thr = sorted[16 - 3] = 13 -> ge keeps 13, 14, 15
    assert L.binarize(RAMP, gt, proto(thr_rule="adaptive_gt")).sum() == 3
    # adaptive_gt with an empty GT: k = HW/2 = 8
    assert L.binarize(RAMP, np.zeros_like(gt), proto(thr_rule="adaptive_gt")).sum() == 8
    # absolute@5: values >= 5 -> 11 pixels; > 5 -> 10
    assert L.binarize(RAMP, gt, proto(thr_rule="absolute@5")).sum() == 11
    assert L.binarize(RAMP, gt, proto(thr_rule="absolute@5", bin_cmp="gt")).sum() == 10
    # frac_max@0.5: thr = 7.5 -> 8..15
    assert L.binarize(RAMP, gt, proto(thr_rule="frac_max@0.5")).sum() == 8
    # the threshold values themselves
    np.testing.assert_allclose(L.thresholds(RAMP, gt, proto()), [8])
    np.testing.assert_allclose(L.thresholds(RAMP, gt, proto(thr_rule="adaptive_gt")), [13])


def test_median_ties_ge_vs_gt():
    # 16 pixels, 10 of them tied at the median value 1: ge keeps all 10 + the 2 above, gt only the 2 above
    p = np.array([0, 0, 0, 0] + [1] * 10 + [2, 2], dtype=np.float32).reshape(1, 4, 4)
    gt = np.ones((1, 4, 4), dtype=np.float32)
    assert L.binarize(p, gt, proto()).sum() == 12
    assert L.binarize(p, gt, proto(bin_cmp="gt")).sum() == 2
    # the scorer counts the prediction on the sorted row (AP path): same counts, ties included, for both key
    # encodings (scores in [0, 2) pack into uint32 keys, negative scores into int64 keys)
    half = np.zeros((1, 4, 4), dtype=np.float32)
    half.reshape(-1)[::2] = 1  # GT on every other pixel: 2 of the 4 lowest, 5 of the tied 10, 1 of the top 2
    for shift in (0.0, -5.0):
        for cmp, n_pred, hit in (("ge", 12, 6), ("gt", 2, 1)):
            out = L.evaluate_maps(p + np.float32(shift), half, proto(bin_cmp=cmp), compute_ap=True)
            assert out["n_pred"][0] == n_pred and out["ciou"][0] == pytest.approx(hit / (8 + n_pred - hit))


def test_ciou_consensus_hand():
    g = np.zeros((1, 4, 4), dtype=np.float32)
    g[0, 0, :2] = 1.0  # two full-consensus pixels
    g[0, 1, :2] = 0.5  # two half pixels
    p = np.zeros((1, 4, 4), dtype=bool)
    p[0, 0, 0] = p[0, 1, 0] = p[0, 3, 3] = True
    # numerator 1 + 0.5 = 1.5; denominator sum(G) = 3 plus one FP on G = 0 -> 1.5 / 4
    np.testing.assert_allclose(L.ciou(p, g), [0.375])
    # binary IoU vs G > 0: inter 2, union 4 + 1 = 5
    np.testing.assert_allclose(L.iou(p, g), [0.4])
    # empty GT and empty prediction: 0/0 -> 0; empty GT with a prediction: 0
    np.testing.assert_array_equal(L.ciou(np.zeros((2, 4, 4), bool) | np.eye(4, dtype=bool)[None] * [[[0]], [[1]]],
                                         np.zeros((2, 4, 4))), [0, 0])


def test_success_rate_and_auc_hand():
    c = np.array([0.0, 0.5, 1.0])
    assert L.success_rate(c, 0.5, "ge") == pytest.approx(2 / 3)
    assert L.success_rate(c, 0.5, "gt") == pytest.approx(1 / 3)
    # SR curve: t=0 -> 1; t=0.05..0.5 -> 2/3; t=0.55..1 -> 1/3
    # AUC = 0.05 * [(1 + 2/3)/2 + 9 * 2/3 + (2/3 + 1/3)/2 + 9 * 1/3] = 0.05 * 31/3
    assert L.auc(c) == pytest.approx(0.05 * 31 / 3)
    x, y = L.sr_curve(c)
    assert L.auc(c) == pytest.approx(sk_auc(x, y))
    assert y[0] == 1.0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_auc_equals_sklearn(values):
    x, y = L.sr_curve(values)
    assert L.auc(values) == pytest.approx(sk_auc(x, y), abs=1e-12)


def test_pixel_ap_hand():
    scores = np.array([[0.9, 0.8, 0.7, 0.6]], dtype=np.float32)
    labels = np.array([[1, 0, 1, 0]])
    # positives at ranks 1 and 3: AP = (1/1 + 2/3) / 2
    np.testing.assert_allclose(L.average_precision_rows(scores, labels), [(1 + 2 / 3) / 2])
    # ties: scores (1, 1, 0, 0), labels (0, 1, 1, 0): thresholds 1 -> P 1/2, R 1/2; 0 -> P 1/2, R 1 -> AP 1/2
    np.testing.assert_allclose(L.average_precision_rows(np.array([[1, 1, 0, 0]]), np.array([[0, 1, 1, 0]])), [0.5])
    assert np.isnan(L.average_precision_rows(scores, np.zeros((1, 4))))[0]  # no positives: undefined


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 80), st.integers(1, 5), st.booleans(), st.booleans())
def test_pixel_ap_equals_sklearn(seed, m, levels, quantise, negative):
    rng = np.random.default_rng(seed)
    s = rng.random((3, m)).astype(np.float32)
    if quantise:  # many ties
        s = np.round(s * levels) / levels
    if negative:  # exercises the int64 key path
        s = s - np.float32(0.7)
    lab = rng.random((3, m)) < rng.random()
    ours = L.average_precision_rows(s, lab)
    for i in range(3):
        if lab[i].any():
            assert ours[i] == pytest.approx(average_precision_score(lab[i], s[i]), abs=1e-12)
        else:
            assert np.isnan(ours[i])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 300),
       st.sampled_from(["random", "low", "middle", "one", "equal", "zeros"]))
def test_radix_sort_rows_equals_np_sort(seed, m, kind):
    """The compiled LSD radix sort behind :func:`L._sorted_keys` (uint32 keys < 2**31), with 4, 3, 2, 1 and 0
    executed byte passes (a byte that is constant over a row is skipped)."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 2**31, (4, m), dtype=np.uint32)
    if kind == "low":  # constant low byte: 3 of the 4 byte passes run
        keys &= np.uint32(0xFFFFFF00)
    elif kind == "middle":  # constant top and low bytes: 2 passes run
        keys &= np.uint32(0xFFFF00)
    elif kind == "one":  # a single varying byte: 1 pass runs
        keys &= np.uint32(0xFF00)
    elif kind == "equal":
        keys[:] = keys[:, :1] if m else keys
    elif kind == "zeros":
        keys[:] = 0
    ours = L._radix_sort_rows(keys)
    assert ours.dtype == np.uint32 and ours.flags.c_contiguous
    np.testing.assert_array_equal(ours, np.sort(keys, axis=1))
    assert L._radix_sort_rows.signatures  # the compiled (numba) path ran, not a Python fallback


def test_sorted_keys_signed_zero_and_fallback():
    s = np.array([[0.5, -0.0, 0.0, 1.5, 0.25], [1.0, 0.0, 0.75, 0.5, 0.125]], dtype=np.float32)
    lab = np.array([[1, 0, 1, 0, 1], [0, 1, 0, 1, 0]], dtype=bool)
    keys = L._sorted_keys(s, lab)
    assert keys.dtype == np.uint32  # [0, 2) incl. -0.0: the radix path
    expected = np.sort(((s + np.float32(0)).view(np.uint32) << np.uint32(1)) | lab, axis=1)  # -0.0 ties +0.0
    np.testing.assert_array_equal(keys, expected)
    np.testing.assert_array_equal(L._decode_keys(keys), np.sort(np.abs(s), axis=1))
    wide = L._sorted_keys(s * 3 - 1, lab)  # outside [0, 2): int64 keys, numpy sort
    assert wide.dtype == np.int64
    np.testing.assert_array_equal(L._decode_keys(wide), np.sort(s * 3 - 1, axis=1))
    np.testing.assert_array_equal(wide & 1, keys & 1)  # same order, so the labels ride along identically
    with pytest.raises(ValueError, match="NaN"):
        L._sorted_keys(np.where(lab, np.float32(np.nan), s), lab)


def test_oracle_hand():
    g = np.zeros((3, 8, 8), dtype=np.float32)
    g[0, :2, :4] = 1  # area 8, g = 1/8 -> median ceiling 2g = 0.25
    g[1, :5, :] = 1  # area 40, g = 5/8 -> 0.5/g = 0.8
    med = proto()
    np.testing.assert_allclose(L.oracle_ciou(g, med), [0.25, 0.8, 0.0])
    # bin_cmp=gt predicts 31 pixels: 8/31 and 31/40
    np.testing.assert_allclose(L.oracle_ciou(g, proto(bin_cmp="gt")), [8 / 31, 31 / 40, 0.0])
    np.testing.assert_allclose(L.oracle_ciou(g, proto(thr_rule="adaptive_gt")), [1, 1, 0])
    np.testing.assert_allclose(L.oracle_ciou(g, proto(thr_rule="adaptive_gt", bin_cmp="gt")), [7 / 8, 39 / 40, 0])
    np.testing.assert_allclose(L.oracle_ciou(g, proto(thr_rule="absolute@0.5")), [1, 1, 0])
    # consensus: 20 ones + 30 halves (sum 35); 32 pixels -> 20 + 0.5 * 12 = 26 over 35
    c = np.zeros((1, 8, 8), dtype=np.float32)
    c.reshape(-1)[:20] = 1
    c.reshape(-1)[20:50] = 0.5
    np.testing.assert_allclose(L.oracle_ciou(c, med), [26 / 35])
    # general-valued GT (0.25 present) uses the top-n sum: 32 x 0.25 over 64 x 0.25
    q = np.full((1, 8, 8), 0.25, dtype=np.float32)
    np.testing.assert_allclose(L.oracle_ciou(q, med), [0.5])


def test_oracle_matches_perfect_ranking():
    # A map that ranks GT pixels first reaches the oracle ceiling exactly.
    rng = np.random.default_rng(1)
    g = np.zeros((4, 16, 16), dtype=np.float32)
    for i, (h, w) in enumerate([(3, 4), (10, 12), (16, 16), (8, 8)]):
        g[i, :h, :w] = 1
    perfect = g + rng.random(g.shape).astype(np.float32) * 0.01
    for name in ("ezvsl_test", "sslalignment", "sslalignment_adaptive"):
        pr = PRESETS[name].replace(upsample="none")
        scores = L.evaluate_maps(perfect, g, pr)
        np.testing.assert_allclose(scores["ciou"], scores["oracle_ciou"], atol=1e-12)


def test_perfect_map_scores_maximum():
    g = np.zeros((2, 8, 8), dtype=np.float32)
    g[0, 2:6, 1:5] = 1
    g[1, :, :4] = 1
    for rule in ("adaptive_gt", "absolute@0.5", "frac_max@0.5"):
        metric = LocalizationMetric(proto(thr_rule=rule, norm="minmax"), thresholds=(0.5, 1.0))
        metric.update(g, g)
        out = metric.compute()
        assert out["avg_ciou"] == 1.0 and out["ciou_sr@1"] == 1.0 and out["pixel_ap"] == 1.0
        assert out["auc"] == pytest.approx(1.0)


def _loop_reference(maps, gts, pr):
    """Per-sample straightforward implementation (numpy + sklearn) to check the vectorised path."""
    out = []
    for m, g in zip(maps, gts, strict=True):
        p = L.normalize(L.upsample(m[None], g.shape, pr.upsample), pr.norm)[0]
        order = np.sort(p.ravel())
        if pr.thr_rule == "median":
            thr = order[int(0.5 * p.size)]
        else:
            k = int((g > 0).sum()) or p.size // 2
            thr = order[p.size - k]
        b = p >= thr if pr.bin_cmp == "ge" else p > thr
        den = g.sum() + (b & (g == 0)).sum()
        c = (b * g).sum() / den if den > 0 else 0.0
        ap = average_precision_score(g.ravel() > 0, p.ravel()) if g.any() else np.nan
        out.append((c, ap))
    return np.array(out)


@pytest.mark.parametrize("name", ["ezvsl_test", "stonemo_validate", "slavc_test_relative", "lvs",
                                  "sslalignment_adaptive"])
def test_vectorised_equals_loop(name):
    rng = np.random.default_rng(0)
    maps = torch.from_numpy(rng.standard_normal((12, 7, 7)).astype(np.float32))
    gts = np.zeros((12, 56, 56), dtype=np.float32)
    for i in range(11):  # the last one stays empty
        y, x = rng.integers(0, 40, 2)
        gts[i, y:y + rng.integers(2, 16), x:x + rng.integers(2, 16)] = 1
    pr = PRESETS[name]
    scores = L.score_maps(L.prepare_maps(maps, (56, 56), pr), gts, pr, chunk=5, workers=2)
    ref = _loop_reference(maps, gts, pr)
    np.testing.assert_allclose(scores["ciou"], ref[:, 0], atol=1e-12)
    np.testing.assert_allclose(scores["pixel_ap"], ref[:, 1], atol=1e-12)
    # binarize() (partition path) agrees with the sorted-key path
    b = L.binarize(maps, gts, pr)
    np.testing.assert_allclose(L.ciou(b, gts), scores["ciou"], atol=1e-12)


def test_metric_accumulates_groups_and_summarize():
    rng = np.random.default_rng(3)
    maps = rng.standard_normal((10, 7, 7)).astype(np.float32)
    gts = np.zeros((10, 28, 28), dtype=np.float32)
    gts[:, 5:20, 3:25] = 1
    groups = ["heard"] * 6 + ["unheard"] * 4
    one = LocalizationMetric("ezvsl_test")
    one.update(maps, gts, groups=groups, ids=[f"c{i}" for i in range(10)])
    two = LocalizationMetric("ezvsl_test")
    two.update(maps[:4], gts[:4], groups=groups[:4])
    two.update(maps[4:], gts[4:], groups=groups[4:])
    a, b = one.compute(), two.compute()
    for key in ("avg_ciou", "auc", "ciou_sr@0.5", "pixel_ap", "oracle_sr@0.5", "n"):
        assert a[key] == pytest.approx(b[key])
    df = one.per_sample()
    assert list(df.columns[:2]) == ["sample_id", "group"] and len(df) == 10
    table = L.summarize(df, by="group")
    assert table.loc["heard", "n"] == 6
    assert table.loc["unheard", "avg_ciou"] == pytest.approx(one.compute(group="unheard")["avg_ciou"])
    assert L.summarize(df, by=None).loc["all", "auc"] == pytest.approx(a["auc"])
    assert set(one.compute_by_group()) == {"heard", "unheard"}
    assert "clip_id" not in two.per_sample().columns  # callers insert their own id column


def test_visible_only_and_success_cmp():
    # Two samples: exact cIoU 0.5 and an empty GT.
    g = np.zeros((2, 2, 2), dtype=np.float32)
    g[0, 0, :] = 1
    p = np.zeros((2, 2, 2), dtype=np.float32)
    p[0, 0, 0] = 1  # cIoU = 1/2
    base = proto(thr_rule="absolute@0.5")
    ge = LocalizationMetric(base, thresholds=(0.5,))
    ge.update(p, g)
    assert ge.compute()["ciou_sr@0.5"] == 0.5
    gt = LocalizationMetric(base.replace(success_cmp="gt", visible_only=True), thresholds=(0.5,))
    gt.update(p, g)
    out = gt.compute()
    assert out["n"] == 1 and out["ciou_sr@0.5"] == 0.0
