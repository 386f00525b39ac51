"""Multi-source (class-aware cIoU, CAP, PIAP) and SLAVC extended-set metrics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from avbench.metrics import extended as E
from avbench.metrics.localization import LocProtocol, average_precision_rows
from avbench.metrics.multisource import MultiSourceMetric, ap_graded_scores, piap_from_matrix

ABS = LocProtocol("abs_test", upsample="none", norm="none", thr_rule="absolute@0.5", bin_cmp="ge", success_cmp="ge")


def two_source_case():
    g = np.zeros((1, 2, 4, 4), dtype=np.float32)
    g[0, 0, :2, :2] = 1  # source 0: top-left 2x2
    g[0, 1, 2:, 2:] = 1  # source 1: bottom-right 2x2
    return g


def test_class_aware_ciou_hand():
    g = two_source_case()
    maps = np.zeros_like(g)
    maps[0, 0] = g[0, 0]  # perfect map for source 0 -> cIoU 1
    maps[0, 1, 2:, 2:3] = 1  # half of source 1 -> cIoU 2/4
    m = MultiSourceMetric(ABS, thresholds=(0.3, 0.8))
    m.update(maps, g)
    out = m.compute()
    assert out["avg_class_ciou"] == pytest.approx(0.75)  # (1 + 0.5) / 2
    assert out["class_ciou_sr@0.3"] == 1.0 and out["class_ciou_sr@0.8"] == 0.0
    assert out["pairs_sr@0.8"] == 0.5  # pair-level: one of two pairs above 0.8
    # agnostic: max map covers 4 + 2 of the 8 union pixels -> 6/8
    assert out["avg_agnostic_ciou"] == pytest.approx(0.75)
    # CAP: AP of each class map vs its own GT: 1 and AP((score 1 on 2 of 4 positives, 0 elsewhere)) =
    # threshold 1: P 1, R 1/2; threshold 0: P 4/16, R 1 -> 1/2 + 1/2 * 1/4 = 0.625
    assert out["cap"] == pytest.approx((1 + 0.625) / 2)
    assert out["cap_n"] == 2 and out["cap_skipped"] == 0


def test_valid_mask_and_empty_gt_skipped():
    g = two_source_case()
    g2 = np.concatenate([g, g])
    g2[1, 1] = 0  # second sample: source 1 has an empty GT
    maps = g2.copy()
    m = MultiSourceMetric(ABS)
    m.update(maps, g2, valid=np.array([[True, True], [True, False]]))
    out = m.compute()
    assert out["avg_class_ciou"] == 1.0  # the invalid source is not averaged in
    assert out["cap_n"] == 3 and out["cap_skipped"] == 0  # invalid pairs are not "skipped", just absent
    m2 = MultiSourceMetric(ABS)
    m2.update(maps, g2)
    assert m2.compute()["cap_skipped"] == 1 and m2.compute()["cap_n"] == 3


def test_piap_hand_and_permutation_invariance():
    g = two_source_case()
    rng = np.random.default_rng(0)
    maps = np.stack([g[0, 1], g[0, 0]])[None] + rng.random((1, 2, 4, 4)).astype(np.float32) * 0.1
    m = MultiSourceMetric(ABS)
    m.update(maps, g)  # maps in swapped order: best assignment still pairs them correctly -> 1
    assert m.compute()["piap"] == pytest.approx(1.0)
    # a class-aware score with the given order would be far lower
    assert m.compute()["cap"] < 0.5
    # the assignment helper: max over permutations of the mean
    assert piap_from_matrix(np.array([[0.2, 0.9], [0.8, 0.1]])) == pytest.approx(0.85)
    assert piap_from_matrix(np.array([[0.3, 0.6]])) == pytest.approx(0.6)  # one non-empty GT, two maps


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 1000))
def test_piap_invariant_to_map_order(seed):
    rng = np.random.default_rng(seed)
    g = (rng.random((2, 3, 6, 6)) > 0.6).astype(np.float32)
    maps = rng.random((2, 3, 6, 6)).astype(np.float32)
    a = MultiSourceMetric(ABS)
    a.update(maps, g)
    b = MultiSourceMetric(ABS)
    b.update(maps[:, [2, 0, 1]], g)
    assert a.compute()["piap"] == pytest.approx(b.compute()["piap"])


def test_piap_k1_is_pixel_ap():
    rng = np.random.default_rng(5)
    g = (rng.random((3, 1, 8, 8)) > 0.5).astype(np.float32)
    maps = rng.random((3, 1, 8, 8)).astype(np.float32)
    m = MultiSourceMetric(ABS)
    m.update(maps, g)
    expected = np.mean([average_precision_score(g[i, 0].ravel(), maps[i, 0].ravel()) for i in range(3)])
    assert m.compute()["piap"] == pytest.approx(expected)


def test_piap_avgn_code_parity_variant():
    g = two_source_case()
    maps = np.zeros_like(g)
    maps[0, 0, 0, :] = 1  # predicts row 0 (4 px); GT covers 2 of them plus 2 more
    maps[0, 1] = g[0, 1]
    m = MultiSourceMetric(ABS, piap_impl="avgn_code")
    m.update(maps, g)
    # source 0: y_true = prediction (row 0), y_score = GT: threshold 1 -> GT px (0,0),(0,1),(1,0),(1,1):
    # 2 of them predicted -> P 1/2, R 2/4; threshold 0 -> P 4/16, R 1 -> AP = 1/2*1/2 + 1/4*1/2 = 0.375
    # source 1: prediction == GT -> AP 1
    assert m.compute()["piap"] == pytest.approx((0.375 + 1.0) / 2)
    assert m.compute()["piap_avgn_code"] == m.compute()["piap"]
    with pytest.raises(ValueError):
        MultiSourceMetric(ABS, piap_impl="other")
    # The default (clean) metric reports the code's variant beside its own PIAP, under its own name. With the
    # maps given in swapped order the clean PIAP still finds the right assignment (as above), while the code's
    # variant pairs map k with GT k: each binarised map (4 px) lies off its GT, so all its positives score 0
    # -> threshold 1: P 0, R 0; threshold 0: P 4/16, R 1 -> AP 0.25 for both sources.
    clean = MultiSourceMetric(ABS)
    clean.update(maps[:, ::-1].copy(), g)
    out = clean.compute()
    assert out["piap_impl"] == "clean" and out["piap"] == pytest.approx((0.375 + 1.0) / 2)
    assert out["piap_avgn_code"] == pytest.approx(0.25)
    assert out["piap_avgn_code_n"] == 1 and out["piap_avgn_code_skipped"] == 0
    assert list(clean.per_sample()["piap_avgn_code"]) == pytest.approx([0.25])


def test_piap_avgn_code_empty_prediction_is_skipped():
    g = two_source_case()
    maps = np.zeros_like(g)  # nothing above the absolute threshold: empty predictions, AP undefined
    m = MultiSourceMetric(ABS)
    m.update(np.concatenate([maps, g]), np.concatenate([g, g]))
    out = m.compute()
    assert out["piap_avgn_code_n"] == 1 and out["piap_avgn_code_skipped"] == 1
    assert out["piap_avgn_code"] == pytest.approx(1.0)  # second sample: prediction == GT


# -------------------------------------------------------------------------------------------- extended
# Four samples: conf (0.9, 0.8, 0.7, 0.6), boxes (1, 1, 0, 1), cIoU (0.6, 0.2, 0, 0.7); t = 0.5.
# Hits: s0, s3. Visible miss: s1. Negative: s2.
CONF = np.array([0.9, 0.8, 0.7, 0.6])
BB = np.array([1, 1, 0, 1])
CIOU = np.array([0.6, 0.2, 0.0, 0.7])


def test_pr_hand():
    p, r = E.pr_at(CONF, CIOU, BB, [0.9, 0.8, 0.7, 0.6], 0.5)
    # c=0.9: TP 1, FP 0, FN 2 -> (1, 1/3); 0.8: TP 1, FP 1, FN 1 -> (1/2, 1/2)
    # 0.7: TP 1, FP 2 (miss + negative), FN 1 -> (1/3, 1/2); 0.6: TP 2, FP 2, FN 0 -> (1/2, 1)
    np.testing.assert_allclose(p, [1, 0.5, 1 / 3, 0.5])
    np.testing.assert_allclose(r, [1 / 3, 0.5, 0.5, 1])
    p, r = E.pr_at(CONF, CIOU, BB, [2.0], 0.5)  # nothing predicted: P = 1 by convention, R = 0
    assert (p[0], r[0]) == (1.0, 0.0)


def test_slavc_ap_hand():
    # thresholds sort(conf)[:-1][::-1] = (0.8, 0.7, 0.6): P (1/2, 1/3, 1/2), R (1/2, 1/2, 1)
    # running max P (1/2, 1/2, 1/2); AP = 1/2 * 0 + 1/2 * 1/2 = 0.25
    assert E.ap_slavc(CONF, CIOU, BB, 0.5) == pytest.approx(0.25)
    # voc_exact over (0.9, 0.8, 0.7, 0.6): running max P (1, 1/2, 1/2, 1/2), dR (1/3, 1/6, 0, 1/2)
    assert E.ap_voc_exact(CONF, CIOU, BB, 0.5) == pytest.approx(1 / 3 + 1 / 12 + 1 / 4)


def test_slavc_ap_subsampling_step():
    # N = 400 -> step 2: thresholds are every second confidence from the second-highest down
    rng = np.random.default_rng(0)
    conf = rng.random(400)
    ciou = rng.random(400)
    bb = (rng.random(400) > 0.3).astype(int)
    c = np.sort(conf)[:-1][::-2]
    p, r = E.pr_at(conf, ciou, bb, c, 0.5)
    p_hat = np.maximum.accumulate(p[::-1])[::-1]
    assert E.ap_slavc(conf, ciou, bb, 0.5) == pytest.approx(np.sum(p_hat[:-1] * np.diff(r)))
    assert len(c) == 200


def test_extended_metrics_hand():
    area = np.array([500, 5000, 0, 30000])  # small, medium, -, huge (224^2 pixels)
    out = E.extended_metrics(CONF, CIOU, BB, area, ious=(0.5,))
    # F1 list thresholds (0.6, 0.7, 0.8, 0.9): F1 (2/3, 0.4, 0.5, 0.5) -> max 2/3
    assert out["maxf1_all@0.5"] == pytest.approx(2 / 3)
    # default confidence threshold 0.5 admits everything: P 1/2, R 1 -> F1 2/3
    assert out["f1_all@0.5"] == pytest.approx(2 / 3)
    assert out["precision_all@0.5"] == pytest.approx(0.5)  # 2 hits / 4 samples
    assert out["precision_visible@0.5"] == pytest.approx(2 / 3) == out["locacc@0.5"]
    assert out["ap_all@0.5"] == pytest.approx(0.25)
    assert out["n_small"] == 1 and out["n_medium"] == 1 and out["n_huge"] == 1 and out["n_large"] == 0
    assert np.isnan(out["ap_large@0.5"])  # empty bucket: NaN, no crash
    assert out["precision_small@0.5"] == 1.0 and out["precision_medium@0.5"] == 0.0
    assert list(E.size_bucket([32**2 - 1, 32**2, 96**2, 144**2])) == ["small", "medium", "large", "huge"]


def test_extended_metric_from_maps():
    g = np.zeros((4, 8, 8), dtype=np.float32)
    g[0, :4, :4] = 1
    g[1, 4:, 4:] = 1
    maps = np.zeros((4, 8, 8), dtype=np.float32) - 1
    maps[0, :4, :4] = 1  # abs_cos -> 1 on the box, 0 elsewhere
    maps[1, :4, :4] = 1  # wrong place
    maps[2] = 0.2  # negative with a flat map
    pr = LocProtocol("x", upsample="none", norm="abs_cos", thr_rule="absolute@0.5")
    m = E.ExtendedMetric(pr, ious=(0.5,))
    m.update(maps, g, n_boxes=[1, 1, 0, 0])
    df = m.per_sample()
    # conf = mean of the top 16 pixel scores: sample 0 -> all 16 box pixels at 1
    assert df["conf"][0] == pytest.approx(1.0) and df["conf"][2] == pytest.approx(0.6)
    assert list(df["ciou"]) == pytest.approx([1.0, 0.0, 0.0, 0.0])
    out = m.compute()
    assert out["n_all"] == 4 and out["n_visible"] == 2 and out["locacc@0.5"] == 0.5
    with pytest.raises(ValueError):
        E.ExtendedMetric(pr, ap_impl="coco")


def test_average_precision_rows_shape_check():
    with pytest.raises(ValueError):
        average_precision_rows(np.zeros((2, 3)), np.zeros((2, 4)))


def test_confidence_read_from_absolute_scores_like_slavc_test():
    # Two cosine maps of the same shape, one strong (0.9 peak) and one weak (0.1 peak): min-max normalisation
    # (relative prediction) makes them identical, but SLAVC reads the confidence from the absolute score
    # (cos + 1) / 2 before that step, so the strong map is the more confident one.
    base = np.zeros((2, 4, 4), dtype=np.float32)
    base[:, :2, :2] = 1.0
    maps = np.stack([0.9 * base[0], 0.1 * base[1]])
    g = base.copy()
    rel = LocProtocol("rel", upsample="none", norm="abs_cos_minmax", thr_rule="median")
    m = E.ExtendedMetric(rel, ious=(0.5,))
    assert m.conf_norm == "abs_cos" and E.confidence_norm(LocProtocol(norm="minmax")) == "none"
    m.update(maps, g)
    # top ceil(16 / 4) = 4 scores are the 2x2 peak: (0.9 + 1) / 2 and (0.1 + 1) / 2
    assert list(m.per_sample()["conf"]) == pytest.approx([0.95, 0.55])
    # reading it from the min-max normalised map instead (the binarised one) loses the difference
    same = E.ExtendedMetric(rel, ious=(0.5,), conf_norm="abs_cos_minmax")
    same.update(maps, g)
    assert list(same.per_sample()["conf"]) == pytest.approx([1.0, 1.0])
    assert m.compute()["conf_norm"] == "abs_cos"
    with pytest.raises(ValueError):
        E.ExtendedMetric(rel, conf_norm="zscore")


def test_top_quarter_mean_takes_ceil_quarter():
    # SLAVC: sort(p)[-n // 4:] takes ceil(n / 4) values in Python (-6 // 4 == -2)
    p = np.array([[0.0, 1.0, 5.0, 2.0, 4.0, 3.0]], dtype=np.float32)
    assert E.top_quarter_mean(p)[0] == pytest.approx(4.5)
    assert E.top_quarter_mean(np.arange(16, dtype=np.float32).reshape(1, 4, 4))[0] == pytest.approx(13.5)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_ap_graded_scores_equals_sklearn(seed, consensus):
    rng = np.random.default_rng(seed)
    levels = np.array([0.0, 0.5, 1.0] if consensus else [0.0, 1.0], dtype=np.float32)
    scores = rng.choice(levels, size=(4, 30)).astype(np.float32)
    scores[0] = 0.0  # a row with a single score level
    labels = rng.random((4, 30)) < 0.3
    labels[1] = False  # no positives: undefined
    ours = ap_graded_scores(scores, labels)
    for i in range(4):
        if labels[i].any():
            assert ours[i] == pytest.approx(average_precision_score(labels[i], scores[i]), abs=1e-12)
        else:
            assert np.isnan(ours[i])
    # other score values go through the generic sort-based path, with the same results
    soft = scores + np.float32(0.25)
    np.testing.assert_allclose(ap_graded_scores(soft, labels), average_precision_rows(soft, labels))
