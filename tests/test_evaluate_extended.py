"""Extended (false-positive) localization wiring: hand-made test sets and models whose maps are known exactly."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from avbench.evaluate import evaluate_extended, extended_partners
from avbench.metrics import extended as E
from avbench.mixtures import make_pairs

SIZE = 8  # maps and GTs are 8 x 8: no upsampling, 64 pixels, SLAVC's top quarter = 16 pixels
AREAS = [20, 16, 8, 4]  # GT box areas (pixels) of the four positives


def make_items(areas: list[int]) -> list[dict[str, Any]]:
    """One item per class: channel 0 of the image holds the GT box, channel 1 the class id; the spectrogram is
    the class id everywhere, so a model can tell whether the audio belongs to the image."""
    items = []
    for cls, area in enumerate(areas):
        gt = torch.zeros(SIZE, SIZE)
        gt.view(-1)[:area] = 1.0  # the first `area` pixels in raster order
        image = torch.stack([gt, torch.full((SIZE, SIZE), float(cls)), torch.zeros(SIZE, SIZE)])
        items.append({"clip_id": f"clip{cls:07d}_000000", "label_idx": cls, "image": image,
                      "spec": torch.full((1, 2, 2), float(cls)), "gt": gt, "boxes": [[0.0, 0.0, 1.0, 1.0]]})
    return items


class MaskModel(torch.nn.Module):
    """Cosine-like maps: 1 on the GT box except its first pixel (0.9, so the box has a unique minimum), -1
    elsewhere. With ``audio_blind=False`` a clip heard with another class's audio gets a flat -1 map."""

    def __init__(self, audio_blind: bool) -> None:
        super().__init__()
        self.audio_blind = audio_blind

    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        mask = images[:, 0]
        maps = 2 * mask - 1
        first = mask.flatten(1).argmax(1)
        maps.view(len(maps), -1)[torch.arange(len(maps)), first] = 0.9
        if not self.audio_blind:
            match = images[:, 1, 0, 0] == specs[:, 0, 0, 0]
            maps = torch.where(match[:, None, None], maps, torch.full_like(maps, -1.0))
        return maps


# Per positive, by hand. Protocol sslalignment_adaptive: min-max gives background 0, first box pixel 0.95,
# rest 1; the adaptive threshold is the k-th largest value (k = area) = 0.95 and `p > thr` keeps the other
# area - 1 box pixels: cIoU = (area - 1) / area. Confidence: top-16 mean of (map + 1) / 2 (background 0,
# first box pixel 0.95, rest 1).
POS_CIOU = [(a - 1) / a for a in AREAS]
POS_CONF = [1.0, 15.95 / 16, 7.95 / 16, 3.95 / 16]


def test_flat_negatives_hand_computed() -> None:
    out = evaluate_extended(MaskModel(audio_blind=False), make_items(AREAS), "sslalignment_adaptive", seed=0,
                            batch_size=3)
    # confidences: positives (1, .996875, .496875, .246875), negatives 0 (flat map -1 -> abs score 0).
    # SLAVC calc_ap thresholds (second-highest down): .996875 -> P 1, R 1/2; .496875 -> P 1, R 3/4;
    # .246875 -> P 1, R 1; 0 (x4) -> P 1/2, R 1. AP = 1 * 1/4 + 1 * 1/4 = 1/2 (it never sees R < 1/2).
    assert out["ap"] == pytest.approx(0.5)
    assert out["ap_exact"] == pytest.approx(1.0)  # every positive ranks above every negative
    assert out["max_f1"] == pytest.approx(1.0)  # at c = .246875: P 1, R 1
    assert out["loc_acc"] == pytest.approx(1.0)  # every positive cIoU >= 0.5
    assert out["f1_all@0.5"] == pytest.approx(2 / 3)  # conf >= 0.5 admits 2 of 4 positives: P 1, R 1/2
    assert out["precision_all@0.5"] == pytest.approx(0.5)  # 4 hits over 8 samples
    assert out["n"] == 4 and out["n_negatives"] == 4 and out["n_all"] == 8 and out["n_visible"] == 4
    assert out["avg_ciou_visible"] == pytest.approx(np.mean(POS_CIOU))
    assert out["protocol"] == "sslalignment_adaptive" and out["conf_norm"] == "abs_cos"


def test_audio_blind_model_matches_metric_module() -> None:
    """Negatives with the same maps as their positives: the wiring must give what the metric module gives for
    the per-sample values worked out by hand."""
    out = evaluate_extended(MaskModel(audio_blind=True), make_items(AREAS), "sslalignment_adaptive", seed=0,
                            batch_size=4)
    # a negative's map is its own positive's map, but its GT is empty: cIoU 0, no boxes
    conf = POS_CONF + POS_CONF
    ciou = POS_CIOU + [0.0] * 4
    boxes = [1] * 4 + [0] * 4
    area = AREAS + [0] * 4
    expected = E.extended_metrics(conf, ciou, boxes, area, hw=SIZE * SIZE)
    for key in ("ap_all@0.5", "maxf1_all@0.5", "f1_all@0.5", "precision_all@0.5", "locacc@0.5", "ap_all@0.75",
                "auc_visible", "n_small", "n_visible"):
        assert out[key] == pytest.approx(expected[key]), key
    # by hand: every threshold admits as many negatives as positives -> P 1/2 throughout; SLAVC's AP starts at
    # R = 1/4 (c = 1 admits one positive and one negative) -> 1/2 * 3/4; the exact AP integrates from R = 0
    assert out["ap"] == pytest.approx(0.375)
    assert out["ap_exact"] == pytest.approx(0.5)
    assert out["ap_exact"] == pytest.approx(E.ap_voc_exact(conf, ciou, boxes, 0.5))


def test_partners_seeded_class_distinct_and_same_as_mixture_pairs() -> None:
    labels = [0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2]
    items = [{"clip_id": f"vid{i:08d}_000010", "label_idx": lab} for i, lab in enumerate(labels)]
    partners = extended_partners(items, seed=3)
    assert all(labels[j] != labels[i] for i, j in enumerate(partners))
    np.testing.assert_array_equal(partners, extended_partners(items, seed=3))  # deterministic
    assert not np.array_equal(partners, extended_partners(items, seed=4))  # and drawn from the seed
    # the pairing rule is the mixtures' (PROTOCOLS 5.4): make_pairs on the same clips gives the same partners
    frame = pd.DataFrame({"clip_id": [it["clip_id"] for it in items], "label": [str(x) for x in labels],
                          "ytid": [it["clip_id"][:11] for it in items]})
    pairs = make_pairs(frame, seed=3).set_index("id_a")["id_b"]
    assert [items[j]["clip_id"] for j in partners] == [pairs[it["clip_id"]] for it in items]
    # a ClipDataset is read through its decoded clip list, without building items
    clips = [SimpleNamespace(clip_id=it["clip_id"], label_idx=it["label_idx"]) for it in items]
    np.testing.assert_array_equal(extended_partners(_Sized(clips), seed=3), partners)


class _Sized:
    """A minimal ClipDataset stand-in: ``clips`` and ``len`` only (indexing it would fail the test)."""

    def __init__(self, clips: list[SimpleNamespace]) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        raise AssertionError("extended_partners decoded an item")


def test_single_class_test_split_has_no_extended_set() -> None:
    items = make_items(AREAS)
    for item in items:
        item["label_idx"] = 0
    assert extended_partners(items, seed=0) is None
    assert evaluate_extended(MaskModel(audio_blind=False), items, "sslalignment_adaptive", seed=0,
                             batch_size=4) is None
