"""Figures: non-empty PNGs of the documented pixel size, deterministic, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from avbench import plots


def _png(path: Path) -> Image.Image:
    assert path.is_file() and path.stat().st_size > 1000
    assert not list(path.parent.glob(f".{path.name}.*")), "temporary file left behind"
    image = Image.open(path)
    assert image.format == "PNG"
    return image


def _inputs(n: int) -> tuple[list[np.ndarray], list[np.ndarray], list[list[list[float]]]]:
    rng = np.random.default_rng(0)
    images = [(rng.random((96, 128, 3)) * 255).astype(np.uint8) for _ in range(n)]
    maps = [rng.random((7, 7)) for _ in range(n)]
    boxes = [[[0.1, 0.2, 0.5, 0.8]], [], [[0.0, 0.0, 1.0, 1.0], [0.6, 0.1, 0.9, 0.4]]][:n]
    return images, maps, boxes


def test_localization_overlays(tmp_path: Path) -> None:
    images, maps, boxes = _inputs(3)
    out = plots.plot_localization_overlays(images, maps, boxes, ["a", "b", "c"], tmp_path / "sub" / "ov.png",
                                           ncols=2)
    assert out == tmp_path / "sub" / "ov.png"
    image = np.asarray(_png(out).convert("RGB"))
    assert image.shape == (2 * 300, 2 * 300, 3)
    assert image.std() > 10  # not blank
    # the GT box colour (pure green) is drawn
    assert ((image[..., 1] > 200) & (image[..., 0] < 60) & (image[..., 2] < 60)).sum() > 50
    # deterministic
    again = plots.plot_localization_overlays(images, maps, boxes, ["a", "b", "c"], tmp_path / "again.png", ncols=2)
    assert again.read_bytes() == out.read_bytes()


def test_localization_overlays_rejects_mismatched_inputs(tmp_path: Path) -> None:
    images, maps, boxes = _inputs(2)
    with pytest.raises(ValueError):
        plots.plot_localization_overlays(images, maps[:1], boxes, None, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_bilinear_resize_matches_half_pixel_convention() -> None:
    grid = np.array([[0.0, 1.0], [2.0, 3.0]])
    up = plots.bilinear_resize(grid, 4, 4)
    assert up.shape == (4, 4)
    assert up[0, 0] == 0.0 and up[-1, -1] == 3.0
    assert up[0, 1] == pytest.approx(0.25) and up[1, 0] == pytest.approx(0.5)
    assert plots.bilinear_resize(grid, 2, 2) == pytest.approx(grid)


def test_success_curves(tmp_path: Path) -> None:
    thresholds = np.linspace(0.0, 1.0, 21)
    curves = {"ezvsl": (thresholds, 1.0 - thresholds), "centre_prior": (thresholds, (1.0 - thresholds) ** 2)}
    assert plots.curve_auc(thresholds, 1.0 - thresholds) == pytest.approx(0.5)
    out = plots.plot_success_curves(curves, tmp_path / "sr.png", "synthav")
    assert _png(out).size == (600, 450)
    with pytest.raises(ValueError):
        plots.plot_success_curves({"bad": (thresholds, thresholds[:5])}, tmp_path / "bad.png")


def test_separation_spectrograms(tmp_path: Path) -> None:
    sr = 8000
    t = np.arange(sr) / sr
    a, b = np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 1500 * t)
    out = plots.plot_separation_spectrograms(a + b, [a, b], [0.9 * a, 1.1 * b], sr, tmp_path / "sep.png")
    image = _png(out)
    assert image.size == (800, 220 * 3)
    assert np.asarray(image.convert("L")).std() > 5
    spec = plots.log_magnitude_stft(a, n_fft=512, hop=128)
    assert spec.shape == (257, 1 + (sr - 512) // 128)
    assert abs(int(spec.mean(axis=1).argmax()) - round(440 / (sr / 512))) <= 1  # energy at 440 Hz


def test_separation_comparison_one_column_per_method(tmp_path: Path) -> None:
    sr = 8000
    t = np.arange(sr) / sr
    a, b = np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 1500 * t)
    out = plots.plot_separation_comparison(a + b, [a, b], {"m1": [a, b], "m2": [b, a]}, sr, tmp_path / "c.png")
    assert _png(out).size == (400 * 3, 220 * 3)
    only_true = plots.plot_separation_comparison(a + b, [a, b], {}, sr, tmp_path / "t.png")
    assert _png(only_true).size == (400, 220 * 3)
    with pytest.raises(ValueError):
        plots.plot_separation_comparison(a + b, [a, b], {"m1": [a]}, sr, tmp_path / "bad.png")


def test_success_curves_from_per_sample_rows_of_the_protocol() -> None:
    frame = pd.DataFrame({"clip_id": ["a", "b", "a", "b"], "protocol": ["p", "p", "q", "q"],
                          "ciou": [0.5, 0.1, 1.0, 1.0]})
    curves = plots.success_curves_from_per_sample({"m": frame, "empty": frame.iloc[:0]}, "p")
    assert list(curves) == ["m"]
    t, y = curves["m"]
    assert t[0] == 0.0 and y[0] == 1.0
    assert y[np.searchsorted(t, 0.3)] == 0.5 and y[np.searchsorted(t, 0.55)] == 0.0  # only the "p" rows


def test_first_pair_and_centre() -> None:
    assert plots.first_pair([2, 2, 5, 2]) == (0, 2)
    assert plots.first_pair([1, 1]) is None
    np.testing.assert_array_equal(plots._centre(np.arange(10), 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(plots._centre(np.arange(2), 4), [0, 0, 1, 0])


class _PeakModel(torch.nn.Module):
    """Puts the map's peak on the GT box held in the image's first channel (a perfect localizer)."""

    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        return images[:, 0] + 0.01 * torch.arange(images[0, 0].numel()).view(images.shape[-2:]) / images[0, 0].numel()


def test_localization_examples_scores_the_drawn_maps() -> None:
    items = []
    for k in range(3):
        gt = torch.zeros(8, 8)
        gt[k:k + 4, 2:6] = 1
        items.append({"image": torch.stack([gt, gt, gt]), "spec": torch.zeros(1, 2, 2), "gt": gt,
                      "clip_id": f"c{k}", "label_idx": k})
    maps, ciou = plots.localization_examples(_PeakModel(), items, 2, "sslalignment_adaptive")
    assert maps.shape == (2, 8, 8)
    # adaptive threshold = the 16th largest value, `p > thr`: the 15 other box pixels -> cIoU 15 / 16
    np.testing.assert_allclose(ciou, [15 / 16, 15 / 16])
