"""Figures: localization overlays, success-rate curves, separation spectrograms (PNG, written atomically).

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly, so nothing touches pyplot's
global state or needs a display; sizes are fixed (``figsize * dpi``, no tight bounding box) so a figure's
pixel size is known from its inputs. Colours come from fixed colormaps in input order (deterministic).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from avbench import io

DPI = 100
PANEL_IN = 3.0  # inches per overlay panel
BOX_COLOUR = "#00ff00"
OVERLAY_CMAP = "jet"


def _save(fig: Figure, out_png: str | os.PathLike) -> Path:
    FigureCanvasAgg(fig)  # attach an Agg canvas: no pyplot, no display
    with io.atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return Path(out_png)


def bilinear_resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a 2-D map (half-pixel centres, edge clamped, = ``align_corners=False``)."""
    arr = np.asarray(arr, dtype=np.float64)
    h, w = arr.shape
    ys = np.clip((np.arange(height) + 0.5) * h / height - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width) + 0.5) * w / width - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = arr[y0][:, x0] * (1 - wx) + arr[y0][:, x1] * wx
    bottom = arr[y1][:, x0] * (1 - wx) + arr[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    return np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo)


def plot_localization_overlays(images: Sequence[np.ndarray], maps: Sequence[np.ndarray],
                               boxes: Sequence[Sequence[Sequence[float]]], titles: Sequence[str] | None,
                               out_png: str | os.PathLike, ncols: int = 4, alpha: float = 0.5,
                               cmap: str = OVERLAY_CMAP) -> Path:
    """Grid of images with the (min-max normalised, bilinearly upsampled) map overlaid and GT boxes drawn.

    ``images``: HxWx3 uint8; ``maps``: hxw float; ``boxes``: per image a list of normalised ``[x1, y1, x2, y2]``.
    Output size: ``300 * ncols`` x ``300 * nrows`` pixels (``ncols`` capped at the number of images).
    """
    n = len(images)
    if n == 0 or len(maps) != n or len(boxes) != n or (titles is not None and len(titles) != n):
        raise ValueError(f"need equally many images, maps, boxes (and titles); got {n}, {len(maps)}, {len(boxes)}")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(PANEL_IN * ncols, PANEL_IN * nrows), dpi=DPI)
    for i in range(ncols * nrows):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.set_axis_off()
        if i >= n:
            continue
        image = np.asarray(images[i])
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {i} must be HxWx3, got {image.shape}")
        height, width = image.shape[:2]
        heat = _minmax(bilinear_resize(np.asarray(maps[i], dtype=np.float64), height, width))
        ax.imshow(image, extent=(0, width, height, 0), interpolation="nearest")
        ax.imshow(heat, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0, extent=(0, width, height, 0),
                  interpolation="nearest")
        for x1, y1, x2, y2 in boxes[i]:
            ax.add_patch(Rectangle((x1 * width, y1 * height), (x2 - x1) * width, (y2 - y1) * height,
                                   fill=False, edgecolor=BOX_COLOUR, linewidth=2))
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93 if titles is not None else 0.99,
                        wspace=0.03, hspace=0.12)
    return _save(fig, out_png)


def curve_auc(thresholds: np.ndarray, success: np.ndarray) -> float:
    """Trapezoid area under a success curve (PROTOCOLS 4.4, = ``sklearn.metrics.auc``)."""
    t, y = np.asarray(thresholds, dtype=np.float64), np.asarray(success, dtype=np.float64)
    return float(np.sum(np.diff(t) * (y[1:] + y[:-1]) / 2))


def plot_success_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                        out_png: str | os.PathLike, title: str = "") -> Path:
    """Success rate vs cIoU threshold, one line per method (input order, tab10 colours), AUC in the legend.

    Output size: 600 x 450 pixels.
    """
    if not curves:
        raise ValueError("no curves to plot")
    fig = Figure(figsize=(6.0, 4.5), dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    palette = [f"C{i % 10}" for i in range(len(curves))]
    for (method, (thresholds, success)), colour in zip(curves.items(), palette, strict=True):
        t, y = np.asarray(thresholds, dtype=np.float64), np.asarray(success, dtype=np.float64)
        if t.shape != y.shape:
            raise ValueError(f"{method}: thresholds {t.shape} and success {y.shape} differ")
        ax.plot(t, y, color=colour, marker="o", markersize=3, linewidth=1.5,
                label=f"{method} (AUC={curve_auc(t, y):.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("cIoU threshold")
    ax.set_ylabel("success rate")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.9)
    return _save(fig, out_png)


def log_magnitude_stft(wave: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """``20 log10 |STFT|`` (Hann window, frames of ``n_fft``, zero-padded to one frame) as [freq, time]."""
    x = np.asarray(wave, dtype=np.float64).ravel()
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    n_frames = 1 + (x.size - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(x[index] * np.hanning(n_fft)[None, :], axis=1)
    return 20.0 * np.log10(np.abs(spec).T + 1e-8)


def plot_separation_spectrograms(mixture: np.ndarray, sources_true: Sequence[np.ndarray],
                                 sources_est: Sequence[np.ndarray], sample_rate: int,
                                 out_png: str | os.PathLike, n_fft: int = 512, hop: int = 128) -> Path:
    """Log-magnitude STFT panels: the mixture on top, then one row per source (true | estimated).

    All panels share the mixture's colour range (top 80 dB) so ground truth and estimate compare directly.
    Output size: 800 x ``220 * (1 + n_sources)`` pixels.
    """
    if len(sources_true) != len(sources_est) or not sources_true:
        raise ValueError(f"need as many estimates as sources; got {len(sources_true)} and {len(sources_est)}")
    n_src = len(sources_true)
    mix_db = log_magnitude_stft(mixture, n_fft, hop)
    vmax = float(mix_db.max())
    vmin = vmax - 80.0
    duration = max(len(np.asarray(mixture).ravel()), n_fft) / sample_rate
    extent = (0.0, duration, 0.0, sample_rate / 2 / 1000.0)
    fig = Figure(figsize=(8.0, 2.2 * (1 + n_src)), dpi=DPI)
    grid = fig.add_gridspec(1 + n_src, 2)

    def panel(ax: Axes, spec_db: np.ndarray, title: str) -> AxesImage:
        image = ax.imshow(spec_db, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                          extent=extent, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("kHz", fontsize=8)
        ax.tick_params(labelsize=7)
        return image

    image = panel(fig.add_subplot(grid[0, :]), mix_db, "mixture")
    for k in range(n_src):
        panel(fig.add_subplot(grid[1 + k, 0]), log_magnitude_stft(sources_true[k], n_fft, hop), f"source {k + 1}: true")
        panel(fig.add_subplot(grid[1 + k, 1]), log_magnitude_stft(sources_est[k], n_fft, hop),
              f"source {k + 1}: estimated")
    fig.subplots_adjust(left=0.08, right=0.86, bottom=0.1, top=0.93, hspace=0.65, wspace=0.2)
    fig.colorbar(image, cax=fig.add_axes((0.89, 0.15, 0.015, 0.7)), label="dB")
    fig.supxlabel("time (s)", fontsize=8)
    return _save(fig, out_png)


__all__ = [
    "bilinear_resize", "curve_auc", "log_magnitude_stft", "plot_localization_overlays",
    "plot_separation_spectrograms", "plot_success_curves",
]
